package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// maxQueued bounds the records fetched and not yet processed, over all
// tasks: the loop polls for more only below it. A fetch can hold far more
// records than a commit interval processes (a compressed batch of small
// records is returned whole), and every queued record costs memory.
const maxQueued = 20_000

// loop polls, processes and commits until ctx ends, then commits what it
// processed. Each round queues what the client has fetched for each task,
// lets every task with records run in parallel until the cycle's commit is
// due, and commits when it is. A round holds e.mu from the poll's return to
// the commit's end; rebalances wait for a round with nothing uncommitted.
func (e *Engine) loop(ctx context.Context) error {
	cycleStart := time.Now()
	var pending bool
	for {
		due := cycleStart.Add(e.cfg.CommitInterval)
		queued := e.queued()
		if queued < maxQueued {
			// With records queued, take what is buffered and go on;
			// otherwise wait for records, or for the commit.
			wait := time.Second
			switch {
			case queued > 0:
				wait = 0
			case pending:
				wait = max(time.Millisecond, time.Until(due))
			}
			fs, err := e.poll(ctx, wait)
			if ctx.Err() != nil {
				break
			}
			if err != nil {
				return err
			}
			e.mu.Lock()
			err = e.dispatch(ctx, fs)
			e.mu.Unlock()
			if err != nil {
				return err
			}
		}
		e.mu.Lock()
		e.holdForDisk()
		if !pending {
			// A cycle starts with its first record.
			cycleStart, due = time.Now(), time.Now().Add(e.cfg.CommitInterval)
		}
		if err := e.runTasks(ctx, due); err != nil {
			e.mu.Unlock()
			if denied := e.env.denied(err, "producing", "WRITE", ""); denied != nil {
				return denied
			}
			return err
		}
		pending = e.anyPending()
		if pending && !time.Now().Before(due) {
			if err := e.commit(context.WithoutCancel(ctx)); err != nil {
				if denied := e.env.denied(err, "committing the cycle", "WRITE", ""); denied != nil {
					e.mu.Unlock()
					return denied
				}
				e.log.Error("commit failed; replaying the cycle", "err", err)
			}
			pending = false
		}
		e.releaseModules(context.WithoutCancel(ctx))
		e.releaseIdle()
		e.updateLag()
		for _, s := range e.stages {
			s.failures.flush(e.log, s.name)
		}
		e.mu.Unlock()
		// Followers (restores, standby copies, global tables) record the
		// ACL errors they meet; nothing they read can be trusted without
		// them.
		if err := e.env.failure(); err != nil {
			return err
		}
		if !pending {
			e.cl.AllowRebalance()
		}
	}
	// Stopping: commit what was processed; what was queued is fetched
	// again by whoever resumes.
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.tasks {
		e.unqueue(t)
	}
	e.applyRefetch()
	if e.anyPending() {
		if err := e.commit(context.WithoutCancel(ctx)); err != nil {
			e.log.Error("final commit failed; the last cycle will be replayed", "err", err)
		}
	}
	e.cl.AllowRebalance()
	return nil
}

// updateLag works out how many records of their inputs this instance's
// tasks have not processed: from each one's position (or, before it has
// processed any, its first record queued) to the high watermark of its
// latest fetch, per task and in all; and samples each task's processing
// rate. Callers hold e.mu.
func (e *Engine) updateLag() {
	var n int64
	now := time.Now()
	for _, t := range e.tasks {
		t.stats.sample(now)
		if len(t.hwm) == 0 {
			continue
		}
		var lag int64
		heads := t.queue.heads()
		for topic, hwm := range t.hwm {
			pos, ok := t.position[topic]
			if !ok {
				if pos, ok = heads[topic]; !ok {
					continue
				}
			}
			lag += max(hwm-pos, 0)
		}
		t.stats.lag.Store(lag)
		n += lag
	}
	e.lag.Store(n)
}

// releaseIdle closes the guest instance of every task of a stage with
// idle_release that has run no batch for that long and has nothing queued
// or uncommitted: its next record instantiates the module again. Callers
// hold e.mu.
func (e *Engine) releaseIdle() {
	now := time.Now()
	for _, t := range e.tasks {
		idle := t.stage.cfg.IdleRelease
		if idle <= 0 || t.inst == nil || t.pending() || t.queue.len() > 0 || now.Sub(t.lastBatch) < idle {
			continue
		}
		t.closeInstance()
		e.metrics.InstancesReleased.WithLabelValues(t.stage.name).Inc()
		t.log.Debug("guest instance released: idle", "idle_release", idle)
	}
}

// poll takes what the client has fetched, waiting up to wait for it (not
// at all with wait 0), and logs and counts fetch errors, which the client
// retries. An ACL that denies the group or an input is not retried: poll
// returns it.
func (e *Engine) poll(ctx context.Context, wait time.Duration) (kgo.Fetches, error) {
	pctx, cancel := context.WithTimeout(ctx, wait)
	if wait <= 0 {
		cancel() // a done context returns what is buffered, without waiting
	}
	fs := e.cl.PollFetches(pctx)
	cancel()
	var denied error
	fs.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		if d := e.env.denied(err, "consuming the app's inputs", "READ", topic); d != nil {
			denied = d
			return
		}
		e.metrics.BrokerErrors.Inc()
		e.log.Warn("fetch failed; retrying", "topic", topic, "partition", p, "err", err)
	})
	return fs, denied
}

// dispatch queues each fetched partition's records with their task.
// Callers hold e.mu.
func (e *Engine) dispatch(ctx context.Context, fs kgo.Fetches) error {
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
		t.hwm[p.Topic] = p.HighWatermark
		if t.restoring || t.stopped != nil {
			// Fetched before the pause took hold: fetch again after.
			if _, ok := t.refetch[p.Topic]; !ok {
				t.refetch[p.Topic] = p.Records[0].Offset
			}
			return
		}
		t.queue.push(p.Records)
		last := p.Records[len(p.Records)-1]
		e.metrics.Lag.WithLabelValues(s.name, p.Topic, itoa(p.Partition)).Set(float64(p.HighWatermark - last.Offset - 1))
	})
	e.applyRefetch()
	return firstErr
}

// runTasks runs every task with queued records, in parallel, until its
// queue is empty or deadline passes. Callers hold e.mu.
func (e *Engine) runTasks(ctx context.Context, deadline time.Time) error {
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
		ran      []*task
	)
	for _, t := range e.tasks {
		if t.queue.len() == 0 || t.stopped != nil {
			continue
		}
		ran = append(ran, t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.run(deadline); err != nil && !e.stopTask(t, err) {
				errMu.Lock()
				if firstErr == nil && ctx.Err() == nil {
					firstErr = err
				}
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, t := range ran {
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

// queued counts the records fetched and not processed yet.
func (e *Engine) queued() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, t := range e.tasks {
		n += t.queue.len()
	}
	return n
}

// unqueue gives a task's queued records back to be fetched again.
func (e *Engine) unqueue(t *task) {
	for topic, off := range t.queue.heads() {
		if _, ok := t.refetch[topic]; !ok {
			t.refetch[topic] = off
		}
	}
	t.queue.clear()
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
	t.rewind()
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
	t.stats.begin(time.Now())
	e.publish()
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
