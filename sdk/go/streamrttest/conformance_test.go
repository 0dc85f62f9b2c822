package streamrttest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/streamrt/streamrt/abi/abitest"
	streamrt "github.com/streamrt/streamrt/sdk/go"
)

// TestConformance replays abi/testdata/conformance/conformance.txt, its
// batches and its queries, through the harness with the conformance
// guest's interpreter: the transcript the host (runtime/internal/engine and
// runtime/internal/serve) and the Rust SDK's FakeHost are held to.
func TestConformance(t *testing.T) {
	const file = "../../../abi/testdata/conformance/conformance.txt"
	tr, err := parseTranscript(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.scenarios) < 5 || len(tr.queries) < 10 {
		t.Fatalf("only %d scenarios and %d queries", len(tr.scenarios), len(tr.queries))
	}
	for _, sc := range tr.scenarios {
		t.Run(sc.name, func(t *testing.T) { runScenario(t, tr, sc) })
	}
	for _, q := range tr.queries {
		t.Run(fmt.Sprintf("query-line-%d", q.line), func(t *testing.T) { runQuery(t, tr, q) })
	}
}

func conformanceHarness(t *testing.T, tr *transcript, policy Policy) *Harness {
	cfg := Config{Stage: "s", Stores: tr.stores, Tables: tr.tables, Policy: policy,
		Record: conformanceHandle, Query: conformanceQuery}
	for _, o := range tr.outputs {
		cfg.Outputs = append(cfg.Outputs, o[0])
	}
	h := New(t, cfg)
	rawHost = h.h
	return h
}

func runScenario(t *testing.T, tr *transcript, sc scenario) {
	h := conformanceHarness(t, tr, sc.policy)
	for _, b := range sc.batches {
		seen := map[string]int{}
		for _, o := range tr.outputs {
			seen[o[0]] = len(h.Output(o[0]))
		}
		dead0, failed0, logs0 := len(h.DeadLetters()), len(h.Failures()), len(h.Logs())
		err := h.Run(b.inputs...)

		var stopped *expect
		for i := range b.expects {
			if b.expects[i].kind == "stopped" {
				stopped = &b.expects[i]
			}
		}
		if stopped != nil {
			se, _ := err.(*StoppedError)
			if se == nil || se.Offset != stopped.offset || !strings.Contains(se.Reason, stopped.err) {
				t.Errorf("line %d: got %v, want the task stopped at offset %d with an error containing %q", stopped.line, err, stopped.offset, stopped.err)
			}
			return
		}
		if err != nil {
			t.Fatalf("batch at line %d: %v", b.line, err)
		}

		got := map[string][]Message{tr.dlq: h.DeadLetters()[dead0:]}
		for _, o := range tr.outputs {
			got[o[1]] = h.Output(o[0])[seen[o[0]]:]
		}
		want := map[string][]expect{}
		var skipped []expect
		for _, x := range b.expects {
			switch x.kind {
			case "emit":
				want[x.topic] = append(want[x.topic], x)
			case "dead":
				want[tr.dlq] = append(want[tr.dlq], x)
			case "skipped":
				skipped = append(skipped, x)
			}
		}
		for topic, g := range got {
			w := want[topic]
			for i := range max(len(g), len(w)) {
				switch {
				case i >= len(w):
					t.Errorf("batch at line %d: unexpected record on %s: %s", b.line, topic, showMessage(g[i]))
				case i >= len(g):
					t.Errorf("line %d: record missing on %s", w[i].line, topic)
				case w[i].kind == "dead":
					checkDead(t, g[i], w[i], b.inputs)
				default:
					checkEmit(t, g[i], w[i])
				}
			}
		}
		for topic := range want {
			if _, ok := got[topic]; !ok {
				t.Errorf("batch at line %d: records expected on %s, which is no output", b.line, topic)
			}
		}

		var skips []Failure
		if sc.policy == Skip {
			skips = h.Failures()[failed0:]
		}
		if len(skips) != len(skipped) {
			t.Errorf("batch at line %d: %d records skipped, want %d: %v", b.line, len(skips), len(skipped), skips)
		}
		for i := range min(len(skips), len(skipped)) {
			if w := skipped[i]; skips[i].Offset != w.offset || !strings.Contains(skips[i].Error, w.err) {
				t.Errorf("line %d: skipped %+v, want offset %d with an error containing %q", w.line, skips[i], w.offset, w.err)
			}
		}

		logs := h.Logs()[logs0:]
		for _, x := range b.expects {
			switch x.kind {
			case "stored":
				if v, ok := h.Get(x.store, x.key); !ok || !bytes.Equal(v, x.value) {
					t.Errorf("line %d: store %s key %q: got %q (present %v), want %q", x.line, x.store, x.key, v, ok, x.value)
				}
			case "absent":
				if v, ok := h.Get(x.store, x.key); ok {
					t.Errorf("line %d: store %s key %q: got %q, want none", x.line, x.store, x.key, v)
				}
			case "size":
				if n := len(h.Entries(x.store)); n != x.n {
					t.Errorf("line %d: store %s holds %d keys, want %d", x.line, x.store, n, x.n)
				}
			case "log":
				if !logged(logs, x.level, x.err) {
					t.Errorf("line %d: the guest did not log %s %q: %v", x.line, x.level, x.err, logs)
				}
			}
		}
	}
}

