package engine

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/streamrt/streamrt/runtime/internal/assign"
	"github.com/streamrt/streamrt/runtime/internal/probe"
	"github.com/twmb/franz-go/pkg/kgo"
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
	tasks    []taskView // every task and standby here, by stage and partition
}

// taskView is what /v1/status shows of a task: the facts fixed when the
// view was published, and the task's figures, read as they are.
type taskView struct {
	stage        *stage
	partition    int32
	state        string
	reason       string
	progress     *atomic.Int64 // per mille of the store being restored
	restoreSince time.Time
	stats        *taskStats // nil for a standby
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
	now := time.Now()
	for _, t := range e.tasks {
		tv := taskView{stage: t.stage, partition: t.partition, state: probe.TaskRunning, progress: &t.restoreProgress, stats: &t.stats}
		switch {
		case !t.restoring:
			t.restoreSince = time.Time{}
		case t.restoreSince.IsZero():
			t.restoreSince = now
		}
		switch {
		case t.stopped != nil:
			tv.state, tv.reason = probe.TaskStopped, t.stopped.Error()
		case t.restoring:
			tv.state, tv.restoreSince = probe.TaskRestoring, t.restoreSince
		case len(t.catchUp) > 0:
			tv.state = probe.TaskCatchingUp
		}
		v.tasks = append(v.tasks, tv)
		if t.stopped != nil {
			v.stopped = append(v.stopped, t.stopped.Error())
		}
		if t.waiting() {
			v.waiting = append(v.waiting, waitingTask{stage: t.stage.name, partition: t.partition, restoring: t.restoring, progress: &t.restoreProgress})
		}
	}
	for _, sb := range e.standbys {
		v.tasks = append(v.tasks, taskView{stage: sb.stage, partition: sb.partition, state: probe.TaskStandby})
	}
	sort.Strings(v.stopped)
	slices.SortFunc(v.tasks, func(a, b taskView) int {
		if c := strings.Compare(a.stage.name, b.stage.name); c != 0 {
			return c
		}
		return int(a.partition - b.partition)
	})
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

// Tasks lists the tasks this instance runs and the standby copies it
// keeps, by stage and partition, with their state, and the tasks' lag and
// rate as of the engine's last round. It never waits
// for the engine.
func (e *Engine) Tasks() []probe.Task {
	v := e.view.Load()
	out := make([]probe.Task, 0, len(v.tasks))
	now := time.Now()
	for _, tv := range v.tasks {
		var topics []string
		if st := e.topo.Stage(tv.stage.name); st != nil {
			topics = slices.Clone(st.Topics)
		}
		pt := probe.Task{Stage: tv.stage.name, Partition: tv.partition, Topics: topics, State: tv.state, Reason: tv.reason}
		if tv.stats == nil {
			out = append(out, pt) // a standby: it processes nothing
			continue
		}
		pt.Lag, pt.RecordsPerSecond, pt.Processed = tv.stats.lag.Load(), tv.stats.rate(), tv.stats.processed.Load()
		if m := tv.stage.moduleFor(tv.partition); m != nil {
			pt.ModuleVersion = m.Version()
		}
		if tv.state == probe.TaskRestoring {
			pm := tv.progress.Load()
			pt.RestorePercent = float64(pm) / 10
			pt.RestoreETASeconds = restoreETA(pm, now.Sub(tv.restoreSince))
		}
		out = append(out, pt)
	}
	return out
}

// restoreETA is how many seconds a restore perMille done after elapsed
// should take to finish at the same pace, to a tenth; -1 before it has a
// pace.
func restoreETA(perMille int64, elapsed time.Duration) float64 {
	if perMille <= 0 || elapsed <= 0 {
		return -1
	}
	left := elapsed.Seconds() * float64(1000-min(perMille, 1000)) / float64(perMille)
	return math.Round(left*10) / 10
}

// InstanceID is the engine's static member id in its group; "" for a
// dynamic member.
func (e *Engine) InstanceID() string { return e.instanceID }

// DeadLetters lists the last dead letters this instance's tasks sent,
// oldest first. It never waits for the engine.
func (e *Engine) DeadLetters() []probe.DeadLetter { return e.env.deadLetters.list() }

// taskStats are a task's figures for /v1/status: the task's goroutine and
// the loop write them, readers load them without a lock.
type taskStats struct {
	processed atomic.Int64  // records processed since the task started here
	lag       atomic.Int64  // records behind, as of the loop's last round
	rateBits  atomic.Uint64 // records/s over the sampled window, as float64 bits

	// samples of processed, a second or more apart; the loop's only.
	samples [rateSamples]rateSample
	next    int
}

// rateSamples is how many samples the rate spans: about five seconds.
const rateSamples = 6

type rateSample struct {
	at        time.Time
	processed int64
}

// begin takes the first sample, of no records, when the task starts.
func (s *taskStats) begin(now time.Time) {
	s.samples[0] = rateSample{at: now}
	s.next = 1
}

// sample records processed at now, when the last sample is a second old,
// and works out the rate since the oldest sample kept. The loop calls it
// each round.
func (s *taskStats) sample(now time.Time) {
	n := s.processed.Load()
	last := s.samples[(s.next+rateSamples-1)%rateSamples]
	if !last.at.IsZero() && now.Sub(last.at) < time.Second {
		return
	}
	s.samples[s.next] = rateSample{at: now, processed: n}
	s.next = (s.next + 1) % rateSamples
	oldest := s.samples[s.next]
	if oldest.at.IsZero() {
		oldest = s.samples[0]
	}
	rate := 0.0
	if d := now.Sub(oldest.at).Seconds(); d > 0 {
		rate = float64(n-oldest.processed) / d
	}
	s.rateBits.Store(math.Float64bits(rate))
}

func (s *taskStats) rate() float64 {
	return math.Round(math.Float64frombits(s.rateBits.Load())*10) / 10
}

// deadLetterRing keeps the last dead letters the tasks sent. Tasks run in
// parallel, so it has a lock of its own; it is held only to copy.
type deadLetterRing struct {
	mu      sync.Mutex
	letters []probe.DeadLetter // oldest first, at most maxDeadLetters
}

// maxDeadLetters is how many dead letters /v1/status shows.
const maxDeadLetters = 20

// add records a dead letter of stage to topic for the failed record r,
// with the headers the host added to it.
func (d *deadLetterRing) add(stage, topic string, r *kgo.Record, added []kgo.RecordHeader) {
	dl := probe.DeadLetter{Time: time.Now().UTC(), Stage: stage, Topic: topic, SourceTopic: r.Topic, SourcePartition: r.Partition,
		SourceOffset: r.Offset, Headers: make(map[string]string, len(added))}
	for _, h := range added {
		v, _ := cut(h.Value)
		dl.Headers[h.Key] = string(v)
	}
	key, truncated := cut(r.Key)
	switch {
	case r.Key == nil:
	case utf8.Valid(key):
		k := string(key)
		dl.Key = &k
	default:
		k := base64.StdEncoding.EncodeToString(key)
		dl.KeyBase64 = &k
	}
	dl.KeyTruncated = truncated
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.letters) == maxDeadLetters {
		d.letters = slices.Delete(d.letters, 0, 1)
	}
	d.letters = append(d.letters, dl)
}

// maxDeadLetterBytes bounds each key and header value a dead letter keeps.
const maxDeadLetterBytes = 1024

// cut returns b up to maxDeadLetterBytes, not splitting a UTF-8 sequence
// of text, and whether it cut.
func cut(b []byte) ([]byte, bool) {
	if len(b) <= maxDeadLetterBytes {
		return b, false
	}
	c := b[:maxDeadLetterBytes]
	if utf8.Valid(b) {
		for len(c) > 0 && !utf8.Valid(c) {
			c = c[:len(c)-1]
		}
	}
	return c, true
}

func (d *deadLetterRing) list() []probe.DeadLetter {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.letters)
}

// Modules maps each stage that runs a module to the version it runs, and
// its canary's. It never waits for the engine.
func (e *Engine) Modules() map[string]probe.Module {
	out := map[string]probe.Module{}
	for _, s := range e.stages {
		m := s.module.Load()
		if m == nil {
			continue
		}
		pm := probe.Module{Version: m.Version()}
		if c := s.canary.Load(); c != nil {
			pm.CanaryVersion, pm.CanaryPartitions = c.module.Version(), c.partitions
		}
		out[s.name] = pm
	}
	return out
}
