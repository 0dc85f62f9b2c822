package streamrttest_test

import (
	"errors"
	"strings"
	"testing"

	streamrt "github.com/streamrt/streamrt/sdk/go"
	"github.com/streamrt/streamrt/sdk/go/streamrttest"
)

// script is a stage whose records say what to do: "put K V", "emit V",
// "fail", "panic".
func script(r *streamrt.Record) error {
	for _, cmd := range strings.Split(string(r.Value), ";") {
		f := strings.Fields(cmd)
		switch f[0] {
		case "put":
			if err := streamrt.OpenStore("s").Put([]byte(f[1]), []byte(f[2])); err != nil {
				return err
			}
		case "emit":
			if err := streamrt.Emit("out", r.Key, []byte(f[1])); err != nil {
				return err
			}
		case "fail":
			return errors.New("failed")
		case "panic":
			panic("boom")
		}
	}
	return nil
}

func in(value string) streamrttest.Input {
	return streamrttest.Input{Topic: "in", Value: []byte(value)}
}

func TestPoliciesApplyToFailedRecordsOnly(t *testing.T) {
	for _, c := range []struct {
		policy  streamrttest.Policy
		outs    int
		dead    int
		stopped bool
	}{
		{streamrttest.DeadLetter, 1, 2, false},
		{streamrttest.Skip, 1, 0, false},
		{streamrttest.Fail, 0, 0, true},
	} {
		t.Run(c.policy.String(), func(t *testing.T) {
			h := streamrttest.New(t, streamrttest.Config{Stores: []string{"s"}, Outputs: []string{"out"},
				Policy: c.policy, Record: script})
			err := h.Run(in("put a 1; emit x; fail"), in("put b 2; emit y"), in("put c 3; emit z; panic"))
			var stopped *streamrttest.StoppedError
			if errors.As(err, &stopped) != c.stopped || c.stopped && (stopped.Offset != 0 || stopped.Reason != "failed") {
				t.Fatalf("Run: %v", err)
			}
			if n := len(h.Output("out")); n != c.outs {
				t.Errorf("%d outputs, want %d", n, c.outs)
			}
			if n := len(h.DeadLetters()); n != c.dead {
				t.Errorf("%d dead letters, want %d", n, c.dead)
			}
			var keys []string
			for _, e := range h.Entries("s") {
				keys = append(keys, string(e.Key))
			}
			want := "b"
			if c.stopped {
				want = "" // the batch's effects are dropped
				if err := h.Run(in("put d 4")); err != stopped {
					t.Errorf("Run after the stop: %v, want the same stop", err)
				}
			}
			if got := strings.Join(keys, ","); got != want {
				t.Errorf("store holds %q, want %q", got, want)
			}
			if !c.stopped {
				f := h.Failures()
				if len(f) != 2 || f[0].Offset != 0 || f[0].Error != "failed" || f[1].Offset != 2 || !strings.HasPrefix(f[1].Error, "panic: boom") {
					t.Errorf("failures %+v", f)
				}
			}
		})
	}
}

