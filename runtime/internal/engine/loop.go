package engine

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// loop polls, processes and commits until ctx ends, then commits what it
// processed. A round holds e.mu from the poll's return to the commit's end;
// rebalances wait for a round with nothing uncommitted.
func (e *Engine) loop(ctx context.Context) error {
	lastCommit := time.Now()
	var pending bool
	for {
		wait := time.Second
		if pending {
			wait = max(time.Millisecond, e.cfg.CommitInterval-time.Since(lastCommit))
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		// Everything buffered, so that every task with records runs in
		// parallel; the client's fetch limits bound a round's size.
		fs := e.cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			e.metrics.BrokerErrors.Inc()
			e.log.Warn("fetch failed; retrying", "topic", topic, "partition", p, "err", err)
		})
		e.mu.Lock()
		if err := e.processFetches(ctx, fs); err != nil {
			e.mu.Unlock()
			return err
		}
		pending = e.anyPending()
		if pending && time.Since(lastCommit) >= e.cfg.CommitInterval {
			if err := e.commit(context.WithoutCancel(ctx)); err != nil {
				e.log.Error("commit failed; replaying the cycle", "err", err)
			}
			pending, lastCommit = false, time.Now()
		}
		e.mu.Unlock()
		if !pending {
			e.cl.AllowRebalance()
		}
	}
	// Stopping: commit what was processed.
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.anyPending() {
		if err := e.commit(context.WithoutCancel(ctx)); err != nil {
			e.log.Error("final commit failed; the last cycle will be replayed", "err", err)
		}
	}
	e.cl.AllowRebalance()
	return nil
}

// processFetches runs every task's new records, tasks in parallel. Callers
// hold e.mu.
func (e *Engine) processFetches(ctx context.Context, fs kgo.Fetches) error {
	work := map[*task][]*kgo.Record{}
	var firstErr error
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 || firstErr != nil {
			return
		}
		s := e.byTopic[p.Topic]
		if s == nil {
			return
		}
		t, err := e.task(ctx, s, p.Partition)
		if err != nil {
			firstErr = err
			return
		}
		if t.restoring {
			// Fetched before the pause took hold: fetch again after.
			if _, ok := t.refetch[p.Topic]; !ok {
				t.refetch[p.Topic] = p.Records[0].Offset
			}
			return
		}
		work[t] = append(work[t], p.Records...)
		last := p.Records[len(p.Records)-1]
		e.metrics.Lag.WithLabelValues(s.name, p.Topic, itoa(p.Partition)).Set(float64(p.HighWatermark - last.Offset - 1))
	})
	if firstErr != nil {
		return firstErr
	}
	var wg sync.WaitGroup
	var errMu sync.Mutex
	for t, recs := range work {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.process(recs); err != nil && !e.stopTask(t, err) {
				errMu.Lock()
				if firstErr == nil && ctx.Err() == nil {
					firstErr = err
				}
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	for t := range work {
		if t.stopped != nil {
			e.updatePause(t)
		}
		if t.catchingUp && len(t.catchUp) == 0 {
			t.catchingUp = false
			t.log.Info("tables caught up; processing inputs")
			e.updatePause(t)
		}
	}
	e.applyRefetch()
	return firstErr
}

// stopTask stops a task that the fail error policy stopped with err, and
// reports whether err was that; any other error is left to the caller.
func (e *Engine) stopTask(t *task, err error) bool {
	var te *TaskError
	if !errors.As(err, &te) {
		return false
	}
	t.log.Error("task stopped by its error policy (fail); it processes nothing more until restart", "err", err)
	t.stopped = err
	// Its cycle is dropped: rewind to where it started, so that neither a
	// commit nor a restart skips it. What it already sent stays sent under
	// at-least-once (its records come again after a restart); under
	// exactly_once the cycle's transaction must abort.
	if e.sess != nil && t.cycle.sent > 0 {
		e.abortCycle.Store(true)
	}
	maps.Copy(t.refetch, t.cycle.start)
	t.drop()
	e.metrics.TasksStopped.WithLabelValues(t.stage.name).Inc()
	return true
}

// applyRefetch moves consumption back to records that were fetched but not
// processed, from the polling goroutine as franz-go asks.
func (e *Engine) applyRefetch() {
	set := map[string]map[int32]kgo.EpochOffset{}
	for _, t := range e.tasks {
		for topic, off := range t.refetch {
			if set[topic] == nil {
				set[topic] = map[int32]kgo.EpochOffset{}
			}
			set[topic][t.partition] = kgo.EpochOffset{Epoch: -1, Offset: off}
		}
		clear(t.refetch)
	}
	if len(set) > 0 {
		e.cl.SetOffsets(set)
	}
}

// task returns the task of stage s for partition p, creating it the first
// time. Callers hold e.mu.
func (e *Engine) task(ctx context.Context, s *stage, p int32) (*task, error) {
	id := taskID{s.name, p}
	if t, ok := e.tasks[id]; ok {
		return t, nil
	}
	// A standby copy of the task becomes its state: stop tailing before
	// planning reads the checkpoints.
	e.stopStandby(id)
	t, err := newTask(ctx, e.env, e.log, s, p)
	if err != nil {
		return nil, err
	}
	e.tasks[id] = t
	return t, nil
}

func (e *Engine) anyPending() bool {
	for _, t := range e.tasks {
		if t.pending() {
			return true
		}
	}
	return false
}