func runQuery(t *testing.T, tr *transcript, q query) {
	h := conformanceHarness(t, tr, DeadLetter)
	// The harness's stores are not partitioned: they hold the request's
	// partition of the stage's stores and the global tables.
	for _, l := range tr.loads {
		if slices.Contains(tr.tables, l.store) || l.partition == q.req.Partition {
			h.Set(l.store, l.key, l.value)
		}
	}
	logs0 := len(h.Logs())
	resp := h.Query(q.req)
	w := q.answer
	bodyOK := bytes.Equal(resp.Body, w.body)
	if w.contains {
		bodyOK = bytes.Contains(resp.Body, w.body)
	}
	if resp.Status != w.status || resp.ContentType != w.contentType || !bodyOK {
		t.Errorf("line %d: answered %d %q %q\nwant %d %q %q", w.line, resp.Status, resp.ContentType, resp.Body, w.status, w.contentType, w.body)
	}
	logs := h.Logs()[logs0:]
	for _, l := range q.logs {
		if !logged(logs, l.level, l.msg) {
			t.Errorf("line %d: the guest did not log %s %q: %v", l.line, l.level, l.msg, logs)
		}
	}
}

func logged(logs []Log, level, msg string) bool {
	return slices.ContainsFunc(logs, func(l Log) bool {
		return strings.EqualFold(l.Level.String(), level) && l.Msg == msg
	})
}

func checkEmit(t *testing.T, got Message, w expect) {
	t.Helper()
	bad := !sameBytes(got.Key, w.key) || !sameBytes(got.Value, w.value)
	if w.ts != nil && got.Timestamp != *w.ts {
		bad = true
	}
	if w.headers != nil {
		bad = bad || len(got.Headers) != len(w.headers)
		for i := range min(len(got.Headers), len(w.headers)) {
			if got.Headers[i].Key != w.headers[i].Key || !sameBytes(got.Headers[i].Value, w.headers[i].Value) {
				bad = true
			}
		}
	}
	if bad {
		t.Errorf("line %d: got %s", w.line, showMessage(got))
	}
}

func checkDead(t *testing.T, got Message, w expect, inputs []Input) {
	t.Helper()
	header := func(k string) string { v, _ := got.Header(k); return string(v) }
	var in *Input
	offsets := map[string]int64{}
	for i, r := range inputs {
		if r.Topic == w.topic && offsets[r.Topic] == w.offset {
			in = &inputs[i]
		}
		offsets[r.Topic]++
	}
	msg := header("streamrt.error")
	okErr := msg == w.err
	if w.contains {
		okErr = strings.Contains(msg, w.err)
	}
	okSrc := in != nil && sameBytes(got.Key, in.Key) && sameBytes(got.Value, in.Value) &&
		header("streamrt.source.topic") == w.topic && header("streamrt.source.offset") == strconv.FormatInt(w.offset, 10)
	okKind := w.errKind == "" || header("streamrt.error.kind") == w.errKind
	if !okErr || !okSrc || !okKind {
		t.Errorf("line %d: dead letter from %s offset %s, error %q, kind %q", w.line, header("streamrt.source.topic"), header("streamrt.source.offset"), msg, header("streamrt.error.kind"))
	}
}

