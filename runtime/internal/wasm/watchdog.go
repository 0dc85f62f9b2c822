package wasm

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// A watchdog stops the guest calls of one engine that overrun its limits:
// the CPU time of the thread a call runs on (the deadline), or the wall time
// since the watchdog first saw the call (the wall cap). It is one goroutine
// that wakes every tick while the engine has instances, so that a call costs
// no timer, only a few atomic operations, locking its goroutine to its
// thread, and asking the thread's id.
//
// It stops a call by setting the instance's interrupt flag, which the
// instrumented module checks at every function entry and loop head
// (package instrument). The module also returns to the Go runtime every
// 65,536 checks, which is what lets this goroutine run at all while guests
// spin: compiled guest code cannot be preempted.
//
// Accounting starts when the watchdog first sees a call, at most a tick
// after the call began; before that the call is not timed. So a call is
// stopped after between the limit and the limit plus two ticks.
type watchdog struct {
	deadline time.Duration // of CPU time, or of wall time without CPU clocks
	wallCap  time.Duration
	tick     time.Duration

	mu     sync.Mutex
	guards []*guard
	wake   chan struct{} // the first instance arrived
	quit   chan struct{}
	done   chan struct{}
}

func newWatchdog(deadline, wallCap time.Duration) *watchdog {
	tick := min(deadline, wallCap) / 20
	tick = max(time.Millisecond, min(tick, 100*time.Millisecond))
	w := &watchdog{deadline: deadline, wallCap: wallCap, tick: tick,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// close stops the watchdog's goroutine and waits for it.
func (w *watchdog) close() {
	close(w.quit)
	<-w.done
}

func (w *watchdog) run() {
	defer close(w.done)
	t := time.NewTicker(w.tick)
	defer t.Stop()
	for {
		w.mu.Lock()
		idle := len(w.guards) == 0
		w.mu.Unlock()
		if idle {
			t.Stop()
			select {
			case <-w.wake:
				t.Reset(w.tick)
				continue
			case <-w.quit:
				return
			}
		}
		select {
		case <-t.C:
			w.check(time.Now()) // not the tick's time: this goroutine may run late
		case <-w.quit:
			return
		}
	}
}

// register watches the calls of an instance whose interrupt flag is flag.
func (w *watchdog) register(flag api.MutableGlobal) *guard {
	g := &guard{w: w, flag: flag}
	g.done.Store((<-chan struct{})(nil))
	w.mu.Lock()
	w.guards = append(w.guards, g)
	first := len(w.guards) == 1
	w.mu.Unlock()
	if first {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return g
}

func (w *watchdog) unregister(g *guard) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, x := range w.guards {
		if x == g {
			last := len(w.guards) - 1
			w.guards[i], w.guards[last] = w.guards[last], nil
			w.guards = w.guards[:last]
			return
		}
	}
}

func (w *watchdog) check(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, g := range w.guards {
		w.inspect(g, now)
	}
}

// inspect stops g's current call if it overran a limit. It reads a thread's
// CPU clock (a system call) when it first sees a call and, later, only once
// the call's wall time could hold its CPU deadline.
func (w *watchdog) inspect(g *guard, now time.Time) {
	s := g.state.Load()
	if s&1 == 0 || g.stopped == s {
		return // idle, or stopped already
	}
	if g.seen != s {
		// A call not seen before. The thread id and its CPU time belong to
		// the call if the state did not move meanwhile: a call stores its
		// thread id before it counts itself running.
		cpu, ok := threadCPU(g.tid.Load())
		if g.state.Load() == s {
			g.seen, g.wall0, g.cpu0, g.hasCPU = s, now, cpu, ok
		}
		return
	}
	if done := g.done.Load().(<-chan struct{}); done != nil {
		select {
		case <-done:
			g.stop(s, &overrun{limit: limitContext})
			return
		default:
		}
	}
	o := overrun{wall: now.Sub(g.wall0), limitValue: w.deadline}
	if g.hasCPU && (o.wall >= w.deadline || o.wall >= w.wallCap) {
		if cpu, ok := threadCPU(g.tid.Load()); ok {
			o.cpu = cpu - g.cpu0
		}
	}
	switch {
	case g.hasCPU && o.cpu >= w.deadline:
		o.limit = limitCPU
	case !g.hasCPU && o.wall >= w.deadline:
		o.limit = limitWall
	case o.wall >= w.wallCap:
		o.limit, o.limitValue = limitWallCap, w.wallCap
	default:
		return
	}
	g.stop(s, &o)
}

// guard is an instance's entry in its engine's watchdog: the state of the
// instance's current call, and the flag that stops it. Its methods are nil
// safe: an engine without a deadline gives its instances none.
type guard struct {
	w    *watchdog
	flag api.MutableGlobal

	// state counts begin and end calls: odd while a call runs. Its value
	// names the current call.
	state atomic.Uint64
	tid   atomic.Int32 // the thread the current call runs on
	done  atomic.Value // <-chan struct{}: the current call's ctx.Done()

	mu      sync.Mutex // orders a stop with the end of the call it stops
	overran *overrun   // why the current call was stopped, under mu
	raised  bool       // the flag is set, under mu

	// The watchdog's notes, used by its goroutine alone: the call it saw
	// first at wall0 (its thread had used cpu0 then, if hasCPU), and the
	// last call it stopped.
	seen, stopped uint64
	wall0         time.Time
	cpu0          time.Duration
	hasCPU        bool
}

// begin marks the start of a guest call on this goroutine: it stays on its
// thread until end, so that the thread's CPU time is the call's.
func (g *guard) begin(ctx context.Context) {
	if g == nil {
		return
	}
	runtime.LockOSThread()
	g.tid.Store(threadID())
	g.done.Store(ctx.Done())
	g.state.Add(1)
}

// end marks the end of the call and returns why the watchdog stopped it, or
// nil. A call stopped as it returned keeps its result: end lowers the flag
// again when ok.
func (g *guard) end(ok bool) *overrun {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	g.state.Add(1)
	o := g.overran
	g.overran = nil
	if ok && g.raised {
		g.flag.Set(0)
		g.raised = false
	}
	g.mu.Unlock()
	runtime.UnlockOSThread()
	return o
}

// stop stops call s, unless it ended.
func (g *guard) stop(s uint64, o *overrun) {
	g.stopped = s
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state.Load() != s {
		return
	}
	g.overran = o
	g.flag.Set(1)
	g.raised = true
}

// close removes the guard from its watchdog.
func (g *guard) close() {
	if g != nil {
		g.w.unregister(g)
	}
}

// The limit a call overran.
const (
	limitCPU     = iota + 1 // the deadline, in CPU time
	limitWall               // the deadline, in wall time, without CPU clocks
	limitWallCap            // the wall-clock cap
	limitContext            // not a limit: the call's context ended
)

// overrun says which limit a call overran, and what it had used.
type overrun struct {
	limit      int
	limitValue time.Duration
	cpu, wall  time.Duration
}

func (o *overrun) String() string {
	switch o.limit {
	case limitCPU:
		return fmt.Sprintf("stopped after %v of CPU time: used %v, over the CPU deadline", o.limitValue, round(o.cpu))
	case limitWall:
		return fmt.Sprintf("stopped after %v of wall time: ran %v, over the deadline (no per-thread CPU clock on %s)", o.limitValue, round(o.wall), runtime.GOOS)
	case limitWallCap:
		return fmt.Sprintf("stopped after %v of wall time: ran %v with %v of CPU time, over the wall-clock cap", o.limitValue, round(o.wall), round(o.cpu))
	}
	return "stopped: its context ended"
}

// round keeps three significant digits or so of a duration for messages.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}
