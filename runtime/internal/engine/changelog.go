package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ChangelogTopic names the compacted topic that backs a store: every
// committed change to the store's partition p is in partition p of it, so a
// store can be rebuilt anywhere from its changelog.
func ChangelogTopic(app, store string) string { return app + "-" + store + "-changelog" }

// changelogGroup is the checkpoint group under which a store partition's
// changelog position is kept: changelogs belong to no consumer group.
const changelogGroup = ""

// partitioner sends changelog records to the partition their task sets and
// everything else by Kafka's default rule (murmur2 of the key).
type partitioner struct {
	manual map[string]bool
	byKey  kgo.Partitioner
}

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if p.manual[topic] {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return p.byKey.ForTopic(topic)
}

// compactChanges keeps, of the changelog records in rs, only the last one per
// key and topic: the changelog is compacted anyway, and a hot key changed a
// thousand times in one cycle needs one record, not a thousand. Other
// records keep their places.
func (e *Engine) compactChanges(rs []*kgo.Record, seen map[string]struct{}) []*kgo.Record {
	clear(seen)
	out := rs[:0:0]
	for i := len(rs) - 1; i >= 0; i-- {
		r := rs[i]
		if e.changelogs[r.Topic] {
			k := r.Topic + "\x00" + string(r.Key)
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
		}
		out = append(out, r)
	}
	// Reverse back into produce order.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// plan decides, for a task just assigned here, where its inputs resume and
// whether its stores need restoring. Local input checkpoints are used only
// when every store's local state is as far as its changelog: otherwise
// another instance moved the state on (or this one lost its state), and the
// group's committed offsets are the ones that match the changelog.
type plan struct {
	useLocal bool
	restore  []restoreRange // stores to replay
}

type restoreRange struct {
	store, topic string
	from, end    int64 // replay [from, end); from -1 means from the start, dropping local data first
}

func (e *Engine) planTask(ctx context.Context, t *task, ends kadm.ListedOffsets) (plan, error) {
	pl := plan{useLocal: true}
	for _, topic := range t.stage.cfg.Inputs {
		if _, found, err := e.db.Offset(e.group, topic, t.partition); err != nil {
			return pl, err
		} else if !found {
			pl.useLocal = false
		}
	}
	for _, store := range t.stage.cfg.Stores {
		topic := ChangelogTopic(e.cfg.App, store)
		lo, ok := ends.Lookup(topic, t.partition)
		if !ok || lo.Err != nil {
			err := errors.New("no end offset listed")
			if ok {
				err = lo.Err
			}
			return pl, fmt.Errorf("changelog %s partition %d: %w", topic, t.partition, err)
		}
		next, found, err := e.db.Offset(changelogGroup, topic, t.partition)
		if err != nil {
			return pl, err
		}
		switch {
		case !found:
			pl.useLocal = false
			pl.restore = append(pl.restore, restoreRange{store: store, topic: topic, from: -1, end: lo.Offset})
		case next < lo.Offset:
			pl.useLocal = false
			pl.restore = append(pl.restore, restoreRange{store: store, topic: topic, from: next, end: lo.Offset})
		}
	}
	return pl, nil
}

// restore replays the changelog ranges of a task's stores into local state,
// committing as it goes so that an interrupted restore resumes where it
// stopped, and reporting progress.
func (e *Engine) restore(ctx context.Context, t *task, ranges []restoreRange) error {
	for _, rr := range ranges {
		if err := e.restoreStore(ctx, t, rr); err != nil {
			return fmt.Errorf("restore store %q partition %d from %s: %w", rr.store, t.partition, rr.topic, err)
		}
	}
	return nil
}

// restoreChunkBytes is how much of a changelog, in key and value bytes, a
// restore buffers before writing it as one sorted sstable for Pebble to
// ingest (state.Load); with its checkpoint, a chunk is the unit an
// interrupted restore resumes from. The table is written in the background
// while the next chunk is read, so only the last one's write adds to the
// restore's time, and the chunk is small enough for that to be short. Much
// smaller, and a changelog in no key order would give Pebble many small
// overlapping L0 tables to compact. Each restoring task holds two chunks in
// memory. BENCHMARKS.md §9 has the measurements.
const restoreChunkBytes = 4 << 20

// restoreFetchPartitionBytes caps each fetch of the one partition a restore
// reads. Franz-go's default, 1 MiB, made restores slower: with a quarter of
// it, each of the several restores running at once decodes and holds less
// at a time, and it spends less CPU per record (BENCHMARKS.md §9).
const restoreFetchPartitionBytes = 256 << 10

func (e *Engine) restoreStore(ctx context.Context, t *task, rr restoreRange) error {
	from := rr.from
	if from < 0 {
		// No checkpoint: whatever is local is not known to match the
		// changelog. Start over.
		if err := e.db.DropPartition(rr.store, t.partition); err != nil {
			return err
		}
		from = 0
	}
	ks, err := e.db.Keyspace(rr.store, t.partition)
	if err != nil {
		return err
	}
	total := rr.end - from
	log := t.log.With("store", rr.store, "changelog", rr.topic)
	if total <= 0 {
		return e.checkpoint(t, rr, rr.end)
	}
	log.Info("restoring store", "from", from, "to", rr.end, "records", total)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(e.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{rr.topic: {t.partition: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers count as offsets: seeing them is how the
		// restore knows it reached the end of a transactional log.
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64<<20),
		kgo.FetchMaxPartitionBytes(restoreFetchPartitionBytes),
		kgo.WithLogger(kgoLogger{e.log}),
		kgo.WithHooks(e.health),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	start, lastReport := time.Now(), time.Now()
	var done, bytes int64
	load, err := e.db.NewLoad(ks)
	if err != nil {
		return err
	}
	defer load.Close()
	pos := from
	lastProgress := time.Now()
	for pos < rr.end {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = err
			}
		})
		if ferr != nil {
			log.Warn("restore fetch failed; retrying", "err", ferr)
			e.metrics.BrokerErrors.Inc()
		}
		n := 0
		var applyErr error
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= rr.end {
				// Past the end listed at assignment: a read_committed
				// reader skips a trailing aborted transaction's records
				// and sees its marker here, so the end is reached.
				pos = max(pos, rr.end)
				return
			}
			if applyErr != nil {
				return
			}
			pos = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			if r.Value == nil {
				applyErr = load.Delete(r.Key)
			} else {
				applyErr = load.Put(r.Key, r.Value)
			}
			n++
			bytes += int64(len(r.Key) + len(r.Value))
		})
		if applyErr != nil {
			return applyErr
		}
		done += int64(n)
		e.metrics.RestoredRecords.WithLabelValues(rr.store).Add(float64(n))
		if n == 0 && pos < rr.end {
			if time.Since(lastProgress) > 30*time.Second {
				lastProgress = time.Now()
				log.Warn("restore is making no progress; still waiting for the changelog", "at", pos, "end", rr.end)
			}
			continue
		}
		lastProgress = time.Now()
		if load.Size() >= restoreChunkBytes {
			// The checkpoint commits after the chunk's table is ingested, not
			// atomically with it. A crash in between leaves the checkpoint
			// behind the data, and replaying the chunk again from there
			// leaves the same state: every change sets or deletes its key.
			if err := load.SetOffset(changelogGroup, rr.topic, t.partition, pos); err != nil {
				return err
			}
			if err := load.Commit(ctx); err != nil {
				return err
			}
		}
		if time.Since(lastReport) >= time.Second {
			lastReport = time.Now()
			secs := time.Since(start).Seconds()
			log.Info("restoring store", "percent", fmt.Sprintf("%.1f", 100*float64(pos-from)/float64(total)),
				"records_per_sec", int64(float64(done)/secs), "mb_per_sec", fmt.Sprintf("%.1f", float64(bytes)/secs/1e6))
			t.restoreProgress.Store(int64(1000 * float64(pos-from) / float64(total)))
		}
	}
	if err := load.SetOffset(changelogGroup, rr.topic, t.partition, rr.end); err != nil {
		return err
	}
	if err := load.Commit(ctx); err != nil {
		return err
	}
	if err := load.Wait(); err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	log.Info("restored store", "records", done, "took", time.Since(start).Round(time.Millisecond),
		"records_per_sec", int64(float64(done)/secs), "mb_per_sec", fmt.Sprintf("%.1f", float64(bytes)/secs/1e6))
	return nil
}

func (e *Engine) checkpoint(t *task, rr restoreRange, next int64) error {
	txn := e.db.NewTxn()
	if err := txn.SetOffset(changelogGroup, rr.topic, t.partition, next); err != nil {
		txn.Discard()
		return err
	}
	return txn.Commit()
}
