package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// commitTimeout bounds one commit cycle; past it the cycle is replayed.
const commitTimeout = 30 * time.Second

// commit runs the commit protocol described in the package comment over
// every task's pending cycle. Callers hold e.mu and pass a context that
// shutdown does not cancel: a commit that started completes or fails whole.
func (e *Engine) commit(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	start := time.Now()
	var pending []*task
	for _, t := range e.tasks {
		if t.pending() {
			pending = append(pending, t)
		}
	}
	// What waits for the commit: changelog records and the records of
	// keep-latest outputs, each compacted to the last per key, and outputs
	// not sent yet.
	for _, t := range pending {
		c := &t.cycle
		c.compact()
		err := e.env.sender.send(ctx, t.stage, c.outputs[c.sent:])
		if err == nil {
			c.sent = len(c.outputs)
			err = e.env.sender.send(ctx, t.stage, c.latest)
		}
		if err == nil {
			err = e.env.sender.send(ctx, t.stage, c.changes)
		}
		if err != nil {
			e.rewind()
			return err
		}
	}
	if e.sess != nil {
		// The transaction commits the positions the client has handed
		// out: records queued and not processed go back to be fetched
		// again, or the transaction would skip them.
		for _, t := range e.tasks {
			e.unqueue(t)
		}
		e.applyRefetch()
	}
	abort := e.abortCycle.Swap(false)
	if err := e.env.sender.finish(ctx, abort, e.abortTransaction); err != nil {
		e.rewind()
		return err
	}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, t := range pending {
		c := &t.cycle
		// The changelog positions this state reflects commit with it.
		for topic, next := range c.reached() {
			if err := c.txn.SetOffset(changelogGroup, topic, t.partition, next); err != nil {
				e.rewind()
				return err
			}
		}
		if err := c.txn.Commit(); err != nil {
			e.rewind()
			return fmt.Errorf("stage %q partition %d: commit state: %w", t.stage.name, t.partition, err)
		}
		if e.env.watch.Active() {
			e.publishChanges(t)
		}
		for topic, next := range c.next {
			if offsets[topic] == nil {
				offsets[topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[topic][t.partition] = kgo.EpochOffset{Epoch: -1, Offset: next}
		}
		c.committed()
	}
	defer func() {
		e.metrics.Commits.Inc()
		e.metrics.CommitSeconds.Observe(time.Since(start).Seconds())
	}()
	if e.sess != nil {
		return nil // the transaction committed the offsets
	}
	// The local checkpoint is authoritative; the group's offsets only serve
	// an instance that has no state for a partition.
	e.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			e.log.Warn("committing offsets to the group failed; the local checkpoint stands", "err", err)
		}
	})
	return nil
}

// abortTransaction ends an open transaction with an abort, retrying until
// it succeeds or the engine stops: while a transaction is open, nothing can
// commit.
func (e *Engine) abortTransaction() {
	for backoff := time.Second; e.runCtx.Err() == nil; backoff = min(2*backoff, 10*time.Second) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(e.runCtx), commitTimeout)
		err := e.cl.AbortBufferedRecords(ctx)
		if err == nil {
			err = e.cl.EndTransaction(ctx, kgo.TryAbort)
		}
		cancel()
		if err == nil {
			return
		}
		e.metrics.BrokerErrors.Inc()
		e.log.Warn("aborting the open transaction failed; retrying", "err", err, "retry_in", backoff)
		time.Sleep(backoff)
	}
}

// rewind drops every task's uncommitted cycle and moves consumption back to
// where the cycle started, so the cycle is processed again.
func (e *Engine) rewind() {
	for _, t := range e.tasks {
		if !t.pending() {
			continue
		}
		t.rewind()
		t.closeInstance() // its guest memory saw the dropped batches
	}
	e.applyRefetch()
}
