package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/partition"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Helpers shared with the examples' tests, under the names this package's
// tests use.
var (
	freeAddr = apptest.FreeAddr
	waitFor  = apptest.WaitFor
	produce  = testkafka.Produce
)

type syncBuffer = apptest.Buffer

// app is one running instance of an app under test.
type app struct {
	t        *testing.T
	file     string
	http     string
	stateDir string
	log      *syncBuffer
	cancel   context.CancelFunc
	done     chan error
}

// appYAML renders a one-stage app config. {{in}}, {{out}} and friends are
// filled from names unique to the test.
type appSpec struct {
	brokers  []string
	module   string
	stores   []string
	policy   string
	extra    string // more keys: the stage's, YAML-indented by 4 spaces, or the app's, not indented
	stateDir string
	watch    bool
	in, out  string
	app      string
	eos      bool // guarantee: exactly_once
}

func (s appSpec) yaml() string {
	policy := s.policy
	if policy == "" {
		policy = "fail"
	}
	// The shared cache makes each guest version compile once per machine,
	// not once per test: compiling is slow under the race detector.
	y := fmt.Sprintf(`app: %s
brokers: [%s]
partitions: 4
commit_interval: 50ms
cache_dir: %s
stages:
  - name: main
    module: %s
    inputs: [%s]
    outputs: {out: %s}
    error_policy: %s
`, s.app, strings.Join(s.brokers, ", "), guesttest.CacheDir(), s.module, s.in, s.out, policy)
	if len(s.stores) > 0 {
		y += fmt.Sprintf("    stores: [%s]\n", strings.Join(s.stores, ", "))
	}
	if s.eos {
		y = "guarantee: exactly_once\n" + y
	}
	return y + s.extra
}

func startApp(t *testing.T, spec appSpec) *app {
	t.Helper()
	return startYAML(t, spec.yaml(), spec.stateDir, spec.watch)
}

// startYAML runs an app from a whole configuration; the shared cache_dir is
// added to it, and the TLS and SASL of a secured test cluster.
func startYAML(t *testing.T, yaml, stateDir string, watch bool) *app {
	t.Helper()
	return startWith(t, yaml, stateDir, watch, testkafka.Overrides(t))
}

