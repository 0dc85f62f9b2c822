package serve

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
)

// A version replaced while a request runs on it serves the request to its
// end and is closed after it, while new requests go to the new version; a
// version no request uses is closed at once; Close waits for a request in
// flight the same way.
func TestSetModuleClosesTheOldVersionAfterItsRequests(t *testing.T) {
	ctx := context.Background()
	cache, err := wasm.NewCache(filepath.Join(guesttest.CacheDir(), "wasm"))
	if err != nil {
		t.Fatal(err)
	}
	we, err := wasm.NewEngine(ctx, wasm.Config{Cache: cache, MemoryLimit: 64 << 20, Deadline: 10 * time.Second, WallLimit: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { we.Close(ctx) })
	compile := func(guest string) *wasm.Module {
		t.Helper()
		m, err := we.Compile(ctx, guest, guesttest.Build(t, guest))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	db, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	hold := holdLog{entered: make(chan struct{}), release: make(chan struct{})}
	h := NewHandlers(db, nil, slog.New(hold))

	// The conformance guest logs "hold" when asked, and its query waits
	// in that host call until the test releases it.
	held := func() <-chan error {
		done := make(chan error, 1)
		go func() {
			resp, err := h.serve(ctx, "s", &abi.QueryRequest{Partition: -1, Method: "GET", Path: "/", Body: []byte("log 1 hold")}, nil)
			if err == nil && resp.status != 200 {
				t.Errorf("held request answered %d %q", resp.status, resp.body)
			}
			done <- err
		}()
		select {
		case <-hold.entered:
		case err := <-done:
			t.Fatalf("the request to hold ended: %v", err)
		}
		return done
	}
	answer := func(want string) {
		t.Helper()
		resp, err := h.serve(ctx, "s", &abi.QueryRequest{Partition: -1, Method: "GET", Path: "/"}, nil)
		if err != nil || string(resp.body) != want {
			t.Fatalf("request answered %v, %v; want %q", resp, err, want)
		}
	}

	first := compile("conformance")
	h.SetModule("s", first)
	done := held()
	tag := compile("tagv1")
	h.SetModule("s", tag)
	if first.Closed() {
		t.Fatal("the replaced version was closed under the request it serves")
	}
	answer("v1")
	hold.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatalf("the request the replaced version served: %v", err)
	}
	if !first.Closed() {
		t.Fatal("the replaced version is still open after its last request")
	}

	last := compile("conformance")
	h.SetModule("s", last)
	if !tag.Closed() {
		t.Fatal("a replaced version that served no request is still open")
	}
	done = held()
	h.Close(ctx)
	if last.Closed() {
		t.Fatal("Close closed the version under the request it serves")
	}
	if _, err := h.serve(ctx, "s", &abi.QueryRequest{Partition: -1, Method: "GET", Path: "/"}, nil); err == nil {
		t.Fatal("a request after Close was answered")
	}
	hold.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatalf("the request served across Close: %v", err)
	}
	if !last.Closed() {
		t.Fatal("the version is still open after Close and its last request")
	}
}

// holdLog holds every log call of message "hold", and so the guest query
// that made it, until release.
type holdLog struct{ entered, release chan struct{} }

func (h holdLog) Enabled(context.Context, slog.Level) bool { return true }
func (h holdLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h holdLog) WithGroup(string) slog.Handler            { return h }

func (h holdLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "hold" {
		h.entered <- struct{}{}
		<-h.release
	}
	return nil
}
