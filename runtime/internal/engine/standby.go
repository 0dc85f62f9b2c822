package engine

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/streamrt/streamrt/runtime/internal/assign"
	"github.com/streamrt/streamrt/runtime/internal/state"
)

// standby keeps a warm copy of one task's stores on an instance that does
// not own the task: it tails the stores' changelog partitions into the local
// Pebble, with the changelog position in the same batch as the data, as a
// restore does. When the task is assigned here, the standby stops and
// planning finds the stores' checkpoints near the changelogs' ends, so only
// the tail is replayed.
//
// Co-partitioned tables are not kept warm: a task that takes over catches
// its tables up from their topics, as any new owner does.
type standby struct {
	stage     *stage
	partition int32
	log       *slog.Logger
	cancel    context.CancelFunc
	done      chan struct{}
}

// watchStandbys follows the balancer's snapshots and keeps the standby
// tasks it names for this instance, until ctx ends.
func (e *Engine) watchStandbys(ctx context.Context) {
	for {
		a, changed := e.bal.Watch()
		if a.Valid() && !a.Rebalancing() {
			e.reconcileStandbys(a)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// reconcileStandbys starts the standbys a names for this instance and stops
// those it no longer names. A stopped standby's copy is dropped, unless the
// task is active here now (it is being promoted: its copy is what makes the
// takeover quick).
func (e *Engine) reconcileStandbys(a assign.Assignment) {
	self, ok := a.Self()
	if !ok {
		return
	}
	want := e.tasksOf(self.Standbys)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping || e.runCtx.Err() != nil {
		return
	}
	for id, s := range want {
		if _, active := e.tasks[id]; active {
			continue
		}
		if _, running := e.standbys[id]; !running {
			e.standbys[id] = e.startStandby(s, id.partition)
		}
	}
	active := e.tasksOf(self.Partitions)
	for id, sb := range e.standbys {
		if _, ok := want[id]; ok {
			continue
		}
		e.stopStandby(id)
		_, promoted := active[id]
		if _, running := e.tasks[id]; !running && !promoted {
			sb.log.Info("no longer a standby; dropping the local copy")
			e.dropLocal(sb.stage, sb.partition, sb.log)
		}
	}
	e.publish()
}

// tasksOf lists the tasks with stores that own partitions of tps.
func (e *Engine) tasksOf(tps map[string][]int32) map[taskID]*stage {
	out := map[taskID]*stage{}
	for topic, ps := range tps {
		s := e.byTopic[topic]
		if s == nil || len(s.stores) == 0 {
			continue
		}
		for _, p := range ps {
			out[taskID{s.name, p}] = s
		}
	}
	return out
}

// isStandby reports whether the balancer's latest assignment makes this
// instance a standby of stage s's partition p.
func (e *Engine) isStandby(s *stage, p int32) bool {
	self, ok := e.bal.Snapshot().Self()
	if !ok {
		return false
	}
	for topic, ps := range self.Standbys {
		if e.byTopic[topic] == s && slices.Contains(ps, p) {
			return true
		}
	}
	return false
}

// startStandby starts tailing a task's changelogs. Callers hold e.mu.
func (e *Engine) startStandby(s *stage, p int32) *standby {
	ctx, cancel := context.WithCancel(e.runCtx)
	sb := &standby{stage: s, partition: p, log: e.log.With("stage", s.name, "partition", p, "standby", true), cancel: cancel, done: make(chan struct{})}
	e.metrics.StandbyTasks.Inc()
	sb.log.Info("keeping a standby copy")
	go func() {
		defer close(sb.done)
		defer e.metrics.StandbyTasks.Dec()
		retry(ctx, sb.log, "standby failed; retrying", func() error { return e.env.tail(ctx, sb) })
	}()
	return sb
}

// retry runs fn until it succeeds or ctx ends, backing off from 1s to 30s
// between failures and logging each with msg.
func retry(ctx context.Context, log *slog.Logger, msg string, fn func() error) bool {
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		err := fn()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		log.Error(msg, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
	}
}

// stopStandby stops the standby of id, if any, and waits until it has
// committed its last batch. Callers hold e.mu; the standby never takes it.
func (e *Engine) stopStandby(id taskID) {
	sb, ok := e.standbys[id]
	if !ok {
		return
	}
	delete(e.standbys, id)
	sb.cancel()
	<-sb.done
}

// stopStandbys stops every standby, for good: Run is ending.
func (e *Engine) stopStandbys() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopping = true
	for id := range e.standbys {
		e.stopStandby(id)
	}
}

// tail mirrors a standby task's changelogs until ctx ends, from the local
// checkpoints (from the start, after dropping what is local, where there is
// none).
func (v *env) tail(ctx context.Context, sb *standby) error {
	p := sb.partition
	from := map[string]map[int32]int64{}
	stores := map[string]state.Keyspace{} // by changelog topic
	for _, st := range sb.stage.stores {
		next, found, err := v.db.Offset(changelogGroup, st.Changelog, p)
		if err != nil {
			return err
		}
		if !found {
			// Whatever is local is not known to match the changelog.
			if err := v.db.DropPartition(st.Name, p); err != nil {
				return err
			}
		}
		ks, err := v.db.Keyspace(st.Name, p)
		if err != nil {
			return err
		}
		stores[st.Changelog] = ks
		from[st.Changelog] = map[int32]int64{p: next}
	}
	f, err := v.follow(from, sb.log, 0)
	if err != nil {
		return err
	}
	defer f.close()
	m := &mirror{
		f: f, group: changelogGroup,
		keyspace: func(topic string, _ int32) state.Keyspace { return stores[topic] },
		applied: func(topic string, n int) {
			v.metrics.StandbyRecords.WithLabelValues(stores[topic].Store()).Add(float64(n))
		},
	}
	for {
		if _, err := m.poll(ctx, 0); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("standby copy of stage %q partition %d: %w", sb.stage.name, p, err)
		}
	}
}
