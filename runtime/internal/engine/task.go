package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/kafka"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
	"github.com/streamrt/streamrt/runtime/internal/watch"
	"github.com/twmb/franz-go/pkg/kgo"
)

// task is the unit of work, state and assignment: one stage on one
// partition. The engine's loop runs it, one goroutine at a time; its
// uncommitted work is its cycle.
type task struct {
	// ctx bounds guest calls; it is not cancelled by shutdown, so a batch
	// that started finishes (within the stage's deadline) rather than leaving
	// half its effects. stop is the run's context, checked between batches.
	ctx       context.Context
	stop      context.Context
	env       *env
	stage     *stage
	partition int32
	log       *slog.Logger
	stores    []state.Keyspace // by handle: the stage's stores, then its tables

	module *wasm.Module // the version the current cycle runs
	// versionHeader is the header that names module on every output, when
	// the app asks for one; shared by the outputs, which never change it.
	versionHeader []kgo.RecordHeader
	inst          *wasm.Instance
	lastBatch     time.Time // when the task last ran a batch (releaseIdle)
	// hwm is, per consumed topic, the high watermark of the latest fetch;
	// position the offset after the last record processed (or where the
	// task rewound to). Their difference is the task's lag (updateLag).
	hwm, position map[string]int64
	host          batchHost
	cache         readCache
	globals       []*globalCache // by handle: the global tables' caches, nil for others
	// globalReaders read the global tables on a cache miss, by handle.
	globalReaders []globalReader
	cycle         cycle

	// refetch holds, per input topic, the first fetched offset left
	// unprocessed (shutdown began, or the task stopped): consumption moves
	// back there, since a transaction commits what was fetched.
	refetch map[string]int64
	// catchUp holds, per co-partitioned table topic, the end offset the
	// table must reach before the task's inputs are processed.
	catchUp    map[string]int64
	catchingUp bool // catchUp was non-empty at assignment; cleared when it empties

	// queue holds the records fetched for the task and not processed yet.
	queue queue
	batch []*kgo.Record // the batch being run, reused

	streamTime int64
	stopped    error // set by the fail policy; the task processes nothing more

	// Restore state, guarded by the engine's mutex except restoreProgress.
	restoring       bool
	restoreCancel   context.CancelFunc
	restoreDone     chan struct{}
	restoreProgress atomic.Int64 // per mille of the store being restored
	// restoreSince is when publish first saw the current restore, for its
	// ETA; guarded by the engine's mutex.
	restoreSince time.Time

	// stats are the task's figures that /v1/status reads without the
	// engine's lock.
	stats taskStats
}

// env is what the tasks and the topic followers of an engine share.
type env struct {
	db      *state.DB
	metrics *metrics.Metrics
	group   string // the app's consumer group: the checkpoint group of inputs
	brokers []string
	// security holds the TLS and SASL options of the app's kafka section.
	security []kgo.Opt
	log      *slog.Logger
	health   *brokerHealth // follows every Kafka client of the engine
	// sender produces the tasks' outputs as their batches end; nil until
	// the engine runs, and then outputs wait for the commit.
	sender *sender
	// globals caches the global tables' values, by table name.
	globals map[string]*globalCache
	// moduleHeader: outputs carry their module's version (module_header).
	moduleHeader bool
	// fence holds a rebuilding generation back (SetFence); nil for none.
	fence Fence
	// guestTime meters the tasks' guest time (SetGuestTime); nil for none.
	guestTime GuestTime
	// disk holds the writers of state while the disk is short of space
	// (SetDisk).
	disk diskGate
	// watch takes the committed store changes for the clients watching
	// them (SetWatch); nil for none.
	watch *watch.Hub
	// isInternal reports whether a topic is one of the app's repartition
	// topics.
	isInternal func(topic string) bool

	// deadLetters keeps the last dead letters the tasks sent, for
	// /v1/status.
	deadLetters deadLetterRing

	// access names the app's group and transactional id in the messages
	// of ACL errors.
	access kafka.Access

	fatalMu sync.Mutex
	fatal   error // the first failure retrying cannot heal; the loop stops with it
}

