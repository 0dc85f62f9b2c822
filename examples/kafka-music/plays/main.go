// Command plays is the first stage of the kafka-music example: it keeps the
// plays that count and hands each one, with its song, to the counts stage.
//
// Input: topic play-events, keyed by region ("uk"), value
// {"song_id":N,"duration":MS}. Table: songs (global), keyed by the song id
// as decimal text, value {"id","album","artist","name","genre"}. Output:
// plays, which the configuration routes to the counts stage through a
// repartition topic: keyed by the song id, the song's JSON as value, so that
// every play of a song is counted by one task.
//
// A play shorter than 30 seconds does not count, and a play of a song the
// table does not hold is dropped (an inner join). A play that is not JSON,
// or has no song_id or duration, fails and goes to the stage's error policy.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	streamrt "github.com/streamrt/streamrt/sdk/go"
)

// minDuration is the shortest play that counts, in milliseconds.
const minDuration = 30_000

var (
	songs = streamrt.OpenTable("songs")
	id    []byte // the song id as text, reused: Lookup and Emit copy it
)

type play struct {
	SongID   *int64 `json:"song_id"`
	Duration *int64 `json:"duration"`
}

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		var p play
		if err := json.Unmarshal(r.Value, &p); err != nil {
			return fmt.Errorf("play event is not JSON: %w", err)
		}
		if p.SongID == nil || p.Duration == nil {
			return errors.New("play event needs song_id and duration")
		}
		if *p.Duration < minDuration {
			return nil
		}
		id = strconv.AppendInt(id[:0], *p.SongID, 10)
		song, err := songs.Lookup(id)
		if err != nil {
			return err
		}
		if song == nil {
			return nil // not in the catalogue: an inner join drops it
		}
		return streamrt.Emit("plays", id, song)
	})
}

func main() {}
