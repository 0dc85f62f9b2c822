//go:build unix

package wasm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// The batch BenchmarkGuestIdentity runs: 500 records with 8-byte keys and
// 100-byte values, as a task encodes them (see BENCHMARKS.md).
const (
	benchRecords   = 500
	benchKeySize   = 8
	benchValueSize = 100
	// benchDeadline is the stages' default batch_deadline; any positive value
	// makes Compile instrument the module and the engine watch its calls,
	// which is what costs.
	benchDeadline = 5 * time.Second
)

// benchHost is the least a host can do per call: Emit copies the key and
// value into a buffer reused for every batch, like the engine's arena but
// without building a kgo.Record; discard makes Emit return at once instead.
type benchHost struct {
	discard bool
	buf     []byte
	emits   int
}

func (h *benchHost) reset() { h.buf, h.emits = h.buf[:0], 0 }

func (h *benchHost) OpenStore(string) (int32, abi.Code)            { return 0, abi.ErrUnknownStore }
func (h *benchHost) Get(int32, []byte) ([]byte, abi.Code)          { return nil, abi.ErrUnknownStore }
func (h *benchHost) Put(int32, int32, []byte, []byte) abi.Code     { return abi.ErrUnknownStore }
func (h *benchHost) Delete(int32, int32, []byte) abi.Code          { return abi.ErrUnknownStore }
func (h *benchHost) Range(int32, []byte, []byte) (int32, abi.Code) { return 0, abi.ErrUnknownStore }
func (h *benchHost) RangeNext(int32, []byte) (int, int, abi.Code)  { return 0, 0, abi.ErrBadIterator }
func (h *benchHost) RangeClose(int32) abi.Code                     { return abi.ErrBadIterator }
func (h *benchHost) OpenOutput(string) (int32, abi.Code)           { return 0, abi.OK }
func (h *benchHost) Log(int32, []byte)                             {}
func (h *benchHost) RecordError(rec int32, msg []byte) abi.Code {
	panic(fmt.Sprintf("record %d failed: %s", rec, msg))
}

func (h *benchHost) Emit(out, rec int32, key, value, headers []byte, ts int64) abi.Code {
	h.emits++
	if h.discard {
		return abi.OK
	}
	h.buf = append(h.buf, key...)
	h.buf = append(h.buf, value...)
	return abi.OK
}

// benchBatch holds the records of one benchmark batch and encodes them the
// way a task does: its exact size first, then straight into the guest's
// buffer (Instance.ProcessBatch).
type benchBatch struct {
	keys, values [][]byte
	topics       []string
}

func newBenchBatch() *benchBatch {
	b := &benchBatch{topics: []string{"in"}}
	for i := range benchRecords {
		b.keys = append(b.keys, fmt.Appendf(nil, "k%07d", i))
		v := make([]byte, benchValueSize)
		for j := range v {
			v[j] = byte('a' + (i+j)%26)
		}
		b.values = append(b.values, v)
	}
	return b
}

func (b *benchBatch) size() int {
	n := abi.BatchHeaderSize + abi.TopicTableSize(b.topics)
	for i := range b.keys {
		n += abi.RecordSize(b.keys[i], b.values[i])
	}
	return n
}

func (b *benchBatch) encode(dst []byte) []byte {
	dst = abi.AppendBatchHeader(dst, benchRecords, 1_700_000_000_000, b.topics)
	for i := range b.keys {
		dst = abi.AppendRecord(dst, 0, 0, int64(i), 1_700_000_000_000, b.keys[i], b.values[i], 0)
	}
	return dst
}

// newBenchEngine returns an engine using the test guests' shared compilation
// cache, so that benchmarks do not pay for compiling.
func newBenchEngine(b *testing.B, deadline time.Duration) *Engine {
	b.Helper()
	cache, err := NewCache(filepath.Join(guesttest.CacheDir(), "wasm"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close(context.Background()) })
	return newEngine(b, Config{Cache: cache, MemoryLimit: 64 << 20, Deadline: deadline})
}

func instantiate(b *testing.B, e *Engine, name string, wasm []byte) *Instance {
	b.Helper()
	ctx := context.Background()
	m, err := e.Compile(ctx, name, wasm)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close(ctx) })
	inst, err := m.Instantiate(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { inst.Close(ctx) })
	return inst
}

