package wasm

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/internal/wasm/instrument"
)

// logHost serves a guest's log calls with onLog, and refuses the rest.
type logHost struct {
	recordingHost
	onLog func(level int32)
}

func (h *logHost) Log(level int32, _ []byte) {
	if h.onLog != nil {
		h.onLog(level)
	}
}

// logImport is the guest's import of log(level, ptr, len), function 0.
var logImport = tinyImport{module: abi.ImportModule, name: abi.FuncLog, params: []byte{tI32, tI32, tI32}}

// burner is a guest whose streamrt_process logs at level 0, counts down
// from the little-endian uint32 at the start of its batch, logs at level 1
// and returns 0: a call that uses as much CPU time as it is told to, and
// says on its own thread when it starts and ends. A count of 0 counts 2^32.
func burner() tinyModule {
	g := validGuest()
	g.imports = []tinyImport{logImport}
	g.funcs[2].body = []byte{
		0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0x10, 0x00, // log(0, 0, 0)
		0x20, 0x00, 0x28, 0x02, 0x00, 0x21, 0x01, // len = *ptr: the count
		0x03, 0x40, // loop
		0x20, 0x01, 0x41, 0x01, 0x6b, 0x22, 0x01, 0x0d, 0x00, // br_if 0 (len = len - 1)
		0x0b,                                           // end
		0x41, 0x01, 0x41, 0x00, 0x41, 0x00, 0x10, 0x00, // log(1, 0, 0)
		0x41, 0x00, // i32.const 0
	}
	return g
}

// count is a batch telling the burner to count down from n.
func count(n uint32) []byte { return binary.LittleEndian.AppendUint32(nil, n) }

// spinner is a guest whose streamrt_process logs at level 0, then spins in
// loop br 0.
func spinner() tinyModule {
	g := validGuest()
	g.imports = []tinyImport{logImport}
	g.funcs[2].body = []byte{
		0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0x10, 0x00, // log(0, 0, 0)
		0x03, 0x40, 0x0c, 0x00, 0x0b, // loop br 0 end
		0x41, 0x00,
	}
	return g
}

func instance(t testing.TB, e *Engine, m tinyModule) *Instance {
	t.Helper()
	ctx := context.Background()
	mod, err := e.Compile(ctx, "guest.wasm", m.bytes())
	if err != nil {
		t.Fatal(err)
	}
	inst, err := mod.Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close(ctx) })
	return inst
}

// process runs inst.Process, and fails the test if the call does not end in
// a minute: a guest the deadline does not stop would spin forever.
func process(t testing.TB, ctx context.Context, inst *Instance, h Host, batch []byte) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- inst.Process(ctx, h, batch) }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("the guest was not stopped in a minute")
		return nil
	}
}

// clock is what the deadline counts on this system.
func clock() string {
	if _, ok := threadCPU(threadID()); ok {
		return "CPU time"
	}
	return "wall time"
}

func deadlineName(d time.Duration) string {
	if d > 0 {
		return "deadline=on"
	}
	return "deadline=off"
}

// A trap of the guest's own stays a trap with the deadline on, in a loop
// (where the deadline's check sits) or not.
func TestTrapIsNotADeadline(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"unreachable", []byte{0x00}, "unreachable"},
		{"unreachable in a loop", []byte{0x03, 0x40, 0x00, 0x0b, 0x41, 0x00}, "unreachable"},
		{"division by zero in a loop", []byte{0x03, 0x40, 0x41, 0x01, 0x41, 0x00, 0x6d, 0x1a, 0x0b, 0x41, 0x00}, "integer divide by zero"},
	}
	for _, d := range []time.Duration{0, time.Minute} {
		for _, tc := range tests {
			t.Run(deadlineName(d)+"/"+tc.name, func(t *testing.T) {
				g := validGuest()
				g.funcs[2].body = tc.body
				inst := instance(t, newEngine(t, Config{Deadline: d}), g)
				err := inst.Process(context.Background(), nil, abi.EncodeBatch(nil, &abi.Batch{}))
				if !errors.Is(err, ErrTrap) || errors.Is(err, ErrDeadline) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want an ErrTrap naming %q", err, tc.want)
				}
			})
		}
	}
}

