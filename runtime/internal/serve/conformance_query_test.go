package serve

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/abi/abitest"
	"github.com/streamrt/streamrt/internal/logtest"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
)

// The query part of the ABI conformance suite: the queries of
// abi/testdata/conformance/conformance.txt answered by the host's query
// handlers (wazero, Pebble stores at the routed partition) with the
// conformance guest on each SDK. The requests go to the handlers as the
// ABI encodes them, so that their every field is the transcript's; how
// HTTP requests become them is serve_test.go's business. The batch part
// is runtime/internal/engine's TestConformance, and the Rust SDK's cargo
// test runs both natively (sdk/rust/conformance).
const conformanceFile = "../../../abi/testdata/conformance/conformance.txt"

// conformancePartitions is how many partitions the query part's stores
// have; global tables have one.
const conformancePartitions = 8

func TestConformanceQueries(t *testing.T) {
	qt, err := parseQueryTranscript(conformanceFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(qt.queries) < 10 {
		t.Fatalf("%s holds %d queries; the suite has at least 10", conformanceFile, len(qt.queries))
	}
	guests := []struct {
		name string
		wasm func(t *testing.T) []byte
	}{
		{"go", func(t *testing.T) []byte { return guesttest.Build(t, "conformance") }},
		{"rust", func(t *testing.T) []byte { return guesttest.BuildRust(t, guesttest.RustDir("conformance")) }},
		{"assemblyscript", func(t *testing.T) []byte { return guesttest.BuildAS(t, guesttest.ASDir("conformance")) }},
	}
	for _, g := range guests {
		t.Run(g.name, func(t *testing.T) {
			h, logs := newConformanceHandlers(t, g.name, g.wasm(t), qt)
			for _, q := range qt.queries {
				runConformanceQuery(t, h, logs, q)
			}
		})
	}
}

// newConformanceHandlers returns query handlers serving bin as stage "s",
// over a database holding the transcript's loads, and the log they write.
func newConformanceHandlers(t *testing.T, name string, bin []byte, qt *queryTranscript) (*Handlers, *logtest.Capture) {
	t.Helper()
	ctx := context.Background()
	we, err := wasm.NewEngine(ctx, wasm.Config{MemoryLimit: 64 << 20, Deadline: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { we.Close(ctx) })
	m, err := we.Compile(ctx, "conformance-"+name, bin)
	if err != nil {
		t.Fatal(err)
	}
	if !m.ServesQueries() {
		t.Fatalf("the %s conformance guest exports no %s", name, abi.ExportQuery)
	}
	db, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, l := range qt.loads {
		put(t, db, l.store, l.partition, string(l.key), string(l.value))
	}
	var stores []Store
	for _, s := range qt.stores {
		stores = append(stores, Store{Name: s, Partitions: conformancePartitions, Topic: "in"})
	}
	for _, s := range qt.tables {
		stores = append(stores, Store{Name: s, Partitions: 1, Global: true})
	}
	logs := &logtest.Capture{}
	h := NewHandlers(db, stores, slog.New(logs))
	t.Cleanup(func() { h.Close(ctx) })
	h.SetModule("s", m)
	return h, logs
}

func runConformanceQuery(t *testing.T, h *Handlers, logs *logtest.Capture, q conformanceQuery) {
	t.Helper()
	logs0 := logs.Len()
	resp, err := h.serve(context.Background(), "s", &q.req, nil)
	if err != nil {
		t.Errorf("query at line %d: %v", q.line, err)
		return
	}
	w := q.answer
	bodyOK := bytes.Equal(resp.body, w.body)
	if w.contains {
		bodyOK = bytes.Contains(resp.body, w.body)
	}
	if resp.status != w.status || resp.contentType != w.contentType || !bodyOK {
		t.Errorf("line %d: answered %d %q %q\nwant %d %q %q", w.line, resp.status, resp.contentType, resp.body, w.status, w.contentType, w.body)
	}
	got := logs.Since(logs0)
	for _, l := range q.logs {
		if !slices.ContainsFunc(got, func(r logtest.Record) bool {
			return r.Attrs["in"] == "query handler" && strings.EqualFold(r.Level.String(), l.level) && r.Message == l.msg
		}) {
			t.Errorf("line %d: the guest did not log %s %q: %v", l.line, l.level, l.msg, got)
		}
	}
}

// The transcript's query part; conformance.txt's header describes it.
// The batch part is left to runtime/internal/engine, except for the
// stage's stores, which the query part's stores are.

type queryTranscript struct {
	stores, tables []string
	loads          []queryLoad
	queries        []conformanceQuery
}

type queryLoad struct {
	store      string
	partition  int32
	key, value []byte
}

type conformanceQuery struct {
	line   int
	req    abi.QueryRequest
	answer queryAnswer
	logs   []queryLogLine
}

type queryAnswer struct {
	line        int
	status      int
	contentType string
	body        []byte
	contains    bool
}

type queryLogLine struct {
	line       int
	level, msg string
}

func parseQueryTranscript(file string) (*queryTranscript, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	qt := &queryTranscript{}
	var (
		line      int
		inQueries bool
		answered  bool
	)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...))
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		toks, err := abitest.Tokens(text)
		if err != nil {
			return nil, fail("%v", err)
		}
		word := toks[0]
		if !inQueries {
			switch word {
			case "stage":
				for _, tok := range toks[1:] {
					if v, ok := strings.CutPrefix(tok, "stores="); ok {
						qt.stores = strings.Split(v, ",")
					}
				}
			case "queries":
				inQueries = true
				for _, tok := range toks[1:] {
					v, ok := strings.CutPrefix(tok, "tables=")
					if !ok {
						return nil, fail("unknown queries argument %s", tok)
					}
					qt.tables = strings.Split(v, ",")
				}
			}
			continue
		}
		var cur *conformanceQuery
		if n := len(qt.queries); n > 0 {
			cur = &qt.queries[n-1]
		}
		kv := func() ([][2]string, error) {
			var out [][2]string
			for _, tok := range toks[1:] {
				k, v, ok := strings.Cut(tok, "=")
				if !ok {
					return nil, fmt.Errorf("want name=value, got %s", tok)
				}
				out = append(out, [2]string{k, v})
			}
			return out, nil
		}
		switch word {
		case "load":
			if len(toks) != 5 {
				return nil, fail("load takes 4 arguments")
			}
			p, err := strconv.ParseInt(toks[2], 10, 32)
			if err != nil {
				return nil, fail("bad partition %s", toks[2])
			}
			l := queryLoad{store: toks[1], partition: int32(p)}
			l.key, err = abitest.Value(toks[3])
			if err == nil {
				l.value, err = abitest.Value(toks[4])
			}
			if err != nil {
				return nil, fail("%v", err)
			}
			qt.loads = append(qt.loads, l)
		case "query":
			pairs, err := kv()
			if err != nil {
				return nil, fail("%v", err)
			}
			q := conformanceQuery{line: line, req: abi.QueryRequest{Partition: 3, Method: "GET", Route: "/q", Path: "/q"}}
			hasBody := false
			for _, p := range pairs {
				k, raw := p[0], p[1]
				v, err := abitest.Value(raw)
				if err != nil {
					return nil, fail("%v", err)
				}
				switch name, isParam := strings.CutPrefix(k, "param."); {
				case isParam:
					q.req.Params = append(q.req.Params, abi.Param{Name: name, Value: string(v)})
				case k == "partition":
					n, err := strconv.ParseInt(raw, 10, 32)
					if err != nil {
						return nil, fail("bad partition %s", raw)
					}
					q.req.Partition = int32(n)
				case k == "method":
					q.req.Method = string(v)
				case k == "route":
					q.req.Route = string(v)
				case k == "path":
					q.req.Path = string(v)
				case k == "rawquery":
					q.req.RawQuery = string(v)
				case k == "body":
					q.req.Body, hasBody = v, true
				default:
					return nil, fail("unknown query key %s", k)
				}
			}
			if !hasBody {
				return nil, fail("query needs a body")
			}
			qt.queries = append(qt.queries, q)
			answered = false
		case "answer":
			if cur == nil {
				return nil, fail("answer outside a query")
			}
			if answered {
				return nil, fail("a second answer")
			}
			pairs, err := kv()
			if err != nil {
				return nil, fail("%v", err)
			}
			a := queryAnswer{line: line, body: []byte{}}
			var hasStatus, hasCtype bool
			for _, p := range pairs {
				switch k, raw := p[0], p[1]; k {
				case "status":
					a.status, err = strconv.Atoi(raw)
					hasStatus = true
				case "ctype":
					var v []byte
					v, err = abitest.Value(raw)
					a.contentType, hasCtype = string(v), true
				case "body", "body~":
					a.body, err = abitest.Value(raw)
					a.contains = k == "body~"
				default:
					err = fmt.Errorf("unknown answer key %s", k)
				}
				if err != nil {
					return nil, fail("%v", err)
				}
			}
			if !hasStatus || !hasCtype {
				return nil, fail("answer needs a status and a content type")
			}
			cur.answer, answered = a, true
		case "line":
			if !answered {
				return nil, fail("line before answer")
			}
			if len(toks) != 2 {
				return nil, fail("line takes 1 argument")
			}
			v, err := abitest.Value(toks[1])
			if err != nil {
				return nil, fail("%v", err)
			}
			cur.answer.body = append(append(cur.answer.body, v...), '\n')
		case "log":
			if cur == nil {
				return nil, fail("log outside a query")
			}
			if len(toks) != 3 {
				return nil, fail("log takes 2 arguments")
			}
			msg, err := abitest.Value(toks[2])
			if err != nil {
				return nil, fail("%v", err)
			}
			cur.logs = append(cur.logs, queryLogLine{line: line, level: toks[1], msg: string(msg)})
		default:
			return nil, fail("unknown directive %s in the query part", word)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, q := range qt.queries {
		if q.answer.line == 0 {
			return nil, fmt.Errorf("%s:%d: query without an answer", file, q.line)
		}
	}
	return qt, nil
}
