//go:build unix

package runtime_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/pipe"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Knobs of BenchmarkEndToEnd, for sweeps (go test -bench '^BenchmarkEndToEnd$' -args
// -streamrt.e2e-commit-interval=1s); the defaults are the configuration's.
var (
	e2eRecords        = flag.Int("streamrt.e2e-records", 500_000, "records each end-to-end benchmark run moves")
	e2eCommitInterval = flag.Duration("streamrt.e2e-commit-interval", config.DefaultCommitInterval, "commit_interval of the app, and of the pipe")
	e2eBatchSize      = flag.Int("streamrt.e2e-batch-size", config.DefaultBatchSize, "batch_size of the stage")
)

// The end-to-end workload: records with 8-byte keys from 1,000 distinct ones
// and 100-byte values, over 4 partitions.
const (
	e2ePartitions = 4
	e2eKeys       = 1_000
	e2eValue      = 100
)

// BenchmarkEndToEnd measures throughput through a broker, from start (client
// or runtime creation) until all the records of a pre-filled input topic have
// come out as output records, counted by the output's high watermarks. The
// stages are identity (guest identity, output out) and clickcount (guest
// counter, store counts), each with the default batch deadline (5s) and
// with none.
//
// Each iteration pre-fills a new input topic (untimed), then runs a plain
// franz-go pipe over it, then the stage, then the pipe again; the stage's
// rate is reported beside the mean of the two pipe runs, and x-pipe is their
// ratio, so that each ratio compares runs a few seconds apart on the same
// data. The pipe is what the engine does minus the guest and the state: a
// consumer group reading committed data, producing each record to the output
// topic, and every commit interval waiting for the acknowledgements and then
// committing offsets. Beside the rates: startup-ms (until the first output),
// cpu-us/record (this process: runtime, polling, and kfake when in-process),
// and from the runtime's /metrics, commit-share and ms/commit (time in commit
// cycles) and guest-share (time in guest batches summed over tasks, which
// run in parallel, divided by the run's time).
//
// An iteration moves -streamrt.e2e-records records (500,000 by default,
// enough for the stage's start to weigh little) three times and takes
// seconds: run with -benchtime=1x and -count for repetitions. The broker is
// whatever testkafka.Brokers gives: an in-process kfake (sharing this
// process's CPU) or STREAMRT_TEST_BROKERS.
func BenchmarkEndToEnd(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark: moves hundreds of thousands of records through a broker; skipped with -short")
	}
	brokers := testkafka.Brokers(b)
	warmModules(b)
	warmBroker(b, brokers)
	for _, st := range []e2eStage{
		{name: "identity", guest: "identity"},
		{name: "clickcount", guest: "counter", stores: []string{"counts"}},
	} {
		for _, d := range []time.Duration{config.DefaultBatchDeadline, 0} {
			st.deadline = d
			name := st.name + "/deadline=on"
			if d == 0 {
				name = st.name + "/deadline=off"
			}
			b.Run(name, func(b *testing.B) { benchStage(b, brokers, st) })
		}
	}
}

// e2eStage is the stage a run benchmarks: a test guest, its stores, its
// batch_deadline (the default, 5s, or 0 for none) and the app's guarantee
// (empty for the default).
type e2eStage struct {
	name      string
	guest     string
	stores    []string
	deadline  time.Duration
	guarantee config.Guarantee
}

// e2eRun is the outcome of moving the input once.
type e2eRun struct {
	took    time.Duration // from start until every output record exists
	startup time.Duration // from start until the first output record exists
	cpu     time.Duration // CPU time of this process meanwhile
	outputs int64
	// From the runtime's /metrics: time in commit cycles and their number,
	// and time in guest batches summed over tasks (which run in parallel).
	commit  time.Duration
	commits int
	batches time.Duration
}

