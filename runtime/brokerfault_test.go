//go:build linux

// Broker faults: the Kafka process an app talks to stops and starts again
// while clicks stream in. The app must retry, say so in its log and in
// /metrics or /readyz, and resume without losing or (under exactly_once)
// repeating a count.
//
// The test needs a broker it may restart, so it starts its own with
// scripts/kafka.sh, whatever STREAMRT_TEST_BROKERS says: a shared broker
// restarted under the other tests would fail them.
package runtime_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

const (
	faultKeys       = 1_000
	faultPartitions = 4
	faultBurst      = 250 // clicks per produce burst, one burst every 50 ms
	faultBefore     = 10_000
	faultAfter      = 10_000 // clicks acknowledged before the restart and after it
)

func TestBrokerRestartLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and restarts a Kafka broker; skipped under -short")
	}
	if !testkafka.Real() {
		// It brings its own broker either way: run it once, in the
		// real-Kafka phase of .ci/run.
		t.Skip("runs in the real-Kafka test phase (STREAMRT_TEST_BROKERS set); it starts a broker of its own")
	}
	kafkaDir, brokers := startPrivateKafka(t)

	app := testkafka.Name(t, "broker-restart")
	in, out := app+"-clicks", app+"-page-counts"
	testkafka.CreateTopic(t, brokers, in, faultPartitions)
	a := startClickcount(t, brokers, app, in, out, config.ExactlyOnce)
	a.waitReady()

	p := startClicks(brokers, in)
	defer p.stop()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d clicks acknowledged before the restart", faultBefore), func() bool { return p.acked.Load() >= faultBefore })

	// Watch what the app reports while the broker is away.
	mark := len(a.log.String())
	watch := watchHealth(a)
	began := time.Now()
	if _, err := kafkaScript(3*time.Minute, "restart", kafkaDir); err != nil {
		t.Fatalf("restart the broker: %v", err)
	}
	t.Logf("broker restarted in %v, with %d clicks acknowledged", time.Since(began).Round(time.Millisecond), p.acked.Load())
	ackedAtRestart := p.acked.Load()
	waitFor(t, 2*time.Minute, fmt.Sprintf("%d more clicks acknowledged after the restart", faultAfter), func() bool { return p.acked.Load() >= ackedAtRestart+faultAfter })
	acked, produceErrs := p.stop()
	if len(produceErrs) > 0 {
		// The broker may have written a click it did not acknowledge: the
		// truth comes from the input topic below, so this is only news.
		t.Logf("%d produce bursts failed, first: %v", len(produceErrs), produceErrs[0])
	}

	truth := readCounts(t, brokers, in, faultKeys)
	var total, ackedTotal int64
	for i, n := range truth {
		total += n
		ackedTotal += acked[i]
		if n < acked[i] {
			t.Fatalf("page-%d: %d acknowledged clicks but %d on the input topic: the broker lost acknowledged records", i, acked[i], n)
		}
	}
	t.Logf("%d clicks on the input topic, %d acknowledged", total, ackedTotal)

	keys := make([]string, faultKeys)
	for i := range keys {
		keys[i] = "page-" + strconv.Itoa(i)
	}
	adm := kadm.NewClient(testkafka.Client(t, brokers))
	var v verdict
	var lag int64
	// Up to the transaction timeout (a minute) may pass before a
	// transaction the restart interrupted is aborted and processing goes on.
	deadline := catchUpDeadline(t, 3*time.Minute)
	waitStart := time.Now()
	for {
		lag = groupLag(adm, app, in)
		v = judgeCounts(queryCounts([]string{a.http}, "click-counts", keys), truth, true, faultPartitions)
		if (lag == 0 && v.ok()) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	outLast, outSum, seqErrs := readOutputs(t, brokers, out)
	t.Logf("total true count %d, total store count %d, total of last output values %d", total, v.storeSum, outSum)
	if !v.ok() {
		t.Errorf("store counts after a broker restart: %s\n%s", v.summary(), v.String())
	}
	if lag != 0 {
		t.Errorf("the consumer group still lags by %d records on %s after waiting %v", lag, in, time.Since(waitStart).Round(time.Second))
	}
	var wrong []string
	for i, k := range keys {
		if outLast[k] != truth[i] {
			wrong = append(wrong, fmt.Sprintf("%s: last committed output %d, true count %d", k, outLast[k], truth[i]))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d keys' last committed output differs from the true count; first ones:\n%s", len(wrong), strings.Join(wrong[:min(len(wrong), 20)], "\n"))
	}
	if len(seqErrs) > 0 {
		t.Errorf("%d keys' committed outputs are not exactly 1, 2, ..., n in order; first ones:\n%s", len(seqErrs), strings.Join(seqErrs[:min(len(seqErrs), 20)], "\n"))
	}

	// The app said what happened: a warning in its log, and /readyz or
	// /metrics showing the broker errors.
	notReady, brokerErrors := watch.stop()
	if warned := problemSummary(strings.Split(a.log.String()[mark:], "\n"), 10); warned == "" {
		t.Error("the app logged no warning or error while the broker restarted")
	} else {
		t.Logf("warnings and errors logged from the restart on:\n%s", warned)
	}
	t.Logf("during the restart: /readyz not ready: %q; streamrt_broker_errors_total reached %v", notReady, brokerErrors)
	if notReady == "" && brokerErrors == 0 {
		t.Error("neither /readyz nor streamrt_broker_errors_total reflected the broker restart")
	}
	if keep := os.Getenv("STREAMRT_CHAOS_LOG_DIR"); keep != "" {
		file := filepath.Join(keep, app+".log")
		if err := os.WriteFile(file, []byte(a.log.String()), 0o644); err == nil {
			t.Logf("app log in %s", file)
		}
	}
	if t.Failed() {
		lines := strings.Split(a.log.String(), "\n")
		t.Logf("the app's warnings and errors:\n%s--- last lines:\n%s", problemSummary(lines, 60), strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
}

// kafkaScript runs scripts/kafka.sh with args and returns its output's last
// line: the broker's address for start and restart.
func kafkaScript(timeout time.Duration, args ...string) (string, error) {
	script, err := filepath.Abs("../scripts/kafka.sh")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second // the broker must not hold our pipes
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kafka.sh %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	lines := strings.Fields(stdout.String())
	if len(lines) == 0 {
		return "", nil
	}
	return lines[len(lines)-1], nil
}

// startPrivateKafka starts a single-node Kafka for this test alone in a
// temporary directory and stops it when the test ends. Without Java or the
// jars that `scripts/kafka.sh fetch` downloads it skips the test, or fails
// it under CI=true, where they are expected.
func startPrivateKafka(t *testing.T) (dir string, brokers []string) {
	t.Helper()
	version := cmp.Or(os.Getenv("STREAMRT_KAFKA_VERSION"), "4.1.1")
	cache := os.Getenv("STREAMRT_KAFKA_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(cmp.Or(home, "/tmp"), ".cache", "streamrt", "kafka-"+version)
	}
	var missing string
	if _, err := exec.LookPath("java"); err != nil {
		missing = "java is not on PATH"
	} else if _, err := os.Stat(filepath.Join(cache, ".fetched")); err != nil {
		missing = "the Kafka jars are not in " + cache + " (run scripts/kafka.sh fetch)"
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("this test restarts a Kafka broker of its own, but %s", missing)
		}
		t.Skipf("this test restarts a Kafka broker of its own, but %s", missing)
	}
	dir = t.TempDir()
	if keep := os.Getenv("STREAMRT_CHAOS_LOG_DIR"); keep != "" {
		// Keep the broker's data and logs for a post-mortem.
		dir = filepath.Join(keep, testkafka.Name(t, "kafka"))
	}
	began := time.Now()
	addr, err := kafkaScript(3*time.Minute, "start", dir)
	if err != nil {
		kafkaScript(time.Minute, "stop", dir)
		t.Fatal(err)
	}
	t.Logf("private Kafka at %s, up in %v", addr, time.Since(began).Round(time.Millisecond))
	// The broker outlives its script: should this test binary die without
	// its cleanups (killed, or a -timeout panic), this watchdog, which the
	// kernel signals when the binary dies, stops whichever broker process
	// the directory's pid file names at that moment.
	watchdog := exec.Command("/bin/sh", "-c", `trap 'kill -TERM $(cat "$1/kafka.pid" 2>/dev/null) 2>/dev/null; exit 0' TERM; while :; do sleep 1; done`, "watchdog", dir)
	watchdog.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := watchdog.Start(); err != nil {
		kafkaScript(time.Minute, "stop", dir)
		t.Fatalf("start the broker's watchdog: %v", err)
	}
	t.Cleanup(func() {
		watchdog.Process.Kill()
		watchdog.Wait()
	})
	t.Cleanup(func() {
		if t.Failed() {
			var lines []string
			for _, l := range readLines(filepath.Join(dir, "server.log")) {
				if strings.Contains(l, "] WARN ") || strings.Contains(l, "] ERROR ") {
					lines = append(lines, l)
				}
			}
			t.Logf("broker warnings and errors (last 30):\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
		if _, err := kafkaScript(2*time.Minute, "stop", dir); err != nil {
			t.Errorf("stop the test's broker: %v", err)
		}
	})
	return dir, []string{addr}
}

// writeClickcount writes dir/clickcount.yaml, the clickcount example's app
// reading in and writing out with the given guarantee and partitions, extra
// YAML (such as a cache_dir line) first, and returns its path.
func writeClickcount(t testing.TB, dir, app string, brokers []string, guarantee string, partitions int, in, out, extra string) string {
	t.Helper()
	module, err := filepath.Abs("../examples/clickcount/guest")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "clickcount.yaml")
	y := extra + fmt.Sprintf(`app: %s
brokers: [%s]
guarantee: %s
partitions: %d
commit_interval: 100ms
stages:
  - name: count
    module: %s
    inputs: [%s]
    stores: [click-counts]
    outputs: {counts: %s}
    error_policy: dead_letter
`, app, strings.Join(brokers, ", "), guarantee, partitions, module, in, out)
	if err := os.WriteFile(file, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// startClickcount runs the clickcount example in this process.
func startClickcount(t *testing.T, brokers []string, appName, in, out string, g config.Guarantee) *app {
	t.Helper()
	dir := t.TempDir()
	file := writeClickcount(t, dir, appName, brokers, string(g), faultPartitions, in, out, "cache_dir: "+guesttest.CacheDir()+"\n")
	a := &app{t: t, file: file, http: freeAddr(t), stateDir: filepath.Join(dir, "state"), log: &syncBuffer{}}
	cfg, err := config.Load(file, map[string]string{"http": a.http, "state_dir": a.stateDir})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.New(cfg, runtime.Options{Logger: slog.New(slog.NewTextHandler(a.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan error, 1)
	go func() { a.done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		if err := a.stop(); err != nil {
			t.Errorf("the app's Run returned %v", err)
		}
	})
	return a
}

// clicker produces bursts of clicks on page-0 ... page-(faultKeys-1) until
// stopped, counting the acknowledged ones per key. Its client retries
// through broker outages; a burst that fails anyway is recorded, not
// produced again, so that a click is never sent twice.
type clicker struct {
	acked   atomic.Int64
	cancel  context.CancelFunc
	done    chan struct{}
	perKey  []int64
	errs    []error
	stopped bool
}

func startClicks(brokers []string, topic string) *clicker {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	c := &clicker{cancel: cancel, done: make(chan struct{}), perKey: make([]int64, faultKeys)}
	go func() {
		defer close(c.done)
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			c.errs = append(c.errs, err)
			return
		}
		defer cl.Close()
		for ctx.Err() == nil {
			recs := make([]*kgo.Record, faultBurst)
			idx := make([]int, faultBurst)
			for i := range recs {
				idx[i] = rand.IntN(faultKeys)
				recs[i] = &kgo.Record{Topic: topic, Key: []byte("page-" + strconv.Itoa(idx[i])), Value: []byte("click")}
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				if ctx.Err() == nil {
					c.errs = append(c.errs, err)
					time.Sleep(time.Second)
				}
				continue
			}
			for _, k := range idx {
				c.perKey[k]++
			}
			c.acked.Add(faultBurst)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return c
}

// stop ends producing and returns the acknowledged clicks per key and the
// errors of failed bursts.
func (c *clicker) stop() ([]int64, []error) {
	if !c.stopped {
		c.stopped = true
		c.cancel()
		select {
		case <-c.done:
		case <-time.After(time.Minute):
			panic("the clicks producer did not stop within a minute")
		}
	}
	return c.perKey, c.errs
}

// readCounts counts the records per key page-i of topic, reading all of it.
func readCounts(t *testing.T, brokers []string, topic string, keys int) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(testkafka.Client(t, brokers)).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	cl := testkafka.Client(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	counts := make([]int64, keys)
	next := map[int32]int64{}
	for {
		done := true
		ends.Each(func(o kadm.ListedOffset) { done = done && next[o.Partition] >= o.Offset })
		if done {
			return counts
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s to its end %v: %v (read up to %v)", topic, ends.Offsets(), ctx.Err(), next)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			i, err := strconv.Atoi(strings.TrimPrefix(string(r.Key), "page-"))
			if err != nil || i < 0 || i >= keys {
				t.Errorf("unexpected key %q on %s", r.Key, topic)
				return
			}
			counts[i]++
		})
	}
}

// healthWatch polls an app's /readyz and /metrics in the background.
type healthWatch struct {
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	notReady     string // the first answer of /readyz other than 200
	brokerErrors float64
}

var brokerErrorsRE = regexp.MustCompile(`(?m)^streamrt_broker_errors_total (\S+)$`)

func watchHealth(a *app) *healthWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &healthWatch{cancel: cancel}
	w.wg.Go(func() {
		for ctx.Err() == nil {
			// 0 is no answer at all, which says nothing about readiness.
			if code, body := getWithin(a.http, "/readyz"); code != 0 && code != http.StatusOK && w.notReady == "" {
				w.notReady = fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
			}
			if _, body := getWithin(a.http, "/metrics"); body != "" {
				if m := brokerErrorsRE.FindStringSubmatch(body); m != nil {
					if n, err := strconv.ParseFloat(m[1], 64); err == nil {
						w.brokerErrors = max(w.brokerErrors, n)
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	return w
}

func getWithin(addr, path string) (int, string) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (w *healthWatch) stop() (notReady string, brokerErrors float64) {
	w.cancel()
	w.wg.Wait()
	return w.notReady, w.brokerErrors
}
