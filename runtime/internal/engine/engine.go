// Package engine is the host's processing loop for one app: it consumes the
// app's input topics through one consumer group, groups records into tasks
// (stage, partition), runs each task's records through its guest instance in
// batches, and commits the outputs, the state and the input offsets
// together.
//
// The files follow its concerns:
//
//	engine.go    the Engine, its wiring and Run
//	loop.go      poll, dispatch the records to their tasks, process them in parallel
//	task.go      one task: batches, error policies, the guest instance
//	host.go      the host functions a guest calls during a batch
//	cycle.go     a task's uncommitted work
//	commit.go    the commit protocol (at-least-once and exactly-once)
//	group.go     the consumer group's callbacks: assignment, planning, revocation
//	pause.go     pausing the partitions of tasks that wait; the disk gate
//	restore.go   restoring stores from their changelogs
//	standby.go   standby copies of other instances' tasks
//	global.go    global tables
//	follower.go  the direct topic reader behind restores, standbys and global tables
//	view.go      the ownership, readiness and task figures that queries and
//	             /v1/status read, as snapshots and atomics; the dead letters kept
//	broker.go    brokers' health
//
// RATIONALE.md says why the locks, copies and batch sizes are what they are.
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
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/assign"
	"github.com/streamrt/streamrt/runtime/internal/kafka"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Engine runs an app's stages. Create it with New and run it with Run.
type Engine struct {
	cfg     *config.Config
	topo    *config.Topology
	log     *slog.Logger
	db      *state.DB
	metrics *metrics.Metrics
	group   string
	env     *env
	health  *brokerHealth // shared by every Kafka client of the engine
	bal     *assign.Balancer

	stages  []*stage
	byTopic map[string]*stage // every consumed topic → the stage consuming it

	// Set by Run. clientSet is closed once cl is set: the group can call
	// back into the engine before the client's constructor has returned.
	runCtx    context.Context
	cl        *kgo.Client
	sess      *kgo.GroupTransactSession // exactly_once only; cl is its client
	adm       *kadm.Client
	clientSet chan struct{}

	// mu guards the tasks, the standbys and ownership against the group's
	// callbacks, which run on the client's goroutines. The loop holds it
	// for a whole poll → process → commit round; queries never take it
	// (view).
	mu       sync.Mutex
	tasks    map[taskID]*task
	standbys map[taskID]*standby // standby copies kept here, never of a task in tasks
	stopping bool                // Run is ending: start no more standbys
	// closed is set once Run has stopped every task: the revocation that
	// leaving the group brings then changes nothing, so that the API of a
	// stopped engine still answers from its final state (a server flipping
	// an app to a new generation serves the old one until the new one has
	// caught up).
	closed   bool
	owned    map[string]map[int32]bool // consumed topic → partitions assigned here
	assigned bool                      // the first assignment arrived

	// gate, when set, runs before newly assigned partitions are planned
	// (SetAssignGate).
	gate func(ctx context.Context) error

	// abortCycle is set when a task stopped by the fail policy had sent
	// records in the cycle's transaction: the whole cycle aborts.
	abortCycle atomic.Bool

	view atomic.Pointer[view]
	// instanceID is the static member id in the group; "" for a dynamic
	// member (SetInstanceID).
	instanceID string
	// lag is the records of the inputs not processed yet, over this
	// instance's tasks, as of the loop's last round (updateLag).
	lag atomic.Int64

	// retired holds the module versions swapped out of a stage or its
	// canary and not closed yet: a task may still run them
	// (releaseModules). Swaps come from other goroutines than the loop's,
	// and do not wait for e.mu.
	retiredMu sync.Mutex
	retired   []*wasm.Module
}

type taskID struct {
	stage     string
	partition int32
}

// New prepares an engine for cfg, whose stages run the modules in stages;
// it connects to nothing until Run.
func New(cfg *config.Config, db *state.DB, m *metrics.Metrics, log *slog.Logger, stages []Stage) (*Engine, error) {
	topo, err := cfg.Topology()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		topo:    topo,
		log:     log,
		db:      db,
		metrics: m,
		group:   cfg.Internal(),

		byTopic:   map[string]*stage{},
		tasks:     map[taskID]*task{},
		standbys:  map[taskID]*standby{},
		owned:     map[string]map[int32]bool{},
		clientSet: make(chan struct{}),
	}
	security, err := kafka.Options(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	e.health = newBrokerHealth(log, m, cfg.Kafka)
	e.env = &env{db: db, metrics: m, group: cfg.Internal(), brokers: cfg.Brokers, security: security, log: log, health: e.health, globals: map[string]*globalCache{},
		moduleHeader: cfg.ModuleHeader, isInternal: topo.IsInternal}
	e.env.access = kafka.Access{Group: cfg.Internal()}
	if cfg.Guarantee == config.ExactlyOnce {
		e.env.access.TransactionalID = e.transactionalID()
	}
	for _, tt := range topo.Tables {
		if tt.Global {
			e.env.globals[tt.Name] = newGlobalCache()
		}
	}
	modules := map[string]Stage{}
	for _, s := range stages {
		modules[s.Config.Name] = s
	}
	for _, st := range topo.Stages {
		sc, ok := modules[st.Name]
		if !ok && !st.TableOnly() {
			return nil, fmt.Errorf("stage %q has no module", st.Name)
		}
		s := newStage(st, sc.Module, m)
		for _, topic := range st.Topics {
			e.byTopic[topic] = s
		}
		e.stages = append(e.stages, s)
	}
	addr := cfg.Advertise
	if addr == "" {
		addr = cfg.HTTP
	}
	e.bal = assign.New(assign.Config{QueryAddr: addr, Groups: topo.Copartitioned(), Standbys: cfg.StandbyReplicas})
	e.view.Store(&view{})
	return e, nil
}

