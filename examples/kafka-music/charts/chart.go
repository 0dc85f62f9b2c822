package main

import (
	"cmp"
	"encoding/json"
	"slices"
)

// chartSize is how many songs a chart holds.
const chartSize = 5

// Chart keys, as the counts stage emits them and the query routes name
// them: a genre's chart is keyed by genrePrefix and the lower-cased genre,
// so that no genre can be mistaken for the overall chart.
const (
	genrePrefix = "genre:"
	overallKey  = "top-five"
)

// entry is a song on a chart with its plays, as the counts stage sends it
// and the store charts keeps it.
type entry struct {
	ID     int64  `json:"id"`
	Artist string `json:"artist"`
	Album  string `json:"album"`
	Name   string `json:"name"`
	Plays  int64  `json:"plays"`
}

// chart is a chart's songs, best first: most plays first, then lowest song
// id first.
type chart []entry

func rank(a, b entry) int {
	if c := cmp.Compare(b.Plays, a.Plays); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// update returns c with the song's new count. Counts only grow, so a song
// can only enter a chart by its own update, and keeping the best five of
// the songs on the chart and the updated one is exact. A count below the
// one on the chart is a replayed old one (at-least-once) and is ignored.
// update may modify c.
func (c chart) update(e entry) chart {
	i := slices.IndexFunc(c, func(x entry) bool { return x.ID == e.ID })
	switch {
	case i < 0:
		c = append(c, e)
	case e.Plays < c[i].Plays:
		return c
	default:
		c[i] = e
	}
	slices.SortStableFunc(c, rank)
	if len(c) > chartSize {
		c = c[:chartSize]
	}
	return c
}

// decodeChart decodes a chart as the store keeps it; nil is an empty one.
func decodeChart(v []byte) (chart, error) {
	if v == nil {
		return nil, nil
	}
	var c chart
	err := json.Unmarshal(v, &c)
	return c, err
}

// row is a chart's song as the query routes answer it.
type row struct {
	Artist string `json:"artist"`
	Album  string `json:"album"`
	Name   string `json:"name"`
	Plays  int64  `json:"plays"`
}

// rows renders a stored chart for the query routes: its songs in rank
// order, without their ids.
func rows(stored []byte) ([]byte, error) {
	c, err := decodeChart(stored)
	if err != nil {
		return nil, err
	}
	out := make([]row, len(c))
	for i, e := range c {
		out[i] = row{Artist: e.Artist, Album: e.Album, Name: e.Name, Plays: e.Plays}
	}
	return json.Marshal(out)
}
