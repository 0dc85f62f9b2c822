//go:build unix

package wasm

import (
	"context"
	"testing"
	"time"

	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// The Rust and AssemblyScript guests beside their Go twins, in the same run
// and on the same batch: sdk/rust/testdata/identity,
// sdk/assemblyscript/testdata/identity and testdata/guests/identity each
// emit every record unchanged. (Store get+put per pair, through a task and
// Pebble, is BenchmarkRustStoreGetPut in package engine.)

type benchGuest struct {
	name string
	wasm func(b *testing.B) []byte
}

var identityGuests = []benchGuest{
	{"go", func(b *testing.B) []byte { return guesttest.Build(b, "identity") }},
	{"rust", func(b *testing.B) []byte { return guesttest.BuildRust(b, guesttest.RustDir("testdata/identity")) }},
	{"assemblyscript", func(b *testing.B) []byte { return guesttest.BuildAS(b, guesttest.ASDir("testdata/identity")) }},
}

// BenchmarkRustGuestIdentity measures the per-record cost of calling an
// identity guest on a 500-record batch (8-byte keys, 100-byte values), whose
// emits the SDK hands over with emit_batch, to the copying benchHost, with
// the batch deadline off and on. ns/record includes encoding the batch into
// guest memory (BenchmarkGuestIdentity/baseline=returns); the target for the
// Rust guest is at most 100 ns/record.
func BenchmarkRustGuestIdentity(b *testing.B) {
	for _, g := range identityGuests {
		wasm := g.wasm(b)
		for _, d := range []time.Duration{0, benchDeadline} {
			b.Run("guest="+g.name+"/"+deadlineName(d), func(b *testing.B) {
				inst := instantiate(b, newBenchEngine(b, d), g.name, wasm)
				batch := newBenchBatch()
				h := &benchHost{buf: make([]byte, 0, 64<<10)}
				ctx := context.Background()
				b.SetBytes(int64(benchRecords * (benchKeySize + benchValueSize)))
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					h.reset()
					if err := inst.ProcessBatch(ctx, h, batch.size(), batch.encode); err != nil {
						b.Fatal(err)
					}
					if h.emits != benchRecords {
						b.Fatalf("%d emits, want %d", h.emits, benchRecords)
					}
				}
				n := float64(b.N * benchRecords)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/record")
				b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/n, "cpu-ns/record")
				b.ReportMetric(float64(len(wasm)), "module-bytes")
			})
		}
	}
}

// BenchmarkRustCompile measures loading each identity guest: compiling and
// validating it (which instantiates it once) in a new engine, with no
// compilation cache (cold) and with a warm one on disk (cached).
func BenchmarkRustCompile(b *testing.B) {
	ctx := context.Background()
	for _, g := range identityGuests {
		wasm := g.wasm(b)
		run := func(b *testing.B, cfg Config) {
			b.ReportAllocs()
			for b.Loop() {
				e, err := NewEngine(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e.Compile(ctx, g.name, wasm); err != nil {
					b.Fatal(err)
				}
				e.Close(ctx)
			}
			b.ReportMetric(float64(len(wasm)), "module-bytes")
		}
		b.Run("guest="+g.name+"/cold", func(b *testing.B) { run(b, Config{}) })
		b.Run("guest="+g.name+"/cached", func(b *testing.B) {
			cache, err := NewCache(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer cache.Close(ctx)
			warm, err := NewEngine(ctx, Config{Cache: cache})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := warm.Compile(ctx, g.name, wasm); err != nil {
				b.Fatal(err)
			}
			warm.Close(ctx)
			run(b, Config{Cache: cache})
		})
	}
}

// BenchmarkRustInstantiate measures creating a task's instance of each
// compiled identity guest, with its initialisers (the Go runtime's
// _initialize and streamrt_init; the Rust guest's streamrt_init only), then
// closing it. memory-bytes is the guest's linear memory once initialised.
func BenchmarkRustInstantiate(b *testing.B) {
	ctx := context.Background()
	for _, g := range identityGuests {
		wasm := g.wasm(b)
		for _, d := range []time.Duration{0, benchDeadline} {
			b.Run("guest="+g.name+"/"+deadlineName(d), func(b *testing.B) {
				m, err := newBenchEngine(b, d).Compile(ctx, g.name, wasm)
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
}
