package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/abi/abitest"
	"github.com/streamrt/streamrt/internal/logtest"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
)

// The ABI conformance suite: abi/testdata/conformance/conformance.txt run
// through a real task (wazero, Pebble, the engine's batch host and error
// policies) against the conformance guest on each SDK. The two guests are
// the same interpreter, so any difference between them, or between them and
// the transcript, is the host or an SDK drifting from the ABI. The Rust SDK's
// cargo test runs the same transcript natively (sdk/rust/conformance). The
// transcript's query part is run by runtime/internal/serve's
// TestConformanceQueries.
const conformanceFile = "../../../abi/testdata/conformance/conformance.txt"

type conformanceGuest struct {
	name string
	wasm func(t *testing.T) []byte
}

var conformanceGuests = []conformanceGuest{
	{"go", func(t *testing.T) []byte { return guesttest.Build(t, "conformance") }},
	{"rust", func(t *testing.T) []byte { return guesttest.BuildRust(t, guesttest.RustDir("conformance")) }},
}

func TestConformance(t *testing.T) {
	tr, err := parseTranscript(conformanceFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.scenarios) < 5 {
		t.Fatalf("%s holds %d scenarios; the suite has at least 5", conformanceFile, len(tr.scenarios))
	}
	for _, g := range conformanceGuests {
		t.Run(g.name, func(t *testing.T) {
			bin := g.wasm(t)
			for _, sc := range tr.scenarios {
				t.Run(sc.name, func(t *testing.T) {
					tk, logs := newConformanceTask(t, g.name, bin, tr.stage, sc.policy)
					runScenario(t, tk, logs, tr.stage, sc)
				})
			}
		})
	}
}

