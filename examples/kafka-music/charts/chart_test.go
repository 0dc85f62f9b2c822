package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func song(id, plays int64) entry {
	return entry{ID: id, Artist: fmt.Sprint("artist ", id), Album: "album", Name: fmt.Sprint("song ", id), Plays: plays}
}

func ids(c chart) string {
	s := ""
	for _, e := range c {
		s += fmt.Sprintf("%d:%d ", e.ID, e.Plays)
	}
	return s
}

func TestUpdate(t *testing.T) {
	full := chart{song(1, 9), song(2, 7), song(3, 7), song(4, 5), song(5, 2)}
	for _, tc := range []struct {
		name   string
		before chart
		update entry
		want   string
	}{
		{"first song", nil, song(1, 1), "1:1 "},
		{"a new song goes in rank order", chart{song(1, 3), song(2, 1)}, song(3, 2), "1:3 3:2 2:1 "},
		{"ties go to the lower id", chart{song(4, 2)}, song(3, 2), "3:2 4:2 "},
		{"a song moves up", full, song(5, 8), "1:9 5:8 2:7 3:7 4:5 "},
		{"a song passes a tie", full, song(3, 8), "1:9 3:8 2:7 4:5 5:2 "},
		{"a sixth song pushes the fifth out", full, song(6, 3), "1:9 2:7 3:7 4:5 6:3 "},
		{"a sixth song below the fifth stays out", full, song(6, 1), "1:9 2:7 3:7 4:5 5:2 "},
		{"a sixth song tied with the fifth and a higher id stays out", full, song(6, 2), "1:9 2:7 3:7 4:5 5:2 "},
		{"a sixth song tied with the fifth and a lower id goes in", chart{song(1, 9), song(2, 7), song(3, 7), song(4, 5), song(7, 2)}, song(6, 2), "1:9 2:7 3:7 4:5 6:2 "},
		{"a replayed lower count is ignored", full, song(2, 6), "1:9 2:7 3:7 4:5 5:2 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(slices.Clone(tc.before).update(tc.update)); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// Fed a song's every count in any interleaving of songs, a chart ends as
// the best five of the final counts: the incremental top five is exact.
func TestUpdateIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		final := map[int64]int64{}
		var updates []entry
		for id := int64(1); id <= 12; id++ {
			n := r.Int64N(8)
			final[id] = n
			for p := int64(1); p <= n; p++ {
				updates = append(updates, song(id, p))
			}
		}
		// Shuffle, then put each song's counts back in order: counts of one
		// song arrive in order, different songs interleave at random.
		r.Shuffle(len(updates), func(i, j int) { updates[i], updates[j] = updates[j], updates[i] })
		next := map[int64]int64{}
		for i := range updates {
			next[updates[i].ID]++
			updates[i].Plays = next[updates[i].ID]
		}
		var c chart
		for _, u := range updates {
			c = c.update(u)
		}
		var want chart
		for id, n := range final {
			if n > 0 {
				want = append(want, song(id, n))
			}
		}
		slices.SortFunc(want, rank)
		want = want[:min(len(want), chartSize)]
		if ids(c) != ids(want) {
			t.Fatalf("round %d: chart %s, want %s", round, ids(c), ids(want))
		}
	}
}

func TestRows(t *testing.T) {
	stored, _ := json.Marshal(chart{song(2, 7), song(1, 3)})
	got, err := rows(stored)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"artist":"artist 2","album":"album","name":"song 2","plays":7},{"artist":"artist 1","album":"album","name":"song 1","plays":3}]`
	if string(got) != want {
		t.Errorf("rows:\n got %s\nwant %s", got, want)
	}
	if _, err := rows([]byte("{")); err == nil {
		t.Error("rows of a broken chart: no error")
	}
}
