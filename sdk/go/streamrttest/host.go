package streamrttest

import (
	"bytes"
	"slices"

	"github.com/streamrt/streamrt/abi"
	streamrt "github.com/streamrt/streamrt/sdk/go"
)

// host is the harness's model of the streamrt host serving one task: the
// host functions with the engine's rules (which record an effect belongs
// to, what a failed record undoes, what a query may do), over stores in
// memory with an undo journal. It implements native.Host.
type host struct {
	stores  []*store
	outputs []string
	policy  Policy
	stage   string

	streamTime int64
	stopped    *StoppedError

	journal []undo // writes since the last commit
	emitted []emitted
	logs    []Log

	// The current call.
	inCall     bool
	count      int
	timestamps []int64
	// Effects are attributed to records as two streams, each in record
	// order, as the engine keeps them: writes (marks into journal) and
	// emits (marks into emitted). The SDK hands a record's buffered emits
	// over after later records' writes.
	writes, emits stream
	// interleaved: a stream went back to an earlier record, so undo by
	// record is impossible and the batch is run again one record per call.
	interleaved bool
	failed      map[int32]string
	batchMsg    string
	iters       []*iter
	querying    bool
	response    *streamrt.Response
}

type store struct {
	name     string
	readOnly bool
	data     map[string][]byte
}

type undo struct {
	store int
	key   string
	old   []byte
	had   bool
}

// emitted is one record produced to an output (out >= 0) or to the
// dead-letter topic (out == -1).
type emitted struct {
	out int
	msg Message
}

type stream struct {
	rec  int32
	mark int
}

var streamStart = stream{rec: abi.NoRecord}

type iter struct {
	entries [][2][]byte
}

func (h *host) store(name string) (*store, int) {
	for i, s := range h.stores {
		if s.name == name {
			return s, i
		}
	}
	return nil, -1
}

func (h *host) marks() (int, int) { return len(h.journal), len(h.emitted) }

func (h *host) rollback(mark int) {
	for len(h.journal) > mark {
		u := h.journal[len(h.journal)-1]
		h.journal = h.journal[:len(h.journal)-1]
		if u.had {
			h.stores[u.store].data[u.key] = u.old
		} else {
			delete(h.stores[u.store].data, u.key)
		}
	}
}

func (h *host) begin(timestamps []int64) {
	h.inCall = true
	h.count = len(timestamps)
	h.timestamps = timestamps
	h.writes, h.emits = streamStart, streamStart
	h.interleaved = false
	h.failed = map[int32]string{}
	h.batchMsg = ""
}

func (h *host) end() {
	h.inCall = false
	h.iters = nil
}

// attribute moves the emit or write stream to record rec; false when rec
// is out of range.
func (h *host) attribute(emit bool, rec int32) bool {
	s, mark := &h.writes, len(h.journal)
	if emit {
		s, mark = &h.emits, len(h.emitted)
	}
	if rec == s.rec || rec == abi.NoRecord {
		return true
	}
	if rec < abi.NoRecord || int(rec) >= h.count {
		return false
	}
	if rec < s.rec {
		h.interleaved = true
		return true
	}
	*s = stream{rec: rec, mark: mark}
	return true
}

func code(c abi.Code) int32 { return int32(c) }

func (h *host) StoreOpen(name string) int32 {
	if !h.inCall {
		return code(abi.ErrNotAllowed)
	}
	if _, i := h.store(name); i >= 0 {
		return int32(i)
	}
	return code(abi.ErrUnknownStore)
}

func (h *host) StoreGet(s int32, key, buf []byte) int32 {
	if !h.inCall {
		return code(abi.ErrNotAllowed)
	}
	if key == nil {
		return code(abi.ErrInvalid)
	}
	if s < 0 || int(s) >= len(h.stores) {
		return code(abi.ErrUnknownStore)
	}
	v, ok := h.stores[s].data[string(key)]
	if !ok {
		return code(abi.ErrNotFound)
	}
	if len(v) <= cap(buf) {
		copy(buf[:len(v)], v)
	}
	return int32(len(v))
}

func (h *host) write(s, rec int32, key, val []byte, del bool) int32 {
	if !h.inCall {
		return code(abi.ErrNotAllowed)
	}
	if key == nil {
		return code(abi.ErrInvalid)
	}
	if s < 0 || int(s) >= len(h.stores) {
		return code(abi.ErrUnknownStore)
	}
	st := h.stores[s]
	if h.querying || st.readOnly {
		return code(abi.ErrReadOnly)
	}
	if !del && val == nil {
		return code(abi.ErrInvalid)
	}
	if !h.attribute(false, rec) {
		return code(abi.ErrInvalid)
	}
	old, had := st.data[string(key)]
	if del {
		delete(st.data, string(key))
	} else {
		st.data[string(key)] = bytes.Clone(val)
	}
	h.journal = append(h.journal, undo{store: int(s), key: string(key), old: old, had: had})
	return 0
}

func (h *host) StorePut(s, rec int32, key, val []byte) int32 { return h.write(s, rec, key, val, false) }

func (h *host) StoreDelete(s, rec int32, key []byte) int32 { return h.write(s, rec, key, nil, true) }

