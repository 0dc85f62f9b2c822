package serve

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/assign"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/partition"
	"github.com/streamrt/streamrt/runtime/internal/probe"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
)

// ownerEngine owns every partition: every request is answered here.
type ownerEngine struct{}

func (ownerEngine) Owns(string, int32) bool       { return true }
func (ownerEngine) Readiness() probe.Readiness    { return probe.Readiness{} }
func (ownerEngine) Assignment() assign.Assignment { return assign.Assignment{} }

// syncBuffer is a log sink for a server that logs from its handlers'
// goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The Rust SDK's query handler (sdk/rust/testdata/queries, the twin of the
// Go guest "queries") served through the host's query path: routed by key
// to the owning partition, read-only stores at that partition, the guest's
// status, content type and body passed through, and a panic or an overrun
// answered 500 without losing the handler for later requests.
func TestRustQueryHandler(t *testing.T) {
	ctx := context.Background()
	bin := guesttest.BuildRust(t, guesttest.RustDir("testdata/queries"))
	// The deadline counts CPU time, which only the looping route uses up;
	// the wall-clock cap is generous, so that a busy machine that starves
	// a handler of CPU does not stop it.
	qe, err := wasm.NewEngine(ctx, wasm.Config{MemoryLimit: 64 << 20, Deadline: 300 * time.Millisecond, WallLimit: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qe.Close(ctx) })
	qm, err := qe.Compile(ctx, "queries.wasm", bin)
	if err != nil {
		t.Fatal(err)
	}
	if !qm.ServesQueries() {
		t.Fatal("the Rust queries guest exports no streamrt_query")
	}
	// A Rust module without a query handler has no export to serve with,
	// so that the runtime refuses it at load for a routed stage, and does
	// not import respond (the name, length-prefixed), so that hosts from
	// before query handlers load it.
	identity := guesttest.BuildRust(t, guesttest.RustDir("testdata/identity"))
	plain, err := qe.Compile(ctx, "identity.wasm", identity)
	if err != nil {
		t.Fatal(err)
	}
	if plain.ServesQueries() {
		t.Error("the Rust identity guest, which has no query handler, exports streamrt_query")
	}
	if bytes.Contains(identity, []byte("\x07respond")) {
		t.Error("the Rust identity guest, which has no query handler, imports respond")
	}
	if !bytes.Contains(bin, []byte("\x07respond")) {
		t.Error("the Rust queries guest does not import respond: the check above proves nothing")
	}

	db, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	const parts = 4
	home := partition.For([]byte("home"), parts)
	// Keys in home's partition and one in another.
	var same, other string
	for i := 0; same == "" || other == ""; i++ {
		k := fmt.Sprintf("page-%d", i)
		switch p := partition.For([]byte(k), parts); {
		case p == home && same == "":
			same = k
		case p != home && other == "":
			other = k
		}
	}
	put(t, db, "counts", home, "home", "7", same, "2")
	put(t, db, "counts", partition.For([]byte(other), parts), other, "1")

	stores := []Store{{Name: "counts", Partitions: parts, Topic: "clicks"}}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	h := NewHandlers(db, stores, log)
	t.Cleanup(func() { h.Close(ctx) })
	h.SetModule("main", qm)
	route := func(method, path, key string) config.Route {
		rt := config.Route{Method: method, Path: path, Stage: "main", Key: key}
		if key != "" {
			rt.Store = "counts"
		}
		return rt
	}
	q := config.Query{MaxKeyBytes: 64, MaxRangeLimit: 10, ForwardTimeout: config.DefaultForwardTimeout,
		Routes: []config.Route{
			route("GET", "/count/{key}", "{key}"),
			route("GET", "/keys/{part}", "{part}"),
			route("GET", "/boom", ""),
			route("GET", "/fail", ""),
			route("GET", "/loop", ""),
			route("POST", "/echo", ""),
		}}
	s := New(Options{DB: db, Engine: ownerEngine{}, Metrics: metrics.New(), Logger: log, Query: q, Stores: stores, Handlers: h})
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)

	type want struct {
		code  int
		ctype string
		body  string // the whole body, or with a trailing "..." a prefix
	}
	p := strconv.Itoa(int(home))
	cases := []struct {
		name, method, path, body string
		want                     want
	}{
		{"a count", "GET", "/count/home", "", want{200, "application/json",
			`{"key":"home","count":7,"partition":` + p + `}`}},
		{"no count", "GET", "/count/nobody", "", want{404, "application/json", `{"error":"no count for nobody"}`}},
		{"the routed partition's keys", "GET", "/keys/home", "", want{200, "text/plain", "home\n" + same + "\n"}},
		{"an Err", "GET", "/fail", "", want{500, "application/json", `{"error":"no answer for /fail"}`}},
		// The SDK answers a panic 500 with its message before the trap;
		// the answer stands, the broken instance is replaced, and the
		// message reaches the log too.
		{"a panic", "GET", "/boom", "", want{500, "application/json", `{"error":"panic: boom at /boom...`}},
		{"after a panic", "GET", "/count/home", "", want{200, "application/json", `{"key":"home",...`}},
		{"the deadline", "GET", "/loop", "", want{500, "application/json", `{"error":"query handler of stage \"main\": ...`}},
		{"a body and a query string", "POST", "/echo?b=2&a=x+y", "hi", want{200, "text/plain; charset=utf-8", "POST /echo?b=2&a=x y hi"}},
		{"a path that is not UTF-8", "GET", "/count/%FF", "", want{400, "application/json",
			`{"error":"streamrt: abi: decode query path at byte ...`}},
	}
	for _, c := range cases {
		req, err := http.NewRequest(c.method, hs.URL+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := want{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
		match := got.body == c.want.body
		if prefix, ok := strings.CutSuffix(c.want.body, "..."); ok {
			match = strings.HasPrefix(got.body, prefix)
		}
		if got.code != c.want.code || got.ctype != c.want.ctype || !match {
			t.Errorf("%s: %s %s answered\n%d %q %s\nwant\n%d %q %s", c.name, c.method, c.path,
				got.code, got.ctype, got.body, c.want.code, c.want.ctype, c.want.body)
		}
	}
	if l := logs.String(); !strings.Contains(l, "streamrt: query handler: panic: boom at /boom (at ") {
		t.Errorf("the guest's panic is not in the log:\n%s", l)
	}
}
