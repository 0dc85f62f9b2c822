//go:build unix

package engine

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	benchBatch = 500    // records per guest call: the default batch_size
	benchKeys  = 10_000 // distinct keys BenchmarkStoreGetPut counts
	benchValue = 100    // bytes per record value
	// benchCycle is the batches per commit cycle: 2,000 records per task,
	// what a 100 ms commit_interval sees at 20,000 records/s per task.
	benchCycle  = 4
	benchMemory = 64 << 20
	// benchDeadline is the default batch_deadline; any positive value turns
	// on wazero's WithCloseOnContextDone.
	benchDeadline = 5 * time.Second
)

// newBenchTask is newTestTask for benchmarks: a task of a one-stage app
// running the named test guest with store "counts" and output "out", and a
// batch deadline of d (0 for none, which the configuration does not allow
// but the engine does).
func newBenchTask(b *testing.B, guest string, d time.Duration) *task {
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
	m, err := we.Compile(ctx, guest, guesttest.Build(b, guest))
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

// benchRecords returns n input records with 100-byte values whose keys
// visit keys distinct keys in a scattered order (7919 is prime).
func benchRecords(n, keys int, format string) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := make([]byte, benchValue)
		for j := range v {
			v[j] = byte('a' + (i+j)%26)
		}
		recs[i] = &kgo.Record{
			Topic: "in", Offset: int64(i), Timestamp: time.UnixMilli(1_700_000_000_000 + int64(i)),
			Key: fmt.Appendf(nil, format, i*7919%keys), Value: v,
		}
	}
	return recs
}

// commitCycle does to a task what Engine.commit does once the cycle's
// outputs are produced and acknowledged: keep the last change per key for the
// changelogs, checkpoint the changelog positions, commit the state and start
// a new cycle. The records get made-up offsets, as no broker assigns them.
func commitCycle(b *testing.B, tk *task) {
	c := &tk.cycle
	if c.txn == nil {
		return
	}
	c.compact()
	for i, r := range c.outputs {
		r.Offset = int64(i)
	}
	for i, r := range c.changes {
		r.Offset = int64(i)
	}
	for topic, next := range c.reached() {
		if err := c.txn.SetOffset(changelogGroup, topic, tk.partition, next); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.txn.Commit(); err != nil {
		b.Fatal(err)
	}
	c.committed()
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

func deadlineName(d time.Duration) string {
	if d > 0 {
		return "deadline=on"
	}
	return "deadline=off"
}

// runCycles runs b.N batches of benchBatch records from recs through step,
// committing every cycle batches with the timer stopped, and reports the time
// per record (unit) spent in step and, apart, in commits.
func runCycles(b *testing.B, unit string, cycle int, recs []*kgo.Record, step func([]*kgo.Record), commit func()) {
	var cpu, commitCPU, commitWall time.Duration
	commitNow := func() {
		b.StopTimer()
		c, w := cpuTime(), time.Now()
		commit()
		commitCPU += cpuTime() - c
		commitWall += time.Since(w)
		b.StartTimer()
	}
	batches := len(recs) / benchBatch
	b.ReportAllocs()
	b.ResetTimer()
	cpu = cpuTime()
	for i := 0; i < b.N; i++ {
		j := i % batches
		step(recs[j*benchBatch : (j+1)*benchBatch])
		if (i+1)%cycle == 0 {
			commitNow()
		}
	}
	b.StopTimer()
	commitNow()
	cpu = cpuTime() - cpu - commitCPU
	n := float64(b.N * benchBatch)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/"+unit)
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/"+unit)
	b.ReportMetric(float64(commitWall.Nanoseconds())/n, "commit-ns/"+unit)
}

// BenchmarkStoreGetPut measures a store read and write per record through the
// ABI: the counter guest gets a key's count and puts it back incremented (and
// emits it), over 10,000 distinct keys already in the store, through
// task.process on batches of 500 records, committed every 2,000 records (the
// commits are timed apart, as commit-ns/pair). Baselines, with no guest:
//
//	txn        the same Get and Put on a state.Txn from Go
//	setoffset  the Txn.SetOffset that task.process makes per input record
//
// cycle=10000 commits every 10,000 records instead, as a task does when a
// commit interval holds that many: with a SetOffset per record, such a Txn
// passes Pebble's large-batch threshold (see BENCHMARKS.md).
func BenchmarkStoreGetPut(b *testing.B) {
	recs := benchRecords(benchKeys, benchKeys, "key-%05d")
	cases := []struct {
		name  string
		d     time.Duration
		cycle int
	}{
		{"deadline=off", 0, benchCycle},
		{"deadline=on", benchDeadline, benchCycle},
		{"deadline=off/cycle=10000", 0, benchKeys / benchBatch},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			tk := newBenchTask(b, "counter", tc.d)
			// Every key gets its first count, committed, so that the timed
			// batches read keys that are present.
			for i := 0; i < len(recs); i += benchCycle * benchBatch {
				if err := tk.process(recs[i:min(i+benchCycle*benchBatch, len(recs))]); err != nil {
					b.Fatal(err)
				}
				commitCycle(b, tk)
			}
			runCycles(b, "pair", tc.cycle, recs, func(batch []*kgo.Record) {
				if err := tk.process(batch); err != nil {
					b.Fatal(err)
				}
			}, func() { commitCycle(b, tk) })
		})
	}
	for _, cycle := range []int{benchCycle, benchKeys / benchBatch} {
		name := "baseline=txn"
		if cycle != benchCycle {
			name += "/cycle=10000"
		}
		b.Run(name, func(b *testing.B) {
			db, ks := benchStore(b, recs)
			tx := db.NewTxn()
			var val []byte
			runCycles(b, "pair", cycle, recs, func(batch []*kgo.Record) {
				for _, r := range batch {
					var err error
					if val, _, err = tx.Get(ks, r.Key, val); err != nil {
						b.Fatal(err)
					}
					val = append(val, '1')[:len(val)] // same length: a count that moved
					if err := tx.Put(ks, r.Key, val); err != nil {
						b.Fatal(err)
					}
				}
			}, func() {
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				tx = db.NewTxn()
			})
			tx.Discard()
		})
	}
	b.Run("baseline=setoffset", func(b *testing.B) {
		db, _ := benchStore(b, recs)
		tx := db.NewTxn()
		runCycles(b, "record", benchCycle, recs, func(batch []*kgo.Record) {
			for _, r := range batch {
				if err := tx.SetOffset("app", r.Topic, 0, r.Offset+1); err != nil {
					b.Fatal(err)
				}
			}
		}, func() {
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			tx = db.NewTxn()
		})
		tx.Discard()
	})
}

