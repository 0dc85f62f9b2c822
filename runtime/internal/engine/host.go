package engine

import (
	"bytes"
	"fmt"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// batchHost serves a task's guest during one batch call (wasm.Host). It is
// reset before every call and used by one goroutine at a time.
type batchHost struct {
	t    *task
	txn  *state.Txn
	recs []*kgo.Record

	// Effects are attributed to records so that one failed record can be
	// undone. State effects (writes, with their changelog records) and
	// outputs are two streams, each in record order: a guest that buffers
	// its emits hands them over after later records' writes. writes and
	// emits say which record's effects are at the tail of each stream, and
	// where they start.
	writes      effects
	emits       effects
	interleaved bool // a stream went back to an earlier record: undo by record is impossible

	failed   map[int32]string // record index → last reported message
	batchMsg string           // message explaining a failing batch

	iters  state.Cursors
	getBuf []byte
	// stateErr is the first store call of the batch that failed in the
	// host (stateFailed).
	stateErr error

	// replayed holds, under a fence, whether each record's outputs are
	// dropped (Fence).
	replayed []bool
}

// effects marks where one record's effects start in a stream.
type effects struct {
	rec  int32      // the record at the stream's tail, or abi.NoRecord
	mark state.Mark // writes: the txn's mark
	n    int        // writes: len(changes); emits: len(outputs)
	m    int        // emits: len(latest)
}

func (h *batchHost) reset(txn *state.Txn, recs []*kgo.Record) {
	h.txn, h.recs = txn, recs
	h.replayed = h.replayed[:0]
	if h.t.env.fence != nil {
		for _, r := range recs {
			h.replayed = append(h.replayed, h.t.replayed(r))
		}
	}
	h.writes, h.emits, h.interleaved = effects{rec: abi.NoRecord}, effects{rec: abi.NoRecord}, false
	clear(h.failed)
	h.batchMsg = ""
	h.stateErr = nil
}

// stateFailed logs a store call that failed in the host, remembers the
// first of the batch for the task to stop with (a damaged or unusable
// state is no fault of the record's, and no error policy should skip it),
// and returns the code the guest gets.
func (h *batchHost) stateFailed(op string, ks state.Keyspace, err error) abi.Code {
	h.t.log.Error("store "+op+" failed", "store", ks.Store(), "err", err)
	if h.stateErr == nil {
		h.stateErr = fmt.Errorf("%s %v: %w", op, ks, err)
	}
	return abi.ErrInternal
}

// closeIters closes iterators the guest left open; they live for one call.
func (h *batchHost) closeIters() { h.iters.CloseAll() }

// attribute notes that record rec is about to cause an effect in stream e,
// whose tail is now at mark and n. It reports false for a record index
// outside the batch.
func (h *batchHost) attribute(e *effects, rec int32, mark func() state.Mark, n, m int) bool {
	if rec == e.rec || rec == abi.NoRecord {
		return true
	}
	if rec < abi.NoRecord || rec >= int32(len(h.recs)) {
		return false
	}
	if rec < e.rec {
		h.interleaved = true
		return true
	}
	e.rec, e.n, e.m = rec, n, m
	if mark != nil {
		e.mark = mark()
	}
	return true
}

func (h *batchHost) attributeWrite(rec int32) bool {
	return h.attribute(&h.writes, rec, h.txn.Mark, len(h.t.cycle.changes), 0)
}

func (h *batchHost) attributeEmit(rec int32) bool {
	c := &h.t.cycle
	return h.attribute(&h.emits, rec, nil, len(c.outputs), len(c.latest))
}

func (h *batchHost) OpenStore(name string) (int32, abi.Code) {
	for i, ks := range h.t.stores {
		if ks.Store() == name {
			return int32(i), abi.OK
		}
	}
	return 0, abi.ErrUnknownStore
}

func (h *batchHost) store(handle int32) (state.Keyspace, bool) {
	if handle < 0 || int(handle) >= len(h.t.stores) {
		return state.Keyspace{}, false
	}
	return h.t.stores[handle], true
}

func (h *batchHost) Get(store int32, key []byte) ([]byte, abi.Code) {
	ks, ok := h.store(store)
	if !ok {
		return nil, abi.ErrUnknownStore
	}
	if gc := h.t.globals[store]; gc != nil {
		return h.getGlobal(gc, store, ks, key)
	}
	if cv, ok := h.t.cache.get(store, key); ok {
		if !cv.found {
			return nil, abi.ErrNotFound
		}
		return cv.v, abi.OK
	}
	v, found, err := h.txn.Get(ks, key, h.getBuf)
	if err != nil {
		return nil, h.stateFailed("read", ks, err)
	}
	h.getBuf = v
	h.t.cache.set(store, key, v, found)
	if !found {
		return nil, abi.ErrNotFound
	}
	return v, abi.OK
}

// getGlobal reads a global table through the instance's cache of it. A
// miss reads the latest committed value (not the batch's snapshot, which
// may predate a change the cache has already dropped).
func (h *batchHost) getGlobal(gc *globalCache, handle int32, ks state.Keyspace, key []byte) ([]byte, abi.Code) {
	cv, ok, gen := gc.get(key)
	if !ok {
		// The task's reader of the table is refreshed once per change of
		// the table, so that it is never older than gen.
		gr := &h.t.globalReaders[handle]
		if gr.r == nil {
			gr.r = h.t.env.db.NewReader()
		} else if gr.gen != gen {
			gr.r.Refresh()
		}
		gr.gen = gen
		v, found, err := gr.r.Get(ks, key, h.getBuf)
		if err != nil {
			return nil, h.stateFailed("read", ks, err)
		}
		h.getBuf = v
		gc.put(gen, key, v, found)
		cv = cachedValue{v: v, found: found}
	}
	if !cv.found {
		return nil, abi.ErrNotFound
	}
	return cv.v, abi.OK
}

func (h *batchHost) Put(store, rec int32, key, value []byte) abi.Code {
	ks, ok := h.store(store)
	if !ok {
		return abi.ErrUnknownStore
	}
	if int(store) >= len(h.t.stage.stores) {
		return abi.ErrReadOnly // a table: the host alone writes it
	}
	if key == nil || value == nil || !h.attributeWrite(rec) {
		return abi.ErrInvalid
	}
	if err := h.txn.Put(ks, key, value); err != nil {
		return h.stateFailed("write", ks, err)
	}
	h.t.cache.set(store, key, value, true)
	h.change(store, rec, key, value)
	return abi.OK
}

// change records a store change for the store's changelog; it goes out with
// the cycle's outputs, and is undone with them.
func (h *batchHost) change(store, rec int32, key, value []byte) {
	c := &h.t.cycle
	r := &kgo.Record{
		Topic:     h.t.stage.stores[store].Changelog,
		Partition: h.t.partition,
		Key:       c.arena.copy(key),
		Value:     c.arena.copy(value),
		Timestamp: msTime(h.t.streamTime),
	}
	if rec >= 0 {
		r.Timestamp = h.recs[rec].Timestamp
	}
	c.changes = append(c.changes, r)
}

func (h *batchHost) Delete(store, rec int32, key []byte) abi.Code {
	ks, ok := h.store(store)
	if !ok {
		return abi.ErrUnknownStore
	}
	if int(store) >= len(h.t.stage.stores) {
		return abi.ErrReadOnly
	}
	if !h.attributeWrite(rec) {
		return abi.ErrInvalid
	}
	if err := h.txn.Delete(ks, key); err != nil {
		return h.stateFailed("delete", ks, err)
	}
	h.t.cache.set(store, key, nil, false)
	h.change(store, rec, key, nil)
	return abi.OK
}

func (h *batchHost) Range(store int32, start, end []byte) (int32, abi.Code) {
	ks, ok := h.store(store)
	if !ok {
		return 0, abi.ErrUnknownStore
	}
	it, err := h.txn.NewIter(ks, start, end)
	if err != nil {
		return 0, h.stateFailed("range", ks, err)
	}
	return h.iters.Open(it), abi.OK
}

func (h *batchHost) RangeNext(iter int32, buf []byte) (int, int, abi.Code) {
	return h.iters.Next(iter, buf)
}

func (h *batchHost) RangeClose(iter int32) abi.Code { return h.iters.Close(iter) }

func (h *batchHost) OpenOutput(name string) (int32, abi.Code) {
	for i, o := range h.t.stage.outputs {
		if o.Name == name {
			return int32(i), abi.OK
		}
	}
	return 0, abi.ErrUnknownOut
}

func (h *batchHost) Emit(out, rec int32, key, value, headers []byte, ts int64) abi.Code {
	if out < 0 || int(out) >= len(h.t.stage.outputs) {
		return abi.ErrUnknownOut
	}
	if !h.attributeEmit(rec) {
		return abi.ErrInvalid
	}
	c := &h.t.cycle
	var hs []kgo.RecordHeader
	if len(headers) > 0 {
		decoded, err := abi.DecodeHeaders(headers, nil)
		if err != nil {
			return abi.ErrInvalid
		}
		hs = make([]kgo.RecordHeader, len(decoded))
		for i, d := range decoded {
			hs[i] = kgo.RecordHeader{Key: d.Key, Value: c.arena.copy(d.Value)}
		}
	}
	if len(h.replayed) > 0 && h.replayed[max(rec, 0)] {
		if !h.t.stage.outputs[out].Internal {
			return abi.OK // the generation that serves produced it
		}
		hs = append(hs, replayHeader)
	}
	if vh := h.t.versionHeader; vh != nil {
		if hs == nil {
			hs = vh
		} else {
			hs = append(hs, vh...)
		}
	}
	o := &h.t.stage.outputs[out]
	r := &kgo.Record{
		Topic:   o.Topic,
		Key:     c.arena.copy(key),
		Value:   c.arena.copy(value),
		Headers: hs,
	}
	switch {
	case ts != abi.InheritTimestamp:
		r.Timestamp = msTime(ts)
	case rec >= 0:
		r.Timestamp = h.recs[rec].Timestamp
	default:
		r.Timestamp = msTime(h.t.streamTime)
	}
	if o.Latest {
		c.latest = append(c.latest, r)
	} else {
		c.outputs = append(c.outputs, r)
	}
	return abi.OK
}

func (h *batchHost) Log(level int32, msg []byte) {
	h.t.log.Log(h.t.ctx, wasm.LogLevel(level), string(bytes.ToValidUTF8(msg, []byte("?"))), "guest", true)
}

func (h *batchHost) RecordError(rec int32, msg []byte) abi.Code {
	if rec == abi.NoRecord {
		h.batchMsg = string(msg)
		return abi.OK
	}
	if rec < 0 || rec >= int32(len(h.recs)) {
		return abi.ErrInvalid
	}
	// A stream whose tail is a later record holds this record's effects,
	// if any, before that record's: they cannot be undone alone, and the
	// batch is replayed record by record instead.
	c := &h.t.cycle
	switch {
	case h.writes.rec > rec || h.emits.rec > rec:
		h.interleaved = true
	case h.interleaved:
	default:
		if h.writes.rec == rec {
			h.t.cache.clear()
			if err := h.txn.RollbackTo(h.writes.mark); err != nil {
				h.t.log.Error("undo failed record", "err", err)
				h.interleaved = true // fall back to replaying the batch
			}
			c.changes = c.changes[:h.writes.n]
		}
		if h.emits.rec == rec {
			c.outputs, c.latest = c.outputs[:h.emits.n], c.latest[:h.emits.m]
		}
	}
	if h.failed == nil {
		h.failed = make(map[int32]string)
	}
	h.failed[rec] = string(msg)
	return abi.OK
}
