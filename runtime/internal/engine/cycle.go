package engine

import (
	"fmt"

	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/twmb/franz-go/pkg/kgo"
)

// cycle is a task's uncommitted work: what its batches changed, emitted and
// consumed since the task last committed. The task adds to it while it
// processes; the commit produces its records and commits its transaction,
// then starts the next cycle (committed) or drops this one (drop). One
// goroutine uses a cycle at a time: the task's while it processes, the
// engine's while it commits.
type cycle struct {
	txn     *state.Txn    // state changes and input checkpoints; nil when nothing is pending
	outputs []*kgo.Record // outputs and dead letters, in emit order
	sent    int           // outputs[:sent] are with the producer
	latest  []*kgo.Record // records of keep-latest outputs, held for the commit
	changes []*kgo.Record // changelog records, in change order
	arena   arena         // the keys and values of outputs and changes
	// next holds, per input topic, the offset after the last record
	// processed; it is checkpointed with the state.
	next map[string]int64
	// start holds, per input topic, the offset the cycle started at: where
	// consumption rewinds when the cycle is dropped.
	start map[string]int64
	seen  map[string]struct{} // scratch of compactChanges
}

func newCycle() cycle {
	return cycle{next: map[string]int64{}, start: map[string]int64{}, seen: map[string]struct{}{}}
}

// pending reports whether the cycle holds work not yet committed.
func (c *cycle) pending() bool { return c.txn != nil }

// begin opens the cycle's transaction, if it is not open yet.
func (c *cycle) begin(db *state.DB) {
	if c.txn == nil {
		c.txn = db.NewTxn()
	}
}

// consumed notes that r was fetched for the cycle, so that a dropped cycle
// rewinds to its first record.
func (c *cycle) consumed(r *kgo.Record) {
	if _, ok := c.start[r.Topic]; !ok {
		c.start[r.Topic] = r.Offset
	}
}

// advance records that r is done: its offset commits with the cycle.
func (c *cycle) advance(r *kgo.Record) { c.next[r.Topic] = r.Offset + 1 }

// checkpoint writes the next input offsets into the cycle's transaction,
// once per topic rather than once per record: the batch stays small, and
// the offsets commit atomically with the state they describe.
func (c *cycle) checkpoint(group string, partition int32) error {
	for topic, next := range c.next {
		if err := c.txn.SetOffset(group, topic, partition, next); err != nil {
			return fmt.Errorf("checkpoint %s: %w", topic, err)
		}
	}
	return nil
}

// compact keeps, of the cycle's changelog records and the records of its
// keep-latest outputs, only the last one per key and topic: the changelog
// is compacted anyway, and a hot key changed a thousand times in one cycle
// needs one record, not a thousand. Records keep their order.
func (c *cycle) compact() {
	c.changes = c.lastPerKey(c.changes)
	c.latest = c.lastPerKey(c.latest)
}

// lastPerKey compacts rs in place to the last record per topic and key;
// records with a null key are all kept.
func (c *cycle) lastPerKey(rs []*kgo.Record) []*kgo.Record {
	clear(c.seen)
	w := len(rs)
	for i := len(rs) - 1; i >= 0; i-- {
		r := rs[i]
		if r.Key != nil {
			k := r.Topic + "\x00" + string(r.Key)
			if _, dup := c.seen[k]; dup {
				continue
			}
			c.seen[k] = struct{}{}
		}
		w--
		rs[w] = r
	}
	n := copy(rs, rs[w:])
	clear(rs[n:])
	return rs[:n]
}

// reached returns, per changelog topic, the offset after the cycle's last
// change in it: how far the state this cycle commits reflects the
// changelog. Call it once the changes are acknowledged and have offsets.
func (c *cycle) reached() map[string]int64 {
	out := map[string]int64{}
	for _, r := range c.changes {
		if r.Offset+1 > out[r.Topic] {
			out[r.Topic] = r.Offset + 1
		}
	}
	return out
}

// committed starts the next cycle once this one's records are acknowledged
// and its transaction committed.
func (c *cycle) committed() {
	c.txn = nil
	c.truncate()
	c.arena.chunk = c.arena.chunk[:0] // every record that used it was acknowledged
}

// drop discards the cycle's work.
func (c *cycle) drop() {
	if c.txn != nil {
		c.txn.Discard()
		c.txn = nil
	}
	c.truncate()
}

func (c *cycle) truncate() {
	clear(c.outputs)
	clear(c.latest)
	clear(c.changes)
	c.outputs, c.latest, c.changes, c.sent = c.outputs[:0], c.latest[:0], c.changes[:0], 0
	clear(c.next)
	clear(c.start)
}

// arena hands out copies of guest bytes from large chunks, so that emitting a
// record costs no allocation per key and value. A chunk is reused only once
// every record that refers to it is acknowledged (cycle.committed): the
// producer holds the copies until then.
type arena struct{ chunk []byte }

const arenaChunk = 64 << 10

func (a *arena) copy(b []byte) []byte {
	if b == nil {
		return nil
	}
	if len(b) > arenaChunk/4 {
		return append([]byte(nil), b...)
	}
	if cap(a.chunk)-len(a.chunk) < len(b) {
		a.chunk = make([]byte, 0, arenaChunk)
	}
	n := len(a.chunk)
	a.chunk = append(a.chunk, b...)
	return a.chunk[n:len(a.chunk):len(a.chunk)]
}
