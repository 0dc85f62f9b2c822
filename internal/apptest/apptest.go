// Package apptest runs streamrt apps in-process for tests and talks to them
// over HTTP: the scaffolding that every example's end-to-end test needs.
//
// Start runs an app from its YAML, on a free loopback port with a state
// directory of its own, sends its log to the test's, and stops it when the
// test ends; on a secured test cluster it connects with testkafka's TLS and
// SASL. Get, Store and WaitFor poll it. The Kafka side (brokers, topics,
// producing and reading records) is package testkafka's.
package apptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
)

// Timeouts that bound what a test waits for.
const (
	// ReadyTimeout bounds Start's wait for /readyz: a first run builds
	// and compiles the app's modules.
	ReadyTimeout = 3 * time.Minute
	// StopTimeout bounds the wait for an app to stop when its test ends.
	StopTimeout = 30 * time.Second
	// RequestTimeout bounds one HTTP request of Get.
	RequestTimeout = 30 * time.Second
)

// Options adjust how Start runs an app. The zero value runs the YAML as
// written, with only the HTTP address, state directory and cache directory
// overridden.
type Options struct {
	// Brokers, when not empty, override the configuration's brokers.
	Brokers []string
	// Overrides set further keys, as `streamrt run` flags and STREAMRT_*
	// variables do: {"app": "name"}. They win over the ones Start sets, so
	// "http" and "state_dir" here choose App.Addr and App.StateDir.
	Overrides map[string]string
	// LogLevel is the lowest level of the app's log that is kept:
	// slog.LevelInfo unless set.
	LogLevel slog.Level
}

// App is one running instance of an app. Its methods are safe for
// concurrent use.
type App struct {
	// Addr is the host:port the instance serves HTTP on and advertises.
	Addr string
	// StateDir is the instance's state directory, removed when the test ends.
	StateDir string

	log    *Buffer
	out    *testLog
	cancel context.CancelFunc
	exited chan struct{} // closed when Run returned
	err    error         // what Run returned, set before exited closes
}

// Start runs the app that the YAML file at path configures, and returns
// once it answers /readyz with 200, failing the test if it stops or is not
// ready within ReadyTimeout. The app stops when the test ends; an error from
// its Run fails the test then.
func Start(t testing.TB, path string, opts Options) *App {
	t.Helper()
	yaml, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return StartYAML(t, yaml, path, opts)
}

// StartYAML is Start for a configuration held in memory: relative paths in
// yaml resolve as they would in a file at path.
func StartYAML(t testing.TB, yaml []byte, path string, opts Options) *App {
	t.Helper()
	overrides := map[string]string{
		"http":      FreeAddr(t),
		"state_dir": filepath.Join(t.TempDir(), "state"),
		// Modules built and compiled once per machine, not once per test.
		"cache_dir": CacheDir(),
	}
	if len(opts.Brokers) > 0 {
		overrides["brokers"] = strings.Join(opts.Brokers, ",")
	}
	// The TLS and SASL of a secured test cluster, when the tests run on one.
	maps.Copy(overrides, testkafka.Overrides(t))
	for k, v := range opts.Overrides {
		overrides[k] = v
	}
	a := &App{
		Addr:     overrides["http"],
		StateDir: overrides["state_dir"],
		log:      &Buffer{},
		exited:   make(chan struct{}),
	}
	cfg, err := config.Parse(yaml, path, os.Environ(), overrides)
	if err != nil {
		t.Fatal(err)
	}
	a.out = &testLog{t: t, prefix: a.Addr + ": "}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(a.log, a.out), &slog.HandlerOptions{Level: opts.LogLevel}))
	rt, err := runtime.New(cfg, runtime.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() {
		a.err = rt.Run(ctx)
		close(a.exited)
	}()
	t.Cleanup(func() {
		if err := a.stop(); err != nil {
			t.Errorf("instance %s: %v", a.Addr, err)
		}
	})
	a.waitReady(t)
	return a
}

func (a *App) waitReady(t testing.TB) {
	t.Helper()
	WaitFor(t, ReadyTimeout, "instance "+a.Addr+" to be ready", func() bool {
		select {
		case <-a.exited:
			t.Fatalf("instance %s stopped before it was ready: %v", a.Addr, a.err)
		default:
		}
		return a.Get("/readyz").Code == http.StatusOK
	})
}

// stop cancels the app and returns what its Run returned, or an error when
// it does not return within StopTimeout. Its log stops reaching the test's
// then, as the test may be over.
func (a *App) stop() error {
	a.cancel()
	defer a.out.close()
	select {
	case <-a.exited:
		return a.err
	case <-time.After(StopTimeout):
		return fmt.Errorf("did not stop within %v", StopTimeout)
	}
}

