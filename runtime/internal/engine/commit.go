package engine

import (
	"context"
	"fmt"
	"maps"
	"sync"
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
	if e.sess != nil {
		if err := e.sess.Begin(); err != nil {
			e.rewind()
			return fmt.Errorf("begin transaction: %w", err)
		}
	}
	if err := e.produce(ctx, pending); err != nil {
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

// produce sends the pending cycles' outputs and changelog records and waits
// until Kafka has them: acknowledged under at-least-once, committed in the
// transaction (with the input offsets the session tracks) under
// exactly_once.
func (e *Engine) produce(ctx context.Context, pending []*task) error {
	var (
		produceErr error
		errMu      sync.Mutex
	)
	done := func(r *kgo.Record, err error) {
		if err != nil {
			errMu.Lock()
			if produceErr == nil {
				produceErr = fmt.Errorf("produce to %q: %w", r.Topic, err)
			}
			errMu.Unlock()
		}
	}
	for _, t := range pending {
		c := &t.cycle
		c.compactChanges()
		perTopic := map[string]int{}
		for _, r := range c.outputs {
			perTopic[r.Topic]++
			e.cl.Produce(ctx, r, done)
		}
		for _, r := range c.changes {
			perTopic[r.Topic]++
			e.cl.Produce(ctx, r, done)
		}
		for topic, n := range perTopic {
			e.metrics.RecordsOut.WithLabelValues(t.stage.name, topic).Add(float64(n))
		}
	}
	if e.sess == nil {
		if err := e.cl.Flush(ctx); err != nil && produceErr == nil {
			produceErr = err
		}
		return produceErr
	}
	// Outputs, changelog records and the input offsets the session tracks
	// commit in one transaction, or none of them does.
	end := kgo.TryCommit
	if produceErr != nil {
		end = kgo.TryAbort
	}
	committed, err := e.sess.End(ctx, end)
	if err != nil {
		// End gave up (its deadline passed while the broker was away) and
		// left the transaction open: abort it, or no transaction could begin
		// again.
		e.abortTransaction()
	}
	if produceErr == nil && !committed {
		produceErr = fmt.Errorf("transaction aborted (a rebalance or a broker fault): %v", err)
	}
	return produceErr
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
		maps.Copy(t.refetch, t.cycle.start)
		t.drop()
		t.closeInstance() // its guest memory saw the dropped batches
	}
	e.applyRefetch()
}
