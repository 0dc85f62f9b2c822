package engine

import (
	"context"
	"fmt"

	"github.com/streamrt/streamrt/runtime/internal/watch"
	"github.com/twmb/franz-go/pkg/kgo"
)

// SetWatch makes the engine publish every committed store change to h,
// for the clients watching the stores. Call it before Run.
func (e *Engine) SetWatch(h *watch.Hub) { e.env.watch = h }

// publishChanges hands the changes t's cycle just committed to the
// watches: its changelog records, which have their offsets now. It runs
// only while a watch is open, so that an unwatched app copies nothing.
func (e *Engine) publishChanges(t *task) {
	c := &t.cycle
	if len(c.changes) == 0 {
		return
	}
	changes := make([]watch.Change, 0, len(c.changes))
	for _, r := range c.changes {
		store := ""
		for _, st := range t.stage.stores {
			if st.Changelog == r.Topic {
				store = st.Name
				break
			}
		}
		changes = append(changes, watch.Change{Store: store, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Deleted: r.Value == nil})
	}
	e.env.watch.Publish(changes)
}

// endWatches ends the watches of t's stores: its partition moved away,
// and its changes are committed elsewhere from now on.
func (e *Engine) endWatches(t *task) {
	for _, st := range t.stage.stores {
		e.env.watch.Moved(st.Name, t.partition, fmt.Sprintf("partition %d of store %q moved away from this instance", t.partition, st.Name))
	}
}

// ReadChangelog hands fn the committed records of partition p of a store's
// changelog topic from offset from up to offset to (not included), in
// order, with a nil value for a tombstone: what a watch that resumes at
// from has not seen of a state at to. A compacted changelog may have
// dropped some of them: what it still holds is what there is.
func (e *Engine) ReadChangelog(ctx context.Context, topic string, p int32, from, to int64, fn func(offset int64, key, value []byte) error) error {
	f, err := e.env.follow(map[string]map[int32]int64{topic: {p: from}}, e.log, 0)
	if err != nil {
		return fmt.Errorf("read changelog %s partition %d: %w", topic, p, err)
	}
	defer f.close()
	for f.pos[topic][p] < to {
		err := f.poll(ctx, 0, func(r *kgo.Record) error {
			if r.Offset >= to || r.Attrs.IsControl() {
				return nil
			}
			return fn(r.Offset, r.Key, r.Value)
		})
		if err != nil {
			return fmt.Errorf("read changelog %s partition %d from %d to %d: %w", topic, p, from, to, err)
		}
	}
	return nil
}
