//go:build unix

package runtime_test

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	streamrt "github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Sizes of the order-notes benchmarks, for sweeps (go test -bench
// OrderNotes -args -streamrt.tables-products=1000000).
var (
	tablesProducts = flag.Int("streamrt.tables-products", 100_000, "records of the products topic, the global table")
	tablesOrders   = flag.Int("streamrt.tables-orders", 200_000, "orders each enrichment run moves")
)

// unknownShare is the share of orders whose product is not in the table, so
// that both sides of the left join are exercised.
const unknownShare = 0.05

// enrichDir is the order-notes example's stage in Go, run as it is shipped;
// enrichDir()+"-rust" is its twin in Rust.
func enrichDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "examples", "order-notes", "enrich")
}

// BenchmarkOrderNotesEnrich measures the order-notes enrichment (the
// example's enrich guest, a left join of each order with a global table of
// -streamrt.tables-products products) against the foundation's plain
// consume→produce pipe (runPipe in bench_test.go) over the same orders
// topic, in the same iteration: pipe, app, pipe, with x-pipe the app's rate
// divided by the mean pipe rate.
//
// Each iteration pre-fills (untimed) a products topic and an orders topic
// of -streamrt.tables-orders orders, 5 % of them for unknown products. The
// app's clock starts when the runtime is created and stops when its output
// topic holds every order, so orders/s includes loading the global table;
// steady-orders/s and x-pipe-steady start the clock when the engine logs
// "global tables loaded" instead. bootstrap-ms is that moment.
//
// The broker is whatever testkafka.Brokers gives. Run with -benchtime 1x and
// -count for repetitions; skipped with -short.
func BenchmarkOrderNotesEnrich(b *testing.B) {
	if testing.Short() {
		b.Skip("order-notes benchmark: moves hundreds of thousands of records through a broker; skipped with -short")
	}
	brokers := testkafka.Brokers(b)
	warmBroker(b, brokers)
	for _, guest := range []struct{ lang, dir string }{{"go", enrichDir()}, {"rust", enrichDir() + "-rust"}} {
		warmEnrich(b, guest.dir)
		for _, d := range []time.Duration{config.DefaultBatchDeadline, 0} {
			name := "guest=" + guest.lang + "/deadline=on"
			if d == 0 {
				name = "guest=" + guest.lang + "/deadline=off"
			}
			b.Run(name, func(b *testing.B) { benchEnrich(b, brokers, guest.dir, d) })
		}
	}
}

func benchEnrich(b *testing.B, brokers []string, module string, deadline time.Duration) {
	n := *tablesOrders
	var app, steady, pipe, boot time.Duration
	var appCPU, pipeCPU time.Duration
	var pipeRuns int
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		base := testkafka.Name(b, "bench-notes")
		products, orders, out := base+"-products", base+"-orders", base+"-enriched"
		createTopics(b, brokers, products, orders, out, base+"-pipe1", base+"-pipe2")
		deleteTopics(b, brokers, base+"-enrich-dlq") // the app creates it
		prefillProducts(b, brokers, products, *tablesProducts)
		prefillOrders(b, brokers, orders, n, *tablesProducts)

		b.StartTimer()
		for i, to := range []string{base + "-pipe1", "", base + "-pipe2"} {
			if to != "" {
				r := runPipe(b, brokers, fmt.Sprintf("%s-pipe%d", base, i), orders, to, n)
				pipe += r.took
				pipeCPU += r.cpu
				pipeRuns++
				continue
			}
			r := runTablesApp(b, brokers, tablesApp{name: base, module: module, products: products, orders: orders, out: out, deadline: deadline}, n)
			app += r.took
			steady += r.took - r.loaded
			boot += r.loaded
			appCPU += r.cpu
			if r.outputs != int64(n) {
				b.Logf("app: %d output records for %d orders (duplicates from a replay)", r.outputs, n)
			}
		}
		b.StopTimer()
	}
	total := float64(n * b.N)
	pipeRate := float64(n*pipeRuns) / pipe.Seconds()
	b.ReportMetric(total/app.Seconds(), "orders/s")
	b.ReportMetric(total/steady.Seconds(), "steady-orders/s")
	b.ReportMetric(pipeRate, "pipe-records/s")
	b.ReportMetric(total/app.Seconds()/pipeRate, "x-pipe")
	b.ReportMetric(total/steady.Seconds()/pipeRate, "x-pipe-steady")
	b.ReportMetric(float64(boot.Milliseconds())/float64(b.N), "bootstrap-ms")
	b.ReportMetric(float64(appCPU.Microseconds())/total, "cpu-us/order")
	b.ReportMetric(float64(pipeCPU.Microseconds())/float64(n*pipeRuns), "pipe-cpu-us/record")
}