// returnsGuest is a module whose streamrt_process returns at once: it
// measures what a batch costs before any guest code runs (the
// streamrt_buffer call, encoding the batch into guest memory, the
// streamrt_process call). Its streamrt_buffer grows memory to two pages, so
// that a batch fits at address 16.
func returnsGuest() tinyModule {
	g := validGuest()
	g.funcs[1].body = []byte{
		0x3f, 0x00, // memory.size
		0x41, 0x02, // i32.const 2
		0x49,       // i32.lt_u
		0x04, 0x40, // if
		0x41, 0x01, // i32.const 1
		0x40, 0x00, // memory.grow
		0x1a,       // drop
		0x0b,       // end
		0x41, 0x10, // i32.const 16
	}
	return g
}

// emitsGuest is returnsGuest whose streamrt_process calls emit benchRecords
// times with an 8-byte key and a 100-byte value taken from the batch, and
// decodes nothing: it measures crossing into the host and back alone.
func emitsGuest() tinyModule {
	g := returnsGuest()
	g.imports = []tinyImport{{module: abi.ImportModule, name: abi.FuncEmit,
		params: []byte{tI32, tI32, tI32, tI32, tI32, tI32, tI32, tI32, tI64}, results: []byte{tI32}}}
	g.funcs[2].body = []byte{
		0x41, 0xf4, 0x03, // i32.const 500 (benchRecords)
		0x21, 0x00, // local.set 0: the ptr parameter counts down
		0x03, 0x40, // loop
		0x41, 0x00, // i32.const 0: output handle
		0x41, 0x7f, // i32.const -1: rec
		0x41, 0x10, // i32.const 16: key
		0x41, 0x08, // i32.const 8
		0x41, 0x18, // i32.const 24: value
		0x41, 0xe4, 0x00, // i32.const 100
		0x41, 0x00, // i32.const 0: no headers
		0x41, 0x00, // i32.const 0
		0x42, 0x7f, // i64.const -1: inherit the timestamp
		0x10, 0x00, // call emit
		0x1a,       // drop
		0x20, 0x00, // local.get 0
		0x41, 0x01, // i32.const 1
		0x6b,       // i32.sub
		0x22, 0x00, // local.tee 0
		0x0d, 0x00, // br_if 0
		0x0b,       // end
		0x41, 0x00, // i32.const 0
	}
	return g
}

// decodeOnlySource is a Go guest that decodes every record through the SDK
// and does nothing with it. The guests under testdata all emit, so this one
// is built from source (buildSource).
const decodeOnlySource = `package main

import streamrt "github.com/streamrt/streamrt/sdk/go"

func init() {
	streamrt.HandleRecord(func(*streamrt.Record) error { return nil })
}

func main() {}
`

// buildSource builds a one-file Go guest against this repository's SDK, in
// a temporary module under a fixed directory named after the guest, so that
// the guest build cache, keyed by the directory and its files, hits from
// one run to the next.
func buildSource(b *testing.B, name, source string) []byte {
	b.Helper()
	root, err := filepath.Abs(filepath.Join(guesttest.Dir("identity"), "..", "..", "..", "..", "..", ".."))
	if err != nil {
		b.Fatal(err)
	}
	gomod := fmt.Sprintf(`module streamrt.invalid/bench/%s

go 1.26.0

require (
	github.com/streamrt/streamrt/abi v0.0.0
	github.com/streamrt/streamrt/sdk/go v0.0.0
)

replace (
	github.com/streamrt/streamrt/abi => %s
	github.com/streamrt/streamrt/sdk/go => %s
)
`, name, filepath.Join(root, "abi"), filepath.Join(root, "sdk", "go"))
	dir := filepath.Join(os.TempDir(), "streamrt-bench-guests", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for file, text := range map[string]string{"go.mod": gomod, "main.go": source} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return guesttest.BuildDir(b, dir)
}

// cpuTime returns the CPU time the process has used so far. On a shared
// machine it moves less than wall time when other processes take the cores,
// so the benchmarks report it beside ns/op.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGuestIdentity measures the per-record cost of calling a Go guest:
// the identity test guest decodes each record of a 500-record batch and
// emits it, which the SDK buffers and hands over in one emit_batch call
// (two for this batch), to a host that copies the key and value. Each case
// runs with the batch deadline off and on (an instrumented module and a
// watchdog). The baselines take away one layer at a time:
//
//	emit-noop    identity guest, host Emit returns at once: guest + crossing
//	decode-only  a Go guest whose handler returns nil: the SDK's decoding
//	host-calls   a hand-written module calling emit 500 times, decoding
//	             nothing, to the copying host: the crossing alone
//	returns      a module that returns at once: encoding the batch into
//	             guest memory
func BenchmarkGuestIdentity(b *testing.B) {
	identity := guesttest.Build(b, "identity")
	decodeOnly := buildSource(b, "decodeonly", decodeOnlySource)
	cases := []struct {
		name    string
		wasm    []byte
		discard bool
		emits   int
	}{
		{"identity", identity, false, benchRecords},
		{"baseline=emit-noop", identity, true, benchRecords},
		{"baseline=decode-only", decodeOnly, false, 0},
		{"baseline=host-calls", emitsGuest().bytes(), false, benchRecords},
		{"baseline=returns", returnsGuest().bytes(), false, 0},
	}
	for _, tc := range cases {
		for _, d := range []time.Duration{0, benchDeadline} {
			b.Run(tc.name+"/"+deadlineName(d), func(b *testing.B) {
				inst := instantiate(b, newBenchEngine(b, d), tc.name, tc.wasm)
				batch := newBenchBatch()
				h := &benchHost{discard: tc.discard, buf: make([]byte, 0, 64<<10)}
				ctx := context.Background()
				b.SetBytes(int64(benchRecords * (benchKeySize + benchValueSize)))
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					h.reset()
					if err := inst.ProcessBatch(ctx, h, batch.size(), batch.encode); err != nil {
						b.Fatal(err)
					}
					if h.emits != tc.emits {
						b.Fatalf("%d emits, want %d", h.emits, tc.emits)
					}
				}
				n := float64(b.N * benchRecords)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/record")
				b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/n, "cpu-ns/record")
			})
		}
	}
}

