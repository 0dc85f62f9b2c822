package main

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	streamrt "github.com/streamrt/streamrt/sdk/go"
)

// The routes this module serves, by their path patterns as streamrt.yaml
// declares them: a query names its route by its pattern.
const (
	routeTopFive = "/kafka-music/charts/top-five"
	routeGenre   = "/kafka-music/charts/genre/{genre}"
	routeSong    = "/kafka-music/song/{id}"
	routeGenres  = "/kafka-music/genres"
	routePage    = "/kafka-music/"
)

// HTTP statuses, named here: importing net/http for its constants would
// add two megabytes to this 3.7 MB module.
const (
	statusOK       = 200
	statusNotFound = 404
	statusError    = 500
)

// page is the web page at /kafka-music/, which shows the charts live.
//
//go:embed index.html
var page []byte

var songs = streamrt.OpenTable("songs")

func init() {
	streamrt.HandleQuery(serve)
}

// serve answers the app's routes. Charts are read from store charts at the
// partition the host routed the query to, which owns the chart's key;
// songs from the global table songs, which every instance holds whole.
func serve(q *streamrt.Query) streamrt.Response {
	switch q.Route {
	case routeTopFive:
		return chartAnswer(overallKey, "no plays yet")
	case routeGenre:
		// The route's key is "genre:{genre|lower}": the host routed the
		// query to the partition of the lower-cased genre's chart.
		genre := strings.ToLower(q.Param("genre"))
		return chartAnswer(genrePrefix+genre, fmt.Sprintf("no chart for genre %q", genre))
	case routeSong:
		return songAnswer(q.Param("id"))
	case routeGenres:
		return genresAnswer()
	case routePage:
		if q.Path != routePage {
			return errorAnswer(statusNotFound, fmt.Sprintf("no page %s", q.Path))
		}
		return streamrt.Response{Status: statusOK, ContentType: "text/html; charset=utf-8", Body: page}
	}
	return errorAnswer(statusNotFound, fmt.Sprintf("route %s is not served by the charts module", q.Route))
}

// chartAnswer answers the chart under key, or 404 with missing.
func chartAnswer(key, missing string) streamrt.Response {
	v, found, err := charts.Get([]byte(key))
	if err != nil {
		return errorAnswer(statusError, err.Error())
	}
	if !found {
		return errorAnswer(statusNotFound, missing)
	}
	body, err := rows(v)
	if err != nil {
		return errorAnswer(statusError, fmt.Sprintf("chart %q: %v", key, err))
	}
	return jsonAnswer(body)
}

// songAnswer answers the song with the id, without its id and genre.
func songAnswer(id string) streamrt.Response {
	v, err := songs.Lookup([]byte(id))
	if err != nil {
		return errorAnswer(statusError, err.Error())
	}
	if v == nil {
		return errorAnswer(statusNotFound, fmt.Sprintf("no song %q", id))
	}
	var s struct {
		Artist string `json:"artist"`
		Album  string `json:"album"`
		Name   string `json:"name"`
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return errorAnswer(statusError, fmt.Sprintf("song %q: %v", id, err))
	}
	body, err := json.Marshal(s)
	if err != nil {
		return errorAnswer(statusError, err.Error())
	}
	return jsonAnswer(body)
}

// genresAnswer answers the genres of every song, lower-cased and sorted,
// for the web page. It reads the whole table: a catalogue is small.
func genresAnswer() streamrt.Response {
	it := songs.Range(nil, nil)
	defer it.Close()
	genres := []string{}
	for it.Next() {
		var s struct {
			Genre string `json:"genre"`
		}
		if json.Unmarshal(it.Value(), &s) != nil || s.Genre == "" {
			continue // a song without a genre is on no genre chart
		}
		if g := strings.ToLower(s.Genre); !slices.Contains(genres, g) {
			genres = append(genres, g)
		}
	}
	if err := it.Err(); err != nil {
		return errorAnswer(statusError, err.Error())
	}
	slices.Sort(genres)
	body, err := json.Marshal(genres)
	if err != nil {
		return errorAnswer(statusError, err.Error())
	}
	return jsonAnswer(body)
}

func jsonAnswer(body []byte) streamrt.Response {
	return streamrt.Response{Status: statusOK, ContentType: "application/json", Body: body}
}

func errorAnswer(status int, msg string) streamrt.Response {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	return streamrt.Response{Status: status, ContentType: "application/json", Body: body}
}