// Run consumes and processes until ctx ends, then commits what it processed
// and leaves the group. It returns nil on a clean stop.
func (e *Engine) Run(ctx context.Context) error {
	e.runCtx = ctx
	admCl, err := kgo.NewClient(e.env.clientOpts()...)
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

	cl, err := e.newGroupClient()
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	e.cl = cl
	e.env.sender = &sender{cl: cl, sess: e.sess, env: e.env}
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
		e.closed = true
		e.mu.Unlock()
		for _, t := range tasks {
			e.stopRestore(t)
			t.close()
		}
		e.mu.Lock()
		e.releaseModules(context.WithoutCancel(ctx))
		e.mu.Unlock()
		// The loop may have stopped with an error in the middle of a
		// round: leaving the group waits for rebalances to be allowed.
		cl.AllowRebalance()
		cl.Close()
		e.leaveGroup(ctx)
	}()
	return e.loop(ctx)
}

// Close releases the module versions the engine was given: its stages',
// their canaries', and those swapped out. Call it once Run has returned,
// or instead of Run.
func (e *Engine) Close(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.stages {
		e.retire(s.module.Swap(nil))
		e.endCanary(s)
	}
	e.releaseModules(ctx)
}

// SetAssignGate makes the engine call gate when partitions are assigned
// to it, before their tasks are planned, and wait for it: a server uses it
// to apply every module swap another instance may already have made, so
// that no partition moving here is processed by an older version than it
// was. An error is logged, and planning goes on. Call it before Run.
func (e *Engine) SetAssignGate(gate func(ctx context.Context) error) { e.gate = gate }

// SetInstanceID makes the engine a static member of its consumer group
// under id (Kafka's group.instance.id): an instance that crashes and
// restarts with the same id within the session timeout takes its
// partitions straight back, without a rebalance. A clean stop still leaves
// the group, so that others take the partitions over at once. Call it
// before Run.
func (e *Engine) SetInstanceID(id string) { e.instanceID = id }

// GuestTime meters the guest time of a group of tasks: in server mode, the
// share of a server's cores that a tenant's apps may take.
type GuestTime interface {
	// Wait blocks until a task may run its next batch and reports true,
	// or reports false at deadline or when stop closes: the task's run then
	// ends with its records still queued.
	Wait(deadline time.Time, stop <-chan struct{}) bool
	// Spent ends a batch Wait admitted, charging the time it took.
	Spent(d time.Duration)
}

// BrokerHooks reports what a client made outside the engine (the app's
// topic creation, before Run) meets at the brokers to the engine's broker
// health: an app whose brokers are unreachable from the start says so in
// its readiness and streamrt_broker_up, not only once it runs.
func (e *Engine) BrokerHooks() kgo.Opt { return kgo.WithHooks(e.health) }

// SetGuestTime makes every task wait on g before each batch and charge it
// the batch's time. Call it before Run.
func (e *Engine) SetGuestTime(g GuestTime) { e.env.guestTime = g }

// newGroupClient creates the client of the app's consumer group: a
// transactional session under exactly_once.
func (e *Engine) newGroupClient() (*kgo.Client, error) {
	start := kgo.NewOffset().AtStart()
	if e.cfg.StartOffset == config.StartLatest {
		start = kgo.NewOffset().AtEnd()
	}
	opts := e.env.clientOpts(
		kgo.Balancers(e.bal),
		kgo.ConsumerGroup(e.group),
		kgo.ConsumeTopics(e.topo.Consumed()...),
		kgo.ConsumeResetOffset(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Tasks step over transaction markers like any record, so that
		// their positions, and table catch-up, reach the end of
		// transactional topics.
		kgo.KeepControlRecords(),
		kgo.DisableAutoCommit(),
		// The client keeps one fetch in flight per broker, and partitions
		// that become fetchable meanwhile (resumed after a restore or a
		// table catch-up) wait for it to return: a short wait bounds that
		// delay. 500 ms is Kafka's own consumers' default.
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(e.onAssigned),
		kgo.OnPartitionsRevoked(e.onRevoked),
		kgo.OnPartitionsLost(e.onLost),
		kgo.AdjustFetchOffsetsFn(e.prepare),
		kgo.RecordPartitioner(partitioner{manual: e.topo.IsChangelog, byKey: kgo.StickyKeyPartitioner(nil)}),
	)
	if e.instanceID != "" {
		opts = append(opts, kgo.InstanceID(e.instanceID))
	}
	if st := e.cfg.SessionTimeout; st > 0 {
		// Heartbeats every third of the session, as Kafka's clients do,
		// so that two may be lost before the group gives up on this
		// instance.
		opts = append(opts, kgo.SessionTimeout(st), kgo.HeartbeatInterval(min(3*time.Second, st/3)))
	}
	if e.cfg.Guarantee != config.ExactlyOnce {
		return kgo.NewClient(opts...)
	}
	opts = append(opts,
		kgo.TransactionalID(e.transactionalID()),
		kgo.TransactionTimeout(time.Minute),
		kgo.RequireStableFetchOffsets(),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, err
	}
	e.sess = sess
	return sess.Client(), nil
}

// fetchMaxWait is how long the group's fetches wait at the broker for data.
const fetchMaxWait = 500 * time.Millisecond

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

func itoa(p int32) string { return fmt.Sprint(p) }
