// Package quota meters what one tenant's tasks take of a server: their
// share of guest time, and whether they may run at all.
//
// A Meter is a token bucket of guest time. It fills at Share cores (Share
// seconds of guest time per second) up to a small burst, and every batch
// a task runs drains it by the time the batch took. A task waits before a
// batch while the bucket is empty, so a tenant over its share waits for
// its own time and the cores stay free for the others; no batch is cut
// short (the per-batch deadline stays the hard stop). Nor may more batches
// run at once than the share has cores, rounded up: a tenant of a quarter
// core whose four tasks all found the bucket full would otherwise take
// four cores for as long as a batch lasts, and every other tenant's
// goroutines would queue behind them for the scheduler. A Meter may also be
// held, for example while its tenant is over its state quota: then every
// task waits, processing nothing, until it is released.
package quota

import (
	"math"
	"sync"
	"time"
)

// burst is how much unused guest time a meter saves up, in seconds of
// time per core of share: enough to absorb one slow batch without
// letting an idle tenant bank a long run over its share.
const burst = 250 * time.Millisecond

// Meter meters one tenant's guest time on one server. It is safe for
// concurrent use by every task of the tenant's apps. The zero Meter is
// not usable; use New.
type Meter struct {
	mu      sync.Mutex
	share   float64       // cores; 0 is no bound
	tokens  time.Duration // guest time available; negative is debt
	last    time.Time     // when tokens were last topped up
	held    string        // why every task waits; "" when none does
	running int           // batches between Wait and Spent
	release chan struct{} // closed when the meter is released or changed

	// Totals, for metrics.
	spent, waited time.Duration

	now func() time.Time // time.Now, but for tests
}

// New returns a meter of share cores (0: unbounded).
func New(share float64) *Meter {
	m := &Meter{now: time.Now, release: make(chan struct{})}
	m.last = m.now()
	m.SetShare(share)
	return m
}

// SetShare changes the share, for example when the tenant's quota changes.
func (m *Meter) SetShare(share float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fill()
	m.share = max(share, 0)
	m.tokens = min(m.tokens, m.cap())
	m.wake()
}

// Hold makes every task wait, for reason, until Release.
func (m *Meter) Hold(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held = reason
}

// Release ends a Hold.
func (m *Meter) Release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held != "" {
		m.held = ""
		m.wake()
	}
}

// Held says why the meter holds its tasks, or "".
func (m *Meter) Held() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held
}

// Wait blocks until a task may run a batch, and reports true; or, when
// deadline comes first (or stop is closed), false: the task then ends its
// run, its records staying queued for the next. A batch Wait admitted
// ends with Spent.
func (m *Meter) Wait(deadline time.Time, stop <-chan struct{}) bool {
	for {
		m.mu.Lock()
		m.fill()
		var wait time.Duration
		switch {
		case m.held != "":
			wait = time.Until(deadline)
		case m.share == 0 || m.tokens > 0 && m.running < m.slots():
			m.running++
			m.mu.Unlock()
			return true
		case m.tokens > 0:
			wait = time.Until(deadline) // until a batch ends (Spent wakes it)
		default:
			wait = time.Duration(float64(-m.tokens)/m.share) + time.Millisecond
		}
		changed := m.release
		m.mu.Unlock()
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		start := time.Now()
		t := time.NewTimer(min(wait, left))
		select {
		case <-t.C:
		case <-changed:
		case <-stop:
			t.Stop()
			return false
		}
		t.Stop()
		m.mu.Lock()
		m.waited += time.Since(start)
		m.mu.Unlock()
	}
}

// Spent ends a batch Wait admitted, charging the d of guest time it took.
func (m *Meter) Spent(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fill()
	m.tokens -= d
	m.spent += d
	m.running = max(m.running-1, 0)
	if m.share > 0 {
		m.wake() // a slot is free
	}
}

// slots is how many batches may run at once: the share's cores, rounded
// up. Callers hold m.mu.
func (m *Meter) slots() int { return int(math.Ceil(m.share)) }

// Totals returns the guest time spent and the time tasks waited for the
// meter, since New.
func (m *Meter) Totals() (spent, waited time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.spent, m.waited
}

// fill tops the bucket up for the time since the last fill. Callers hold
// m.mu.
func (m *Meter) fill() {
	now := m.now()
	if m.share > 0 {
		m.tokens = min(m.tokens+time.Duration(float64(now.Sub(m.last))*m.share), m.cap())
	}
	m.last = now
}

func (m *Meter) cap() time.Duration { return time.Duration(float64(burst) * max(m.share, 0.01)) }

// wake lets every waiting task look again. Callers hold m.mu.
func (m *Meter) wake() {
	close(m.release)
	m.release = make(chan struct{})
}
