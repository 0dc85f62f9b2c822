package engine

import (
	"context"
	"sync"

	"github.com/streamrt/streamrt/runtime/internal/probe"
)

// updatePause pauses a task's fetching while it waits: everything while its
// stores restore, after the fail policy stopped it or while the disk is
// short of space (diskGate), its inputs while its tables catch up to where
// they ended at assignment; and resumes what it no longer waits for. It
// publishes the change to queries. Callers hold e.mu.
func (e *Engine) updatePause(t *task) {
	inputs, tables := map[string][]int32{}, map[string][]int32{}
	for _, topic := range t.stage.inputs {
		if !t.isTableTopic(topic) {
			inputs[topic] = []int32{t.partition}
		}
	}
	for _, tt := range t.stage.tables {
		if !tt.Global {
			tables[tt.Topic] = []int32{t.partition}
		}
	}
	switch {
	case t.restoring, t.stopped != nil, t.env.disk.applied:
		e.cl.PauseFetchPartitions(inputs)
		e.cl.PauseFetchPartitions(tables)
	case len(t.catchUp) > 0:
		e.cl.PauseFetchPartitions(inputs)
		e.cl.ResumeFetchPartitions(tables)
	default:
		e.cl.ResumeFetchPartitions(inputs)
		e.cl.ResumeFetchPartitions(tables)
	}
	e.publish()
}

// diskGate holds every writer of state while the state directory's disk
// is below its watermark: the tasks (their partitions paused and their
// queued records handed back), and the followers behind restores, standby
// copies and global tables (waiting before their next fetch). The zero
// diskGate holds nothing.
type diskGate struct {
	mu      sync.Mutex
	last    *probe.Disk   // as last measured
	changed chan struct{} // closed when the hold ends; nil while none
	// applied is whether the tasks are paused for the disk: the loop
	// follows last's reason at the start of each round. Guarded by the
	// engine's mu.
	applied bool
}

func (g *diskGate) set(d probe.Disk) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.last = &d
	switch {
	case d.Paused != "" && g.changed == nil:
		g.changed = make(chan struct{})
	case d.Paused == "" && g.changed != nil:
		close(g.changed)
		g.changed = nil
	}
}

// snapshot returns the disk as last measured, nil before the first
// measure.
func (g *diskGate) snapshot() *probe.Disk {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}

// wait blocks while the gate holds, or until ctx ends.
func (g *diskGate) wait(ctx context.Context) error {
	g.mu.Lock()
	ch := g.changed
	g.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetDisk publishes d, the state directory's disk as last measured, in
// Readiness. While d.Paused gives a reason, nothing that writes state goes
// on: the tasks' partitions pause and the records they had queued are
// fetched again later, and restores, standby copies and global tables wait
// before their next fetch; queries are answered all along. A d without a
// reason resumes them. Safe to call from any goroutine; it does not wait
// for the engine.
func (e *Engine) SetDisk(d probe.Disk) { e.env.disk.set(d) }

// holdForDisk pauses every task while the disk gate holds, handing back
// what they had queued, and resumes them when it no longer does. The loop
// calls it at the start of each round's processing. Callers hold e.mu.
func (e *Engine) holdForDisk() {
	d := e.env.disk.snapshot()
	held := d != nil && d.Paused != ""
	if held {
		for _, t := range e.tasks {
			if t.queue.len() > 0 {
				e.unqueue(t)
			}
		}
	}
	if held == e.env.disk.applied {
		return
	}
	e.env.disk.applied = held
	for _, t := range e.tasks {
		e.updatePause(t)
	}
}

// diskReadiness adds the disk to st, and its reason while it holds the
// tasks.
func (e *Engine) diskReadiness(st *probe.Readiness) {
	d := e.env.disk.snapshot()
	if d == nil {
		return
	}
	st.Disk = d
	if d.Paused != "" {
		st.Ready = false
		st.Reasons = append(st.Reasons, d.Paused)
	}
}
