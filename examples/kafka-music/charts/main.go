// Command charts is the last stage of the kafka-music example: it keeps the
// top five songs of every genre and overall, and serves them, the songs and
// a web page over HTTP.
//
// Input: the counts stage's repartition topic, keyed by chart ("genre:punk"
// or "top-five"), each value a song with its new count,
// {"id","artist","album","name","plays"}. State: store charts, chart key →
// the chart as a JSON array of such songs, best first (most plays, then
// lowest id), at most five.
//
// A batch reads each chart it touches once and writes it once. A record
// that is not a song with its count fails alone and goes to the stage's
// error policy.
package main

import (
	"encoding/json"
	"fmt"

	streamrt "github.com/streamrt/streamrt/sdk/go"
)

var charts = streamrt.OpenStore("charts")

func init() {
	streamrt.HandleBatch(func(b *streamrt.Batch) error {
		pending := make(map[string]chart)
		var order []string // first update first, for a stable write order
		for i, r := range b.All() {
			var e entry
			if err := json.Unmarshal(r.Value, &e); err != nil {
				b.Fail(i, fmt.Errorf("chart %q update is not a song with its plays: %w", r.Key, err))
				continue
			}
			c, ok := pending[string(r.Key)]
			if !ok {
				v, _, err := charts.Get(r.Key)
				if err != nil {
					return err
				}
				if c, err = decodeChart(v); err != nil {
					return fmt.Errorf("chart %q in store charts: %w", r.Key, err)
				}
				order = append(order, string(r.Key))
			}
			pending[string(r.Key)] = c.update(e)
		}
		for _, key := range order {
			v, err := json.Marshal(pending[key])
			if err != nil {
				return err
			}
			if err := charts.Put([]byte(key), v); err != nil {
				return err
			}
		}
		return nil
	})
}

func main() {}
