package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// changelogGroup is the checkpoint group under which a store partition's
// changelog position is kept: changelogs belong to no consumer group.
const changelogGroup = ""

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

func (v *env) planTask(t *task, ends kadm.ListedOffsets) (plan, error) {
	pl := plan{useLocal: true}
	for _, topic := range t.stage.inputs {
		if _, found, err := v.db.Offset(v.group, topic, t.partition); err != nil {
			return pl, err
		} else if !found {
			pl.useLocal = false
		}
	}
	for _, st := range t.stage.stores {
		lo, ok := ends.Lookup(st.Changelog, t.partition)
		if !ok || lo.Err != nil {
			err := errors.New("no end offset listed")
			if ok {
				err = lo.Err
			}
			return pl, fmt.Errorf("changelog %s partition %d: %w", st.Changelog, t.partition, err)
		}
		next, found, err := v.db.Offset(changelogGroup, st.Changelog, t.partition)
		if err != nil {
			return pl, err
		}
		switch {
		case !found:
			pl.useLocal = false
			pl.restore = append(pl.restore, restoreRange{store: st.Name, topic: st.Changelog, from: -1, end: lo.Offset})
		case next < lo.Offset:
			pl.useLocal = false
			pl.restore = append(pl.restore, restoreRange{store: st.Name, topic: st.Changelog, from: next, end: lo.Offset})
		}
	}
	return pl, nil
}

// startRestore restores a task's stores in the background, retrying through
// broker faults until it completes or the task is revoked; its inputs stay
// paused meanwhile (updatePause). Callers hold e.mu.
func (e *Engine) startRestore(t *task, ranges []restoreRange) {
	ctx, cancel := context.WithCancel(e.runCtx)
	t.restoring, t.restoreCancel, t.restoreDone = true, cancel, make(chan struct{})
	t.restoreProgress.Store(0)
	e.metrics.RestoringTasks.Inc()
	go func() {
		defer close(t.restoreDone)
		defer e.metrics.RestoringTasks.Dec()
		if !retry(ctx, t.log, "restore failed; retrying", func() error { return e.env.restore(ctx, t, ranges) }) {
			return
		}
		e.mu.Lock()
		t.restoring = false
		e.updatePause(t)
		e.mu.Unlock()
	}()
}

// stopRestore cancels a task's restore, if any, and waits for it to end.
func (e *Engine) stopRestore(t *task) {
	if t.restoreCancel == nil {
		return
	}
	t.restoreCancel()
	<-t.restoreDone
	t.restoreCancel = nil
}

// restore replays the changelog ranges of a task's stores into local state,
// committing as it goes so that an interrupted restore resumes where it
// stopped, and reporting progress.
func (v *env) restore(ctx context.Context, t *task, ranges []restoreRange) error {
	for _, rr := range ranges {
		if err := v.restoreStore(ctx, t, rr); err != nil {
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

// eta is how long the rest of a long job should take at the pace so far:
// done of total units in elapsed. "unknown" before any progress.
func eta(done, total int64, elapsed time.Duration) string {
	if done <= 0 {
		return "unknown"
	}
	left := time.Duration(float64(elapsed) * float64(max(total-done, 0)) / float64(done))
	return left.Round(time.Second).String()
}

func (v *env) restoreStore(ctx context.Context, t *task, rr restoreRange) error {
	from := rr.from
	if from < 0 {
		// No checkpoint: whatever is local is not known to match the
		// changelog. Start over.
		if err := v.db.DropPartition(rr.store, t.partition); err != nil {
			return err
		}
		from = 0
	}
	ks, err := v.db.Keyspace(rr.store, t.partition)
	if err != nil {
		return err
	}
	if rr.end <= from {
		return v.checkpointChangelog(rr.topic, t.partition, rr.end)
	}
	total := rr.end - from
	log := t.log.With("store", rr.store, "changelog", rr.topic)
	log.Info("restoring store", "from", from, "to", rr.end, "records", total)
	f, err := v.follow(map[string]map[int32]int64{rr.topic: {t.partition: from}}, log, restoreFetchPartitionBytes)
	if err != nil {
		return err
	}
	defer f.close()
	load, err := v.db.NewLoad(ks)
	if err != nil {
		return err
	}
	defer load.Close()

	// pos is where the restore stands: a read_committed reader skips a
	// trailing aborted transaction's records and sees its marker past the
	// end listed at assignment, which also means the end is reached.
	pos := func() int64 { return min(f.pos[rr.topic][t.partition], rr.end) }
	start, lastReport, lastProgress := time.Now(), time.Now(), time.Now()
	var done, bytes int64
	for pos() < rr.end {
		n := 0
		err := f.poll(ctx, time.Second, func(r *kgo.Record) error {
			if r.Offset >= rr.end || r.Attrs.IsControl() {
				return nil
			}
			n++
			bytes += int64(len(r.Key) + len(r.Value))
			if r.Value == nil {
				return load.Delete(r.Key)
			}
			return load.Put(r.Key, r.Value)
		})
		if err != nil {
			return err
		}
		done += int64(n)
		v.metrics.RestoredRecords.WithLabelValues(rr.store).Add(float64(n))
		if n == 0 && pos() < rr.end {
			if time.Since(lastProgress) > 30*time.Second {
				lastProgress = time.Now()
				log.Warn("restore is making no progress; still waiting for the changelog", "at", pos(), "end", rr.end)
			}
			continue
		}
		lastProgress = time.Now()
		if load.Size() >= restoreChunkBytes {
			// The checkpoint commits after the chunk's table is ingested, not
			// atomically with it. A crash in between leaves the checkpoint
			// behind the data, and replaying the chunk again from there
			// leaves the same state: every change sets or deletes its key.
			if err := load.SetOffset(changelogGroup, rr.topic, t.partition, pos()); err != nil {
				return err
			}
			if err := load.Commit(ctx); err != nil {
				return err
			}
		}
		if time.Since(lastReport) >= time.Second {
			lastReport = time.Now()
			secs := time.Since(start).Seconds()
			log.Info("restoring store", "percent", fmt.Sprintf("%.1f", 100*float64(pos()-from)/float64(total)),
				"eta", eta(pos()-from, total, time.Since(start)),
				"records_per_sec", int64(float64(done)/secs), "mb_per_sec", fmt.Sprintf("%.1f", float64(bytes)/secs/1e6))
			t.restoreProgress.Store(int64(1000 * float64(pos()-from) / float64(total)))
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

// checkpointChangelog records that a store partition reflects its
// changelog up to next.
func (v *env) checkpointChangelog(topic string, p int32, next int64) error {
	txn := v.db.NewTxn()
	if err := txn.SetOffset(changelogGroup, topic, p, next); err != nil {
		txn.Discard()
		return err
	}
	return txn.Commit()
}