func (h *host) StoreRange(s int32, start, end []byte) int32 {
	if !h.inCall {
		return code(abi.ErrNotAllowed)
	}
	if s < 0 || int(s) >= len(h.stores) {
		return code(abi.ErrUnknownStore)
	}
	it := &iter{}
	for _, e := range h.stores[s].entries() {
		if (start == nil || bytes.Compare(e.Key, start) >= 0) && (end == nil || bytes.Compare(e.Key, end) < 0) {
			it.entries = append(it.entries, [2][]byte{e.Key, e.Value})
		}
	}
	h.iters = append(h.iters, it)
	return int32(len(h.iters) - 1)
}

func (h *host) iter(i int32) *iter {
	if i < 0 || int(i) >= len(h.iters) {
		return nil
	}
	return h.iters[i]
}

func (h *host) RangeNext(i int32, buf []byte) int32 {
	it := h.iter(i)
	if it == nil {
		return code(abi.ErrBadIterator)
	}
	out := buf[:0]
	for len(it.entries) > 0 {
		e := it.entries[0]
		size := abi.EntrySize(e[0], e[1])
		if len(out)+size > cap(buf) {
			if len(out) == 0 {
				return int32(size)
			}
			break
		}
		out = abi.AppendEntry(out, e[0], e[1])
		it.entries = it.entries[1:]
	}
	return int32(len(out))
}

func (h *host) RangeClose(i int32) int32 {
	if h.iter(i) == nil {
		return code(abi.ErrBadIterator)
	}
	h.iters[i] = nil
	return 0
}

func (h *host) OutputOpen(name string) int32 {
	if !h.inCall || h.querying {
		return code(abi.ErrNotAllowed)
	}
	if i := slices.Index(h.outputs, name); i >= 0 {
		return int32(i)
	}
	return code(abi.ErrUnknownOut)
}

func (h *host) Emit(out, rec int32, key, val, hdr []byte, ts int64) int32 {
	if !h.inCall || h.querying {
		return code(abi.ErrNotAllowed)
	}
	if out < 0 || int(out) >= len(h.outputs) {
		return code(abi.ErrUnknownOut)
	}
	if rec < abi.NoRecord || int(rec) >= h.count {
		return code(abi.ErrInvalid)
	}
	var headers []streamrt.Header
	if len(hdr) > 0 {
		hs, err := abi.DecodeHeaders(hdr, nil)
		if err != nil {
			return code(abi.ErrInvalid)
		}
		for _, x := range hs {
			headers = append(headers, streamrt.Header{Key: x.Key, Value: bytes.Clone(x.Value)})
		}
	}
	if !h.attribute(true, rec) {
		return code(abi.ErrInvalid)
	}
	switch {
	case ts != abi.InheritTimestamp:
	case rec >= 0:
		ts = h.timestamps[rec]
	default:
		ts = h.streamTime
	}
	h.emitted = append(h.emitted, emitted{out: int(out), msg: Message{
		Key: bytes.Clone(key), Value: bytes.Clone(val), Headers: headers, Timestamp: ts,
	}})
	return 0
}

// EmitBatch is the engine's emit_batch: a malformed buffer emits nothing;
// otherwise the entries go to Emit in order until one is refused.
func (h *host) EmitBatch(buf []byte) int32 {
	if !h.inCall || h.querying {
		return code(abi.ErrNotAllowed)
	}
	var e abi.Emit
	for b := buf; len(b) > 0; {
		var err error
		if b, err = abi.NextEmit(b, &e); err != nil {
			return code(abi.ErrInvalid)
		}
	}
	for b := buf; len(b) > 0; {
		b, _ = abi.NextEmit(b, &e)
		if rc := h.Emit(e.Output, e.Rec, e.Key, e.Value, e.Headers, e.Timestamp); rc < 0 {
			return rc
		}
	}
	return 0
}

func (h *host) Log(level int32, msg string) {
	h.logs = append(h.logs, Log{Level: streamrt.Level(level), Msg: msg})
}

func (h *host) RecordError(rec int32, msg string) int32 {
	if h.querying {
		return code(abi.ErrNotAllowed)
	}
	if rec == abi.NoRecord {
		h.batchMsg = msg
		return 0
	}
	if rec < 0 || int(rec) >= h.count {
		return code(abi.ErrInvalid)
	}
	// A stream whose tail is a later record holds this record's effects,
	// if any, before that record's: they cannot be undone alone, and the
	// batch runs again record by record instead.
	switch {
	case h.writes.rec > rec || h.emits.rec > rec:
		h.interleaved = true
	case !h.interleaved:
		if h.writes.rec == rec {
			h.rollback(h.writes.mark)
		}
		if h.emits.rec == rec {
			h.emitted = h.emitted[:h.emits.mark]
		}
	}
	h.failed[rec] = msg
	return 0
}

func (h *host) Respond(status int32, contentType string, body []byte) int32 {
	if !h.querying || h.response != nil {
		return code(abi.ErrNotAllowed)
	}
	if status < abi.MinStatus || status > abi.MaxStatus {
		return code(abi.ErrInvalid)
	}
	h.response = &streamrt.Response{Status: int(status), ContentType: contentType, Body: bytes.Clone(body)}
	return 0
}

// entries returns the store's entries in key order, copied.
func (s *store) entries() []Entry {
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]Entry, len(keys))
	for i, k := range keys {
		out[i] = Entry{Key: []byte(k), Value: bytes.Clone(s.data[k])}
	}
	return out
}
