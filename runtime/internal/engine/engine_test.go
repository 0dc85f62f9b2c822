package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
)

type stageOpts struct {
	guest    string
	policy   config.ErrorPolicy
	memory   int64
	deadline time.Duration
	wall     time.Duration // the deadline's wall-clock cap; 0: ten times the deadline
	batch    int
	// A stage reading tables: its inputs, outputs and tables replace the
	// defaults, and it has no stores.
	inputs  []string
	outputs map[string]string
	tables  []config.Table
	latest  bool // output out keeps the latest record per key
}

// newTestTask returns a task of a one-stage app running the named test guest,
// by default with input topic "in", stores "seen" and "counts", output "out"
// → topic "out-topic" and dead-letter topic "dlq". No Kafka is involved: the
// test drives the task and inspects its uncommitted cycle.
func newTestTask(t *testing.T, o stageOpts) *task {
	t.Helper()
	if o.memory == 0 {
		o.memory = 64 << 20
	}
	if o.deadline == 0 {
		o.deadline = 5 * time.Second
	}
	if o.batch == 0 {
		o.batch = 500
	}
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
	we, err := wasm.NewEngine(ctx, wasm.Config{Cache: cache, MemoryLimit: o.memory, Deadline: o.deadline, WallLimit: o.wall})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { we.Close(ctx) })
	m, err := we.Compile(ctx, o.guest, guesttest.Build(t, o.guest))
	if err != nil {
		t.Fatal(err)
	}
	sc := config.Stage{
		Name: "s", Inputs: []string{"in"}, Stores: []string{"seen", "counts"},
		Outputs: map[string]string{"out": "out-topic"}, ErrorPolicy: o.policy, DeadLetterTopic: "dlq",
		BatchSize: o.batch, MemoryLimit: o.memory, BatchDeadline: o.deadline,
	}
	if o.latest {
		sc.Latest = map[string]bool{"out": true}
	}
	if o.tables != nil {
		sc.Inputs, sc.Outputs, sc.Stores, sc.DeadLetterTopic = o.inputs, o.outputs, nil, ""
		for _, tb := range o.tables {
			sc.Tables = append(sc.Tables, tb.Name)
		}
	}
	cfg := &config.Config{App: "app", Partitions: 1, Tables: o.tables, Stages: []config.Stage{sc}}
	e, err := New(cfg, db, metrics.New(), slog.New(slog.DiscardHandler), []Stage{{Config: sc, Module: m}})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := newTask(ctx, e.env, e.log, e.stages[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tk.close)
	return tk
}

