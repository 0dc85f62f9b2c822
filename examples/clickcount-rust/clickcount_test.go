// The clickcount app with its stage in Rust (stage/), run in-process from
// streamrt.yaml as written: clicks in, counts out and queryable, a click
// without a page dead-lettered. It runs against the embedded kfake broker, or
// the cluster STREAMRT_TEST_BROKERS names.
package clickcountrust_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/guesttest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
)

func TestClickCountRust(t *testing.T) {
	// Builds the crate into the shared cache the runtime reads below (and
	// skips the test on a machine without cargo, unless CI=true).
	guesttest.BuildRust(t, "stage")
	brokers := testkafka.Brokers(t)
	httpAddr := startApp(t, brokers)

	// On a shared real cluster the topics outlive the test: count pages of
	// this run only.
	page := fmt.Sprintf("home-%d", time.Now().UnixNano())
	produce(t, brokers, "clicks", []byte(page), "x", []byte(page), "x")
	waitFor(t, "count 2 for "+page, func() bool { return query(httpAddr, "click-counts", page) == "2" })

	// A click without a page is dead-lettered with the error; the count of
	// the page goes on.
	lost := "no page here " + page
	produce(t, brokers, "clicks", nil, lost, []byte(page), "x")
	waitFor(t, "count 3 for "+page, func() bool { return query(httpAddr, "click-counts", page) == "3" })
	dead := consume(t, brokers, "clickcount-rust-count-dlq", func(r *kgo.Record) bool { return string(r.Value) == lost })
	if got := header(dead, "streamrt.error"); got != "click without a page (null key)" {
		t.Errorf("dead letter error %q", got)
	}
	if got := header(dead, "streamrt.stage"); got != "count" {
		t.Errorf("dead letter stage %q", got)
	}

	// Each count went out to page-counts, in order.
	var counts []string
	consume(t, brokers, "page-counts", func(r *kgo.Record) bool {
		if string(r.Key) == page {
			counts = append(counts, string(r.Value))
		}
		return len(counts) == 3
	})
	if strings.Join(counts, ",") != "1,2,3" {
		t.Errorf("page-counts for %s: %v, want 1,2,3", page, counts)
	}
	if got := query(httpAddr, "click-counts", "no-such-page"); got != "404" {
		t.Errorf("query of a missing page: %s, want 404", got)
	}
}

// startApp runs streamrt.yaml in-process against brokers and returns its
// HTTP address once it is ready.
func startApp(t *testing.T, brokers []string) string {
	t.Helper()
	httpAddr := freeAddr(t)
	cfg, err := config.Load("streamrt.yaml", map[string]string{
		"brokers":   strings.Join(brokers, ","),
		"http":      httpAddr,
		"state_dir": filepath.Join(t.TempDir(), "state"),
		// Share built and compiled modules with the other tests.
		"cache_dir": guesttest.CacheDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.New(cfg, runtime.Options{Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the app did not stop within 30s")
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return httpAddr
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the app stopped before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the app was not ready within 2 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// query returns the value of key in store, or the HTTP status when there
// is none.
func query(httpAddr, store, key string) string {
	resp, err := http.Get("http://" + httpAddr + "/v1/stores/" + store + "/keys/" + key)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprint(resp.StatusCode)
	}
	return string(b)
}

// produce writes key/value pairs to topic; a nil key is null.
func produce(t *testing.T, brokers []string, topic string, kvs ...any) {
	t.Helper()
	var recs []*kgo.Record
	for i := 0; i+1 < len(kvs); i += 2 {
		k, _ := kvs[i].([]byte)
		recs = append(recs, &kgo.Record{Topic: topic, Key: k, Value: []byte(kvs[i+1].(string))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := testkafka.Client(t, brokers).ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// consume reads topic from the start until done accepts a record, and
// returns that record.
func consume(t *testing.T, brokers []string, topic string, done func(*kgo.Record) bool) *kgo.Record {
	t.Helper()
	cl := testkafka.Client(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: the record looked for did not arrive within a minute", topic)
		}
		var found *kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if found == nil && done(r) {
				found = r
			}
		})
		if found != nil {
			return found
		}
	}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
