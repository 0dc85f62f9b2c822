package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/streamrt/streamrt/runtime/internal/assign"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/twmb/franz-go/pkg/kgo"
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
	want := e.standbyTasks(self.Standbys)
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
	active := e.standbyTasks(self.Partitions)
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
}

// standbyTasks lists the tasks with stores that own partitions of tps.
func (e *Engine) standbyTasks(tps map[string][]int32) map[taskID]*stage {
	out := map[taskID]*stage{}
	for topic, ps := range tps {
		s := e.byTopic[topic]
		if s == nil || len(s.cfg.Stores) == 0 {
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
		for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
			err := e.tail(ctx, sb)
			if ctx.Err() != nil {
				return
			}
			sb.log.Error("standby failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
	}()
	return sb
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

// tail applies a standby task's changelog records as they come, until ctx
// ends. Each poll's records commit in one Pebble batch with the positions
// they reach, so the copy is always consistent with a checkpoint.
func (e *Engine) tail(ctx context.Context, sb *standby) error {
	p := sb.partition
	from := map[string]map[int32]kgo.Offset{}
	stores := map[string]state.Keyspace{} // by changelog topic
	for i, name := range sb.stage.cfg.Stores {
		topic := sb.stage.changelogs[i]
		next, found, err := e.db.Offset(changelogGroup, topic, p)
		if err != nil {
			return err
		}
		if !found {
			// Whatever is local is not known to match the changelog.
			if err := e.db.DropPartition(name, p); err != nil {
				return err
			}
		}
		ks, err := e.db.Keyspace(name, p)
		if err != nil {
			return err
		}
		stores[topic] = ks
		from[topic] = map[int32]kgo.Offset{p: kgo.NewOffset().At(next)}
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(e.cfg.Brokers...),
		kgo.ConsumePartitions(from),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // so that positions pass transaction markers
		kgo.FetchMaxBytes(64<<20),
		kgo.WithLogger(kgoLogger{e.log}),
		kgo.WithHooks(e.health),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(topic string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) {
				e.metrics.BrokerErrors.Inc()
				sb.log.Warn("standby fetch failed; retrying", "changelog", topic, "err", err)
			}
		})
		if fs.NumRecords() == 0 {
			continue
		}
		txn := e.db.NewWriteTxn()
		pos := map[string]int64{}
		applied := map[string]int{}
		var applyErr error
		fs.EachRecord(func(r *kgo.Record) {
			if applyErr != nil {
				return
			}
			pos[r.Topic] = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			if _, err := applyChange(txn, stores[r.Topic], r); err != nil {
				applyErr = err
				return
			}
			applied[r.Topic]++
		})
		for topic, next := range pos {
			if applyErr == nil {
				applyErr = txn.SetOffset(changelogGroup, topic, p, next)
			}
		}
		if applyErr == nil {
			applyErr = txn.Commit()
		}
		if applyErr != nil {
			txn.Discard()
			return fmt.Errorf("standby copy of stage %q partition %d: %w", sb.stage.name, p, applyErr)
		}
		for topic, n := range applied {
			e.metrics.StandbyRecords.WithLabelValues(stores[topic].Store()).Add(float64(n))
		}
	}
}

// applyChange applies one changelog record to ks: its value under its key,
// or a delete for a tombstone. It returns the record's key and value bytes.
func applyChange(txn *state.Txn, ks state.Keyspace, r *kgo.Record) (int, error) {
	if r.Value == nil {
		return len(r.Key), txn.Delete(ks, r.Key)
	}
	return len(r.Key) + len(r.Value), txn.Put(ks, r.Key, r.Value)
}