// BenchmarkGlobalTableBootstrap measures how fast an instance loads a global
// table of -streamrt.tables-products products from a fresh state directory,
// against a plain franz-go read of the same topic in the same iteration
// (read, app, read; x-read is the app's rate over the mean read rate).
//
// The app is order-notes' enrich stage with the products table and an empty
// orders topic. Two clocks:
//
//   - records/s is the engine's own: the "took" of its "global tables loaded"
//     log record, from the first fetch until every partition reached the end
//     offsets listed at start (so it leaves out module loading, opening the
//     state and listing offsets). This is the figure compared with the read.
//   - from-start-ms runs from runtime creation until that log record.
//
// The plain read is a franz-go client consuming every partition from the
// start, without a group, until it has seen every record.
func BenchmarkGlobalTableBootstrap(b *testing.B) {
	if testing.Short() {
		b.Skip("global table benchmark: loads hundreds of thousands of records from a broker; skipped with -short")
	}
	brokers := testkafka.Brokers(b)
	warmEnrich(b, enrichDir())
	warmBroker(b, brokers)
	n := *tablesProducts
	var load, fromStart, read, appCPU, readCPU time.Duration
	var reads int
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		base := testkafka.Name(b, "bench-global")
		products, orders := base+"-products", base+"-orders"
		createTopics(b, brokers, products, orders)
		deleteTopics(b, brokers, base+"-enrich-dlq", base+"-enriched")
		prefillProducts(b, brokers, products, n)

		b.StartTimer()
		for _, isApp := range []bool{false, true, false} {
			if !isApp {
				took, cpu := readTopic(b, brokers, products, n)
				read += took
				readCPU += cpu
				reads++
				continue
			}
			r := runTablesApp(b, brokers, tablesApp{name: base, products: products, orders: orders, out: base + "-enriched", deadline: config.DefaultBatchDeadline}, -1)
			load += r.engineLoad
			fromStart += r.loaded
			appCPU += r.cpu
		}
		b.StopTimer()
	}
	total := float64(n * b.N)
	readRate := float64(n*reads) / read.Seconds()
	b.ReportMetric(total/load.Seconds(), "records/s")
	b.ReportMetric(readRate, "read-records/s")
	b.ReportMetric(total/load.Seconds()/readRate, "x-read")
	b.ReportMetric(float64(fromStart.Milliseconds())/float64(b.N), "from-start-ms")
	b.ReportMetric(float64(appCPU.Microseconds())/total, "cpu-us/record")
	b.ReportMetric(float64(readCPU.Microseconds())/float64(n*reads), "read-cpu-us/record")
}

// tablesApp is the order-notes app reduced to what the benchmarks measure:
// the enrich stage and the products global table (no enriched-orders table).
type tablesApp struct {
	name, products, orders, out string
	module                      string // the enrich stage's module; enrichDir() when empty
	deadline                    time.Duration
}

// tablesRun is the outcome of one app run.
type tablesRun struct {
	e2eRun
	loaded     time.Duration // from start until "global tables loaded"
	engineLoad time.Duration // that record's "took"
}

