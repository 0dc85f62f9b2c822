package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// prepare runs when partitions are newly assigned, before fetching starts:
// it creates their tasks, decides where each resumes (planTask), and starts
// restoring the stores that are behind their changelogs, with the task's
// inputs paused until the restore is done.
func (e *Engine) prepare(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	select {
	case <-e.clientSet:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if e.gate != nil {
		if err := e.gate(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("the assignment gate failed; planning the new tasks anyway", "err", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var tasks []*task
	var changelogs []string
	for topic, parts := range offsets {
		s := e.byTopic[topic]
		if s == nil {
			continue
		}
		for p := range parts {
			t, err := e.task(e.runCtx, s, p)
			if err != nil {
				return nil, err
			}
			if !t.restoring && !slices.Contains(tasks, t) {
				tasks = append(tasks, t)
				for _, st := range s.stores {
					changelogs = append(changelogs, st.Changelog)
				}
				for _, tt := range s.tables {
					if !tt.Global {
						changelogs = append(changelogs, tt.Topic)
					}
				}
			}
		}
	}
	var ends kadm.ListedOffsets
	if len(changelogs) > 0 {
		var err error
		if ends, err = e.listEnds(ctx, changelogs); err != nil {
			return nil, err
		}
	}
	for _, t := range tasks {
		pl, err := e.env.planTask(t, ends)
		if err != nil {
			if state.IsCorrupt(err) {
				// Retrying reads the same damaged table: stop, and let
				// the next start rebuild the state from the changelogs.
				e.env.fail(fmt.Errorf("stage %q partition %d: the local state is corrupt; restart the instance to rebuild it from the changelogs: %w", t.stage.name, t.partition, err))
			}
			return nil, err
		}
		if pl.useLocal {
			for _, topic := range t.stage.inputs {
				if next, found, err := e.db.Offset(e.group, topic, t.partition); err == nil && found && offsets[topic] != nil {
					offsets[topic][t.partition] = kgo.NewOffset().At(next)
				}
			}
		}
		// A co-partitioned table resumes from its local checkpoint, or from
		// the start: its topic is its changelog, and no other instance's
		// progress in the group means anything for the state here.
		for _, tt := range t.stage.tables {
			if tt.Global || offsets[tt.Topic] == nil {
				continue
			}
			next, found, err := e.db.Offset(e.group, tt.Topic, t.partition)
			if err != nil {
				return nil, err
			}
			// Without a checkpoint, the start goes through the same offset
			// listing as the inputs' start, so that their first fetches
			// leave together rather than the inputs waiting for the table's.
			offsets[tt.Topic][t.partition] = kgo.NewOffset().AtStart()
			if found {
				offsets[tt.Topic][t.partition] = kgo.NewOffset().At(next)
			}
			if end, ok := ends.Lookup(tt.Topic, t.partition); ok && end.Err == nil && next < end.Offset {
				t.catchUp[tt.Topic] = end.Offset
				t.catchingUp = true
			}
		}
		// A store whose changelog holds nothing past its checkpoint (a
		// new app's empty changelog) is settled here and now, rather than
		// by a restore that would pause the task's fetching for nothing.
		var ranges []restoreRange
		for _, rr := range pl.restore {
			if rr.end > max(rr.from, 0) {
				ranges = append(ranges, rr)
			} else if err := e.env.restoreStore(ctx, t, rr); err != nil {
				return nil, fmt.Errorf("stage %q partition %d: %w", t.stage.name, t.partition, err)
			}
		}
		if len(ranges) > 0 {
			e.startRestore(t, ranges)
		}
		e.updatePause(t)
	}
	return offsets, nil
}

// listEnds lists the end offsets of topics, waiting briefly for partitions
// the cluster does not list yet: a topic created moments ago (a changelog,
// at first start) can be missing from metadata for a little while.
func (e *Engine) listEnds(ctx context.Context, topics []string) (kadm.ListedOffsets, error) {
	for attempt := 0; ; attempt++ {
		ends, err := e.adm.ListEndOffsets(ctx, topics...)
		if err != nil {
			return nil, fmt.Errorf("list end offsets: %w", err)
		}
		complete := true
		var denied error
		ends.Each(func(lo kadm.ListedOffset) {
			if lo.Err != nil {
				complete = false
				if d := e.env.denied(lo.Err, "listing the ends of inputs and changelogs", "READ", lo.Topic); d != nil && denied == nil {
					denied = d
				}
			}
		})
		if denied != nil {
			return nil, denied
		}
		for _, t := range topics {
			if _, ok := ends[t]; !ok {
				complete = false
			}
		}
		if complete || attempt == 20 {
			return ends, nil // planTask names what is still missing
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (e *Engine) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for topic, ps := range assigned {
		if e.owned[topic] == nil {
			e.owned[topic] = map[int32]bool{}
		}
		for _, p := range ps {
			e.owned[topic][p] = true
		}
		e.log.Info("partitions assigned", "topic", topic, "partitions", ps)
	}
	e.assigned = true
	e.publish()
}

func (e *Engine) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	e.release(revoked, true)
}

// onLost handles partitions lost without a clean revocation (the session
// expired, as when the broker was away): the tasks stop here, but their
// local state stays, since it is still right as far as it goes; if they come
// back, planning restores only the changelog's tail.
func (e *Engine) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	e.release(lost, false)
}

// release stops the tasks of partitions this instance no longer owns, and
// with drop removes their local state (their new owner has it now).
func (e *Engine) release(parts map[string][]int32, drop bool) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	var gone []*task
	for topic, ps := range parts {
		for _, p := range ps {
			delete(e.owned[topic], p)
			if s := e.byTopic[topic]; s != nil {
				id := taskID{s.name, p}
				if t, ok := e.tasks[id]; ok {
					gone = append(gone, t)
					delete(e.tasks, id)
					// Its instance goes now, under e.mu, so that
					// releaseModules, which no longer sees the
					// task, cannot close its version under it.
					t.closeInstance()
				}
			}
		}
		if drop {
			e.log.Info("partitions revoked", "topic", topic, "partitions", ps)
		} else {
			e.log.Warn("partitions lost (session expired); keeping their local state", "topic", topic, "partitions", ps)
		}
	}
	e.publish()
	e.mu.Unlock()
	for _, t := range gone {
		e.stopRestore(t)
		t.close()
		e.endWatches(t)
		// A task this instance is now a standby of keeps its state: it is
		// the warm copy.
		if drop && !e.isStandby(t.stage, t.partition) {
			e.dropLocal(t.stage, t.partition, t.log)
		}
	}
	if a := e.bal.Snapshot(); a.Valid() {
		e.reconcileStandbys(a)
	}
}

// dropLocal removes a moved-away task's store partitions: its new owner
// keeps them now, and should this instance get the task back, it restores
// from the changelog. The checkpoint goes first (see state.ClearOffset).
func (e *Engine) dropLocal(s *stage, p int32, log *slog.Logger) {
	for _, tt := range s.tables {
		if tt.Global {
			continue
		}
		err := e.db.ClearOffset(e.group, tt.Topic, p)
		if err == nil {
			err = e.db.DropPartition(tt.Name, p)
		}
		if err != nil {
			log.Error("dropping the local copy of a moved table partition failed; it will be rebuilt if it comes back", "table", tt.Name, "err", err)
		}
	}
	for _, st := range s.stores {
		err := e.db.ClearOffset(changelogGroup, st.Changelog, p)
		if err == nil {
			err = e.db.DropPartition(st.Name, p)
		}
		if err != nil {
			log.Error("dropping the local copy of a moved store partition failed; it will be rebuilt if it comes back", "store", st.Name, "err", err)
		}
	}
}

// leaveGroup takes a static member out of the group on a clean stop: its
// client does not leave on close (a static member is meant to come back),
// and the group would otherwise wait the session timeout before giving its
// partitions to the other instances. A crash skips this, and a restart
// within the session timeout rejoins as the same member.
func (e *Engine) leaveGroup(ctx context.Context) {
	if e.instanceID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	resps, err := e.adm.LeaveGroup(ctx, kadm.LeaveGroup(e.group).InstanceIDs(e.instanceID).Reason("streamrt instance stopped"))
	if err == nil {
		err = resps.Error()
	}
	// Unknown: it never joined, or the group already let it go.
	if err != nil && !errors.Is(err, kerr.UnknownMemberID) {
		e.log.Warn("could not leave the consumer group; the other instances take this one's partitions after the session timeout", "group", e.group, "instance_id", e.instanceID, "err", err)
	}
}