func TestAFailedBatchRunsAgainRecordByRecord(t *testing.T) {
	calls := 0
	h := streamrttest.New(t, streamrttest.Config{Outputs: []string{"out"}, Batch: func(b *streamrt.Batch) error {
		calls++
		for _, r := range b.All() {
			if string(r.Value) == "bad" {
				return errors.New("bad record in the batch")
			}
			if err := streamrt.Emit("out", nil, r.Value); err != nil {
				return err
			}
		}
		return nil
	}})
	if err := h.Run(in("a"), in("bad"), in("c")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range h.Output("out") {
		got = append(got, string(m.Value))
	}
	if strings.Join(got, ",") != "a,c" || calls != 4 {
		t.Errorf("outputs %v after %d calls, want a,c after 4", got, calls)
	}
	d := h.DeadLetters()
	kind, _ := d[0].Header("streamrt.error.kind")
	msg, _ := d[0].Header("streamrt.error")
	if len(d) != 1 || string(kind) != "batch" || !strings.HasPrefix(string(msg), "bad record in the batch (streamrt: guest failed the batch") {
		t.Errorf("dead letter kind %q error %q", kind, msg)
	}
}

func TestQueriesReadStoresAndTablesAndWriteNothing(t *testing.T) {
	h := streamrttest.New(t, streamrttest.Config{Stores: []string{"s"}, Tables: []string{"t"}, Outputs: []string{"out"},
		Record: script,
		Query: func(q *streamrt.Query) streamrt.Response {
			v, _, _ := streamrt.OpenStore("s").Get([]byte(q.Param("k")))
			w, _ := streamrt.OpenTable("t").Lookup([]byte("x"))
			put := streamrt.OpenStore("s").Put([]byte("k"), []byte("v"))
			emit := streamrt.Emit("out", nil, nil)
			body := string(v) + " " + string(w) + " " + q.Values().Get("n") + " " +
				pick(errors.Is(put, streamrt.ErrReadOnly), "read-only") + " " + pick(errors.Is(emit, streamrt.ErrNotAllowed), "no-emit")
			return streamrt.Response{Body: []byte(body)}
		}})
	h.Feed("in", nil, []byte("put a 1"), 5)
	h.Set("t", []byte("x"), []byte("X"))
	resp := h.Query(streamrttest.QueryRequest{Route: "/s/{k}", Path: "/s/a", RawQuery: "n=7", Params: map[string]string{"k": "a"}})
	if resp.Status != 200 || string(resp.Body) != "1 X 7 read-only no-emit" {
		t.Errorf("answered %d %q", resp.Status, resp.Body)
	}
	if _, found := h.Get("s", []byte("k")); found {
		t.Error("a query wrote to the store")
	}
}

func pick(ok bool, s string) string {
	if ok {
		return s
	}
	return "!" + s
}

func TestTablesAreReadOnlyToHandlers(t *testing.T) {
	h := streamrttest.New(t, streamrttest.Config{Tables: []string{"s"}, Record: script})
	h.Feed("in", nil, []byte("put a 1"), 1)
	d := h.DeadLetters()
	if len(d) != 1 {
		t.Fatalf("%d dead letters, want 1", len(d))
	}
	if msg, _ := d[0].Header("streamrt.error"); !strings.Contains(string(msg), "read-only") {
		t.Errorf("error %q", msg)
	}
}

func TestOneHarnessAtATime(t *testing.T) {
	h := streamrttest.New(t, streamrttest.Config{Record: script})
	var inner testing.T
	done := make(chan struct{})
	go func() { // Fatalf ends the goroutine it is called on
		defer close(done)
		streamrttest.New(&inner, streamrttest.Config{Record: script})
	}()
	<-done
	if !inner.Failed() {
		t.Error("a second harness was made while one is in use")
	}
	h.Close()
	streamrttest.New(t, streamrttest.Config{Record: script}) // after Close, a new one may be made
}

func TestNewRefusesBadStages(t *testing.T) {
	for name, cfg := range map[string]streamrttest.Config{
		"no handler":       {},
		"record and batch": {Record: script, Batch: func(*streamrt.Batch) error { return nil }},
		"store twice":      {Record: script, Stores: []string{"s"}, Tables: []string{"s"}},
		"output twice":     {Record: script, Outputs: []string{"o", "o"}},
		"unknown policy":   {Record: script, Policy: 7},
	} {
		var inner testing.T
		done := make(chan struct{})
		go func() {
			defer close(done)
			streamrttest.New(&inner, cfg)
		}()
		<-done
		if !inner.Failed() {
			t.Errorf("%s: New accepted it", name)
		}
	}
	streamrttest.New(t, streamrttest.Config{Record: script}) // none is left attached
}
