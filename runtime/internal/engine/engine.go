// Package engine is the host's processing loop: it consumes a stage's input
// topics through one consumer group, groups records into tasks (stage,
// partition), runs each task's records through its guest instance in batches,
// and commits the outputs, the state and the input offsets together.
//
// The at-least-once commit protocol, per commit interval:
//  1. produce every output record of the cycle and wait for all acks;
//  2. commit each task's Pebble batch, which holds the state changes and the
//     next input offsets they reflect, atomically;
//  3. commit the same offsets to the consumer group.
//
// A crash before 2 replays the cycle (outputs may repeat, state does not move);
// a crash between 2 and 3 loses nothing either, because a task resumes from its
// local checkpoint, which is ahead of the group's offsets.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/assign"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TaskError stops a task whose stage's error policy is fail.
type TaskError struct {
	Stage     string
	Topic     string
	Partition int32
	Offset    int64
	Reason    string
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("stage %q stopped at %s/%d offset %d: %s", e.Stage, e.Topic, e.Partition, e.Offset, e.Reason)
}

// Stage is what the engine needs to run one configured stage.
type Stage struct {
	Config config.Stage
	Module *wasm.Module
}

type output struct{ name, topic string }

type stage struct {
	name          string
	cfg           config.Stage
	changelogs    []string     // changelog topic of each of cfg.Stores
	tables        []*tableSpec // tables the stage reads, in cfg.Tables order
	module        atomic.Pointer[wasm.Module]
	topicIndex    map[string]uint16
	outputs       []output
	memoryLimit   int64
	maxBatchBytes int
}

type taskID struct {
	stage     string
	partition int32
}

// Engine runs an app's stages. Create it with New and run it with Run.
type Engine struct {
	cfg     *config.Config
	log     *slog.Logger
	db      *state.DB
	metrics *metrics.Metrics
	group   string
	cl      *kgo.Client
	sess    *kgo.GroupTransactSession // exactly_once only; cl is its client
	bal     *assign.Balancer
	adm     *kadm.Client
	health  *brokerHealth // shared by every Kafka client of the engine
	runCtx  context.Context
	// clientSet is closed once cl is set: the group can call back into
	// the engine before the client's constructor has returned.
	clientSet chan struct{}

	changelogs map[string]bool // changelog topics
	tables     map[string]*tableSpec
	globals    []*tableSpec

	stages  []*stage
	byTopic map[string]*stage

	mu       sync.Mutex // guards tasks and owned against the rebalance callbacks
	tasks    map[taskID]*task
	standbys map[taskID]*standby       // standby copies kept here, never of a task in tasks
	stopping bool                      // Run is ending: start no more standbys
	owned    map[string]map[int32]bool // input topic → partitions assigned here
	assigned atomic.Bool               // the first assignment arrived
}