// fail records err, a failure that retrying cannot heal (an ACL that is
// missing), for the loop to stop with; the first one stays.
func (v *env) fail(err error) {
	v.fatalMu.Lock()
	defer v.fatalMu.Unlock()
	if v.fatal == nil {
		v.fatal = err
	}
}

// failure returns the error fail recorded first, if any.
func (v *env) failure() error {
	v.fatalMu.Lock()
	defer v.fatalMu.Unlock()
	return v.fatal
}

// denied returns an *kafka.ACLError for err when it is an authorization
// failure of the brokers, doing op on topic, and records it with fail; nil
// for any other error.
func (v *env) denied(err error, doing, op, topic string) error {
	var d error
	if _, ok := errors.AsType[*kafka.ACLError](err); ok {
		d = err // already says what is missing
	} else {
		a := v.access
		a.Doing, a.Op, a.Topic = doing, op, topic
		d = kafka.Deny(err, a)
	}
	if d != nil {
		v.fail(d)
	}
	return d
}

func newTask(ctx context.Context, env *env, log *slog.Logger, s *stage, partition int32) (*task, error) {
	t := &task{
		ctx:        context.WithoutCancel(ctx),
		stop:       ctx,
		env:        env,
		stage:      s,
		partition:  partition,
		log:        log.With("stage", s.name, "partition", partition),
		cycle:      newCycle(),
		queue:      queue{rank: s.topicRank},
		refetch:    map[string]int64{},
		hwm:        map[string]int64{},
		position:   map[string]int64{},
		catchUp:    map[string]int64{},
		streamTime: -1,
	}
	t.host.t = t
	for _, st := range s.stores {
		ks, err := env.db.Keyspace(st.Name, partition)
		if err != nil {
			return nil, fmt.Errorf("stage %q partition %d: %w", s.name, partition, err)
		}
		t.stores = append(t.stores, ks)
	}
	for _, tt := range s.tables {
		p := partition
		if tt.Global {
			p = 0
		}
		ks, err := env.db.Keyspace(tt.Name, p)
		if err != nil {
			return nil, fmt.Errorf("stage %q partition %d: %w", s.name, partition, err)
		}
		t.stores = append(t.stores, ks)
	}
	t.cache.init(t)
	t.globals = make([]*globalCache, len(t.stores))
	t.globalReaders = make([]globalReader, len(t.stores))
	for i, tt := range s.tables {
		if tt.Global {
			t.globals[len(s.stores)+i] = env.globals[tt.Name]
		}
	}
	return t, nil
}

// pending reports whether the task has processed records not yet committed.
func (t *task) pending() bool { return t.cycle.pending() }

// waiting reports whether a task cannot answer for its partition yet.
func (t *task) waiting() bool { return t.restoring || len(t.catchUp) > 0 }