// startWith is startYAML with kafka, keys that set the app's kafka section,
// in place of the test cluster's.
func startWith(t *testing.T, yaml, stateDir string, watch bool, kafka map[string]string) *app {
	t.Helper()
	dir := t.TempDir()
	if stateDir == "" {
		stateDir = filepath.Join(dir, "state")
	}
	if !strings.Contains(yaml, "cache_dir:") {
		yaml = "cache_dir: " + guesttest.CacheDir() + "\n" + yaml
	}
	file := filepath.Join(dir, "app.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := appSpec{stateDir: stateDir, watch: watch}
	a := &app{t: t, file: file, http: freeAddr(t), stateDir: spec.stateDir, log: &syncBuffer{}}
	overrides := map[string]string{"http": a.http, "state_dir": spec.stateDir}
	maps.Copy(overrides, kafka)
	cfg, err := config.Load(file, overrides)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(a.log, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	rt, err := runtime.New(cfg, runtime.Options{Logger: logger, Watch: spec.watch})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan error, 1)
	go func() { a.done <- rt.Run(ctx) }()
	t.Cleanup(func() { a.stop() })
	return a
}

// stop ends the instance and returns what Run returned.
func (a *app) stop() error {
	if a.cancel == nil {
		return nil
	}
	a.cancel()
	a.cancel = nil
	select {
	case err := <-a.done:
		return err
	case <-time.After(30 * time.Second):
		a.t.Fatal("app did not stop within 30s")
		return nil
	}
}

func (a *app) get(path string) (int, string) {
	resp, err := http.Get("http://" + a.http + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitGet waits until path answers 200 with want: a cycle's outputs are
// sent as its batches end, and its state is served once it commits, up to
// a commit interval later. It fails the test after 10 seconds.
func (a *app) waitGet(t testing.TB, path, want string) {
	t.Helper()
	var code int
	var body string
	apptest.WaitCheck(t, 10*time.Second, fmt.Sprintf("GET %s to answer %q", path, want), func() error {
		if code, body = a.get(path); code != 200 || body != want {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
}

func (a *app) waitReady() {
	a.t.Helper()
	waitFor(a.t, 60*time.Second, "the app to become ready", func() bool {
		code, _ := a.get("/readyz")
		return code == http.StatusOK
	})
}

// names returns unique app, input and output names for one test.
func names(t testing.TB) (app, in, out string) {
	base := testkafka.Name(t, strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	return base, base + "-in", base + "-out"
}

func TestCountsEndToEnd(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	a := startApp(t, appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}})
	a.waitReady()

	want := map[string]int{}
	var kvs []string
	for i := 0; i < 300; i++ {
		k := fmt.Sprintf("page-%d", i%10)
		want[k]++
		kvs = append(kvs, k, "click")
	}
	produce(t, brokers, in, kvs...)
	got := testkafka.ReadAll(t, brokers, out, 300, 60*time.Second)
	if len(got) != 300 {
		t.Fatalf("%d output records, want 300", len(got))
	}
	// Per key, the output is the running count: 1, 2, 3, ... in order.
	seen := map[string]int{}
	for _, r := range got {
		seen[string(r.Key)]++
		if string(r.Value) != fmt.Sprint(seen[string(r.Key)]) {
			t.Fatalf("key %s: output %q, want %d", r.Key, r.Value, seen[string(r.Key)])
		}
	}
	for k, n := range want {
		a.waitGet(t, "/v1/stores/counts/keys/"+k, fmt.Sprint(n))
	}
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/v1/stores/counts/keys/nope", 404, `"error":"key \"nope\" not found in store \"counts\""`},
		{"/v1/stores/nostore/keys/x", 404, `"error":"unknown store \"nostore\""`},
		{"/v1/stores/counts/keys/" + strings.Repeat("k", 5000), 400, "longer than the maximum of 4096"},
		{"/healthz", 200, `"ok"`},
		{"/metrics", 200, "streamrt_records_in_total{stage=\"main\"} 300"},
	} {
		code, body := a.get(tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: %d %q, want %d containing %q", tc.path[:min(len(tc.path), 60)], code, body[:min(len(body), 300)], tc.code, tc.want)
		}
	}
	for _, metric := range []string{"streamrt_batch_seconds_bucket", "streamrt_task_lag_records", "streamrt_records_out_total", "streamrt_commits_total"} {
		if _, body := a.get("/metrics"); !strings.Contains(body, metric) {
			t.Errorf("/metrics lacks %s", metric)
		}
	}
}

// A clean stop and restart resumes exactly where the app stopped: records
// produced while it was down are counted once, and nothing is counted twice.
func TestCleanRestartResumesExactly(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}, stateDir: filepath.Join(t.TempDir(), "state")}
	a := startApp(t, spec)
	a.waitReady()
	var first []string
	for i := 0; i < 100; i++ {
		first = append(first, fmt.Sprintf("k%d", i%7), "x")
	}
	produce(t, brokers, in, first...)
	if got := testkafka.ReadAll(t, brokers, out, 100, 60*time.Second); len(got) != 100 {
		t.Fatalf("%d outputs before the restart, want 100", len(got))
	}
	if err := a.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	produce(t, brokers, in, first[:100]...) // 50 more while it is down

	b := startApp(t, spec)
	b.waitReady()
	got := testkafka.ReadAll(t, brokers, out, 150, 60*time.Second)
	// Read a little longer: a duplicate would show up as a 151st record.
	time.Sleep(500 * time.Millisecond)
	got = testkafka.ReadAll(t, brokers, out, 151, 2*time.Second)
	if len(got) != 150 {
		t.Fatalf("%d output records after the restart, want exactly 150", len(got))
	}
	for i := 0; i < 7; i++ {
		k := fmt.Sprintf("k%d", i)
		want := 0
		for j := 0; j < 150; j++ {
			if j%100%7 == i {
				want++
			}
		}
		if code, body := b.get("/v1/stores/counts/keys/" + k); code != 200 || body != fmt.Sprint(want) {
			t.Errorf("count of %s after restart: %d %q, want %d", k, code, body, want)
		}
	}
}

func TestRefusesInputWithOtherPartitionCount(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, 2)
	a := startApp(t, appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}})
	select {
	case err := <-a.done:
		a.cancel = nil
		if !errors.Is(err, runtime.ErrTopics) || !strings.Contains(err.Error(), fmt.Sprintf("input topic %q has 2 partitions", in)) || !strings.Contains(err.Error(), "needs 4") {
			t.Fatalf("got %v, want a partition mismatch naming %s, 2 and 4", err, in)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the app started despite an input topic with 2 partitions")
	}
}

func TestRefusesBadModule(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.wasm")
	os.WriteFile(bad, []byte("not wasm at all"), 0o644)
	appName, in, out := names(t)
	a := startApp(t, appSpec{brokers: []string{"127.0.0.1:1"}, app: appName, in: in, out: out, module: bad})
	select {
	case err := <-a.done:
		a.cancel = nil
		if err == nil || !strings.Contains(err.Error(), `stage "main"`) || !strings.Contains(err.Error(), "bad.wasm: not a WebAssembly module") {
			t.Fatalf("got %v, want an error naming the stage, the file and the problem", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the app started with a module that is not Wasm")
	}
}

// A broker that is down at start is waited for, with a message; once it is
// up, processing starts and nothing is lost.
func TestWaitsForBrokerAtStart(t *testing.T) {
	if testkafka.Real() {
		t.Skip("needs a broker it can start late; runs on the embedded broker")
	}
	addr := freeAddr(t)
	appName, in, out := names(t)
	a := startApp(t, appSpec{brokers: []string{addr}, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}})
	waitFor(t, 30*time.Second, "a retry message", func() bool { return strings.Contains(a.log.String(), "brokers unreachable; retrying") })
	if code, _ := a.get("/healthz"); code != 200 {
		t.Fatalf("/healthz answered %d while waiting for brokers, want 200", code)
	}
	if code, body := a.get("/readyz"); code != 503 || !strings.Contains(body, "waiting") {
		t.Fatalf("/readyz answered %d %q while waiting for brokers, want 503", code, body)
	}
	brokers := testkafka.BrokersAt(t, addr)
	a.waitReady()
	produce(t, brokers, in, "k", "x", "k", "x")
	waitFor(t, 30*time.Second, "the count", func() bool {
		_, body := a.get("/v1/stores/counts/keys/k")
		return body == "2"
	})
}

// testWriter sends the app's log to the test's, shown when a test fails.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// An output with keep: latest carries each key's latest count once per
// commit rather than once per click: fewer records than inputs, in
// increasing order per key, ending at the true count, under either
// guarantee.
func TestKeepLatestOutputCountsOncePerCommit(t *testing.T) {
	for _, guarantee := range []config.Guarantee{config.AtLeastOnce, config.ExactlyOnce} {
		t.Run(string(guarantee), func(t *testing.T) {
			brokers := testkafka.Brokers(t)
			appName, in, out := names(t)
			testkafka.CreateTopic(t, brokers, in, 4)
			const pages, clicks = 10, 2000
			var kvs []string
			for i := 0; i < clicks; i++ {
				kvs = append(kvs, fmt.Sprintf("page-%d", i%pages), "x")
			}
			produce(t, brokers, in, kvs...)
			a := startYAML(t, fmt.Sprintf(`app: %s
brokers: [%s]
partitions: 4
guarantee: %s
stages:
  - name: main
    module: %s
    inputs: [%s]
    stores: [counts]
    outputs: {out: {topic: %s, keep: latest}}
`, appName, strings.Join(brokers, ", "), guarantee, guesttest.Dir("counter"), in, out), "", false)
			last := map[string]int{}
			total := 0
			testkafka.ReadUntil(t, brokers, out, 60*time.Second, func(r *kgo.Record) bool {
				total++
				n, err := strconv.Atoi(string(r.Value))
				if err != nil || n <= last[string(r.Key)] {
					t.Fatalf("output %s=%s after %d", r.Key, r.Value, last[string(r.Key)])
				}
				last[string(r.Key)] = n
				for i := 0; i < pages; i++ {
					if last[fmt.Sprintf("page-%d", i)] != clicks/pages {
						return false
					}
				}
				return true
			})
			if total >= clicks {
				t.Fatalf("%d outputs for %d clicks: keep latest kept them all", total, clicks)
			}
			for i := 0; i < pages; i++ {
				a.waitGet(t, fmt.Sprintf("/v1/stores/counts/keys/page-%d", i), fmt.Sprint(clicks/pages))
			}
			t.Logf("%d outputs for %d clicks", total, clicks)
		})
	}
}

// With idle_release, a task's guest instance is released once the task has
// had no record for that long, and the next record makes a new one: the
// counts, kept in the store, go on from where they were.
func TestIdleReleaseFreesInstancesAndResumes(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	a := startApp(t, appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"},
		extra: "    idle_release: 200ms\n"})
	a.waitReady()
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	produce(t, brokers, in, clicks(keys, 2)...)
	if got := testkafka.ReadAll(t, brokers, out, 16, 60*time.Second); len(got) != 16 {
		t.Fatalf("%d outputs, want 16", len(got))
	}
	released := func() float64 {
		_, body := a.get("/metrics")
		var v float64
		for _, line := range strings.Split(body, "\n") {
			if rest, ok := strings.CutPrefix(line, `streamrt_instances_released_total{stage="main"} `); ok {
				fmt.Sscan(rest, &v)
			}
		}
		return v
	}
	// Every task that ran a batch holds an instance until it has idled.
	ran := map[int32]bool{}
	for _, k := range keys {
		ran[partition.For([]byte(k), 4)] = true
	}
	apptest.WaitCheck(t, 30*time.Second, "the idle tasks' instances to be released", func() error {
		if n := released(); n != float64(len(ran)) {
			return fmt.Errorf("%v released", n)
		}
		return nil
	})
	produce(t, brokers, in, clicks(keys, 1)...)
	if got := testkafka.ReadAll(t, brokers, out, 24, 60*time.Second); len(got) != 24 {
		t.Fatalf("%d outputs after the release, want 24", len(got))
	}
	for _, k := range keys {
		a.waitGet(t, "/v1/stores/counts/keys/"+k, "3")
	}
}
