//go:build !wasip1

package streamrt

import (
	"bytes"
	"maps"
	"slices"

	"github.com/streamrt/streamrt/abi"
)

// fakeHost stands in for the streamrt host on the native target: stores are
// maps, emits and record errors are recorded, and range_next writes into
// whatever buffer it is given, so small buffers exercise the SDK's growth.
// Like the real host it copies every byte it keeps.
type fakeHost struct {
	storeNames []string
	readOnly   map[string]bool
	stores     []map[string][]byte
	outputs    []string

	iters    map[int32]*fakeIter
	nextIter int32

	// Discard makes puts and emits no-ops that only count, so that
	// allocation tests measure the SDK alone.
	Discard bool
	// MaxEntries caps the entries one range_next writes; 0 means as many as
	// fit.
	MaxEntries int
	// Canned, when set, is what range_next returns for the next store_range,
	// one element per call; it lets tests feed the SDK exact bytes.
	Canned [][]byte

	// querying is set during a query call: writes and emits are refused,
	// and resp takes the guest's answer.
	querying bool
	resp     *FakeResponse

	// RefuseBatch, when negative, is what emit_batch returns, emitting
	// nothing: a host refusing the SDK's buffer.
	RefuseBatch int32

	emits    []FakeEmit
	batches  [][]byte // each emit_batch buffer, in order (none with Discard)
	nBatches int
	writes   []fakeWrite
	errs     []FakeRecordError
	logs     []string
	opens    int // store_open and output_open calls
	grows    int // range_next results that asked for a bigger buffer
	nEmits   int
}

// FakeConfig declares what the stage may use.
type FakeConfig struct {
	Stores   []string
	ReadOnly []string // stores the stage may only read
	Outputs  []string
}

// FakeEmit is one emitted record, through emit or emit_batch.
type FakeEmit struct {
	Output     string
	Rec        int32
	Key, Value []byte
	Headers    []byte // the encoded header list; nil when none
	Timestamp  int64
}

// FakeRecordError is one call of record_error.
type FakeRecordError struct {
	Rec int32
	Msg string
}

type fakeWrite struct {
	store  string
	rec    int32
	key    string
	value  []byte
	delete bool
}

type fakeIter struct {
	entries [][2][]byte
	canned  [][]byte
}

// newFakeHost installs a fake host and resets the SDK as if the guest had
// just been instantiated: no handler, no open handles.
func newFakeHost(cfg FakeConfig) *fakeHost {
	f := &fakeHost{
		storeNames: slices.Concat(cfg.Stores, cfg.ReadOnly),
		readOnly:   map[string]bool{},
		outputs:    cfg.Outputs,
		iters:      map[int32]*fakeIter{},
		nextIter:   100,
	}
	for _, name := range cfg.ReadOnly {
		f.readOnly[name] = true
	}
	for range f.storeNames {
		f.stores = append(f.stores, map[string][]byte{})
	}
	resetInstance()
	nativeHost = f
	return f
}

// Process encodes b, writes it into the guest's buffer as the host does and
// calls streamrt_process.
func (f *fakeHost) Process(b *abi.Batch) int32 {
	return f.ProcessEncoded(abi.EncodeBatch(nil, b))
}

// ProcessEncoded is Process for an encoded batch.
func (f *fakeHost) ProcessEncoded(enc []byte) int32 {
	buf := inputBuffer(int32(len(enc)))
	copy(buf, enc)
	rc := process(buf[:len(enc)])
	clear(f.iters) // the host closes iterators left open
	return rc
}

// Emitted returns the records emitted so far.
func (f *fakeHost) Emitted() []FakeEmit { return f.emits }

// RecordErrors returns the record_error calls so far.
func (f *fakeHost) RecordErrors() []FakeRecordError { return f.errs }

// Set stores value under key in the named store, as earlier batches would
// have.
func (f *fakeHost) Set(store, key, value string) {
	f.stores[slices.Index(f.storeNames, store)][key] = []byte(value)
}

// Stored returns the value under key in the named store.
func (f *fakeHost) Stored(store, key string) (string, bool) {
	v, ok := f.stores[slices.Index(f.storeNames, store)][key]
	return string(v), ok
}

func (f *fakeHost) store(h int32) (map[string][]byte, bool) {
	if h < 0 || int(h) >= len(f.stores) {
		return nil, false
	}
	return f.stores[h], true
}

func (f *fakeHost) storeOpen(name string) int32 {
	f.opens++
	if i := slices.Index(f.storeNames, name); i >= 0 {
		return int32(i)
	}
	return int32(abi.ErrUnknownStore)
}

func (f *fakeHost) storeGet(h int32, key, buf []byte) int32 {
	m, ok := f.store(h)
	if !ok {
		return int32(abi.ErrUnknownStore)
	}
	v, ok := m[string(key)]
	if !ok {
		return int32(abi.ErrNotFound)
	}
	if len(v) <= cap(buf) {
		copy(buf[:len(v)], v)
	}
	return int32(len(v))
}

func (f *fakeHost) write(h, rec int32, key, val []byte, del bool) int32 {
	m, ok := f.store(h)
	if !ok {
		return int32(abi.ErrUnknownStore)
	}
	name := f.storeNames[h]
	if f.readOnly[name] || f.querying {
		return int32(abi.ErrReadOnly)
	}
	if f.Discard {
		return 0
	}
	if del {
		delete(m, string(key))
	} else {
		m[string(key)] = bytes.Clone(val)
	}
	f.writes = append(f.writes, fakeWrite{store: name, rec: rec, key: string(key), value: bytes.Clone(val), delete: del})
	return 0
}