// run processes the task's queued records through the guest in batches,
// adding their effects to the current cycle, until the queue is empty or
// deadline passes (checked between batches), or the engine stops. What it
// leaves stays queued for the next round.
func (t *task) run(deadline time.Time) (err error) {
	if t.stopped != nil || t.queue.len() == 0 {
		return nil
	}
	if !t.cycle.pending() {
		// A cycle runs on one module version from start to commit, so
		// that a swap falls between two commits: under exactly_once, one
		// transaction's outputs all come from one version.
		if m := t.stage.moduleFor(t.partition); m != t.module {
			if t.module != nil {
				t.log.Info("swapping module", "from", short(t.module.Version()), "to", short(m.Version()))
			}
			t.module = m
			if t.env.moduleHeader {
				t.versionHeader = []kgo.RecordHeader{{Key: "streamrt.module.version", Value: []byte(m.Version())}}
			}
		}
	}
	t.cycle.begin(t.env.db)
	defer func() {
		if err == nil {
			if err = t.cycle.checkpoint(t.env.group, t.partition); err != nil {
				err = fmt.Errorf("stage %q partition %d: %w", t.stage.name, t.partition, err)
			}
		}
	}()
	q := &t.queue
	for q.len() > 0 && t.stop.Err() == nil && time.Now().Before(deadline) {
		r := q.peek()
		if t.held(r) {
			break // a rebuilding generation waits for the serving one
		}
		if r.Attrs.IsControl() {
			t.advance(t.take())
			continue
		}
		// A table update is applied by the host before the records after
		// it are processed; when the table's topic is also an input, the
		// guest then sees the update too (table-table joins).
		if i, ts := t.stage.partitionedTable(r.Topic); ts != nil {
			if err := t.applyTable(len(t.stage.stores)+i, r); err != nil {
				return err
			}
			if _, input := t.stage.topicIndex[r.Topic]; !input {
				t.advance(t.take())
				continue
			}
		}
		if g := t.env.guestTime; g != nil && !g.Wait(deadline, t.stop.Done()) {
			break // over its tenant's share, or held: the records wait
		}
		batch, bytes := t.batch[:0], 0
		for len(batch) < t.stage.cfg.BatchSize && q.len() > 0 {
			r := q.peek()
			if len(batch) > 0 && (t.isTableTopic(r.Topic) || r.Attrs.IsControl() || t.held(r)) {
				break // a table update ends the batch, and so does the fence
			}
			size := recordSize(r)
			if len(batch) > 0 && bytes+size > t.stage.maxBatchBytes {
				break
			}
			bytes += size
			batch = append(batch, t.take())
		}
		t.batch = batch
		start := time.Now()
		err := t.runBatch(batch)
		t.lastBatch = time.Now()
		took := t.lastBatch.Sub(start)
		if g := t.env.guestTime; g != nil {
			g.Spent(took)
		}
		if err != nil {
			return err
		}
		t.stage.batchSeconds.Observe(took.Seconds())
		t.stage.recordsIn.Add(float64(len(batch)))
		t.stats.processed.Add(int64(len(batch)))
		for _, r := range batch {
			t.advance(r)
		}
		clear(batch)
		if err := t.sendOutputs(); err != nil {
			return err
		}
	}
	return nil
}

// take pops the next queued record, which now belongs to the cycle: a
// dropped cycle rewinds to it.
func (t *task) take() *kgo.Record {
	r := t.queue.pop()
	t.cycle.consumed(r)
	return r
}

// rewind drops the task's uncommitted cycle and its queue, and moves
// consumption back to where the cycle started, or to the first queued
// record of a topic the cycle had not processed yet: both are fetched
// again.
func (t *task) rewind() {
	for topic, off := range t.queue.heads() {
		if _, ok := t.refetch[topic]; !ok {
			t.refetch[topic] = off
		}
	}
	maps.Copy(t.refetch, t.cycle.start)
	maps.Copy(t.position, t.refetch)
	t.queue.clear()
	t.drop()
}

// sendOutputs hands the outputs of the batches run so far to the producer:
// a batch's outputs are final once it has run (a failed record's were
// undone).
func (t *task) sendOutputs() error {
	c := &t.cycle
	if t.env.sender == nil {
		return nil
	}
	err := t.env.sender.send(t.ctx, t.stage, c.outputs[c.sent:])
	c.sent = len(c.outputs)
	return err
}

func (t *task) isTableTopic(topic string) bool {
	_, ts := t.stage.partitionedTable(topic)
	return ts != nil
}

// advance records that r is done: its offset commits with the cycle, and
// it may be the record a table catching up waited for.
func (t *task) advance(r *kgo.Record) {
	t.cycle.advance(r)
	t.position[r.Topic] = r.Offset + 1
	if end, ok := t.catchUp[r.Topic]; ok && r.Offset+1 >= end {
		delete(t.catchUp, r.Topic)
	}
}

// applyTable materialises one table record: its value under its key, or a
// delete for a tombstone. Tables are keyed, so a record without a key is
// skipped with a warning.
func (t *task) applyTable(handle int, r *kgo.Record) error {
	ks := t.stores[handle]
	var err error
	switch {
	case r.Key == nil:
		t.log.Warn("table record without a key skipped", "table", ks.Store(), "topic", r.Topic, "offset", r.Offset)
		return nil
	case r.Value == nil:
		err = t.cycle.txn.Delete(ks, r.Key)
		t.cache.set(int32(handle), r.Key, nil, false)
	default:
		err = t.cycle.txn.Put(ks, r.Key, r.Value)
		t.cache.set(int32(handle), r.Key, r.Value, true)
	}
	if err != nil {
		return fmt.Errorf("table %q partition %d: %w", ks.Store(), t.partition, err)
	}
	t.stage.tableRecords[handle-len(t.stage.stores)].Inc()
	return nil
}