// sameBytes compares keeping null (nil) apart from empty.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func showMessage(m Message) string {
	show := func(b []byte) string {
		if b == nil {
			return "null"
		}
		if len(b) > 200 {
			return fmt.Sprintf("%q...(%d bytes)", b[:200], len(b))
		}
		return fmt.Sprintf("%q", b)
	}
	s := fmt.Sprintf("key=%s value=%s ts=%d", show(m.Key), show(m.Value), m.Timestamp)
	for _, h := range m.Headers {
		s += fmt.Sprintf(" h.%s=%s", h.Key, show(h.Value))
	}
	return s
}

// The transcript format; conformance.txt's header describes it.

type transcript struct {
	stores  []string
	outputs [][2]string // name, topic
	dlq     string
	tables  []string

	scenarios []scenario
	loads     []load
	queries   []query
}

type scenario struct {
	name    string
	policy  Policy
	batches []batch
}

type batch struct {
	line    int
	inputs  []Input
	expects []expect
}

// expect is one expectation line of a batch. kind is its directive; the
// other fields are those it uses.
type expect struct {
	kind, topic string
	line        int
	key, value  []byte
	ts          *int64
	headers     []streamrt.Header // nil: not checked
	offset      int64
	err         string // error text (dead, skipped, stopped) or log message
	contains    bool
	errKind     string
	store       string
	n           int
	level       string
}

type load struct {
	store      string
	partition  int32
	key, value []byte
}

type query struct {
	line   int
	req    QueryRequest
	answer answer
	logs   []logLine
}

type answer struct {
	line        int
	status      int
	contentType string
	body        []byte
	contains    bool
}

type logLine struct {
	line       int
	level, msg string
}

const baseTS = 1_700_000_000_000

var policies = map[string]Policy{"dead_letter": DeadLetter, "skip": Skip, "fail": Fail}

