//go:build unix

package engine

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
)

// BenchmarkRustStoreGetPut is BenchmarkStoreGetPut for the Rust counter
// guest (sdk/rust/testdata/counter) beside the Go one, in the same run: per
// record, a store get and a put of the incremented count through the ABI and
// an emit, over 10,000 keys already in the store, through task.process on
// batches of 500, committed every 2,000 records (commits timed apart).
func BenchmarkRustStoreGetPut(b *testing.B) {
	guests := []struct {
		name string
		wasm func(b *testing.B) []byte
	}{
		{"go", func(b *testing.B) []byte { return guesttest.Build(b, "counter") }},
		{"rust", func(b *testing.B) []byte { return guesttest.BuildRust(b, guesttest.RustDir("testdata/counter")) }},
	}
	recs := benchRecords(benchKeys, benchKeys, "key-%05d")
	for _, g := range guests {
		bin := g.wasm(b)
		for _, d := range []time.Duration{0, benchDeadline} {
			b.Run("guest="+g.name+"/"+deadlineName(d), func(b *testing.B) {
				tk := newBenchTaskOf(b, g.name, bin, d)
				for i := 0; i < len(recs); i += benchCycle * benchBatch {
					if err := tk.process(recs[i:min(i+benchCycle*benchBatch, len(recs))]); err != nil {
						b.Fatal(err)
					}
					commitCycle(b, tk)
				}
				timePairs(b, tk, recs)
				tx := tk.env.db.NewTxn()
				v, _, err := tx.Get(tk.stores[0], []byte("key-00000"), nil)
				tx.Discard()
				if err != nil || len(v) == 0 {
					b.Fatalf("count of key-00000: %q, %v", v, err)
				}
			})
		}
	}
}

// timePairs runs b.N batches of benchBatch records from recs through tk,
// committing every benchCycle batches with the timer stopped, and reports the
// time per record spent in task.process.
func timePairs(b *testing.B, tk *task, recs []*kgo.Record) {
	batches := len(recs) / benchBatch
	var commitCPU time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		j := i % batches
		if err := tk.process(recs[j*benchBatch : (j+1)*benchBatch]); err != nil {
			b.Fatal(err)
		}
		if (i+1)%benchCycle == 0 {
			b.StopTimer()
			c := cpuTime()
			commitCycle(b, tk)
			commitCPU += cpuTime() - c
			b.StartTimer()
		}
	}
	b.StopTimer()
	cpu = cpuTime() - cpu - commitCPU
	commitCycle(b, tk)
	n := float64(b.N * benchBatch)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/pair")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/pair")
}

// newBenchTaskOf is newBenchTask for a module given as bytes.
func newBenchTaskOf(b *testing.B, name string, bin []byte, d time.Duration) *task {
	b.Helper()
	ctx := context.Background()
	db, err := state.Open(b.TempDir(), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	cache, err := wasm.NewCache(filepath.Join(guesttest.CacheDir(), "wasm"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close(ctx) })
	we, err := wasm.NewEngine(ctx, wasm.Config{Cache: cache, MemoryLimit: benchMemory, Deadline: d})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { we.Close(ctx) })
	m, err := we.Compile(ctx, name, bin)
	if err != nil {
		b.Fatal(err)
	}
	sc := config.Stage{
		Name: "s", Inputs: []string{"in"}, Stores: []string{"counts"},
		Outputs: map[string]string{"out": "out-topic"}, ErrorPolicy: config.PolicyFail,
		BatchSize: benchBatch, MemoryLimit: benchMemory, BatchDeadline: d,
	}
	cfg := &config.Config{App: "app", Partitions: 1, Stages: []config.Stage{sc}}
	e, err := New(cfg, db, metrics.New(), slog.New(slog.DiscardHandler), []Stage{{Config: sc, Module: m}})
	if err != nil {
		b.Fatal(err)
	}
	tk, err := newTask(ctx, e.env, e.log, e.stages[0], 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(tk.close)
	return tk
}