// runTablesApp runs app until out holds n records, or, with n < 0, until
// its global table is loaded.
func runTablesApp(b *testing.B, brokers []string, a tablesApp, n int) tablesRun {
	b.Helper()
	dir := b.TempDir()
	y := fmt.Sprintf(`app: %s
brokers: [%s]
http: %s
state_dir: %s
cache_dir: %s
partitions: %d
commit_interval: %s
tables:
  - {name: products, topic: %s, global: true}
stages:
  - name: enrich
    module: %s
    inputs: [%s]
    tables: [products]
    outputs: {enriched: %s}
    error_policy: dead_letter
    batch_deadline: %s
`, a.name, strings.Join(brokers, ", "), freeLoopback(b), filepath.Join(dir, "state"), guesttest.CacheDir(), e2ePartitions,
		*e2eCommitInterval, a.products, cmp.Or(a.module, enrichDir()), a.orders, a.out, a.deadline)
	cfg, err := config.Parse([]byte(y), filepath.Join(dir, "app.yaml"), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	var log lockedBuffer
	w := &loadWatch{next: slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}), loaded: make(chan time.Duration, 1)}

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
	var r tablesRun
	var werr error
	select {
	case r.engineLoad = <-w.loaded:
		r.loaded = time.Since(start)
	case <-exited:
		werr = fmt.Errorf("exited before loading its global table")
	case <-ctx.Done():
		werr = fmt.Errorf("global table not loaded: %w", ctx.Err())
	}
	if werr == nil && n >= 0 {
		r.e2eRun, werr = watchOutputs(b, ctx, brokers, a.out, n, start, exited)
	}
	r.cpu = cpuTime() - cpu
	stop()
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		b.Fatalf("app %s did not stop within 60s\n%s", a.name, log.String())
	}
	if runErr != nil {
		b.Fatalf("app %s: %v\n%s", a.name, runErr, log.String())
	}
	if werr != nil {
		b.Fatalf("app %s: %v\n%s", a.name, werr, log.String())
	}
	return r
}

// loadWatch passes records at or above its handler's level on to it, and
// sends the "took" of the engine's "global tables loaded" record on loaded.
type loadWatch struct {
	next   slog.Handler
	loaded chan time.Duration
}

func (w *loadWatch) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || w.next.Enabled(ctx, l)
}

func (w *loadWatch) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "global tables loaded" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "took" {
				select {
				case w.loaded <- a.Value.Duration():
				default:
				}
				return false
			}
			return true
		})
	}
	if w.next.Enabled(ctx, r.Level) {
		return w.next.Handle(ctx, r)
	}
	return nil
}

func (w *loadWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return &loadWatch{next: w.next.WithAttrs(as), loaded: w.loaded}
}

func (w *loadWatch) WithGroup(name string) slog.Handler {
	return &loadWatch{next: w.next.WithGroup(name), loaded: w.loaded}
}

// readTopic reads every partition of topic from the start, with no group,
// until it has seen n records.
func readTopic(b *testing.B, brokers []string, topic string, n int) (took, cpu time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start, cpu0 := time.Now(), cpuTime()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	seen, bytes := 0, 0
	for seen < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("read %s: %d of %d records: %v", topic, seen, n, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			bytes += len(r.Key) + len(r.Value)
		})
	}
	return time.Since(start), cpuTime() - cpu0
}

// prefillProducts produces n products p000000… to topic, each value the
// example's {"id","name","price"}, about 90 bytes.
func prefillProducts(b *testing.B, brokers []string, topic string, n int) {
	b.Helper()
	produceAll(b, brokers, topic, n, func(i int) (k, v []byte) {
		id := fmt.Sprintf("p%06d", i)
		return []byte(id), fmt.Appendf(nil, `{"id":%q,"name":"Product %06d, standard edition","price":%d.%02d}`, id, i, 1+i%500, i%100)
	})
}

// prefillOrders produces n orders o000000… to topic, each for a random
// product among products, or for an unknown one with unknownShare; values
// are the example's {"id","product_id","customer_id","quantity"}, about 75
// bytes.
func prefillOrders(b *testing.B, brokers []string, topic string, n, products int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	produceAll(b, brokers, topic, n, func(i int) (k, v []byte) {
		p := rng.IntN(products)
		if rng.Float64() < unknownShare {
			p += products
		}
		id := fmt.Sprintf("o%07d", i)
		return []byte(id), fmt.Appendf(nil, `{"id":%q,"product_id":"p%06d","customer_id":"c%05d","quantity":%d}`, id, p, rng.IntN(50_000), 1+rng.IntN(9))
	})
}

// warmEnrich builds the enrich guest in dir and fills the wasm compilation
// cache with both of its variants (with and without a deadline), so that no
// run pays for building or compiling.
func warmEnrich(b *testing.B, dir string) {
	b.Helper()
	ctx := context.Background()
	cache, err := wasm.NewCache(filepath.Join(guesttest.CacheDir(), "wasm"))
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close(ctx)
	bin := guesttest.BuildDir(b, dir)
	for _, d := range []time.Duration{config.DefaultBatchDeadline, 0} {
		e, err := wasm.NewEngine(ctx, wasm.Config{Cache: cache, MemoryLimit: config.DefaultMemoryLimit, Deadline: d})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Compile(ctx, dir, bin); err != nil {
			b.Fatal(err)
		}
		e.Close(ctx)
	}
}
