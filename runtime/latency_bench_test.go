//go:build unix

package runtime_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	latencyRate     = flag.Int("streamrt.latency-rate", 10_000, "records per second BenchmarkLatency produces")
	latencyDuration = flag.Duration("streamrt.latency-duration", 5*time.Second, "how long BenchmarkLatency produces at that rate")
)

// BenchmarkLatency measures how long a record takes through an app that
// counts clicks per page (the counter guest, store counts, output out), at
// the default commit interval. The app also materialises its output topic
// as a table that only serves queries, as order-notes does: its tasks
// consume the table's topic beside the inputs, which once made the first
// record wait for the table's first fetch (5 s).
//
//   - first-ms: from producing the first record after the app reports ready
//     to its output record being readable;
//   - first-query-ms: from the same produce to its count being served;
//   - out-p50-ms, out-p99-ms: produce to output readable, for every record
//     produced at -streamrt.latency-rate records/s for
//     -streamrt.latency-duration (the output carries its input's timestamp,
//     in milliseconds);
//   - query-p50-ms, query-p99-ms: produce to queryable, for one record in
//     1,000 of the same run, each with a key of its own, polled every 5 ms
//     (more probes, or faster polling, would load the app they measure).
//
// Run it with -benchtime 1x; the broker is whatever testkafka.Brokers gives.
func BenchmarkLatency(b *testing.B) {
	if testing.Short() {
		b.Skip("latency benchmark: produces for seconds through a broker; skipped with -short")
	}
	brokers := testkafka.Brokers(b)
	for i := 0; i < b.N; i++ {
		app, in, out := names(b)
		testkafka.CreateTopic(b, brokers, in, 4)
		yaml := fmt.Sprintf(`app: %s
brokers: [%s]
partitions: 4
tables:
  - {name: latest, topic: %s}
stages:
  - name: count
    module: %s
    inputs: [%s]
    stores: [counts]
    outputs: {out: %s}
`, app, brokers[0], out, guesttest.Dir("counter"), in, out)
		a := apptest.StartYAML(b, []byte(yaml), "app.yaml", apptest.Options{Overrides: map[string]string{"commit_interval": config.DefaultCommitInterval.String()}})
		watch := newOutputWatch(b, brokers, out)
		prod := testkafka.Client(b, brokers, kgo.ProducerLinger(0))

		// The first record after ready.
		start := time.Now()
		first := &kgo.Record{Topic: in, Key: []byte("first"), Value: []byte("x"), Timestamp: start}
		if err := prod.ProduceSync(context.Background(), first).FirstErr(); err != nil {
			b.Fatal(err)
		}
		queried := make(chan time.Duration, 1)
		go func() { queried <- waitQueryable(a, "first", start) }()
		firstOut := watch.waitKey("first", 60*time.Second)
		b.ReportMetric(float64(firstOut.Sub(start).Microseconds())/1000, "first-ms")
		b.ReportMetric(float64((<-queried).Microseconds())/1000, "first-query-ms")

		// Steady load.
		var probes []chan time.Duration
		interval := time.Second / time.Duration(*latencyRate)
		n := int(*latencyDuration / interval)
		begin := time.Now()
		for j := 0; j < n; j++ {
			at := begin.Add(time.Duration(j) * interval)
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			}
			key := fmt.Sprintf("page-%d", j%1000)
			probe := j%1000 == 0
			if probe {
				key = fmt.Sprintf("probe-%d", j)
			}
			now := time.Now()
			prod.Produce(context.Background(), &kgo.Record{Topic: in, Key: []byte(key), Value: []byte("x"), Timestamp: now}, nil)
			if probe {
				ch := make(chan time.Duration, 1)
				probes = append(probes, ch)
				go func() { ch <- waitQueryable(a, key, now) }()
			}
		}
		if err := prod.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		outs := watch.waitCount(n+1, 60*time.Second)
		var query []time.Duration
		for _, ch := range probes {
			query = append(query, <-ch)
		}
		b.ReportMetric(float64(time.Duration(n)*time.Second/time.Since(begin)), "produced/s")
		reportPercentiles(b, "out", outs)
		reportPercentiles(b, "query", query)
		watch.close()
	}
}

func reportPercentiles(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.50), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
	b.ReportMetric(at(1), name+"-max-ms")
}

// waitQueryable polls a's counts store for key every 5 ms until it is
// served, and returns how long after start that was (a minute at most).
func waitQueryable(a *apptest.App, key string, start time.Time) time.Duration {
	for time.Since(start) < time.Minute {
		if a.Store("counts", key).Code == http.StatusOK {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Minute
}

// outputWatch reads a topic from its start and notes when each record
// arrives; the latency of a record is its arrival less its timestamp.
type outputWatch struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	lat   []time.Duration
	seen  map[string]time.Time // first arrival per key
	added chan struct{}
}

func newOutputWatch(b *testing.B, brokers []string, topic string) *outputWatch {
	// The watcher's own fetches return as soon as data arrives, so that
	// it adds as little as it can to what it measures.
	cl := testkafka.Client(b, brokers, kgo.ConsumeTopics(topic), kgo.FetchMaxWait(10*time.Millisecond), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ctx, cancel := context.WithCancel(context.Background())
	w := &outputWatch{cl: cl, cancel: cancel, done: make(chan struct{}), seen: map[string]time.Time{}, added: make(chan struct{}, 1)}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			w.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				w.lat = append(w.lat, now.Sub(r.Timestamp))
				if _, ok := w.seen[string(r.Key)]; !ok {
					w.seen[string(r.Key)] = now
				}
			})
			w.mu.Unlock()
			select {
			case w.added <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

func (w *outputWatch) waitKey(key string, timeout time.Duration) time.Time {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		at, ok := w.seen[key]
		w.mu.Unlock()
		if ok {
			return at
		}
		select {
		case <-w.added:
		case <-deadline:
			return time.Now()
		}
	}
}

// waitCount waits for n records and returns their latencies but the
// first's.
func (w *outputWatch) waitCount(n int, timeout time.Duration) []time.Duration {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		got := len(w.lat)
		w.mu.Unlock()
		if got >= n {
			break
		}
		select {
		case <-w.added:
		case <-deadline:
			n = got
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lat[1:n])
}

func (w *outputWatch) close() {
	w.cancel()
	<-w.done
}