func (f *fakeHost) storePut(h, rec int32, key, val []byte) int32 {
	return f.write(h, rec, key, val, false)
}

func (f *fakeHost) storeDelete(h, rec int32, key []byte) int32 {
	return f.write(h, rec, key, nil, true)
}

func (f *fakeHost) storeRange(h int32, start, end []byte) int32 {
	m, ok := f.store(h)
	if !ok {
		return int32(abi.ErrUnknownStore)
	}
	it := &fakeIter{canned: f.Canned}
	f.Canned = nil
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if (start == nil || k >= string(start)) && (end == nil || k < string(end)) {
			it.entries = append(it.entries, [2][]byte{[]byte(k), bytes.Clone(m[k])})
		}
	}
	f.nextIter++
	f.iters[f.nextIter] = it
	return f.nextIter
}

func (f *fakeHost) rangeNext(h int32, buf []byte) int32 {
	it, ok := f.iters[h]
	if !ok {
		return int32(abi.ErrBadIterator)
	}
	if it.canned != nil {
		if len(it.canned) == 0 {
			return 0
		}
		c := it.canned[0]
		if len(c) > cap(buf) {
			f.grows++
			return int32(len(c))
		}
		it.canned = it.canned[1:]
		return int32(copy(buf[:cap(buf)], c))
	}
	out := buf[:0]
	n := 0
	for len(it.entries) > 0 && (f.MaxEntries == 0 || n < f.MaxEntries) {
		e := it.entries[0]
		size := abi.EntrySize(e[0], e[1])
		if len(out)+size > cap(buf) {
			if len(out) == 0 {
				f.grows++
				return int32(size)
			}
			break
		}
		out = abi.AppendEntry(out, e[0], e[1])
		it.entries = it.entries[1:]
		n++
	}
	return int32(len(out))
}

func (f *fakeHost) rangeClose(h int32) int32 {
	if _, ok := f.iters[h]; !ok {
		return int32(abi.ErrBadIterator)
	}
	delete(f.iters, h)
	return 0
}

func (f *fakeHost) outputOpen(name string) int32 {
	f.opens++
	if f.querying {
		return int32(abi.ErrNotAllowed)
	}
	if i := slices.Index(f.outputs, name); i >= 0 {
		return int32(i)
	}
	return int32(abi.ErrUnknownOut)
}

func (f *fakeHost) emit(h, rec int32, key, val, hdr []byte, ts int64) int32 {
	if f.querying {
		return int32(abi.ErrNotAllowed)
	}
	if h < 0 || int(h) >= len(f.outputs) {
		return int32(abi.ErrUnknownOut)
	}
	if rec < abi.NoRecord || rec != abi.NoRecord && int(rec) >= inst.reader.count {
		return int32(abi.ErrInvalid) // the host knows the batch it wrote
	}
	f.nEmits++
	if f.Discard {
		return 0
	}
	e := FakeEmit{Output: f.outputs[h], Rec: rec, Key: bytes.Clone(key), Value: bytes.Clone(val), Timestamp: ts}
	if len(hdr) > 0 {
		e.Headers = bytes.Clone(hdr)
	}
	f.emits = append(f.emits, e)
	return 0
}

// emitBatch is the real host's emit_batch: a malformed buffer emits
// nothing, then the entries go to emit in order until one is refused.
func (f *fakeHost) emitBatch(buf []byte) int32 {
	f.nBatches++
	if !f.Discard {
		f.batches = append(f.batches, bytes.Clone(buf))
	}
	if f.querying {
		return int32(abi.ErrNotAllowed)
	}
	if f.RefuseBatch < 0 {
		return f.RefuseBatch
	}
	var e abi.Emit
	for b := buf; len(b) > 0; {
		var err error
		if b, err = abi.NextEmit(b, &e); err != nil {
			return int32(abi.ErrInvalid)
		}
	}
	for b := buf; len(b) > 0; {
		b, _ = abi.NextEmit(b, &e)
		if rc := f.emit(e.Output, e.Rec, e.Key, e.Value, e.Headers, e.Timestamp); rc < 0 {
			return rc
		}
	}
	return 0
}

func (f *fakeHost) log(level int32, msg string) {
	f.logs = append(f.logs, Level(level).String()+" "+msg)
}

// FakeResponse is a query handler's answer as the host received it.
type FakeResponse struct {
	Status      int32
	ContentType string
	Body        string
}

// Query encodes q, writes it into the guest's buffer as the host does and
// calls streamrt_query; it returns the export's result and the answer.
func (f *fakeHost) Query(q *abi.QueryRequest) (int32, *FakeResponse) {
	enc := abi.AppendQueryRequest(nil, q)
	buf := inputBuffer(int32(len(enc)))
	copy(buf, enc)
	f.querying, f.resp = true, nil
	rc := query(buf[:len(enc)])
	f.querying = false
	clear(f.iters)
	return rc, f.resp
}

func (f *fakeHost) respond(status int32, contentType string, body []byte) int32 {
	if !f.querying || f.resp != nil {
		return int32(abi.ErrNotAllowed)
	}
	if status < abi.MinStatus || status > abi.MaxStatus {
		return int32(abi.ErrInvalid)
	}
	f.resp = &FakeResponse{Status: status, ContentType: contentType, Body: string(body)}
	return 0
}

// recordError keeps the report and, as the host does, drops the record's
// emits at the tail of those made so far.
func (f *fakeHost) recordError(rec int32, msg string) int32 {
	f.errs = append(f.errs, FakeRecordError{Rec: rec, Msg: msg})
	if rec >= 0 {
		n := len(f.emits)
		for n > 0 && f.emits[n-1].Rec == rec {
			n--
		}
		f.emits = f.emits[:n]
	}
	return 0
}
