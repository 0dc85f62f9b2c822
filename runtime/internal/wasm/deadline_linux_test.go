package wasm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests here starve a guest: its thread and a few busy competitor
// processes share one CPU, so that the guest's wall time is several times
// its CPU time. Competitors are processes, not goroutines, so that they
// compete for the CPU and not for the Go scheduler's Ps.

// competitors starts n processes that spin on cpu, and returns once all of
// them spin. They are killed when the test ends.
func competitors(t *testing.T, cpu, n int) {
	t.Helper()
	for range n {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSpin$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("STREAMRT_TEST_SPIN_CPU=%d", cpu))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "spinning\n" {
			t.Fatalf("competitor: %q, %v", line, err)
		}
	}
}

// TestSpin is a competitor when STREAMRT_TEST_SPIN_CPU is set: it pins its
// thread to that CPU, says so, and spins until killed.
func TestSpin(t *testing.T) {
	cpu := os.Getenv("STREAMRT_TEST_SPIN_CPU")
	if cpu == "" {
		t.Skip("a competitor for the starvation tests")
	}
	runtime.LockOSThread()
	var set unix.CPUSet
	var n int
	fmt.Sscan(cpu, &n)
	set.Set(n)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	fmt.Println("spinning")
	for {
	}
}

// pinned runs f with the calling goroutine locked to its thread and the
// thread pinned to one CPU, which it returns to f: a guest that f calls on
// its own goroutine runs on that thread and that CPU.
func pinned(t *testing.T, f func(cpu int)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	cpu := 0
	for !orig.IsSet(cpu) {
		cpu++
	}
	var one unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &orig)
	f(cpu)
}

// usage records the CPU and wall time between a guest's log at level 0
// and its log at level 1, measured on the guest's thread.
type usage struct {
	cpu0, cpu, wall time.Duration
	start           time.Time
}

func (u *usage) onLog(level int32) {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	if level == 0 {
		u.cpu0, u.start = time.Duration(ts.Nano()), time.Now()
		return
	}
	u.cpu, u.wall = time.Duration(ts.Nano())-u.cpu0, time.Since(u.start)
}

// A guest that needs less CPU time than its deadline is not stopped when
// the machine starves it for longer than that in wall time: the deadline
// counts the guest's CPU time.
func TestCPUDeadlineIgnoresStarvation(t *testing.T) {
	const deadline, need = 400 * time.Millisecond, 150 * time.Millisecond
	// The cap is raised from 4 s, so that a busy machine starving the
	// guest further cannot make it stop the guest.
	inst := instance(t, newEngine(t, Config{Deadline: deadline, WallLimit: time.Minute}), burner())
	ctx := context.Background()

	// How many iterations take 150 ms of CPU, from a run of 20 million.
	var u usage
	h := &logHost{onLog: u.onLog}
	const probe = 20_000_000
	if err := process(t, ctx, inst, h, count(probe)); err != nil {
		t.Fatal(err)
	}
	n := uint32(min(float64(probe)*float64(need)/float64(u.cpu), 1<<31))

	// Four processes spin on the guest's CPU: it gets a fifth of it, or
	// less on a busy machine.
	pinned(t, func(cpu int) {
		competitors(t, cpu, 4)
		u = usage{}
		if err := inst.Process(ctx, h, count(n)); err != nil {
			t.Fatalf("a starved guest that needs about %v of CPU time was stopped: %v", need, err)
		}
	})
	t.Logf("the guest used %v of CPU time in %v of wall time, under a deadline of %v", u.cpu, u.wall, deadline)
	if u.wall <= deadline {
		t.Fatalf("the guest ran %v, not starved past its deadline of %v: the test proves nothing", u.wall, deadline)
	}
}

// The wall-clock cap stops a starved guest whose CPU time stays under the
// deadline.
func TestWallCapStopsAStarvedGuest(t *testing.T) {
	const deadline, wallCap = 5 * time.Second, 300 * time.Millisecond
	inst := instance(t, newEngine(t, Config{Deadline: deadline, WallLimit: wallCap}), burner())
	var u usage
	h := &logHost{onLog: u.onLog}
	var err error
	pinned(t, func(cpu int) {
		competitors(t, cpu, 4)
		// 2^32 iterations, seconds of CPU time: if the cap failed, the
		// deadline would stop the guest, naming CPU time.
		err = inst.Process(context.Background(), h, count(0))
	})
	if !errors.Is(err, ErrDeadline) || inst.Broken() == nil {
		t.Fatalf("got %v (broken %v), want ErrDeadline and a broken instance", err, inst.Broken())
	}
	if !strings.Contains(err.Error(), "stopped after 300ms of wall time") || !strings.Contains(err.Error(), "over the wall-clock cap") {
		t.Fatalf("error %q does not name the wall-clock cap", err)
	}
	t.Log(err)
}
