//go:build unix

package runtime_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	streamrt "github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

var (
	restoreKeys     = flag.Int("streamrt.restore-keys", 1_000_000, "keys of the store BenchmarkRestore restores")
	restoreShuffled = flag.Bool("streamrt.restore-shuffled", false, "BenchmarkRestore writes the changelog's keys in a scattered order instead of ascending")
)

// restoreKey returns the key of the i-th of n changelog records. In key
// order each partition's changelog is sorted, which flatters a restore that
// writes sorted tables: a live store's compacted changelog holds each key
// where it last changed, in no order. Shuffled, the keys follow
// i*shuffleStride mod n, a permutation of 0..n-1 when the stride is prime
// and does not divide n.
func restoreKey(i, n int) []byte {
	if *restoreShuffled {
		i = int(uint64(i) * shuffleStride % uint64(n))
	}
	return fmt.Appendf(nil, "k%010d", i)
}

const shuffleStride = 2_654_435_761

// Sizes of a restore benchmark record: an 11-byte key ("k" and ten digits)
// and an 8-byte value, the size of a count.
const restoreValue = 8

// BenchmarkRestore measures how fast an instance with an empty state
// directory restores a store of -streamrt.restore-keys keys (1,000,000 by
// default) from its changelog, against a plain franz-go read of the same
// changelog topic on the same broker.
//
// Each iteration fills a changelog topic of 4 partitions with one record per
// key, as a clickcount app that counted that many keys would have left it
// (untimed), then reads it with a plain client, restores it with the
// runtime, and reads it again. The keys go out in ascending order, so each
// partition's changelog is sorted by key; -streamrt.restore-shuffled
// scatters them, as in a live store's changelog. The app's input topic is empty, so the run
// is the restore alone. Reported:
//
//   - records/s and MB/s of the restore: all records over the time from the
//     first task's "restoring store" log record to the last task's "restored
//     store" (the four partitions restore in parallel). MB counts key and
//     value bytes.
//   - read-records/s and read-MB/s: the plain read, a franz-go client with
//     no group consuming every partition from the start (read_committed,
//     as the restore reads) until it has seen every record; the mean of the
//     two reads.
//   - x-read: the restore's rate over the read's.
//   - from-start-ms: from runtime creation until the last "restored store":
//     what a restarted instance waits before its tasks run.
//   - cpu-us/record: this process's CPU per restored record, kfake included
//     when in-process.
func BenchmarkRestore(b *testing.B) {
	if testing.Short() {
		b.Skip("restore benchmark: restores a million-key store from a broker; skipped with -short")
	}
	brokers := testkafka.Brokers(b)
	warmModules(b)
	warmBroker(b, brokers)
	n := *restoreKeys
	var restore, fromStart, read, appCPU, readCPU time.Duration
	var reads int
	var bytes int64
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		base := testkafka.Name(b, "bench-restore")
		in, out := base+"-in", base+"-out"
		changelog := config.ChangelogTopic(base, "counts")
		createTopics(b, brokers, in, out, changelog)
		produceAll(b, brokers, changelog, n, func(i int) (k, v []byte) {
			return restoreKey(i, n), fmt.Appendf(nil, "%0*d", restoreValue, i%100_000_000)
		})
		bytes = int64(n) * (11 + restoreValue)

		b.StartTimer()
		for _, isApp := range []bool{false, true, false} {
			if !isApp {
				took, cpu := readTopic(b, brokers, changelog, n)
				read += took
				readCPU += cpu
				reads++
				continue
			}
			r := runRestore(b, brokers, base, in, out)
			if r.records != int64(n) {
				b.Fatalf("restored %d records, want %d", r.records, n)
			}
			restore += r.restore
			fromStart += r.fromStart
			appCPU += r.cpu
		}
		b.StopTimer()
	}
	total := float64(n * b.N)
	rate := total / restore.Seconds()
	readRate := float64(n*reads) / read.Seconds()
	b.ReportMetric(rate, "records/s")
	b.ReportMetric(float64(bytes*int64(b.N))/restore.Seconds()/1e6, "MB/s")
	b.ReportMetric(readRate, "read-records/s")
	b.ReportMetric(float64(bytes*int64(reads))/read.Seconds()/1e6, "read-MB/s")
	b.ReportMetric(rate/readRate, "x-read")
	b.ReportMetric(float64(fromStart.Milliseconds())/float64(b.N), "from-start-ms")
	b.ReportMetric(float64(appCPU.Microseconds())/total, "cpu-us/record")
	b.ReportMetric(float64(readCPU.Microseconds())/float64(n*reads), "read-cpu-us/record")
}

