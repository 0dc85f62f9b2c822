package main

import (
	"testing"

	"github.com/streamrt/streamrt/sdk/go/streamrttest"
)

func newHarness(t *testing.T) *streamrttest.Harness {
	return streamrttest.New(t, streamrttest.Config{
		Stage:   "count",
		Stores:  []string{"click-counts"},
		Outputs: []string{"counts"},
	})
}

func TestClicksAreCountedPerPage(t *testing.T) {
	h := newHarness(t)
	h.Set("click-counts", []byte("docs"), []byte("41")) // counted before
	for i, page := range []string{"home", "docs", "home"} {
		h.Feed("clicks", []byte(page), []byte("x"), int64(1000+i))
	}

	want := []struct {
		page, count string
		ts          int64
	}{{"home", "1", 1000}, {"docs", "42", 1001}, {"home", "2", 1002}}
	got := h.Output("counts")
	if len(got) != len(want) {
		t.Fatalf("emitted %d counts, want %d", len(got), len(want))
	}
	for i, w := range want {
		if string(got[i].Key) != w.page || string(got[i].Value) != w.count || got[i].Timestamp != w.ts {
			t.Errorf("count %d: %s=%s at %d, want %s=%s at %d", i, got[i].Key, got[i].Value, got[i].Timestamp, w.page, w.count, w.ts)
		}
	}
	for page, count := range map[string]string{"home": "2", "docs": "42"} {
		if v, _ := h.Get("click-counts", []byte(page)); string(v) != count {
			t.Errorf("store click-counts %s = %q, want %q", page, v, count)
		}
	}
}

func TestClickWithoutPageIsDeadLettered(t *testing.T) {
	h := newHarness(t)
	err := h.Run(
		streamrttest.Input{Topic: "clicks", Key: []byte("home"), Timestamp: 1},
		streamrttest.Input{Topic: "clicks", Key: nil, Value: []byte("x"), Timestamp: 2},
		streamrttest.Input{Topic: "clicks", Key: []byte("home"), Timestamp: 3},
	)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(h.Output("counts")); n != 2 {
		t.Errorf("emitted %d counts, want 2: the bad click must not stop the others", n)
	}
	dead := h.DeadLetters()
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	msg, _ := dead[0].Header("streamrt.error")
	off, _ := dead[0].Header("streamrt.source.offset")
	if string(msg) != "click without a page (null key)" || string(off) != "1" || string(dead[0].Value) != "x" {
		t.Errorf("dead letter: value %q, error %q, offset %s", dead[0].Value, msg, off)
	}
	if v, _ := h.Get("click-counts", []byte("home")); string(v) != "2" {
		t.Errorf("home counted %q, want 2", v)
	}
}

func TestBadStoredCountFailsTheClick(t *testing.T) {
	h := streamrttest.New(t, streamrttest.Config{
		Stores:  []string{"click-counts"},
		Outputs: []string{"counts"},
		Policy:  streamrttest.Fail,
	})
	h.Set("click-counts", []byte("home"), []byte("many"))
	err := h.Run(streamrttest.Input{Topic: "clicks", Key: []byte("home")})
	stopped, ok := err.(*streamrttest.StoppedError)
	if !ok || stopped.Offset != 0 || stopped.Reason != `count of page "home": strconv.ParseInt: parsing "many": invalid syntax` {
		t.Fatalf("got %v, want the stage stopped at offset 0 by the bad count", err)
	}
	if n := len(h.Output("counts")); n != 0 {
		t.Errorf("emitted %d counts after the stop", n)
	}
}
