package engine

import (
	"fmt"

	"github.com/streamrt/streamrt/runtime/internal/watch"
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
