package quota

import (
	"testing"
	"time"
)

// fakeClock drives a meter's fill; Wait's sleeps use the real clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newFake(share float64) (*Meter, *fakeClock) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	m := &Meter{now: c.now, release: make(chan struct{}), last: c.t}
	m.SetShare(share)
	return m, c
}

// The bucket fills at the share, up to the burst, and batches drain it.
func TestMeterFillsAtItsShare(t *testing.T) {
	m, c := newFake(0.5)
	c.t = c.t.Add(100 * time.Millisecond)
	m.Spent(0)
	if m.tokens != 50*time.Millisecond {
		t.Fatalf("after 100 ms at half a core: %v of guest time, want 50ms", m.tokens)
	}
	c.t = c.t.Add(time.Hour)
	m.Spent(0)
	if want := time.Duration(float64(burst) * 0.5); m.tokens != want {
		t.Fatalf("after an idle hour: %v saved, want the burst %v", m.tokens, want)
	}
	m.Spent(400 * time.Millisecond)
	if m.tokens != -275*time.Millisecond {
		t.Fatalf("after a 400 ms batch: %v, want -275ms", m.tokens)
	}
	if spent, _ := m.Totals(); spent != 400*time.Millisecond {
		t.Fatalf("spent %v, want 400ms", spent)
	}
	m.SetShare(0.1)
	c.t = c.t.Add(time.Second)
	m.Spent(0)
	if m.tokens != -175*time.Millisecond {
		t.Fatalf("a second at a tenth of a core later: %v, want -175ms", m.tokens)
	}
}

// A meter in debt makes a task wait about debt/share; an unbounded one never
// waits.
func TestMeterWaitsOutItsDebt(t *testing.T) {
	unbounded := New(0)
	unbounded.Spent(time.Hour)
	if !unbounded.Wait(time.Now(), nil) {
		t.Fatal("an unbounded meter made a task wait")
	}
	m := New(1)
	m.Spent(m.cap() + 60*time.Millisecond) // 60 ms in debt at one core
	start := time.Now()
	if !m.Wait(time.Now().Add(5*time.Second), nil) {
		t.Fatal("Wait gave up before its deadline")
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("waited %v for 60 ms of debt at one core", waited)
	}
	m.Spent(time.Minute)
	if m.Wait(time.Now().Add(20*time.Millisecond), nil) {
		t.Fatal("a minute in debt, Wait did not give up at its deadline")
	}
	stop := make(chan struct{})
	close(stop)
	if m.Wait(time.Now().Add(time.Minute), stop) {
		t.Fatal("Wait ran on after stop")
	}
}

// A held meter runs nothing until released, and a release wakes the tasks
// waiting at once.
func TestMeterHoldsUntilReleased(t *testing.T) {
	m := New(0)
	m.Hold("state quota exceeded")
	if m.Held() != "state quota exceeded" {
		t.Fatalf("Held() = %q", m.Held())
	}
	if m.Wait(time.Now().Add(20*time.Millisecond), nil) {
		t.Fatal("a held meter let a task run")
	}
	done := make(chan bool)
	go func() { done <- m.Wait(time.Now().Add(time.Minute), nil) }()
	time.Sleep(20 * time.Millisecond)
	m.Release()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("the released task gave up")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Release did not wake the waiting task")
	}
	if _, waited := m.Totals(); waited < 20*time.Millisecond {
		t.Fatalf("waited total %v, want at least the 40 ms held", waited)
	}
}

// No more batches run at once than the share has cores, rounded up: with
// half a core and time in the bucket, a second batch waits for the first
// to end, and a share of 1.5 runs two.
func TestMeterRunsNoMoreBatchesAtOnceThanItsCores(t *testing.T) {
	m, _ := newFake(0.5)
	m.tokens = 100 * time.Millisecond
	if !m.Wait(time.Now().Add(time.Second), nil) {
		t.Fatal("the first batch waited with time in the bucket")
	}
	if m.Wait(time.Now().Add(50*time.Millisecond), nil) {
		t.Fatal("a second batch of a half-core tenant ran beside the first")
	}
	admitted := make(chan bool)
	go func() { admitted <- m.Wait(time.Now().Add(10*time.Second), nil) }()
	time.Sleep(20 * time.Millisecond)
	m.Spent(10 * time.Millisecond)
	if !<-admitted {
		t.Fatal("the waiting batch did not run once the first ended")
	}
	m.Spent(10 * time.Millisecond)

	m.SetShare(1.5)
	m.tokens = 100 * time.Millisecond
	for i := range 2 {
		if !m.Wait(time.Now().Add(time.Second), nil) {
			t.Fatalf("batch %d of a 1.5-core tenant waited", i+1)
		}
	}
	if m.Wait(time.Now().Add(50*time.Millisecond), nil) {
		t.Fatal("a third batch of a 1.5-core tenant ran beside two")
	}
}