// New prepares an engine; it connects to nothing until Run.
func New(cfg *config.Config, db *state.DB, m *metrics.Metrics, log *slog.Logger, stages []Stage) (*Engine, error) {
	e := &Engine{
		cfg:        cfg,
		log:        log,
		db:         db,
		metrics:    m,
		group:      cfg.App,
		byTopic:    map[string]*stage{},
		tasks:      map[taskID]*task{},
		standbys:   map[taskID]*standby{},
		owned:      map[string]map[int32]bool{},
		changelogs: map[string]bool{},
		tables:     map[string]*tableSpec{},
		clientSet:  make(chan struct{}),
	}
	e.health = newBrokerHealth(log, m)
	for _, tc := range cfg.Tables {
		ts := &tableSpec{name: tc.Name, topic: tc.Topic, global: tc.Global}
		e.tables[tc.Name] = ts
		if ts.global {
			e.globals = append(e.globals, ts)
		}
	}
	read := map[*tableSpec]bool{}
	for _, sc := range stages {
		s := &stage{
			name:        sc.Config.Name,
			cfg:         sc.Config,
			topicIndex:  map[string]uint16{},
			memoryLimit: sc.Config.MemoryLimit,
			// A batch takes at most a quarter of guest memory, leaving the
			// guest room to decode it and work.
			maxBatchBytes: int(sc.Config.MemoryLimit / 4),
		}
		s.module.Store(sc.Module)
		for _, store := range sc.Config.Stores {
			topic := ChangelogTopic(cfg.App, store)
			s.changelogs = append(s.changelogs, topic)
			e.changelogs[topic] = true
		}
		for i, in := range sc.Config.Inputs {
			if other, dup := e.byTopic[in]; dup {
				return nil, fmt.Errorf("topic %q is an input of both stage %q and stage %q", in, other.name, s.name)
			}
			e.byTopic[in] = s
			s.topicIndex[in] = uint16(i)
		}
		for _, name := range sc.Config.Tables {
			ts := e.tables[name]
			if ts == nil {
				return nil, fmt.Errorf("stage %q reads table %q, which is not declared", s.name, name)
			}
			s.tables = append(s.tables, ts)
			if ts.global {
				continue
			}
			if other, dup := e.byTopic[ts.topic]; dup && other != s {
				return nil, fmt.Errorf("topic %q is the topic of table %q, read by stage %q, and an input of stage %q", ts.topic, ts.name, s.name, other.name)
			}
			e.byTopic[ts.topic] = s
			read[ts] = true
		}
		names := make([]string, 0, len(sc.Config.Outputs))
		for name := range sc.Config.Outputs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			s.outputs = append(s.outputs, output{name: name, topic: sc.Config.Outputs[name]})
		}
		e.stages = append(e.stages, s)
	}
	// A co-partitioned table that no stage reads (one that only serves
	// queries) gets a stage of its own, with no module, to materialise it.
	for _, tc := range cfg.Tables {
		ts := e.tables[tc.Name]
		if ts.global || read[ts] {
			continue
		}
		if other, dup := e.byTopic[ts.topic]; dup {
			return nil, fmt.Errorf("topic %q is the topic of table %q and an input of stage %q", ts.topic, ts.name, other.name)
		}
		s := &stage{name: tableStagePrefix + ts.name, topicIndex: map[string]uint16{}, tables: []*tableSpec{ts}}
		s.cfg.Name = s.name
		e.byTopic[ts.topic] = s
		e.stages = append(e.stages, s)
	}
	// Partition p of a stage's inputs and of its co-partitioned tables
	// goes to one instance; members advertise their query address.
	var sets [][]string
	for _, s := range e.stages {
		set := append([]string(nil), s.cfg.Inputs...)
		for _, ts := range s.tables {
			if !ts.global && !slices.Contains(set, ts.topic) {
				set = append(set, ts.topic)
			}
		}
		sets = append(sets, set)
	}
	addr := e.cfg.Advertise
	if addr == "" {
		addr = e.cfg.HTTP
	}
	e.bal = assign.New(assign.Config{QueryAddr: addr, Groups: sets, Standbys: cfg.StandbyReplicas})
	return e, nil
}

// Swap makes stage run module from its tasks' next batch on. Batches already
// running finish on the module they started with, and each task commits or
// replays whole batches, so no record is lost or processed twice.
func (e *Engine) Swap(stageName string, m *wasm.Module) error {
	for _, s := range e.stages {
		if s.name == stageName {
			s.module.Store(m)
			e.metrics.ModuleSwaps.WithLabelValues(s.name).Inc()
			return nil
		}
	}
	return fmt.Errorf("no stage %q", stageName)
}

// Module returns the module a stage currently runs.
func (e *Engine) Module(stageName string) *wasm.Module {
	for _, s := range e.stages {
		if s.name == stageName {
			return s.module.Load()
		}
	}
	return nil
}

// inputs lists the topics the group consumes: stage inputs and the topics
// of co-partitioned tables.
func (e *Engine) inputs() []string {
	ts := make([]string, 0, len(e.byTopic))
	for topic := range e.byTopic {
		ts = append(ts, topic)
	}
	sort.Strings(ts)
	return ts
}

