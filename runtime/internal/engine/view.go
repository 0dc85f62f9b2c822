package engine

import (
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/streamrt/streamrt/runtime/internal/assign"
	"github.com/streamrt/streamrt/runtime/internal/probe"
)

// view is what queries read of the engine: which partitions this instance
// can answer for, and what keeps it from being ready. The engine publishes
// a new view whole at every change, under its lock; queries load the latest
// one, so that none waits for a batch or a commit.
type view struct {
	assigned bool                      // the first assignment arrived
	answers  map[string]map[int32]bool // consumed topic → partitions owned here whose tasks are ready
	stopped  []string                  // tasks the fail policy stopped, with why
	waiting  []waitingTask
}

// waitingTask is a task that cannot answer yet.
type waitingTask struct {
	stage     string
	partition int32
	restoring bool          // else catching up its tables
	progress  *atomic.Int64 // per mille of the store being restored
}

// publish makes the current ownership and readiness the view. Callers hold
// e.mu.
func (e *Engine) publish() {
	v := &view{assigned: e.assigned, answers: map[string]map[int32]bool{}}
	for topic, parts := range e.owned {
		for p := range parts {
			if s := e.byTopic[topic]; s != nil {
				if t, ok := e.tasks[taskID{s.name, p}]; ok && t.waiting() {
					continue
				}
			}
			if v.answers[topic] == nil {
				v.answers[topic] = map[int32]bool{}
			}
			v.answers[topic][p] = true
		}
	}
	for _, t := range e.tasks {
		if t.stopped != nil {
			v.stopped = append(v.stopped, t.stopped.Error())
		}
		if t.waiting() {
			v.waiting = append(v.waiting, waitingTask{stage: t.stage.name, partition: t.partition, restoring: t.restoring, progress: &t.restoreProgress})
		}
	}
	sort.Strings(v.stopped)
	e.view.Store(v)
}

// Owns reports whether this instance is assigned partition p of topic and
// its task's state is restored, so that it can answer for the partition.
// It never waits for the engine.
func (e *Engine) Owns(topic string, p int32) bool { return e.view.Load().answers[topic][p] }

// Assignment returns the group's current task→instance map, as the
// balancer last learned it; invalid before the first assignment.
func (e *Engine) Assignment() assign.Assignment { return e.bal.Snapshot() }

// Readiness reports whether the engine has its assignment, which brokers it
// cannot reach, which tasks are restoring and which the fail policy
// stopped. It never waits for the engine.
func (e *Engine) Readiness() probe.Readiness {
	v := e.view.Load()
	st := probe.Readiness{Ready: v.assigned, Stopped: v.stopped, Lag: e.lag.Load()}
	if !st.Ready {
		st.Reasons = append(st.Reasons, "waiting for the consumer group assignment")
	}
	if down := e.health.reasons(); len(down) > 0 {
		st.Ready = false
		st.Reasons = append(st.Reasons, down...)
	}
	for _, w := range v.waiting {
		if w.restoring {
			st.Restoring = append(st.Restoring, fmt.Sprintf("stage %q partition %d (%.1f%% of the current store)", w.stage, w.partition, float64(w.progress.Load())/10))
		} else {
			st.Restoring = append(st.Restoring, fmt.Sprintf("stage %q partition %d (catching up its tables)", w.stage, w.partition))
		}
	}
	sort.Strings(st.Restoring)
	if len(st.Restoring) > 0 {
		st.Ready = false
		st.Reasons = append(st.Reasons, fmt.Sprintf("%d task(s) restoring their stores", len(st.Restoring)))
	}
	if len(st.Stopped) > 0 {
		st.Ready = false
		st.Reasons = append(st.Reasons, fmt.Sprintf("%d task(s) stopped by the fail error policy", len(st.Stopped)))
	}
	e.diskReadiness(&st)
	return st
}

// Settled reports whether the group is at rest as far as this instance can
// tell: its assignment is not being renegotiated, no partition is between
// owners (the first half of a cooperative rebalance), and every partition
// it names as this instance's is owned here with its task ready. Readiness
// does not wait for this, since a rebalance is routine; a server flipping
// an app to a new generation does, so that no query meets a hand-over.
func (e *Engine) Settled() bool {
	a := e.bal.Snapshot()
	self, ok := a.Self()
	if !ok || a.Rebalancing() {
		return false
	}
	for topic := range e.byTopic {
		for p := range e.cfg.Partitions {
			if _, owned := a.OwnerID(topic, p); !owned {
				return false
			}
		}
	}
	v := e.view.Load()
	for topic, parts := range self.Partitions {
		for _, p := range parts {
			if !v.answers[topic][p] {
				return false
			}
		}
	}
	return len(v.stopped) == 0
}