func benchStage(b *testing.B, brokers []string, st e2eStage) {
	n := *e2eRecords
	var app, pipe, appStartup time.Duration
	var appCPU, pipeCPU, commit, batches time.Duration
	var pipeRuns, commits int
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		base := testkafka.Name(b, "bench-"+st.name)
		in := base + "-in"
		topics := []string{in, base + "-pipe1", base + "-pipe2", base + "-out"}
		createTopics(b, brokers, topics...)
		for _, store := range st.stores {
			deleteTopics(b, brokers, config.ChangelogTopic(base, store)) // the app creates it
		}
		prefill(b, brokers, in, n)

		b.StartTimer()
		for i, out := range []string{base + "-pipe1", "", base + "-pipe2"} {
			var r e2eRun
			if out == "" {
				r = runApp(b, brokers, base, in, base+"-out", st, n)
				app += r.took
				appStartup += r.startup
				appCPU += r.cpu
				commit += r.commit
				commits += r.commits
				batches += r.batches
			} else {
				r = runPipe(b, brokers, fmt.Sprintf("%s-pipe%d", base, i), in, out, n)
				pipe += r.took
				pipeCPU += r.cpu
				pipeRuns++
			}
			if r.outputs != int64(n) {
				b.Logf("run %d: %d output records for %d inputs (duplicates from a replay)", i, r.outputs, n)
			}
		}
		b.StopTimer()
	}
	total := float64(n * b.N)
	appRate := total / app.Seconds()
	pipeRate := float64(n*pipeRuns) / pipe.Seconds()
	b.ReportMetric(appRate, "records/s")
	b.ReportMetric(pipeRate, "pipe-records/s")
	b.ReportMetric(appRate/pipeRate, "x-pipe")
	b.ReportMetric(float64(appStartup.Milliseconds())/float64(b.N), "startup-ms")
	b.ReportMetric(float64(appCPU.Microseconds())/total, "cpu-us/record")
	b.ReportMetric(float64(pipeCPU.Microseconds())/float64(n*pipeRuns), "pipe-cpu-us/record")
	b.ReportMetric(commit.Seconds()/app.Seconds(), "commit-share")
	b.ReportMetric(batches.Seconds()/app.Seconds(), "guest-share")
	if commits > 0 {
		b.ReportMetric(float64(commit.Milliseconds())/float64(commits), "ms/commit")
	}
}

// warmModules builds the test guests and fills the wasm compilation cache
// with the code the runtime will ask for, so that no run pays for compiling.
func warmModules(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	cache, err := wasm.NewCache(filepath.Join(guesttest.CacheDir(), "wasm"))
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close(ctx)
	// The compiled code depends on whether a deadline is set: warm both.
	for _, d := range []time.Duration{config.DefaultBatchDeadline, 0} {
		e, err := wasm.NewEngine(ctx, wasm.Config{Cache: cache, MemoryLimit: config.DefaultMemoryLimit, Deadline: d})
		if err != nil {
			b.Fatal(err)
		}
		for _, g := range []string{"identity", "counter"} {
			if _, err := e.Compile(ctx, g, guesttest.Build(b, g)); err != nil {
				b.Fatal(err)
			}
		}
		e.Close(ctx)
	}
}

// warmBroker runs the pipe once over a small topic, so that the first
// measured run does not meet a cold broker (a JVM compiles its hot paths in
// the first seconds).
func warmBroker(b *testing.B, brokers []string) {
	b.Helper()
	const n = 50_000
	base := testkafka.Name(b, "bench-warmup")
	createTopics(b, brokers, base+"-in", base+"-out")
	prefill(b, brokers, base+"-in", n)
	runPipe(b, brokers, base, base+"-in", base+"-out", n)
}

// createTopics creates the end-to-end benchmarks' topics, as createTopicsOf.
func createTopics(b *testing.B, brokers []string, topics ...string) {
	b.Helper()
	createTopicsOf(b, brokers, e2ePartitions, topics...)
}

// createTopicsOf creates topics of partitions each, in one request, and
// deletes them when b ends.
func createTopicsOf(b *testing.B, brokers []string, partitions int32, topics ...string) {
	b.Helper()
	adm := kadm.NewClient(testkafka.Client(b, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, partitions, 1, nil, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		b.Fatalf("create topics %v: %v", topics, err)
	}
	deleteTopics(b, brokers, topics...)
}

// deleteTopics deletes topics when b ends, so that a real cluster does not
// fill up with benchmark data.
func deleteTopics(b *testing.B, brokers []string, topics ...string) {
	adm := kadm.NewClient(testkafka.Client(b, brokers))
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		adm.DeleteTopics(ctx, topics...)
	})
}

// prefill produces n records to topic: keys "key-NNNN" cycling over e2eKeys,
// 100-byte values.
func prefill(b *testing.B, brokers []string, topic string, n int) {
	b.Helper()
	value := bytes.Repeat([]byte{'v'}, e2eValue)
	produceAll(b, brokers, topic, n, func(i int) (k, v []byte) {
		return fmt.Appendf(nil, "key-%04d", i%e2eKeys), value
	})
}

// produceAll produces n records to topic, record i made by rec, and fails
// the benchmark if any is refused.
func produceAll(b *testing.B, brokers []string, topic string, n int, rec func(int) (k, v []byte)) {
	cl := testkafka.Client(b, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
	)
	for i := range n {
		k, v := rec(i)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: k, Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = firstOf(firstErr, err)
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatalf("prefill %s: %v", topic, err)
	}
	if firstErr != nil {
		b.Fatalf("prefill %s: %v", topic, firstErr)
	}
}