// A Rust guest that panics on a record traps, after its panic hook reported
// the message against the record: the host gives that record the stage's
// error policy with the message, and the other records of the batch their
// normal effects.
func TestRustPanicFollowsErrorPolicy(t *testing.T) {
	bin := guesttest.BuildRust(t, guesttest.RustDir("conformance"))
	stage := transcriptStage{inputs: []string{"in"}, stores: []string{"seen"}, outputs: map[string]string{"out": "out-topic"}, dlq: "dlq"}
	input := func() []*kgo.Record {
		var recs []*kgo.Record
		for i, v := range []string{"put seen a 1; emit out a 1", "put seen b 1; emit out b 1; panic boom at %22b%22", "put seen c 1; emit out c 1"} {
			recs = append(recs, &kgo.Record{Topic: "in", Offset: int64(i), Key: []byte{'a' + byte(i)}, Value: []byte(v), Timestamp: time.UnixMilli(1_700_000_000_000)})
		}
		return recs
	}
	const want = `panic: boom at "b"`
	for _, policy := range []config.ErrorPolicy{config.PolicyDeadLetter, config.PolicySkip, config.PolicyFail} {
		t.Run(string(policy), func(t *testing.T) {
			tk, logs := newConformanceTask(t, "rust", bin, stage, policy)
			err := tk.process(input())
			if policy == config.PolicyFail {
				var te *TaskError
				if !errors.As(err, &te) || te.Offset != 1 || !strings.Contains(te.Reason, want) {
					t.Fatalf("got %v, want the task stopped at offset 1 with %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var out, dead []*kgo.Record
			for _, r := range tk.cycle.outputs {
				if r.Topic == "dlq" {
					dead = append(dead, r)
				} else {
					out = append(out, r)
				}
			}
			if keys(out) != "a,c" {
				t.Errorf("emitted %s, want a,c", keys(out))
			}
			for k, want := range map[string]bool{"a": true, "b": false, "c": true} {
				if _, ok := get(t, tk, "seen", k); ok != want {
					t.Errorf("store key %s present %v, want %v", k, ok, want)
				}
			}
			if policy == config.PolicySkip {
				if len(dead) != 0 {
					t.Errorf("%d dead letters under the skip policy", len(dead))
				}
				if !logs.Has(func(r logtest.Record) bool {
					return r.Message == "record failed; skipped" && r.Attrs["offset"] == "1" && r.Attrs["kind"] == "trap" && strings.Contains(r.Attrs["error"], want)
				}) {
					t.Errorf("no skip of offset 1 with kind trap and %q logged", want)
				}
				return
			}
			if len(dead) != 1 || string(dead[0].Key) != "b" {
				t.Fatalf("dead letters %s, want b", keys(dead))
			}
			if got := header(dead[0], "streamrt.error"); !strings.Contains(got, want) {
				t.Errorf("dead letter error %q lacks %q", got, want)
			}
			if got := header(dead[0], "streamrt.error.kind"); got != "trap" {
				t.Errorf("dead letter kind %q, want trap", got)
			}
			if !logs.Has(func(r logtest.Record) bool {
				return r.Attrs["guest"] == "true" && strings.Contains(r.Message, "streamrt: record 0: "+want+" (at ")
			}) {
				t.Errorf("the panic's location was not logged")
			}
		})
	}
}

// newConformanceTask returns a task of a one-stage app running wasm, with
// the transcript's stage and the given error policy, and the log it writes.
// Like newTestTask, it involves no Kafka.
func newConformanceTask(t *testing.T, name string, bin []byte, st transcriptStage, policy config.ErrorPolicy) (*task, *logtest.Capture) {
	t.Helper()
	ctx := context.Background()
	db, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cache, err := wasm.NewCache(filepath.Join(guesttest.CacheDir(), "wasm"))
	if err != nil {
		t.Fatal(err)
	}
	const memory = 64 << 20
	const deadline = 10 * time.Second
	we, err := wasm.NewEngine(ctx, wasm.Config{Cache: cache, MemoryLimit: memory, Deadline: deadline})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { we.Close(ctx) })
	m, err := we.Compile(ctx, "conformance-"+name, bin)
	if err != nil {
		t.Fatal(err)
	}
	sc := config.Stage{
		Name: "s", Inputs: st.inputs, Stores: st.stores, Outputs: st.outputs,
		ErrorPolicy: policy, DeadLetterTopic: st.dlq,
		BatchSize: 500, MemoryLimit: memory, BatchDeadline: deadline,
	}
	cfg := &config.Config{App: "app", Partitions: 1, Stages: []config.Stage{sc}}
	logs := &logtest.Capture{}
	e, err := New(cfg, db, metrics.New(), slog.New(logs), []Stage{{Config: sc, Module: m}})
	if err != nil {
		t.Fatal(err)
	}
	e.stages[0].failures.every = -1 // the transcript checks every skip's log
	tk, err := newTask(ctx, e.env, e.log, e.stages[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tk.close)
	return tk, logs
}

func runScenario(t *testing.T, tk *task, logs *logtest.Capture, st transcriptStage, sc transcriptScenario) {
	for _, b := range sc.batches {
		emits0, logs0 := len(tk.cycle.outputs), logs.Len()
		err := tk.process(b.inputs)
		emitted := tk.cycle.outputs[emits0:]
		batchLogs := logs.Since(logs0)

		var stopped *transcriptExpect
		for i := range b.expects {
			if b.expects[i].kind == "stopped" {
				stopped = &b.expects[i]
			}
		}
		if stopped != nil {
			var te *TaskError
			if !errors.As(err, &te) || te.Offset != stopped.offset || !strings.Contains(te.Reason, stopped.err) {
				t.Errorf("line %d: got %v, want the task stopped at offset %d with an error containing %q", stopped.line, err, stopped.offset, stopped.err)
			}
			return
		}
		if err != nil {
			t.Fatalf("batch at line %d: %v", b.line, err)
		}

		got := map[string][]*kgo.Record{}
		for _, r := range emitted {
			got[r.Topic] = append(got[r.Topic], r)
		}
		want := map[string][]transcriptExpect{}
		var skipped []transcriptExpect
		for _, x := range b.expects {
			switch x.kind {
			case "emit":
				want[x.topic] = append(want[x.topic], x)
			case "dead":
				want[st.dlq] = append(want[st.dlq], x)
			case "skipped":
				skipped = append(skipped, x)
			}
		}
		topics := map[string]bool{}
		for topic := range got {
			topics[topic] = true
		}
		for topic := range want {
			topics[topic] = true
		}
		for topic := range topics {
			g, w := got[topic], want[topic]
			for i := range max(len(g), len(w)) {
				switch {
				case i >= len(w):
					t.Errorf("batch at line %d: unexpected record on %s: %s", b.line, topic, showRecord(g[i]))
				case i >= len(g):
					t.Errorf("line %d: record missing on %s", w[i].line, topic)
				case w[i].kind == "dead":
					checkDead(t, g[i], w[i], b.inputs)
				default:
					checkEmit(t, g[i], w[i])
				}
			}
		}

		var skips []logtest.Record
		for _, r := range batchLogs {
			if r.Message == "record failed; skipped" {
				skips = append(skips, r)
			}
		}
		if len(skips) != len(skipped) {
			t.Errorf("batch at line %d: %d records skipped, want %d: %v", b.line, len(skips), len(skipped), skips)
		}
		for i := range min(len(skips), len(skipped)) {
			w := skipped[i]
			if skips[i].Attrs["offset"] != strconv.FormatInt(w.offset, 10) || !strings.Contains(skips[i].Attrs["error"], w.err) {
				t.Errorf("line %d: skipped %v, want offset %d with an error containing %q", w.line, skips[i].Attrs, w.offset, w.err)
			}
		}

		for _, x := range b.expects {
			switch x.kind {
			case "stored":
				v, ok := get(t, tk, x.store, string(x.key))
				if !ok || v != string(x.value) {
					t.Errorf("line %d: store %s key %q: got %q (present %v), want %q", x.line, x.store, x.key, v, ok, x.value)
				}
			case "absent":
				if v, ok := get(t, tk, x.store, string(x.key)); ok {
					t.Errorf("line %d: store %s key %q: got %q, want none", x.line, x.store, x.key, v)
				}
			case "size":
				if n := storeSize(t, tk, x.store); n != x.n {
					t.Errorf("line %d: store %s holds %d keys, want %d", x.line, x.store, n, x.n)
				}
			case "log":
				if !slices.ContainsFunc(batchLogs, func(r logtest.Record) bool {
					return r.Attrs["guest"] == "true" && strings.EqualFold(r.Level.String(), x.level) && r.Message == x.err
				}) {
					t.Errorf("line %d: the guest did not log %s %q", x.line, x.level, x.err)
				}
			}
		}
	}
}

func checkEmit(t *testing.T, got *kgo.Record, w transcriptExpect) {
	t.Helper()
	bad := !sameBytes(got.Key, w.key) || !sameBytes(got.Value, w.value)
	if w.ts != nil && got.Timestamp.UnixMilli() != *w.ts {
		bad = true
	}
	if w.headers != nil {
		if len(got.Headers) != len(w.headers) {
			bad = true
		} else {
			for i, h := range got.Headers {
				if h.Key != w.headers[i].Key || !sameBytes(h.Value, w.headers[i].Value) {
					bad = true
				}
			}
		}
	}
	if bad {
		t.Errorf("line %d: got %s", w.line, showRecord(got))
	}
}

func checkDead(t *testing.T, got *kgo.Record, w transcriptExpect, inputs []*kgo.Record) {
	t.Helper()
	var in *kgo.Record
	for _, r := range inputs {
		if r.Topic == w.topic && r.Offset == w.offset {
			in = r
		}
	}
	msg := header(got, "streamrt.error")
	okErr := msg == w.err
	if w.contains {
		okErr = strings.Contains(msg, w.err)
	}
	okSrc := in != nil && sameBytes(got.Key, in.Key) && sameBytes(got.Value, in.Value) &&
		header(got, "streamrt.source.topic") == w.topic && header(got, "streamrt.source.offset") == strconv.FormatInt(w.offset, 10)
	okKind := w.errKind == "" || header(got, "streamrt.error.kind") == w.errKind
	if !okErr || !okSrc || !okKind {
		t.Errorf("line %d: dead letter from %s offset %s, error %q, kind %q", w.line, header(got, "streamrt.source.topic"), header(got, "streamrt.source.offset"), msg, header(got, "streamrt.error.kind"))
	}
}

// sameBytes compares keeping null (nil) apart from empty.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func showRecord(r *kgo.Record) string {
	show := func(b []byte) string {
		if b == nil {
			return "null"
		}
		if len(b) > 200 {
			return fmt.Sprintf("%q...(%d bytes)", b[:200], len(b))
		}
		return fmt.Sprintf("%q", b)
	}
	s := fmt.Sprintf("topic=%s key=%s value=%s ts=%d", r.Topic, show(r.Key), show(r.Value), r.Timestamp.UnixMilli())
	for _, h := range r.Headers {
		s += fmt.Sprintf(" h.%s=%s", h.Key, show(h.Value))
	}
	return s
}

func storeSize(t *testing.T, tk *task, store string) int {
	t.Helper()
	for _, ks := range tk.stores {
		if ks.Store() != store {
			continue
		}
		it, err := tk.cycle.txn.NewIter(ks, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, _, ok := it.Next(); ok; _, _, ok = it.Next() {
			n++
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Fatalf("no store %q", store)
	return 0
}

// The transcript format; conformance.txt's header describes it.

type transcript struct {
	stage     transcriptStage
	scenarios []transcriptScenario
}

type transcriptStage struct {
	inputs, stores []string
	outputs        map[string]string
	dlq            string
}

type transcriptScenario struct {
	name    string
	policy  config.ErrorPolicy
	batches []transcriptBatch
}

type transcriptBatch struct {
	line    int
	inputs  []*kgo.Record
	expects []transcriptExpect
}

// transcriptExpect is one expectation line. kind is its directive; the
// other fields are those it uses.
type transcriptExpect struct {
	kind, topic string
	line        int
	key, value  []byte
	ts          *int64
	headers     []kgo.RecordHeader // nil: not checked
	offset      int64
	err         string // error text (dead, skipped, stopped) or log message
	contains    bool
	errKind     string
	store       string
	n           int
	level       string
}

const transcriptBaseTS = 1_700_000_000_000

func parseTranscript(file string) (*transcript, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := &transcript{}
	var (
		offsets map[string]int64
		index   int64
		line    int
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
		var cur *transcriptBatch
		if n := len(tr.scenarios); n > 0 {
			if m := len(tr.scenarios[n-1].batches); m > 0 {
				cur = &tr.scenarios[n-1].batches[m-1]
			}
		}
		word := toks[0]
		switch word {
		case "stage", "scenario", "batch", "queries":
		default:
			if cur == nil {
				return nil, fail("%s outside a batch", word)
			}
		}
		switch word {
		case "queries":
			// The rest is the query part, which serve's test reads.
			return tr, nil
		case "stage":
			pairs, err := kv(1)
			if err != nil {
				return nil, fail("%v", err)
			}
			tr.stage.outputs = map[string]string{}
			for _, p := range pairs {
				switch p[0] {
				case "inputs":
					tr.stage.inputs = strings.Split(p[1], ",")
				case "stores":
					tr.stage.stores = strings.Split(p[1], ",")
				case "outputs":
					for _, o := range strings.Split(p[1], ",") {
						name, topic, ok := strings.Cut(o, ":")
						if !ok {
							return nil, fail("output %s is not name:topic", o)
						}
						tr.stage.outputs[name] = topic
					}
				case "dlq":
					tr.stage.dlq = p[1]
				default:
					return nil, fail("unknown stage key %s", p[0])
				}
			}
		case "scenario":
			if len(toks) < 2 {
				return nil, fail("scenario needs a name")
			}
			s := transcriptScenario{name: toks[1], policy: config.PolicyDeadLetter}
			pairs, err := kv(2)
			if err != nil {
				return nil, fail("%v", err)
			}
			for _, p := range pairs {
				if p[0] != "policy" {
					return nil, fail("unknown scenario key %s", p[0])
				}
				s.policy = config.ErrorPolicy(p[1])
			}
			tr.scenarios = append(tr.scenarios, s)
			offsets, index = map[string]int64{}, 0
		case "batch":
			if len(tr.scenarios) == 0 {
				return nil, fail("batch outside a scenario")
			}
			s := &tr.scenarios[len(tr.scenarios)-1]
			s.batches = append(s.batches, transcriptBatch{line: line})
		case "in":
			pairs, err := kv(1)
			if err != nil {
				return nil, fail("%v", err)
			}
			r := &kgo.Record{Topic: "in", Timestamp: time.UnixMilli(transcriptBaseTS + index)}
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
					var ms int64
					ms, err = strconv.ParseInt(v, 10, 64)
					r.Timestamp = time.UnixMilli(ms)
				case strings.HasPrefix(k, "h."):
					var hv []byte
					hv, err = abitest.Value(v)
					r.Headers = append(r.Headers, kgo.RecordHeader{Key: k[2:], Value: hv})
				default:
					err = fmt.Errorf("unknown in key %s", k)
				}
				if err != nil {
					return nil, fail("%v", err)
				}
			}
			r.Offset = offsets[r.Topic]
			offsets[r.Topic]++
			cur.inputs = append(cur.inputs, r)
		case "emit":
			pairs, err := kv(1)
			if err != nil {
				return nil, fail("%v", err)
			}
			x := transcriptExpect{kind: word, line: line}
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
					x.headers = []kgo.RecordHeader{}
				case strings.HasPrefix(k, "h."):
					var hv []byte
					hv, err = abitest.Value(v)
					x.headers = append(x.headers, kgo.RecordHeader{Key: k[2:], Value: hv})
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
			x := transcriptExpect{kind: word, line: line, topic: "in", offset: -1}
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
			x := transcriptExpect{kind: word, line: line, store: toks[1]}
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
	return tr, sc.Err()
}