// runBatch calls the guest once for recs. When the call fails as a whole (a
// trap, the deadline, a non-zero result, or record failures it cannot undo
// one by one), it undoes the batch and runs each record alone, so that only
// the records that fail get the error policy.
func (t *task) runBatch(recs []*kgo.Record) error {
	if len(recs) == 1 && recordSize(recs[0]) > int(t.stage.cfg.MemoryLimit) {
		return t.recordFailed(recs[0], "oversize", fmt.Sprintf("record of %d bytes exceeds the stage's guest memory limit of %d bytes", recordSize(recs[0]), t.stage.cfg.MemoryLimit))
	}
	if err := t.ensureInstance(); err != nil {
		return err
	}
	c := &t.cycle
	mark, outMark, latestMark, changeMark := c.txn.Mark(), len(c.outputs), len(c.latest), len(c.changes)
	t.advanceStreamTime(recs)
	t.host.reset(c.txn, recs)
	// The batch is encoded straight into the guest's buffer.
	err := t.inst.ProcessBatch(t.ctx, &t.host, t.encodedSize(recs), func(dst []byte) []byte { return t.encode(dst, recs) })
	t.host.closeIters()
	if serr := t.host.stateErr; serr != nil {
		// The task stops whatever its error policy; stopTask drops its cycle.
		return &TaskError{Stage: t.stage.name, Topic: recs[0].Topic, Partition: t.partition, Offset: recs[0].Offset,
			Reason: fmt.Sprintf("local state failed: %v (a state that is corrupt is rebuilt from the changelogs when the instance restarts)", serr)}
	}
	if err == nil && !t.host.interleaved {
		for i := range recs {
			if msg, ok := t.host.failed[int32(i)]; ok {
				if err := t.recordFailed(recs[i], "record", msg); err != nil {
					return err
				}
			}
		}
		return nil
	}
	t.cache.clear()
	if rerr := c.txn.RollbackTo(mark); rerr != nil {
		return fmt.Errorf("stage %q partition %d: undo failed batch: %w", t.stage.name, t.partition, rerr)
	}
	c.outputs, c.latest, c.changes = c.outputs[:outMark], c.latest[:latestMark], c.changes[:changeMark]
	kind := "batch"
	if err != nil && t.inst.Broken() != nil {
		kind = "trap"
		if errors.Is(err, wasm.ErrDeadline) {
			kind = "deadline"
		}
		t.closeInstance()
		t.env.metrics.InstanceRestarts.WithLabelValues(t.stage.name).Inc()
	}
	if len(recs) > 1 {
		t.log.Debug("batch failed; running its records one by one", "records", len(recs), "err", err)
		for i := range recs {
			if err := t.runBatch(recs[i : i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	msg := t.host.failed[0]
	if msg == "" {
		msg = t.host.batchMsg
	}
	if err != nil {
		if msg == "" {
			msg = err.Error()
		} else {
			msg = msg + " (" + err.Error() + ")"
		}
	}
	return t.recordFailed(recs[0], kind, msg)
}

func (t *task) ensureInstance() error {
	m := t.module
	if t.inst != nil && t.inst.Module() == m {
		return nil
	}
	// An instance of another version is left when the version changed at
	// this cycle's start and releaseModules has not looked since.
	t.closeInstance()
	inst, err := m.Instantiate(t.ctx)
	if err != nil {
		return fmt.Errorf("stage %q partition %d: %w", t.stage.name, t.partition, err)
	}
	t.inst = inst
	return nil
}

func (t *task) closeInstance() {
	if t.inst != nil {
		t.inst.Close(context.Background())
		t.inst = nil
	}
}

// recordFailed applies the stage's error policy to one record.
func (t *task) recordFailed(r *kgo.Record, kind, msg string) error {
	s := t.stage
	t.env.metrics.GuestErrors.WithLabelValues(s.name, kind, string(s.cfg.ErrorPolicy)).Inc()
	attrs := []any{"topic", r.Topic, "offset", r.Offset, "kind", kind, "error", msg}
	switch s.cfg.ErrorPolicy {
	case config.PolicySkip:
		s.failures.log(t.log, kind, string(s.cfg.ErrorPolicy), "record failed; skipped", attrs...)
		return nil
	case config.PolicyDeadLetter:
		if t.replayed(r) {
			t.log.Debug("record failed while replayed; its dead letter was written by the generation that serves", attrs...)
			return nil
		}
		s.failures.log(t.log, kind, string(s.cfg.ErrorPolicy), "record failed; sent to the dead-letter topic", append(attrs, "dead_letter_topic", s.cfg.DeadLetterTopic)...)
		hs := append(append([]kgo.RecordHeader(nil), r.Headers...),
			kgo.RecordHeader{Key: "streamrt.error", Value: []byte(msg)},
			kgo.RecordHeader{Key: "streamrt.error.kind", Value: []byte(kind)},
			kgo.RecordHeader{Key: "streamrt.stage", Value: []byte(s.name)},
			kgo.RecordHeader{Key: "streamrt.module.version", Value: []byte(t.module.Version())},
			kgo.RecordHeader{Key: "streamrt.source.topic", Value: []byte(r.Topic)},
			kgo.RecordHeader{Key: "streamrt.source.partition", Value: []byte(strconv.Itoa(int(r.Partition)))},
			kgo.RecordHeader{Key: "streamrt.source.offset", Value: []byte(strconv.FormatInt(r.Offset, 10))},
		)
		t.cycle.outputs = append(t.cycle.outputs, &kgo.Record{Topic: s.cfg.DeadLetterTopic, Key: r.Key, Value: r.Value, Headers: hs, Timestamp: r.Timestamp})
		t.env.deadLetters.add(s.name, s.cfg.DeadLetterTopic, r, hs[len(r.Headers):])
		return nil
	default:
		return &TaskError{Stage: s.name, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Reason: msg}
	}
}

// advanceStreamTime moves the stream time to the highest timestamp of recs.
func (t *task) advanceStreamTime(recs []*kgo.Record) {
	for _, r := range recs {
		if ts := r.Timestamp.UnixMilli(); ts > t.streamTime {
			t.streamTime = ts
		}
	}
}

// encodedSize is the exact size of encode's output for recs.
func (t *task) encodedSize(recs []*kgo.Record) int {
	n := abi.BatchHeaderSize + abi.TopicTableSize(t.stage.inputs)
	for _, r := range recs {
		n += recordSize(r)
	}
	return n
}

// encode appends the batch encoding of recs to dst.
func (t *task) encode(dst []byte, recs []*kgo.Record) []byte {
	b := abi.AppendBatchHeader(dst, len(recs), t.streamTime, t.stage.inputs)
	for _, r := range recs {
		b = abi.AppendRecord(b, t.stage.topicIndex[r.Topic], r.Partition, r.Offset, r.Timestamp.UnixMilli(), r.Key, r.Value, len(r.Headers))
		for _, h := range r.Headers {
			b = abi.AppendHeader(b, h.Key, h.Value)
		}
	}
	return b
}

// drop discards the task's uncommitted cycle.
func (t *task) drop() {
	t.cache.clear()
	t.cycle.drop()
}

func (t *task) close() {
	t.drop()
	t.closeInstance()
	for _, gr := range t.globalReaders {
		if gr.r != nil {
			gr.r.Close()
		}
	}
}

// globalReader is a task's reader of one global table, with the generation
// of the table's cache it was refreshed at.
type globalReader struct {
	r   *state.Reader
	gen uint64
}

// recordSize is a record's size in a batch encoding.
func recordSize(r *kgo.Record) int {
	n := abi.RecordSize(r.Key, r.Value)
	for _, h := range r.Headers {
		n += abi.HeaderSize(h.Key, h.Value)
	}
	return n
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms) }

func short(version string) string {
	if len(version) > 12 {
		return version[:12]
	}
	return version
}
