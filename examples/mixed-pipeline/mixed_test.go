// The mixed-pipeline app run in-process from streamrt.yaml as written: a
// Go stage normalises page views into a topic that a Rust stage counts. It
// runs against the embedded kfake broker, or the cluster
// STREAMRT_TEST_BROKERS names.
package mixedpipeline_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/guesttest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
)

func TestMixedPipeline(t *testing.T) {
	// Build both stages into the shared cache the runtime reads (the Rust
	// one skips the test on a machine without cargo, unless CI=true).
	guesttest.BuildRust(t, "count")
	guesttest.BuildDir(t, "normalize")
	brokers := testkafka.Brokers(t)
	httpAddr := startApp(t, brokers)

	// On a shared real cluster the topics outlive the test: view pages of
	// this run only.
	run := fmt.Sprintf("/run-%d", time.Now().UnixNano())
	produce(t, brokers, "page-views",
		"ann", " "+run+"/Docs/Intro/?utm=mail",
		"bob", run+"/docs/intro",
		"ann", run+"/docs/intro#top",
		"cid", run+"/Blog/",
		"dee", "not a path "+run,
		"eve", run+"/blog",
	)
	intro, blog := run+"/docs/intro", run+"/blog"
	waitFor(t, "3 views of "+intro, func() bool { return query(httpAddr, "page-views", intro) == "3" })
	waitFor(t, "2 views of "+blog, func() bool { return query(httpAddr, "page-views", blog) == "2" })

	// The Go stage wrote normalised pages, keyed for the Rust stage.
	var viewers []string
	consume(t, brokers, "pages", func(r *kgo.Record) bool {
		if string(r.Key) == intro {
			viewers = append(viewers, string(r.Value))
		}
		return len(viewers) == 3
	})
	// (Views of one page by several viewers come from several partitions
	// of page-views, so in no particular order.)
	slices.Sort(viewers)
	if strings.Join(viewers, ",") != "ann,ann,bob" {
		t.Errorf("pages for %s: viewers %v", intro, viewers)
	}
	// The Rust stage wrote each count in order.
	var counts []string
	consume(t, brokers, "page-view-counts", func(r *kgo.Record) bool {
		if string(r.Key) == intro {
			counts = append(counts, string(r.Value))
		}
		return len(counts) == 3
	})
	if strings.Join(counts, ",") != "1,2,3" {
		t.Errorf("page-view-counts for %s: %v, want 1,2,3", intro, counts)
	}
	// The view that was not a path failed in the Go stage only.
	dead := consume(t, brokers, "mixed-pipeline-normalize-dlq", func(r *kgo.Record) bool { return strings.HasSuffix(string(r.Value), run) })
	if got, want := header(dead, "streamrt.error"), fmt.Sprintf("not a path: %q", "not a path "+run); got != want {
		t.Errorf("dead letter error %q, want %q", got, want)
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
	resp, err := http.Get("http://" + httpAddr + "/v1/stores/" + url.PathEscape(store) + "/keys/" + url.PathEscape(key))
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

// produce writes key/value pairs to topic.
func produce(t *testing.T, brokers []string, topic string, kvs ...string) {
	t.Helper()
	var recs []*kgo.Record
	for i := 0; i+1 < len(kvs); i += 2 {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
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
