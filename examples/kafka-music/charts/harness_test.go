package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/streamrt/streamrt/sdk/go/streamrttest"
)

func newHarness(t *testing.T) *streamrttest.Harness {
	return streamrttest.New(t, streamrttest.Config{
		Stage:  "charts",
		Stores: []string{"charts"},
		Tables: []string{"songs"},
	})
}

func update(chart string, id, plays int64) streamrttest.Input {
	v := fmt.Sprintf(`{"id":%d,"artist":"artist %d","album":"album","name":"song %d","plays":%d}`, id, id, id, plays)
	return streamrttest.Input{Topic: "charts-repartition", Key: []byte(chart), Value: []byte(v)}
}

func TestChartsKeepTheBestFiveAndAnswerQueries(t *testing.T) {
	h := newHarness(t)
	err := h.Run(
		update("top-five", 1, 3), update("top-five", 2, 9), update("genre:punk", 2, 9),
		update("top-five", 3, 1), update("top-five", 4, 5), update("top-five", 5, 2),
		update("top-five", 6, 4), update("top-five", 3, 7), // song 3 climbs, song 5 drops out
	)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := h.Get("charts", []byte("top-five"))
	var c chart
	if err := json.Unmarshal(stored, &c); err != nil {
		t.Fatal(err)
	}
	if got := ids(c); got != "2:9 3:7 4:5 6:4 1:3 " {
		t.Errorf("top five %s", got)
	}

	resp := h.Query(streamrttest.QueryRequest{Route: routeTopFive, Path: routeTopFive})
	if resp.Status != 200 || resp.ContentType != "application/json" ||
		!strings.HasPrefix(string(resp.Body), `[{"artist":"artist 2","album":"album","name":"song 2","plays":9},`) {
		t.Errorf("top five answered %d %s %s", resp.Status, resp.ContentType, resp.Body)
	}
	resp = h.Query(streamrttest.QueryRequest{Route: routeGenre, Path: "/kafka-music/charts/genre/Punk",
		Params: map[string]string{"genre": "Punk"}})
	if want := `[{"artist":"artist 2","album":"album","name":"song 2","plays":9}]`; resp.Status != 200 || string(resp.Body) != want {
		t.Errorf("punk answered %d %s, want %s", resp.Status, resp.Body, want)
	}
	resp = h.Query(streamrttest.QueryRequest{Route: routeGenre, Path: "/kafka-music/charts/genre/jazz",
		Params: map[string]string{"genre": "jazz"}})
	if want := `{"error":"no chart for genre \"jazz\""}`; resp.Status != 404 || string(resp.Body) != want {
		t.Errorf("jazz answered %d %s, want 404 %s", resp.Status, resp.Body, want)
	}
}

func TestSongAndGenreQueriesReadTheTable(t *testing.T) {
	h := newHarness(t)
	h.Set("songs", []byte("7"), []byte(`{"id":7,"album":"Fresh Fruit","artist":"Dead Kennedys","name":"Holiday in Cambodia","genre":"Punk"}`))
	h.Set("songs", []byte("8"), []byte(`{"id":8,"album":"A","artist":"B","name":"C","genre":"Jazz"}`))
	h.Set("songs", []byte("9"), []byte(`{"id":9,"album":"A","artist":"B","name":"D"}`))

	for _, c := range []struct {
		route, path string
		params      map[string]string
		status      int
		body        string
	}{
		{routeSong, "/kafka-music/song/7", map[string]string{"id": "7"}, 200,
			`{"artist":"Dead Kennedys","album":"Fresh Fruit","name":"Holiday in Cambodia"}`},
		{routeSong, "/kafka-music/song/1", map[string]string{"id": "1"}, 404, `{"error":"no song \"1\""}`},
		{routeGenres, routeGenres, nil, 200, `["jazz","punk"]`},
		{"/kafka-music/other", "/kafka-music/other", nil, 404,
			`{"error":"route /kafka-music/other is not served by the charts module"}`},
	} {
		resp := h.Query(streamrttest.QueryRequest{Route: c.route, Path: c.path, Params: c.params})
		if resp.Status != c.status || string(resp.Body) != c.body {
			t.Errorf("%s answered %d %s, want %d %s", c.path, resp.Status, resp.Body, c.status, c.body)
		}
	}
	resp := h.Query(streamrttest.QueryRequest{Route: routePage, Path: routePage})
	if resp.Status != 200 || resp.ContentType != "text/html; charset=utf-8" || len(resp.Body) != len(page) {
		t.Errorf("the page answered %d %s, %d bytes", resp.Status, resp.ContentType, len(resp.Body))
	}
}

func TestABadUpdateFailsAlone(t *testing.T) {
	h := newHarness(t)
	bad := streamrttest.Input{Topic: "charts-repartition", Key: []byte("top-five"), Value: []byte("7 plays")}
	if err := h.Run(update("top-five", 1, 1), bad, update("top-five", 2, 2)); err != nil {
		t.Fatal(err)
	}
	stored, _ := h.Get("charts", []byte("top-five"))
	var c chart
	if err := json.Unmarshal(stored, &c); err != nil {
		t.Fatal(err)
	}
	if got := ids(c); got != "2:2 1:1 " {
		t.Errorf("top five %s", got)
	}
	dead := h.DeadLetters()
	if len(dead) != 1 || string(dead[0].Value) != "7 plays" {
		t.Fatalf("dead letters %v, want the bad update", dead)
	}
	if msg, _ := dead[0].Header("streamrt.error"); !strings.HasPrefix(string(msg), `chart "top-five" update is not a song with its plays: `) {
		t.Errorf("dead letter error %q", msg)
	}
}
