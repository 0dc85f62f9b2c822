package main

import (
	"strings"
	"testing"

	"github.com/streamrt/streamrt/sdk/go/streamrttest"
)

const songJSON = `{"id":7,"album":"Fresh Fruit","artist":"Dead Kennedys","name":"Holiday in Cambodia","genre":"Punk"}`

func newHarness(t *testing.T) *streamrttest.Harness {
	h := streamrttest.New(t, streamrttest.Config{
		Stage:   "plays",
		Tables:  []string{"songs"},
		Outputs: []string{"plays"},
	})
	h.Set("songs", []byte("7"), []byte(songJSON))
	return h
}

func TestPlaysThatCountCarryTheirSong(t *testing.T) {
	h := newHarness(t)
	err := h.Run(
		streamrttest.Input{Topic: "play-events", Key: []byte("uk"), Value: []byte(`{"song_id":7,"duration":30000}`), Timestamp: 10},
		streamrttest.Input{Topic: "play-events", Key: []byte("uk"), Value: []byte(`{"song_id":7,"duration":29999}`), Timestamp: 11},
		streamrttest.Input{Topic: "play-events", Key: []byte("de"), Value: []byte(`{"song_id":8,"duration":60000}`), Timestamp: 12},
		streamrttest.Input{Topic: "play-events", Key: []byte("de"), Value: []byte(`{"song_id":7,"duration":180000}`), Timestamp: 13},
	)
	if err != nil {
		t.Fatal(err)
	}
	got := h.Output("plays")
	if len(got) != 2 {
		t.Fatalf("%d plays out, want 2 (a short play and an unknown song are dropped)", len(got))
	}
	for i, ts := range []int64{10, 13} {
		if string(got[i].Key) != "7" || string(got[i].Value) != songJSON || got[i].Timestamp != ts {
			t.Errorf("play %d: %s=%s at %d, want song 7 at %d", i, got[i].Key, got[i].Value, got[i].Timestamp, ts)
		}
	}
	if d := h.DeadLetters(); len(d) != 0 {
		t.Errorf("%d dead letters, want none", len(d))
	}
}

func TestBadPlayEventsAreDeadLettered(t *testing.T) {
	h := newHarness(t)
	for i, v := range []string{`not json`, `{"song_id":7}`, `{"song_id":7,"duration":40000}`} {
		h.Feed("play-events", []byte("uk"), []byte(v), int64(i))
	}
	if n := len(h.Output("plays")); n != 1 {
		t.Errorf("%d plays out, want 1", n)
	}
	wants := []string{"play event is not JSON: ", "play event needs song_id and duration"}
	dead := h.DeadLetters()
	if len(dead) != len(wants) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(wants))
	}
	for i, want := range wants {
		msg, _ := dead[i].Header("streamrt.error")
		if !strings.HasPrefix(string(msg), want) {
			t.Errorf("dead letter %d: error %q, want %q", i, msg, want)
		}
	}
}