// A guest that spins is stopped when its context ends, as when the client
// of a query goes away, and Process returns the context's error.
func TestContextEndStopsAGuest(t *testing.T) {
	inst := instance(t, newEngine(t, Config{Deadline: time.Hour}), spinner())
	ctx, cancel := context.WithCancel(context.Background())
	h := &logHost{onLog: func(int32) { cancel() }}
	if err := process(t, ctx, inst, h, nil); !errors.Is(err, context.Canceled) || inst.Broken() == nil {
		t.Fatalf("got %v (broken %v), want context.Canceled and a broken instance", err, inst.Broken())
	}
}

// Initialisers run under the deadline too: a module whose streamrt_init
// never returns is refused.
func TestDeadlineStopsAnInitialiser(t *testing.T) {
	e := newEngine(t, Config{Deadline: 50 * time.Millisecond, WallLimit: time.Minute})
	g := validGuest()
	g.funcs = append(g.funcs, tinyFunc{export: "streamrt_init", results: []byte{tI32}, body: []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x41, 0x00}})
	_, err := e.Compile(context.Background(), "init.wasm", g.bytes())
	if want := "streamrt_init failed: stopped after 50ms of " + clock(); !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// With a deadline, a module is rewritten before it is compiled, but it keeps
// the hash of the bytes it was given; a module that exports the name the
// rewrite reserves is refused.
func TestDeadlineKeepsTheModule(t *testing.T) {
	e := newEngine(t, Config{Deadline: time.Second})
	wasm := validGuest().bytes()
	m, err := e.Compile(context.Background(), "min.wasm", wasm)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != Version(wasm) {
		t.Errorf("version %s, want the hash of the module as given, %s", m.Version(), Version(wasm))
	}
	g := validGuest()
	g.funcs = append(g.funcs, tinyFunc{export: instrument.InterruptExport})
	_, err = e.Compile(context.Background(), "taken.wasm", g.bytes())
	if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "exports streamrt_interrupt, a name the host reserves") {
		t.Fatalf("got %v, want the reserved export refused", err)
	}
}

// The rewrite is deterministic, so the compilation cache, which keys on the
// bytes wazero is given, holds one entry for a module however many engines
// compile it.
func TestDeadlineKeepsTheCompilationCache(t *testing.T) {
	dir := t.TempDir()
	entries := func() int {
		n := 0
		filepath.WalkDir(dir, func(_ string, d fs.DirEntry, _ error) error {
			if d != nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	wasm := burner().bytes()
	counts := make([]int, 3)
	for i := range counts {
		cache, err := NewCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newEngine(t, Config{Cache: cache, Deadline: time.Second}).Compile(context.Background(), "burner.wasm", wasm); err != nil {
			t.Fatal(err)
		}
		counts[i] = entries()
	}
	if counts[0] == 0 || counts[1] != counts[0] || counts[2] != counts[0] {
		t.Fatalf("cache entries after each of three engines compiled one module: %v, want the same non-zero count", counts)
	}
}

// Calls that finish just before, at, and after their deadline, on instances
// that are replaced when stopped: each call either succeeds or fails with
// ErrDeadline, and an instance whose call was stopped as it returned keeps
// working. (A hammer for the watchdog's bookkeeping, under -race.)
func TestWatchdogHammer(t *testing.T) {
	const deadline = 2 * time.Millisecond
	e := newEngine(t, Config{Deadline: deadline, WallLimit: time.Minute})
	ctx := context.Background()
	mod, err := e.Compile(ctx, "burner.wasm", burner().bytes())
	if err != nil {
		t.Fatal(err)
	}
	// About as many iterations as the deadline's worth of CPU time.
	n := uint32(1 << 20)
	if testing.Short() {
		n = 1 << 16
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	stopped, finished := 0, 0
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := &logHost{}
			inst, err := mod.Instantiate(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range 60 {
				err := inst.Process(ctx, h, count(n*uint32(1+(i+w)%4)/2))
				switch {
				case err == nil:
					mu.Lock()
					finished++
					mu.Unlock()
					// The next call is short: it must not find the flag up.
					if err := inst.Process(ctx, h, count(1)); err != nil {
						t.Errorf("a short call after a finished one: %v", err)
						return
					}
				case errors.Is(err, ErrDeadline) && inst.Broken() != nil:
					mu.Lock()
					stopped++
					mu.Unlock()
					inst.Close(ctx)
					if inst, err = mod.Instantiate(ctx); err != nil {
						t.Error(err)
						return
					}
				default:
					t.Errorf("got %v, want nil or ErrDeadline", err)
					return
				}
			}
			inst.Close(ctx)
		}()
	}
	wg.Wait()
	t.Logf("%d calls finished, %d stopped", finished, stopped)
}