// Run consumes and processes until ctx ends, then commits what it processed
// and leaves the group. It returns nil on a clean stop.
func (e *Engine) Run(ctx context.Context) error {
	e.runCtx = ctx
	admCl, err := kgo.NewClient(kgo.SeedBrokers(e.cfg.Brokers...), kgo.WithLogger(kgoLogger{e.log}), kgo.WithHooks(e.health))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer admCl.Close()
	e.adm = kadm.NewClient(admCl)
	// Global tables are loaded before any stage can read them.
	globalsDone, err := e.startGlobals(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer func() { <-globalsDone }()
	start := kgo.NewOffset().AtStart()
	if e.cfg.StartOffset == config.StartLatest {
		start = kgo.NewOffset().AtEnd()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(e.cfg.Brokers...),
		kgo.Balancers(e.bal),
		kgo.ConsumerGroup(e.group),
		kgo.ConsumeTopics(e.inputs()...),
		kgo.ConsumeResetOffset(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Tasks step over transaction markers like any record, so that
		// their positions, and table catch-up, reach the end of
		// transactional topics.
		kgo.KeepControlRecords(),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(e.onAssigned),
		kgo.OnPartitionsRevoked(e.onRevoked),
		kgo.OnPartitionsLost(e.onLost),
		kgo.AdjustFetchOffsetsFn(e.prepare),
		kgo.RecordPartitioner(partitioner{manual: e.changelogs, byKey: kgo.StickyKeyPartitioner(nil)}),
		kgo.WithLogger(kgoLogger{e.log}),
		kgo.WithHooks(e.health),
	}
	if st := e.cfg.SessionTimeout; st > 0 {
		// Heartbeats every third of the session, as Kafka's clients do,
		// so that two may be lost before the group gives up on this
		// instance.
		opts = append(opts, kgo.SessionTimeout(st), kgo.HeartbeatInterval(min(3*time.Second, st/3)))
	}
	var cl *kgo.Client
	if e.cfg.Guarantee == config.ExactlyOnce {
		opts = append(opts,
			kgo.TransactionalID(e.transactionalID()),
			kgo.TransactionTimeout(time.Minute),
			kgo.RequireStableFetchOffsets(),
		)
		e.sess, err = kgo.NewGroupTransactSession(opts...)
		if err == nil {
			cl = e.sess.Client()
		}
	} else {
		cl, err = kgo.NewClient(opts...)
	}
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	e.cl = cl
	close(e.clientSet)
	watchCtx, stopWatching := context.WithCancel(ctx)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		e.watchStandbys(watchCtx)
	}()
	defer func() {
		stopWatching()
		<-watching
		e.stopStandbys()
		e.mu.Lock()
		tasks := e.tasks
		e.tasks = map[taskID]*task{}
		e.mu.Unlock()
		for _, t := range tasks {
			e.stopRestore(t)
			t.close()
		}
		cl.Close()
	}()

	lastCommit := time.Now()
	var pending bool
	for {
		wait := time.Second
		if pending {
			wait = max(time.Millisecond, e.cfg.CommitInterval-time.Since(lastCommit))
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		// Everything buffered, so that every task with records runs in
		// parallel; the client's fetch limits bound a cycle's size.
		fs := cl.PollFetches(pctx)
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
			cl.AllowRebalance()
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
	cl.AllowRebalance()
	return nil
}

// processFetches runs every task's new records, tasks in parallel.
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
			err := t.process(recs)
			var te *TaskError
			switch {
			case err == nil:
			case errors.As(err, &te):
				t.log.Error("task stopped by its error policy (fail); it processes nothing more until restart", "err", err)
				t.stopped = err
				// Its cycle is dropped: rewind to where it started, so
				// that neither a commit nor a restart skips it.
				maps.Copy(t.refetch, t.start)
				t.reset()
				e.metrics.TasksStopped.WithLabelValues(t.stage.name).Inc()
				e.updatePause(t)
			default:
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
		if t.catchingUp && len(t.catchUp) == 0 {
			t.catchingUp = false
			t.log.Info("tables caught up; processing inputs")
			e.updatePause(t)
		}
	}
	e.applyRefetch()
	return firstErr
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

func (e *Engine) task(ctx context.Context, s *stage, p int32) (*task, error) {
	id := taskID{s.name, p}
	if t, ok := e.tasks[id]; ok {
		return t, nil
	}
	// A standby copy of the task becomes its state: stop tailing before
	// planning reads the checkpoints.
	e.stopStandby(id)
	t, err := newTask(ctx, e, s, p)
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

// commitTimeout bounds one commit cycle; past it the cycle is replayed.
const commitTimeout = 30 * time.Second

// commit runs the commit protocol described in the package comment. Callers
// pass a context that shutdown does not cancel: a commit that started
// completes or fails whole.
func (e *Engine) commit(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	start := time.Now()
	var (
		produceErr error
		errMu      sync.Mutex
		out        int
	)
	if e.sess != nil {
		if err := e.sess.Begin(); err != nil {
			e.rewind()
			return fmt.Errorf("begin transaction: %w", err)
		}
	}
	for _, t := range e.tasks {
		if !t.pending() {
			continue
		}
		if len(e.changelogs) > 0 {
			if t.seen == nil {
				t.seen = map[string]struct{}{}
			}
			t.emits = e.compactChanges(t.emits, t.seen)
		}
		perTopic := map[string]int{}
		for _, r := range t.emits {
			out++
			perTopic[r.Topic]++
			e.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
				if err != nil {
					errMu.Lock()
					if produceErr == nil {
						produceErr = fmt.Errorf("produce to %q: %w", r.Topic, err)
					}
					errMu.Unlock()
				}
			})
		}
		for topic, n := range perTopic {
			e.metrics.RecordsOut.WithLabelValues(t.stage.name, topic).Add(float64(n))
		}
	}
	if e.sess != nil {
		// Outputs, changelog records and the input offsets the session
		// tracks commit in one transaction, or none of them does.
		end := kgo.TryCommit
		if produceErr != nil {
			end = kgo.TryAbort
		}
		committed, err := e.sess.End(ctx, end)
		if err != nil {
			// End gave up (its deadline passed while the broker was away)
			// and left the transaction open: abort it, or no transaction
			// could begin again.
			e.abortTransaction()
		}
		if produceErr == nil && !committed {
			produceErr = fmt.Errorf("transaction aborted (a rebalance or a broker fault): %v", err)
		}
	} else if err := e.cl.Flush(ctx); err != nil && produceErr == nil {
		produceErr = err
	}
	if produceErr != nil {
		e.rewind()
		return produceErr
	}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, t := range e.tasks {
		if !t.pending() {
			continue
		}
		// The changelog positions this state reflects commit with it.
		reached := map[string]int64{}
		for _, r := range t.emits {
			if e.changelogs[r.Topic] && r.Offset+1 > reached[r.Topic] {
				reached[r.Topic] = r.Offset + 1
			}
		}
		for topic, next := range reached {
			if err := t.txn.SetOffset(changelogGroup, topic, t.partition, next); err != nil {
				e.rewind()
				return err
			}
		}
		if err := t.txn.Commit(); err != nil {
			e.rewind()
			return fmt.Errorf("stage %q partition %d: commit state: %w", t.stage.name, t.partition, err)
		}
		t.txn = nil
		t.emits = t.emits[:0]
		t.arena.chunk = t.arena.chunk[:0] // every record that used it was acknowledged
		for topic, next := range t.next {
			if offsets[topic] == nil {
				offsets[topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[topic][t.partition] = kgo.EpochOffset{Epoch: -1, Offset: next}
		}
		clear(t.next)
		clear(t.start)
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

// transactionalID is stable across restarts of one instance (it follows
// the state directory), so that a restarted instance fences its previous
// incarnation, and distinct between instances.
func (e *Engine) transactionalID() string {
	sum := sha256.Sum256([]byte(e.cfg.StateDir))
	return e.cfg.App + "-" + hex.EncodeToString(sum[:8])
}

// rewind drops every task's uncommitted cycle and moves consumption back to
// where the cycle started, so the cycle is processed again.
func (e *Engine) rewind() {
	for _, t := range e.tasks {
		if !t.pending() {
			continue
		}
		maps.Copy(t.refetch, t.start)
		t.reset()
		t.closeInstance() // its guest memory saw the dropped batches
	}
	e.applyRefetch()
}

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
				changelogs = append(changelogs, s.changelogs...)
				for _, ts := range s.tables {
					if !ts.global {
						changelogs = append(changelogs, ts.topic)
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
		pl, err := e.planTask(ctx, t, ends)
		if err != nil {
			return nil, err
		}
		if pl.useLocal {
			for _, topic := range t.stage.cfg.Inputs {
				if next, found, err := e.db.Offset(e.group, topic, t.partition); err == nil && found && offsets[topic] != nil {
					offsets[topic][t.partition] = kgo.NewOffset().At(next)
				}
			}
		}
		// A co-partitioned table resumes from its local checkpoint, or from
		// the start: its topic is its changelog, and no other instance's
		// progress in the group means anything for the state here.
		for _, ts := range t.stage.tables {
			if ts.global || offsets[ts.topic] == nil {
				continue
			}
			from := int64(0)
			if next, found, err := e.db.Offset(e.group, ts.topic, t.partition); err != nil {
				return nil, err
			} else if found {
				from = next
			}
			offsets[ts.topic][t.partition] = kgo.NewOffset().At(from)
			if end, ok := ends.Lookup(ts.topic, t.partition); ok && end.Err == nil && from < end.Offset {
				t.catchUp[ts.topic] = end.Offset
				t.catchingUp = true
			}
		}
		if len(pl.restore) > 0 {
			e.startRestore(t, pl.restore)
		}
		e.updatePause(t)
	}
	return offsets, nil
}

// updatePause pauses a task's fetching while it waits: everything while its
// stores restore, its inputs while its tables catch up to where they ended
// at assignment; and resumes what it no longer waits for. Callers hold e.mu.
func (e *Engine) updatePause(t *task) {
	inputs, tables := map[string][]int32{}, map[string][]int32{}
	for _, topic := range t.stage.cfg.Inputs {
		if !t.isTableTopic(topic) {
			inputs[topic] = []int32{t.partition}
		}
	}
	for _, ts := range t.stage.tables {
		if !ts.global {
			tables[ts.topic] = []int32{t.partition}
		}
	}
	switch {
	case t.restoring:
		e.cl.PauseFetchPartitions(inputs)
		e.cl.PauseFetchPartitions(tables)
	case len(t.catchUp) > 0:
		e.cl.PauseFetchPartitions(inputs)
		e.cl.ResumeFetchPartitions(tables)
	case t.stopped != nil:
		e.cl.PauseFetchPartitions(inputs)
		e.cl.PauseFetchPartitions(tables)
	default:
		e.cl.ResumeFetchPartitions(inputs)
		e.cl.ResumeFetchPartitions(tables)
	}
}

// waiting reports whether a task cannot answer for its partition yet.
func (t *task) waiting() bool { return t.restoring || len(t.catchUp) > 0 }

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
		ends.Each(func(lo kadm.ListedOffset) {
			if lo.Err != nil {
				complete = false
			}
		})
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

// startRestore pauses a task's inputs and restores its stores in the
// background, retrying through broker faults until it completes or the
// task is revoked.
func (e *Engine) startRestore(t *task, ranges []restoreRange) {
	ctx, cancel := context.WithCancel(e.runCtx)
	t.restoring, t.restoreCancel, t.restoreDone = true, cancel, make(chan struct{})
	t.restoreProgress.Store(0)
	e.metrics.RestoringTasks.Inc()
	go func() {
		defer close(t.restoreDone)
		defer e.metrics.RestoringTasks.Dec()
		for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
			err := e.restore(ctx, t, ranges)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			t.log.Error("restore failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		e.mu.Lock()
		t.restoring = false
		e.updatePause(t)
		e.mu.Unlock()
	}()
}

// stopRestore cancels a task's restore, if any, and waits for it to end.
func (e *Engine) stopRestore(t *task) {
	if t.restoreCancel == nil {
		return
	}
	t.restoreCancel()
	<-t.restoreDone
	t.restoreCancel = nil
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
	e.assigned.Store(true)
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
	var gone []*task
	for topic, ps := range parts {
		for _, p := range ps {
			delete(e.owned[topic], p)
			if s := e.byTopic[topic]; s != nil {
				id := taskID{s.name, p}
				if t, ok := e.tasks[id]; ok {
					gone = append(gone, t)
					delete(e.tasks, id)
				}
			}
		}
		if drop {
			e.log.Info("partitions revoked", "topic", topic, "partitions", ps)
		} else {
			e.log.Warn("partitions lost (session expired); keeping their local state", "topic", topic, "partitions", ps)
		}
	}
	e.mu.Unlock()
	for _, t := range gone {
		e.stopRestore(t)
		t.close()
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
	for _, ts := range s.tables {
		if ts.global {
			continue
		}
		err := e.db.ClearOffset(e.group, ts.topic, p)
		if err == nil {
			err = e.db.DropPartition(ts.name, p)
		}
		if err != nil {
			log.Error("dropping the local copy of a moved table partition failed; it will be rebuilt if it comes back", "table", ts.name, "err", err)
		}
	}
	for i, store := range s.cfg.Stores {
		err := e.db.ClearOffset(changelogGroup, s.changelogs[i], p)
		if err == nil {
			err = e.db.DropPartition(store, p)
		}
		if err != nil {
			log.Error("dropping the local copy of a moved store partition failed; it will be rebuilt if it comes back", "store", store, "err", err)
		}
	}
}

// Owns reports whether this instance is assigned partition p of topic and
// its task's state is restored, so that it can answer for the partition.
func (e *Engine) Owns(topic string, p int32) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.owned[topic][p] {
		return false
	}
	if s := e.byTopic[topic]; s != nil {
		if t, ok := e.tasks[taskID{s.name, p}]; ok && t.waiting() {
			return false
		}
	}
	return true
}

// Assignment returns the group's current task→instance map, as the
// balancer last learned it; invalid before the first assignment.
func (e *Engine) Assignment() assign.Assignment { return e.bal.Snapshot() }

// Status is the readiness of the engine, for /readyz.
type Status struct {
	Ready     bool     `json:"ready"`
	Reasons   []string `json:"reasons,omitempty"`
	Stopped   []string `json:"stopped_tasks,omitempty"`
	Restoring []string `json:"restoring_tasks,omitempty"`
}

// Status reports whether the engine has its assignment, which brokers it
// cannot reach, which tasks are restoring and which the fail policy stopped.
func (e *Engine) Status() Status {
	st := Status{Ready: e.assigned.Load()}
	if !st.Ready {
		st.Reasons = append(st.Reasons, "waiting for the consumer group assignment")
	}
	if down := e.health.reasons(); len(down) > 0 {
		st.Ready = false
		st.Reasons = append(st.Reasons, down...)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.tasks {
		if t.stopped != nil {
			st.Stopped = append(st.Stopped, t.stopped.Error())
		}
		if t.restoring {
			st.Restoring = append(st.Restoring, fmt.Sprintf("stage %q partition %d (%.1f%% of the current store)", t.stage.name, t.partition, float64(t.restoreProgress.Load())/10))
		} else if len(t.catchUp) > 0 {
			st.Restoring = append(st.Restoring, fmt.Sprintf("stage %q partition %d (catching up its tables)", t.stage.name, t.partition))
		}
	}
	sort.Strings(st.Stopped)
	sort.Strings(st.Restoring)
	if len(st.Restoring) > 0 {
		st.Ready = false
		st.Reasons = append(st.Reasons, fmt.Sprintf("%d task(s) restoring their stores", len(st.Restoring)))
	}
	if len(st.Stopped) > 0 {
		st.Ready = false
		st.Reasons = append(st.Reasons, fmt.Sprintf("%d task(s) stopped by the fail error policy", len(st.Stopped)))
	}
	return st
}

func itoa(p int32) string { return fmt.Sprint(p) }
