package main

import (
	"encoding/json"
	"testing"

	"github.com/streamrt/streamrt/sdk/go/streamrttest"
)

const (
	punk = `{"id":7,"album":"Fresh Fruit","artist":"Dead Kennedys","name":"Holiday in Cambodia","genre":"Punk"}`
	bare = `{"id":9,"album":"A","artist":"B","name":"C"}`
)

func play(song, value string) streamrttest.Input {
	return streamrttest.Input{Topic: "plays-repartition", Key: []byte(song), Value: []byte(value)}
}

func TestPlaysAreCountedOncePerBatch(t *testing.T) {
	h := streamrttest.New(t, streamrttest.Config{
		Stage:   "counts",
		Stores:  []string{"song-plays"},
		Outputs: []string{"charts"},
	})
	h.Set("song-plays", []byte("7"), []byte("40"))
	if err := h.Run(play("7", punk), play("9", bare), play("7", punk)); err != nil {
		t.Fatal(err)
	}
	for song, want := range map[string]string{"7": "42", "9": "1"} {
		if v, _ := h.Get("song-plays", []byte(song)); string(v) != want {
			t.Errorf("song-plays %s = %q, want %q", song, v, want)
		}
	}
	// Song 7 to its genre's chart and the overall one; song 9, without a
	// genre, to the overall one only.
	want := []struct {
		key   string
		id    int64
		plays int64
	}{{"genre:punk", 7, 42}, {"top-five", 7, 42}, {"top-five", 9, 1}}
	got := h.Output("charts")
	if len(got) != len(want) {
		t.Fatalf("%d chart updates, want %d", len(got), len(want))
	}
	for i, w := range want {
		var e entry
		if err := json.Unmarshal(got[i].Value, &e); err != nil {
			t.Fatal(err)
		}
		if string(got[i].Key) != w.key || e.ID != w.id || e.Plays != w.plays {
			t.Errorf("update %d: %s %+v, want %s song %d with %d plays", i, got[i].Key, e, w.key, w.id, w.plays)
		}
	}
}

func TestABadPlayFailsAlone(t *testing.T) {
	h := streamrttest.New(t, streamrttest.Config{
		Stores:  []string{"song-plays"},
		Outputs: []string{"charts"},
		Policy:  streamrttest.Skip,
	})
	if err := h.Run(play("7", punk), play("x", punk), play("7", "{")); err != nil {
		t.Fatal(err)
	}
	if v, _ := h.Get("song-plays", []byte("7")); string(v) != "1" {
		t.Errorf("song 7 counted %q, want 1", v)
	}
	f := h.Failures()
	if len(f) != 2 || f[0].Offset != 1 || f[0].Error != `play keyed "x", not by a song id` || f[1].Offset != 2 {
		t.Errorf("failures %+v, want offsets 1 (bad key) and 2 (bad song)", f)
	}
	if n := len(h.Output("charts")); n != 2 {
		t.Errorf("%d chart updates, want 2", n)
	}
}