func records(kvs ...string) []*kgo.Record {
	var out []*kgo.Record
	for i := 0; i+1 < len(kvs); i += 2 {
		out = append(out, &kgo.Record{Topic: "in", Partition: 0, Offset: int64(i / 2), Key: []byte(kvs[i]), Value: []byte(kvs[i+1]), Timestamp: time.UnixMilli(1_700_000_000_000 + int64(i))})
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func get(t *testing.T, tk *task, store, key string) (string, bool) {
	t.Helper()
	for _, ks := range tk.stores {
		if ks.Store() == store {
			v, found, err := tk.cycle.txn.Get(ks, []byte(key), nil)
			if err != nil {
				t.Fatal(err)
			}
			return string(v), found
		}
	}
	t.Fatalf("no store %q", store)
	return "", false
}

// Every kind of guest failure, one record each, among good records in one
// batch: the good ones are processed once, each bad one is dead-lettered
// with its error and the kind of failure, the bad ones' effects are gone,
// and the metrics count each failure by kind and policy, and each instance
// a trap or the deadline replaced.
func TestDeadLetterIsolatesEveryKindOfFailure(t *testing.T) {
	// The deadline counts the CPU time a guest uses, so that the oom record
	// has time to exhaust its small memory however busy the machine is;
	// the wall-clock cap is generous, so that a starved guest is not
	// stopped by it instead (its errors would say so).
	tk := newTestTask(t, stageOpts{guest: "faulty", policy: config.PolicyDeadLetter, deadline: 3 * time.Second, wall: 10 * time.Minute, memory: 16 << 20})
	recs := records("a", "ok1", "b", "fail", "c", "panic", "d", "ok2", "e", "loop", "f", "oom", "g", "exit", "h", "ok3")
	if err := tk.process(recs); err != nil {
		t.Fatal(err)
	}
	emits := outputs(tk)
	type want struct{ topic, key, kind, errPart string }
	wants := []want{
		{"out-topic", "a", "", ""},
		{"dlq", "b", "record", "bad record"},
		{"dlq", "c", "record", "panic: "},
		{"out-topic", "d", "", ""},
		{"dlq", "e", "deadline", "stopped after 3s of CPU time"},
		{"dlq", "f", "trap", "out of memory"},
		{"dlq", "g", "trap", "exited with code 3"},
		{"out-topic", "h", "", ""},
	}
	if len(emits) != len(wants) {
		for _, r := range emits {
			t.Logf("emitted %s %s=%s %s", r.Topic, r.Key, r.Value, header(r, "streamrt.error"))
		}
		t.Fatalf("%d records emitted, want %d", len(emits), len(wants))
	}
	for i, w := range wants {
		r := emits[i]
		if r.Topic != w.topic || string(r.Key) != w.key {
			t.Errorf("emit %d: got %s key %s, want %s key %s", i, r.Topic, r.Key, w.topic, w.key)
			continue
		}
		if w.topic != "dlq" {
			continue
		}
		if got := header(r, "streamrt.error.kind"); got != w.kind {
			t.Errorf("emit %d (%s): kind %q, want %q (error %q)", i, r.Key, got, w.kind, header(r, "streamrt.error"))
		}
		if !strings.Contains(header(r, "streamrt.error"), w.errPart) {
			t.Errorf("emit %d (%s): error %q lacks %q", i, r.Key, header(r, "streamrt.error"), w.errPart)
		}
		for k, v := range map[string]string{
			"streamrt.stage":            "s",
			"streamrt.source.topic":     "in",
			"streamrt.source.partition": "0",
			"streamrt.source.offset":    fmt.Sprint(recs[strings.Index("abcdefgh", w.key)].Offset),
			"streamrt.module.version":   tk.stage.module.Load().Version(),
		} {
			if got := header(r, k); got != v {
				t.Errorf("emit %d (%s): header %s = %q, want %q", i, r.Key, k, got, v)
			}
		}
	}
	for _, k := range []string{"a", "d", "h"} {
		if _, ok := get(t, tk, "seen", k); !ok {
			t.Errorf("good record %s left no state", k)
		}
	}
	for _, k := range []string{"b", "c", "e", "f", "g"} {
		if v, ok := get(t, tk, "seen", k); ok {
			t.Errorf("failed record %s left state %q", k, v)
		}
	}
	if got := keys(changes(tk)); got != "a,d,h" {
		t.Errorf("changelog records for %s, want a,d,h only", got)
	}
	if tk.cycle.next["in"] != 8 {
		t.Errorf("next offset %d, want 8", tk.cycle.next["in"])
	}
	// The batch was stopped by the deadline at e, then each record ran
	// alone: e, f and g each broke their instance too.
	m := tk.env.metrics
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"streamrt_guest_errors_total", []string{"stage", "s", "kind", "record", "policy", "dead_letter"}, 2},
		{"streamrt_guest_errors_total", []string{"stage", "s", "kind", "deadline", "policy", "dead_letter"}, 1},
		{"streamrt_guest_errors_total", []string{"stage", "s", "kind", "trap", "policy", "dead_letter"}, 2},
		{"streamrt_guest_errors_total", nil, 5},
		{"streamrt_instance_restarts_total", []string{"stage", "s"}, 4},
	} {
		if got := metricValue(t, m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// metricValue gathers m's registry and returns the sum of the samples of
// the counter or gauge name whose labels include every name and value
// pair in labels.
func metricValue(t *testing.T, m *metrics.Metrics, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	samples:
		for _, s := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range s.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found {
					continue samples
				}
			}
			sum += s.GetCounter().GetValue() + s.GetGauge().GetValue()
		}
	}
	return sum
}

// A record whose handler writes and emits and then fails is undone without
// replaying the batch: the records around it keep their effects.
func TestFailedRecordEffectsAreUndone(t *testing.T) {
	tk := newTestTask(t, stageOpts{guest: "faulty", policy: config.PolicySkip})
	if err := tk.process(records("a", "ok", "b", "putfail", "c", "ok")); err != nil {
		t.Fatal(err)
	}
	if got := keys(outputs(tk)); got != "a,c" {
		t.Fatalf("emits %s, want a,c", got)
	}
	if got := keys(changes(tk)); got != "a,c" {
		t.Fatalf("changelog records for %s, want a,c", got)
	}
	if _, ok := get(t, tk, "seen", "b"); ok {
		t.Fatal("the failed record's put survived")
	}
	if tk.inst == nil {
		t.Fatal("a record error replaced the instance; only traps should")
	}
}

