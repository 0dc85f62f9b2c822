package engine

import "github.com/twmb/franz-go/pkg/kgo"

// Fence holds back a generation of an app that is being rebuilt from its
// inputs beside the generation that serves, so that each input offset's
// outputs come from exactly one generation: the rebuilding one may process
// an input partition only up to where the serving one has committed
// (Limit), and its outputs are dropped until the flip, and after it for the
// offsets the serving generation processed (Emits). Outputs to the app's
// own repartition topics are not dropped, since its later stages need
// them; they carry ReplayHeader instead, and a later stage drops the
// outputs of a record that has it. A Fence is called from the tasks'
// goroutines and must be safe for concurrent use.
type Fence interface {
	// Limit returns the offset below which partition p of an input topic
	// may be processed, and whether there is a limit at all.
	Limit(topic string, p int32) (next int64, limited bool)
	// Emits reports whether the outputs of the input record at offset of
	// partition p of topic are produced.
	Emits(topic string, p int32, offset int64) bool
}

// ReplayHeader marks a record written to a repartition topic while its
// input was replayed, whose own outputs are dropped in turn.
const ReplayHeader = "streamrt.replay"

// SetFence makes the engine hold its processing and outputs behind f (see
// Fence); nil lifts it. Call it before Run.
func (e *Engine) SetFence(f Fence) { e.env.fence = f }

// held reports whether r is beyond the fence's limit: it must wait.
func (t *task) held(r *kgo.Record) bool {
	f := t.env.fence
	if f == nil || t.env.isInternal(r.Topic) {
		return false
	}
	if _, input := t.stage.topicIndex[r.Topic]; !input {
		return false // a table update
	}
	next, limited := f.Limit(r.Topic, r.Partition)
	return limited && r.Offset >= next
}

// replayed reports whether the outputs of r are dropped: it was processed
// before, by the generation that serves.
func (t *task) replayed(r *kgo.Record) bool {
	f := t.env.fence
	if f == nil {
		return false
	}
	if t.env.isInternal(r.Topic) {
		for _, h := range r.Headers {
			if h.Key == ReplayHeader {
				return true
			}
		}
		return false
	}
	return !f.Emits(r.Topic, r.Partition, r.Offset)
}

var replayHeader = kgo.RecordHeader{Key: ReplayHeader, Value: []byte("1")}