// BenchmarkGuestCall measures the fixed cost of one guest call: Process
// with an empty batch on a module whose streamrt_buffer and
// streamrt_process return at once. With the deadline on it adds what the
// deadline costs per call (locking the goroutine to its thread, asking the
// thread's id, telling the watchdog) and the instrumented module's checks.
func BenchmarkGuestCall(b *testing.B) {
	for _, d := range []time.Duration{0, benchDeadline} {
		b.Run(deadlineName(d), func(b *testing.B) {
			inst := instantiate(b, newBenchEngine(b, d), "returns", returnsGuest().bytes())
			h := &benchHost{}
			ctx := context.Background()
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				if err := inst.Process(ctx, h, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkCompile measures loading a Go guest: compiling it and validating
// it (which instantiates it once and runs its initialisers), in a new engine
// each time. cold has no compilation cache; cached has a warm one on disk, as
// after a restart.
func BenchmarkCompile(b *testing.B) {
	wasm := guesttest.Build(b, "identity")
	ctx := context.Background()
	run := func(b *testing.B, cfg Config) {
		b.ReportAllocs()
		for b.Loop() {
			e, err := NewEngine(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.Compile(ctx, "identity", wasm); err != nil {
				b.Fatal(err)
			}
			e.Close(ctx)
		}
		b.ReportMetric(float64(len(wasm)), "module-bytes")
	}
	b.Run("cold", func(b *testing.B) { run(b, Config{}) })
	b.Run("cached", func(b *testing.B) {
		cache, err := NewCache(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer cache.Close(ctx)
		warm, err := NewEngine(ctx, Config{Cache: cache})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := warm.Compile(ctx, "identity", wasm); err != nil {
			b.Fatal(err)
		}
		warm.Close(ctx)
		run(b, Config{Cache: cache})
	})
}

// BenchmarkInstantiate measures creating a task's instance of a compiled Go
// guest: instantiation and the Go runtime's initialisation (_initialize,
// streamrt_init), then closing it. memory-bytes is the guest's linear memory
// once initialised.
func BenchmarkInstantiate(b *testing.B) {
	wasm := guesttest.Build(b, "identity")
	ctx := context.Background()
	for _, d := range []time.Duration{0, benchDeadline} {
		b.Run(deadlineName(d), func(b *testing.B) {
			e := newBenchEngine(b, d)
			m, err := e.Compile(ctx, "identity", wasm)
			if err != nil {
				b.Fatal(err)
			}
			var mem uint32
			b.ReportAllocs()
			for b.Loop() {
				inst, err := m.Instantiate(ctx)
				if err != nil {
					b.Fatal(err)
				}
				mem = inst.MemorySize()
				inst.Close(ctx)
			}
			b.ReportMetric(float64(len(wasm)), "module-bytes")
			b.ReportMetric(float64(mem), "memory-bytes")
		})
	}
}