func TestFailPolicyStopsTheTask(t *testing.T) {
	tk := newTestTask(t, stageOpts{guest: "faulty", policy: config.PolicyFail})
	err := tk.process(records("a", "ok", "b", "fail", "c", "ok"))
	var te *TaskError
	if !errors.As(err, &te) {
		t.Fatalf("got %v, want a TaskError", err)
	}
	if te.Offset != 1 || te.Topic != "in" || !strings.Contains(te.Reason, "bad record") {
		t.Fatalf("TaskError %+v does not name offset 1 and the reason", te)
	}
	if got := metricValue(t, tk.env.metrics, "streamrt_guest_errors_total", "stage", "s", "kind", "record", "policy", "fail"); got != 1 {
		t.Errorf("streamrt_guest_errors_total{kind=record,policy=fail} = %v, want 1", got)
	}
}

func TestRecordOverMemoryLimitIsRefusedUpFront(t *testing.T) {
	tk := newTestTask(t, stageOpts{guest: "faulty", policy: config.PolicyDeadLetter, memory: 32 << 20})
	big := strings.Repeat("x", 33<<20)
	if err := tk.process(records("a", "ok", "b", big, "c", "ok")); err != nil {
		t.Fatal(err)
	}
	emits := outputs(tk)
	if ks := keys(emits); ks != "a,b,c" {
		t.Fatalf("emits %s, want a,b,c", ks)
	}
	if kind := header(emits[1], "streamrt.error.kind"); kind != "oversize" || !strings.Contains(header(emits[1], "streamrt.error"), "exceeds the stage's guest memory limit of 33554432 bytes") {
		t.Fatalf("oversize record dead-lettered with kind %q error %q", kind, header(emits[1], "streamrt.error"))
	}
}

func TestReadsSeeTheBatchsOwnWrites(t *testing.T) {
	tk := newTestTask(t, stageOpts{guest: "counter", policy: config.PolicyFail, batch: 3})
	var kvs []string
	for i := 0; i < 10; i++ {
		kvs = append(kvs, "k", "x")
	}
	if err := tk.process(records(kvs...)); err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, tk, "counts", "k"); v != "10" {
		t.Fatalf("count %q after 10 records in batches of 3, want 10", v)
	}
	if out := outputs(tk); string(out[len(out)-1].Value) != "10" {
		t.Fatalf("last emitted count %q, want 10", out[len(out)-1].Value)
	}
}

// outputs returns the task's emitted records other than changelog records.
func outputs(tk *task) []*kgo.Record { return tk.cycle.outputs }

// changes returns the task's changelog records.
func changes(tk *task) []*kgo.Record { return tk.cycle.changes }

func keys(rs []*kgo.Record) string {
	var ks []string
	for _, r := range rs {
		ks = append(ks, string(r.Key))
	}
	return strings.Join(ks, ",")
}

// An output that keeps the latest record per key holds its records for the
// commit, which keeps the last one per key, in their order; a failed
// record's are undone like any output's.
func TestKeepLatestOutputHoldsTheLastRecordPerKey(t *testing.T) {
	tk := newTestTask(t, stageOpts{guest: "counter", latest: true})
	if err := tk.process(records("a", "", "b", "", "a", "", "c", "", "a", "", "b", "")); err != nil {
		t.Fatal(err)
	}
	c := &tk.cycle
	if len(c.outputs) != 0 {
		t.Fatalf("%d records sent as batches end, want none", len(c.outputs))
	}
	if got := keysValues(c.latest); got != "a=1,b=1,a=2,c=1,a=3,b=2" {
		t.Fatalf("held %s", got)
	}
	c.compact()
	if got := keysValues(c.latest); got != "c=1,a=3,b=2" {
		t.Fatalf("after compaction %s, want c=1,a=3,b=2", got)
	}
}

// A store call that fails in the host (a corrupt table, a failing disk)
// is no fault of the record's: the task stops with the state's error
// whatever its error policy, instead of skipping the record or
// dead-lettering it.
func TestStateFailureStopsTheTaskWhateverThePolicy(t *testing.T) {
	for _, policy := range []config.ErrorPolicy{config.PolicySkip, config.PolicyDeadLetter, config.PolicyFail} {
		t.Run(string(policy), func(t *testing.T) {
			tk := newTestTask(t, stageOpts{guest: "counter", policy: policy})
			// A closed database stands in for a damaged one: every read
			// of the cycle's Txn fails.
			if err := tk.env.db.Close(); err != nil {
				t.Fatal(err)
			}
			err := tk.process(records("a", "1", "b", "1"))
			var te *TaskError
			if !errors.As(err, &te) {
				t.Fatalf("got %v, want a TaskError", err)
			}
			if te.Offset != 0 || !strings.Contains(te.Reason, "local state failed") || !strings.Contains(te.Reason, "state db closed") {
				t.Errorf("TaskError %+v, want the state's error at offset 0", te)
			}
			if emits := outputs(tk); len(emits) != 0 {
				t.Errorf("%d records emitted, want none", len(emits))
			}
		})
	}
}