// Log returns what the app has logged so far.
func (a *App) Log() string { return a.log.String() }

// Get is the package function Get, asked of this instance.
func (a *App) Get(path string, header ...string) Answer { return Get(a.Addr, path, header...) }

// Store asks this instance for key in store, escaping both.
func (a *App) Store(store, key string, header ...string) Answer {
	return a.Get("/v1/stores/"+url.PathEscape(store)+"/keys/"+url.PathEscape(key), header...)
}

// WaitValue waits until this instance serves value for key in store,
// failing the test after timeout.
func (a *App) WaitValue(t testing.TB, timeout time.Duration, store, key, value string) {
	t.Helper()
	WaitCheck(t, timeout, fmt.Sprintf("%s %q in store %s", key, value, store), func() error {
		if got := a.Store(store, key); got.Code != http.StatusOK || got.Body != value {
			return fmt.Errorf("instance %s answers %d %s", a.Addr, got.Code, got.Body)
		}
		return nil
	})
}

// Answer is an HTTP answer, or the error that kept it away as its Body with
// Code 0. It is comparable.
type Answer struct {
	Code int
	Type string // the Content-Type header
	Body string
	// ServedBy is the X-Streamrt-Served-By header: the instance whose
	// state answered, the one asked or the owner it forwarded to.
	ServedBy string
}

var client = &http.Client{Timeout: RequestTimeout}

// Get asks http://addr+path, with header given as name and value pairs
// ("Authorization", "Bearer x").
func Get(addr, path string, header ...string) Answer {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return Answer{Body: err.Error()}
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return Answer{Body: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Answer{Body: err.Error()}
	}
	return Answer{Code: resp.StatusCode, Type: resp.Header.Get("Content-Type"), Body: string(b), ServedBy: resp.Header.Get("X-Streamrt-Served-By")}
}

// Metric is the package function Metric, asked of this instance.
func (a *App) Metric(name string, labels ...string) float64 { return Metric(a.Addr, name, labels...) }

// Metric reads /metrics at addr and returns the sum of the samples of the
// metric name whose labels include every name and value pair in labels
// ("stage", "enrich"): with no labels, the sum over every label set. It
// returns 0 when no sample matches and -1 when /metrics does not answer.
func Metric(addr, name string, labels ...string) float64 {
	got := Get(addr, "/metrics")
	if got.Code != http.StatusOK {
		return -1
	}
	var sum float64
	for line := range strings.Lines(got.Body) {
		rest, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), name)
		if !ok {
			continue
		}
		var set string
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndex(rest, "} ")
			if end < 0 {
				continue
			}
			set, rest = rest[:end+1], rest[end+1:]
		}
		value, ok := strings.CutPrefix(rest, " ")
		if !ok {
			continue // another metric whose name starts with name
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			pair := labels[i] + "=" + strconv.Quote(labels[i+1])
			if !strings.Contains(set, "{"+pair) && !strings.Contains(set, ","+pair) {
				match = false
			}
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil && match {
			sum += v
		}
	}
	return sum
}

// WaitFor polls cond until it holds, failing the test after timeout with
// what it waited for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	poll(t, timeout, what, func() (bool, string) { return cond(), "" })
}

// WaitCheck is WaitFor for a check that says why it does not hold yet: it
// polls check until it returns nil, failing the test after timeout with
// what it waited for and the last error.
func WaitCheck(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	poll(t, timeout, what, func() (bool, string) {
		if err := check(); err != nil {
			return false, ": " + err.Error()
		}
		return true, ""
	})
}

func poll(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s%s", timeout, what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Buffer is a bytes.Buffer for many writers, such as an app's log.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testLog passes lines to t.Log, shown when the test fails or with -v,
// until close: logging to a finished test panics.
type testLog struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	closed bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLog) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

// CacheDir is where the apps of tests keep their built and compiled
// modules: one directory per machine, shared with the runtime's own test
// guests, so that a module is built once and not once per test.
func CacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "streamrt", "test-guests")
}

// BuildModule builds the stage module at dir (a Go guest package, a Rust
// crate or an AssemblyScript project) into CacheDir, where the apps of
// tests find it already built. A Rust crate on a machine without cargo, or
// an AssemblyScript project on one without node and npm, skips the test, or
// fails it when CI=true, so that CI cannot pass without them.
func BuildModule(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := runtime.LoadModule(context.Background(), dir, CacheDir(), slog.New(slog.DiscardHandler))
	if (errors.Is(err, runtime.ErrNoCargo) || errors.Is(err, runtime.ErrNoNode)) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: %v (CI=true makes this a failure)", err)
	}
	if err != nil {
		t.Fatalf("build module %s: %v", dir, err)
	}
	return b
}