func firstOf(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// watchOutputs polls topic's high watermarks from start until they add up to
// n, ctx ends or the producing side exits.
func watchOutputs(b *testing.B, ctx context.Context, brokers []string, topic string, n int, start time.Time, exited <-chan struct{}) (e2eRun, error) {
	adm := kadm.NewClient(testkafka.Client(b, brokers))
	var r e2eRun
	for {
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("%s: %d of %d output records after %v: %w", topic, r.outputs, n, time.Since(start).Round(time.Millisecond), ctx.Err())
		case <-exited:
			return r, fmt.Errorf("%s: %d of %d output records when the producing side exited", topic, r.outputs, n)
		case <-time.After(10 * time.Millisecond):
		}
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			continue
		}
		var sum int64
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil {
				sum += o.Offset
			}
		})
		if sum > 0 && r.startup == 0 {
			r.startup = time.Since(start)
		}
		r.outputs = sum
		if sum >= int64(n) {
			r.took = time.Since(start)
			return r, nil
		}
	}
}

// runPipe copies in to out with the plain pipe (internal/pipe), committing
// like the engine does, until out holds n records.
func runPipe(b *testing.B, brokers []string, group, in, out string, n int) e2eRun {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start, cpu := time.Now(), cpuTime()
	pctx, stop := context.WithCancel(ctx)
	var pipeErr error
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		pipeErr = pipe.Run(pctx, pipe.Config{Brokers: brokers, Group: group, Input: in, Output: out, CommitInterval: *e2eCommitInterval})
	}()
	r, werr := watchOutputs(b, ctx, brokers, out, n, start, exited)
	r.cpu = cpuTime() - cpu
	stop()
	<-exited
	if pipeErr != nil {
		b.Fatal(pipeErr)
	}
	if werr != nil {
		b.Fatalf("pipe %s: %v", group, werr)
	}
	return r
}

// runApp runs a one-stage app from in to out until out holds n records.
func runApp(b *testing.B, brokers []string, app, in, out string, st e2eStage, n int) e2eRun {
	b.Helper()
	dir := b.TempDir()
	httpAddr := freeLoopback(b)
	y := fmt.Sprintf(`app: %s
brokers: [%s]
http: %s
state_dir: %s
cache_dir: %s
partitions: %d
commit_interval: %s
stages:
  - name: main
    module: %s
    inputs: [%s]
    outputs: {out: %s}
    batch_deadline: %s
    batch_size: %d
`, app, strings.Join(brokers, ", "), httpAddr, filepath.Join(dir, "state"), guesttest.CacheDir(), e2ePartitions, *e2eCommitInterval,
		guesttest.Dir(st.guest), in, out, st.deadline, *e2eBatchSize)
	if len(st.stores) > 0 {
		y += fmt.Sprintf("    stores: [%s]\n", strings.Join(st.stores, ", "))
	}
	if st.guarantee != "" {
		y = fmt.Sprintf("guarantee: %s\n", st.guarantee) + y
	}
	cfg, err := config.Parse([]byte(y), filepath.Join(dir, "app.yaml"), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	var log lockedBuffer
	logger := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start, cpu := time.Now(), cpuTime()
	rt, err := runtime.New(cfg, runtime.Options{Logger: logger})
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
	r, werr := watchOutputs(b, ctx, brokers, out, n, start, exited)
	r.cpu = cpuTime() - cpu
	if werr == nil {
		r.commit, r.commits, r.batches = scrapeMetrics(b, httpAddr)
	}
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
	return r
}

// freeLoopback returns a loopback address that was free a moment ago, for the
// app's HTTP server, whose /metrics the benchmark reads.
func freeLoopback(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrapeMetrics reads the time spent in commit cycles, their number and the
// time spent in guest batches from the app's /metrics.
func scrapeMetrics(b *testing.B, addr string) (commit time.Duration, commits int, batches time.Duration) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Logf("metrics: %v", err)
		return 0, 0, 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	seconds := func(v string) time.Duration {
		f, _ := strconv.ParseFloat(v, 64)
		return time.Duration(f * float64(time.Second))
	}
	for line := range strings.Lines(string(body)) {
		name, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		switch {
		case name == "streamrt_commit_seconds_sum":
			commit = seconds(v)
		case name == "streamrt_commit_seconds_count":
			commits, _ = strconv.Atoi(v)
		case strings.HasPrefix(name, "streamrt_batch_seconds_sum{"):
			batches += seconds(v)
		}
	}
	return commit, commits, batches
}

// lockedBuffer collects the app's warnings, shown if a run fails.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// cpuTime returns the CPU time this process has used so far (the runtime
// or pipe, the benchmark's own polling, and kfake when it runs in-process).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