func parseTranscript(file string) (*transcript, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := &transcript{}
	var (
		index     int64
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
		kv := func(from int) ([][2]string, error) {
			var out [][2]string
			for _, tok := range toks[from:] {
				k, v, ok := strings.Cut(tok, "=")
				if !ok {
					return nil, fmt.Errorf("want name=value, got %s", tok)
				}
				out = append(out, [2]string{k, v})
			}
			return out, nil
		}
		word := toks[0]
		if inQueries {
			if err := parseQueryLine(tr, toks, kv, &answered, line); err != nil {
				return nil, fail("%v", err)
			}
			continue
		}
		var cur *batch
		if n := len(tr.scenarios); n > 0 {
			if m := len(tr.scenarios[n-1].batches); m > 0 {
				cur = &tr.scenarios[n-1].batches[m-1]
			}
		}
		switch word {
		case "stage", "scenario", "batch", "queries":
		default:
			if cur == nil {
				return nil, fail("%s outside a batch", word)
			}
		}
		switch word {
		case "queries":
			inQueries = true
			pairs, err := kv(1)
			if err != nil {
				return nil, fail("%v", err)
			}
			for _, p := range pairs {
				if p[0] != "tables" {
					return nil, fail("unknown queries argument %s", p[0])
				}
				tr.tables = strings.Split(p[1], ",")
			}
		case "stage":
			pairs, err := kv(1)
			if err != nil {
				return nil, fail("%v", err)
			}
			for _, p := range pairs {
				switch p[0] {
				case "inputs":
				case "stores":
					tr.stores = strings.Split(p[1], ",")
				case "outputs":
					for _, o := range strings.Split(p[1], ",") {
						name, topic, ok := strings.Cut(o, ":")
						if !ok {
							return nil, fail("output %s is not name:topic", o)
						}
						tr.outputs = append(tr.outputs, [2]string{name, topic})
					}
				case "dlq":
					tr.dlq = p[1]
				default:
					return nil, fail("unknown stage key %s", p[0])
				}
			}
		case "scenario":
			if len(toks) < 2 {
				return nil, fail("scenario needs a name")
			}
			s := scenario{name: toks[1]}
			pairs, err := kv(2)
			if err != nil {
				return nil, fail("%v", err)
			}
			for _, p := range pairs {
				pol, ok := policies[p[1]]
				if p[0] != "policy" || !ok {
					return nil, fail("unknown scenario setting %s=%s", p[0], p[1])
				}
				s.policy = pol
			}
			tr.scenarios = append(tr.scenarios, s)
			index = 0
		case "batch":
			if len(tr.scenarios) == 0 {
				return nil, fail("batch outside a scenario")
			}
			s := &tr.scenarios[len(tr.scenarios)-1]
			s.batches = append(s.batches, batch{line: line})
		case "in":
			pairs, err := kv(1)
			if err != nil {
				return nil, fail("%v", err)
			}
			r := Input{Topic: "in", Timestamp: baseTS + index}
			index++
			for _, p := range pairs {
				switch k, v := p[0], p[1]; {
				case k == "topic":
					r.Topic = v
				case k == "key":
					r.Key, err = abitest.Value(v)
				case k == "value":
					r.Value, err = abitest.Value(v)
				case k == "ts":
					r.Timestamp, err = strconv.ParseInt(v, 10, 64)
				case strings.HasPrefix(k, "h."):
					var hv []byte
					hv, err = abitest.Value(v)
					r.Headers = append(r.Headers, streamrt.Header{Key: k[2:], Value: hv})
				default:
					err = fmt.Errorf("unknown in key %s", k)
				}
				if err != nil {
					return nil, fail("%v", err)
				}
			}
			cur.inputs = append(cur.inputs, r)
		case "emit":
			pairs, err := kv(1)
			if err != nil {
				return nil, fail("%v", err)
			}
			x := expect{kind: word, line: line}
			var hasKey, hasValue bool
			for _, p := range pairs {
				switch k, v := p[0], p[1]; {
				case k == "topic":
					x.topic = v
				case k == "key":
					x.key, err = abitest.Value(v)
					hasKey = true
				case k == "value":
					x.value, err = abitest.Value(v)
					hasValue = true
				case k == "ts":
					var ms int64
					ms, err = strconv.ParseInt(v, 10, 64)
					x.ts = &ms
				case k == "headers" && v == "none":
					x.headers = []streamrt.Header{}
				case strings.HasPrefix(k, "h."):
					var hv []byte
					hv, err = abitest.Value(v)
					x.headers = append(x.headers, streamrt.Header{Key: k[2:], Value: hv})
				default:
					err = fmt.Errorf("unknown emit key %s", k)
				}
				if err != nil {
					return nil, fail("%v", err)
				}
			}
			if x.topic == "" || !hasKey || !hasValue {
				return nil, fail("emit needs topic, key and value")
			}
			cur.expects = append(cur.expects, x)
		case "dead", "skipped", "stopped":
			pairs, err := kv(1)
			if err != nil {
				return nil, fail("%v", err)
			}
			x := expect{kind: word, line: line, topic: "in", offset: -1}
			hasErr := false
			for _, p := range pairs {
				switch k, v := p[0], p[1]; k {
				case "offset":
					x.offset, err = strconv.ParseInt(v, 10, 64)
				case "topic":
					x.topic = v
				case "error", "error~":
					var b []byte
					b, err = abitest.Value(v)
					x.err, x.contains, hasErr = string(b), k == "error~", true
				case "kind":
					x.errKind = v
				default:
					err = fmt.Errorf("unknown %s key %s", word, k)
				}
				if err != nil {
					return nil, fail("%v", err)
				}
			}
			if x.offset < 0 || !hasErr {
				return nil, fail("%s needs an offset and an error", word)
			}
			cur.expects = append(cur.expects, x)
		case "stored", "absent", "size", "log":
			want := map[string]int{"stored": 4, "absent": 3, "size": 3, "log": 3}[word]
			if len(toks) != want {
				return nil, fail("%s takes %d arguments", word, want-1)
			}
			x := expect{kind: word, line: line, store: toks[1]}
			switch word {
			case "stored":
				x.key, err = abitest.Value(toks[2])
				if err == nil {
					x.value, err = abitest.Value(toks[3])
				}
			case "absent":
				x.key, err = abitest.Value(toks[2])
			case "size":
				x.n, err = strconv.Atoi(toks[2])
			case "log":
				x.level, x.store = toks[1], ""
				var b []byte
				b, err = abitest.Value(toks[2])
				x.err = string(b)
			}
			if err != nil {
				return nil, fail("%v", err)
			}
			cur.expects = append(cur.expects, x)
		default:
			return nil, fail("unknown directive %s", word)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, q := range tr.queries {
		if q.answer.line == 0 {
			return nil, fmt.Errorf("%s:%d: query without an answer", file, q.line)
		}
	}
	return tr, nil
}

func parseQueryLine(tr *transcript, toks []string, kv func(int) ([][2]string, error), answered *bool, line int) error {
	var cur *query
	if n := len(tr.queries); n > 0 {
		cur = &tr.queries[n-1]
	}
	switch toks[0] {
	case "load":
		if len(toks) != 5 {
			return fmt.Errorf("load takes 4 arguments")
		}
		p, err := strconv.ParseInt(toks[2], 10, 32)
		if err != nil {
			return fmt.Errorf("bad partition %s", toks[2])
		}
		l := load{store: toks[1], partition: int32(p)}
		l.key, err = abitest.Value(toks[3])
		if err == nil {
			l.value, err = abitest.Value(toks[4])
		}
		if err != nil {
			return err
		}
		tr.loads = append(tr.loads, l)
	case "query":
		pairs, err := kv(1)
		if err != nil {
			return err
		}
		q := query{line: line, req: QueryRequest{Partition: 3, Method: "GET", Route: "/q", Path: "/q"}}
		hasBody := false
		for _, p := range pairs {
			k, raw := p[0], p[1]
			v, err := abitest.Value(raw)
			if err != nil {
				return err
			}
			switch name, isParam := strings.CutPrefix(k, "param."); {
			case isParam:
				if q.req.Params == nil {
					q.req.Params = map[string]string{}
				}
				q.req.Params[name] = string(v)
			case k == "partition":
				n, err := strconv.ParseInt(raw, 10, 32)
				if err != nil {
					return fmt.Errorf("bad partition %s", raw)
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
				return fmt.Errorf("unknown query key %s", k)
			}
		}
		if !hasBody {
			return fmt.Errorf("query needs a body")
		}
		tr.queries = append(tr.queries, q)
		*answered = false
	case "answer":
		if cur == nil || *answered {
			return fmt.Errorf("answer outside a query, or a second one")
		}
		pairs, err := kv(1)
		if err != nil {
			return err
		}
		a := answer{line: line, body: []byte{}}
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
				return err
			}
		}
		if !hasStatus || !hasCtype {
			return fmt.Errorf("answer needs a status and a content type")
		}
		cur.answer, *answered = a, true
	case "line":
		if !*answered || len(toks) != 2 {
			return fmt.Errorf("line before answer, or not one argument")
		}
		v, err := abitest.Value(toks[1])
		if err != nil {
			return err
		}
		cur.answer.body = append(append(cur.answer.body, v...), '\n')
	case "log":
		if cur == nil || len(toks) != 3 {
			return fmt.Errorf("log outside a query, or not two arguments")
		}
		msg, err := abitest.Value(toks[2])
		if err != nil {
			return err
		}
		cur.logs = append(cur.logs, logLine{line: line, level: toks[1], msg: string(msg)})
	default:
		return fmt.Errorf("unknown directive %s in the query part", toks[0])
	}
	return nil
}
