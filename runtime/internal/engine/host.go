package engine

import (
	"bytes"

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
	// undone: cur is the record whose effects are at the tail, starting at
	// curMark in the txn and at curOutput and curChange in the cycle's
	// outputs and changes.
	cur         int32
	curMark     state.Mark
	curOutput   int
	curChange   int
	interleaved bool // effects of records were interleaved: undo by record is impossible

	failed   map[int32]string // record index → last reported message
	batchMsg string           // message explaining a failing batch

	iters  state.Cursors
	getBuf []byte
}

func (h *batchHost) reset(txn *state.Txn, recs []*kgo.Record) {
	h.txn, h.recs = txn, recs
	h.cur, h.interleaved = abi.NoRecord, false
	clear(h.failed)
	h.batchMsg = ""
}

// closeIters closes iterators the guest left open; they live for one call.
func (h *batchHost) closeIters() { h.iters.CloseAll() }

// attribute notes that record rec is about to cause an effect.
func (h *batchHost) attribute(rec int32) {
	if rec == h.cur || rec == abi.NoRecord {
		return
	}
	if rec < h.cur || rec >= int32(len(h.recs)) {
		h.interleaved = true
		return
	}
	c := &h.t.cycle
	h.cur, h.curMark, h.curOutput, h.curChange = rec, h.txn.Mark(), len(c.outputs), len(c.changes)
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
	if cv, ok := h.t.cache.get(store, key); ok {
		if !cv.found {
			return nil, abi.ErrNotFound
		}
		return cv.v, abi.OK
	}
	v, found, err := h.txn.Get(ks, key, h.getBuf)
	if err != nil {
		h.t.log.Error("store read failed", "store", ks.Store(), "err", err)
		return nil, abi.ErrInternal
	}
	h.getBuf = v
	h.t.cache.set(store, key, v, found)
	if !found {
		return nil, abi.ErrNotFound
	}
	return v, abi.OK
}

func (h *batchHost) Put(store, rec int32, key, value []byte) abi.Code {
	ks, ok := h.store(store)
	if !ok {
		return abi.ErrUnknownStore
	}
	if int(store) >= len(h.t.stage.stores) {
		return abi.ErrReadOnly // a table: the host alone writes it
	}
	if key == nil || value == nil {
		return abi.ErrInvalid
	}
	h.attribute(rec)
	if err := h.txn.Put(ks, key, value); err != nil {
		h.t.log.Error("store write failed", "store", ks.Store(), "err", err)
		return abi.ErrInternal
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
	h.attribute(rec)
	if err := h.txn.Delete(ks, key); err != nil {
		h.t.log.Error("store delete failed", "store", ks.Store(), "err", err)
		return abi.ErrInternal
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
		h.t.log.Error("store range failed", "store", ks.Store(), "err", err)
		return 0, abi.ErrInternal
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
	if rec < abi.NoRecord || rec >= int32(len(h.recs)) {
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
	h.attribute(rec)
	r := &kgo.Record{
		Topic:   h.t.stage.outputs[out].Topic,
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
	c.outputs = append(c.outputs, r)
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
	switch {
	case rec == h.cur && !h.interleaved:
		h.t.cache.clear()
		if err := h.txn.RollbackTo(h.curMark); err != nil {
			h.t.log.Error("undo failed record", "err", err)
			h.interleaved = true // fall back to replaying the batch
		}
		c := &h.t.cycle
		c.outputs, c.changes = c.outputs[:h.curOutput], c.changes[:h.curChange]
	case rec < h.cur:
		// Its effects are no longer at the tail; the batch is replayed
		// record by record instead.
		h.interleaved = true
	}
	if h.failed == nil {
		h.failed = make(map[int32]string)
	}
	h.failed[rec] = string(msg)
	return abi.OK
}