// restoreRun is the outcome of one restore.
type restoreRun struct {
	restore   time.Duration // first "restoring store" to last "restored store"
	fromStart time.Duration // runtime creation to last "restored store"
	cpu       time.Duration
	records   int64 // the "records" of every "restored store", summed
}

// runRestore runs a clickcount app with a fresh state directory until every
// partition of its store is restored.
func runRestore(b *testing.B, brokers []string, app, in, out string) restoreRun {
	b.Helper()
	dir := b.TempDir()
	y := fmt.Sprintf(`app: %s
brokers: [%s]
http: %s
state_dir: %s
cache_dir: %s
partitions: %d
stages:
  - name: main
    module: %s
    inputs: [%s]
    outputs: {out: %s}
    stores: [counts]
`, app, strings.Join(brokers, ", "), freeLoopback(b), filepath.Join(dir, "state"), guesttest.CacheDir(), e2ePartitions,
		guesttest.Dir("counter"), in, out)
	cfg, err := config.Parse([]byte(y), filepath.Join(dir, "app.yaml"), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	var log lockedBuffer
	w := &restoreWatch{next: slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}), shared: &restoreEvents{done: make(chan struct{})}, want: e2ePartitions}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start, cpu := time.Now(), cpuTime()
	rt, err := streamrt.New(cfg, streamrt.Options{Logger: slog.New(w)})
	if err != nil {
		b.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	var runErr error
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		runErr = rt.Run(rctx)
	}()
	var werr error
	select {
	case <-w.shared.done:
	case <-exited:
		werr = fmt.Errorf("exited before restoring its store")
	case <-ctx.Done():
		werr = fmt.Errorf("store not restored: %w", ctx.Err())
	}
	r := restoreRun{cpu: cpuTime() - cpu}
	stop()
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		b.Fatalf("app %s did not stop within 60s\n%s", app, log.String())
	}
	if runErr != nil {
		b.Fatalf("app %s: %v\n%s", app, runErr, log.String())
	}
	if werr != nil {
		b.Fatalf("app %s: %v\n%s", app, werr, log.String())
	}
	ev := w.shared
	ev.mu.Lock()
	defer ev.mu.Unlock()
	r.restore = ev.last.Sub(ev.first)
	r.fromStart = ev.last.Sub(start)
	r.records = ev.records
	return r
}

// restoreWatch passes records at or above its handler's level on to it, and
// notes when the first store partition starts restoring and when want of
// them have finished.
type restoreWatch struct {
	next   slog.Handler
	shared *restoreEvents
	want   int
}

type restoreEvents struct {
	mu          sync.Mutex
	first, last time.Time
	finished    int
	records     int64
	done        chan struct{} // closed when want partitions finished
}

func (w *restoreWatch) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || w.next.Enabled(ctx, l)
}

func (w *restoreWatch) Handle(ctx context.Context, r slog.Record) error {
	ev := w.shared
	switch r.Message {
	case "restoring store":
		ev.mu.Lock()
		if ev.first.IsZero() {
			ev.first = r.Time
		}
		ev.mu.Unlock()
	case "restored store":
		var n int64
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "records" {
				n = a.Value.Int64()
				return false
			}
			return true
		})
		ev.mu.Lock()
		ev.records += n
		ev.last = r.Time
		if ev.finished++; ev.finished == w.want {
			close(ev.done)
		}
		ev.mu.Unlock()
	}
	if w.next.Enabled(ctx, r.Level) {
		return w.next.Handle(ctx, r)
	}
	return nil
}

func (w *restoreWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return &restoreWatch{next: w.next.WithAttrs(as), shared: w.shared, want: w.want}
}

func (w *restoreWatch) WithGroup(name string) slog.Handler {
	return &restoreWatch{next: w.next.WithGroup(name), shared: w.shared, want: w.want}
}
