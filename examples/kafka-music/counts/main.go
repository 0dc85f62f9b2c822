// Command counts is the second stage of the kafka-music example: it counts
// the plays of each song and sends every new count on to the charts.
//
// Input: the plays stage's repartition topic, keyed by song id, the song's
// JSON ({"id","album","artist","name","genre"}) as value, one record per
// play that counts. State: store song-plays, song id → plays as decimal
// text. Output: charts, which the configuration routes to the charts stage
// through a repartition topic; each song whose count changed in a batch is
// sent twice with its new count, {"id","artist","album","name","plays"}:
// keyed "genre:" and its lower-cased genre, for the genre's chart (a song
// without a genre has none), and keyed "top-five", for the overall chart.
//
// A batch reads each song's count once and writes it once, whatever the
// number of its plays in the batch. A record whose value is not a song
// fails alone and goes to the stage's error policy.
package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	streamrt "github.com/streamrt/streamrt/sdk/go"
)

// Chart keys, shared with the charts stage and the query routes.
const (
	genrePrefix = "genre:"
	overallKey  = "top-five"
)

var plays = streamrt.OpenStore("song-plays")

type song struct {
	Album  string `json:"album"`
	Artist string `json:"artist"`
	Name   string `json:"name"`
	Genre  string `json:"genre"`
}

// entry is a song on a chart, as the charts stage keeps it.
type entry struct {
	ID     int64  `json:"id"`
	Artist string `json:"artist"`
	Album  string `json:"album"`
	Name   string `json:"name"`
	Plays  int64  `json:"plays"`
}

// tally is one song's count during a batch.
type tally struct {
	key   []byte // the song id as text: the record's key
	id    int64  // the song id
	song  song   // as the song's latest play in the batch carried it
	plays int64
}

func init() {
	streamrt.HandleBatch(func(b *streamrt.Batch) error {
		tallies := make(map[string]*tally)
		var order []*tally // first play first, so that outputs follow the input
		for i, r := range b.All() {
			id, err := strconv.ParseInt(string(r.Key), 10, 64)
			if err != nil {
				b.Fail(i, fmt.Errorf("play keyed %q, not by a song id", r.Key))
				continue
			}
			var s song
			if err := json.Unmarshal(r.Value, &s); err != nil {
				b.Fail(i, fmt.Errorf("song %s is not JSON: %w", r.Key, err))
				continue
			}
			t := tallies[string(r.Key)]
			if t == nil {
				n, err := count(r.Key)
				if err != nil {
					return err
				}
				t = &tally{key: r.Key, id: id, plays: n}
				tallies[string(r.Key)] = t
				order = append(order, t)
			}
			t.song = s
			t.plays++
		}
		var num []byte
		for _, t := range order {
			num = strconv.AppendInt(num[:0], t.plays, 10)
			if err := plays.Put(t.key, num); err != nil {
				return err
			}
			if err := send(t); err != nil {
				return err
			}
		}
		return nil
	})
}

// count returns the song's plays before this batch.
func count(key []byte) (int64, error) {
	v, found, err := plays.Get(key)
	if err != nil || !found {
		return 0, err
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("plays of song %s: %w", key, err)
	}
	return n, nil
}

// send emits the song's new count to its genre's chart and the overall one.
func send(t *tally) error {
	e := entry{ID: t.id, Artist: t.song.Artist, Album: t.song.Album, Name: t.song.Name, Plays: t.plays}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if genre := strings.ToLower(t.song.Genre); genre != "" {
		if err := streamrt.Emit("charts", []byte(genrePrefix+genre), v); err != nil {
			return err
		}
	}
	return streamrt.Emit("charts", []byte(overallKey), v)
}

func main() {}