// benchStore opens a state database whose store "counts" holds "1" for the
// key of every record.
func benchStore(b *testing.B, recs []*kgo.Record) (*state.DB, state.Keyspace) {
	b.Helper()
	db, err := state.Open(b.TempDir(), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ks, err := db.Keyspace("counts", 0)
	if err != nil {
		b.Fatal(err)
	}
	tx := db.NewTxn()
	for _, r := range recs {
		if err := tx.Put(ks, r.Key, []byte("1")); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return db, ks
}

// BenchmarkTaskIdentity measures the whole per-task path of a stateless
// stage per record: encoding the batch, the identity guest, each emit turned
// into a kgo.Record with its bytes in the task's arena, and the input
// checkpoint, through task.process on batches of 500 records with 8-byte
// keys and 100-byte values.
func BenchmarkTaskIdentity(b *testing.B) {
	recs := benchRecords(benchKeys, benchKeys*10, "k%07d")
	for _, d := range []time.Duration{0, benchDeadline} {
		b.Run(deadlineName(d), func(b *testing.B) {
			tk := newBenchTask(b, "identity", d)
			runCycles(b, "record", benchCycle, recs, func(batch []*kgo.Record) {
				if err := tk.process(batch); err != nil {
					b.Fatal(err)
				}
			}, func() { commitCycle(b, tk) })
			if len(tk.cycle.outputs)+len(tk.cycle.changes) != 0 || tk.cycle.txn != nil {
				b.Fatalf("%d emits left after the last commit", len(tk.cycle.outputs)+len(tk.cycle.changes))
			}
		})
	}
}
