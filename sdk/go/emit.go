package streamrt

import (
	"encoding/binary"
	"unsafe"

	"github.com/streamrt/streamrt/abi"
)

// Emit produces a record to the named output, which the app's configuration
// maps to a topic. A nil key or value is null (a nil value is a tombstone).
// The record takes the timestamp of the input record being handled (the
// stream time outside one) unless WithTimestamp says otherwise.
//
// The emit is attributed to the record being handled (see HandleRecord and
// Batch.All), so the host drops it if that record fails. Emit copies key,
// value and headers: the caller may reuse them as soon as it returns.
// While a batch is processed, Emit collects its records in a buffer in
// guest memory, which the SDK hands to the host in one call when it fills
// and when the batch ends (see Flush); outside a batch, Emit hands each
// record over at once. An undeclared output is an error that names it and
// wraps ErrUnknownOutput, returned at once either way.
func Emit(output string, key, value []byte, opts ...EmitOption) error {
	// The common cases, the same output as last time named by the same
	// string, with no option or one without headers, and room in the
	// buffer, are laid out for the Go Wasm port, where a taken branch is
	// costly: they write the entry in place and return. Anything else goes
	// to emitSlow. Each check leaves by a call of its own, which makes the
	// compiler lay those paths out of line.
	o := inst.lastOutput
	if o == nil {
		return emitSlow(output, key, value, opts)
	}
	if !o.same(output) {
		return emitSlow(output, key, value, opts)
	}
	ts := int64(abi.InheritTimestamp)
	if len(opts) != 0 {
		if uint(len(opts)-1)|uint(len(opts[0].headers)) != 0 {
			return emitSlow(output, key, value, opts)
		}
		ts = opts[0].timestamp()
	}
	// The buffer's length is a plain int, and its slice never changes
	// during a batch: storing a slice would take a write barrier check,
	// whose jump costs the host's termination check with a deadline.
	b := inst.emits
	n := inst.emitLen
	end := n + abi.EmitFixedSize + len(key) + len(value)
	if end > len(b) {
		return emitSlow(output, key, value, opts)
	}
	// putEmit, inlined by hand: a call costs more than the stores.
	e := b[n:end]
	_ = e[abi.EmitFixedSize-1]
	binary.LittleEndian.PutUint32(e, uint32(o.handle))
	binary.LittleEndian.PutUint32(e[4:], uint32(inst.current))
	binary.LittleEndian.PutUint64(e[8:], uint64(ts))
	binary.LittleEndian.PutUint32(e[16:], lenOrNull(key))
	binary.LittleEndian.PutUint32(e[20:], lenOrNull(value))
	binary.LittleEndian.PutUint32(e[24:], 0)
	// A key of 8 to 16 bytes moves in two overlapping 8-byte loads and
	// stores rather than a call of memmove, which costs more than they do
	// in the Go Wasm port.
	if kn := len(key); kn >= 8 && kn <= 16 {
		k := e[abi.EmitFixedSize : abi.EmitFixedSize+kn]
		binary.LittleEndian.PutUint64(k, binary.LittleEndian.Uint64(key))
		binary.LittleEndian.PutUint64(k[kn-8:], binary.LittleEndian.Uint64(key[kn-8:]))
	} else {
		copy(e[abi.EmitFixedSize:], key)
	}
	copy(e[abi.EmitFixedSize+len(key):], value)
	inst.emitLen = end
	return nil
}

// putEmit encodes an emit entry without headers into e, which is exactly
// its size (abi.AppendEmit's encoding, written in place).
func putEmit(e []byte, handle int32, kl, vl uint32, ts int64, key, value []byte) {
	_ = e[abi.EmitFixedSize-1]
	binary.LittleEndian.PutUint32(e, uint32(handle))
	binary.LittleEndian.PutUint32(e[4:], uint32(inst.current))
	binary.LittleEndian.PutUint64(e[8:], uint64(ts))
	binary.LittleEndian.PutUint32(e[16:], kl)
	binary.LittleEndian.PutUint32(e[20:], vl)
	binary.LittleEndian.PutUint32(e[24:], 0)
	copy(e[abi.EmitFixedSize:], key)
	copy(e[abi.EmitFixedSize+len(key):], value)
}

// nullLen is the length word of a null key or value in an emit entry.
const nullLen = 0xFFFFFFFF

// lenOrNull is b's length word in an emit entry, as a conditional select
// rather than a branch.
func lenOrNull(b []byte) uint32 {
	n := uint32(len(b))
	if b == nil {
		n = nullLen
	}
	return n
}

// emitSlow is Emit for the cases its fast path leaves out: another output
// than last time, options with headers or more than one option, and an
// entry that does not fit in the buffer.
func emitSlow(output string, key, value []byte, opts []EmitOption) error {
	o, err := openOutput(output)
	if err != nil {
		return err
	}
	ts, nh, hsize := optionTotals(opts)
	size := abi.EmitFixedSize + len(key) + len(value) + hsize
	if size > len(inst.emits)-inst.emitLen {
		// The buffer is full, or off outside a batch. What it holds goes
		// first, so that the records reach the host in order; an entry
		// larger than the whole buffer then goes alone.
		if err := flushEmits(); err != nil {
			return err
		}
		if size > len(inst.emits) {
			return emitNow(o, output, key, value, opts, ts)
		}
	}
	n := inst.emitLen
	e := inst.emits[n : n+size]
	putEmit(e, o.handle, lenOrNull(key), lenOrNull(value), ts, key, value)
	if nh > 0 {
		binary.LittleEndian.PutUint32(e[24:], uint32(hsize))
		// Appending within e's capacity writes the list in place.
		hdr := e[size-hsize : size-hsize]
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(nh))
		for i := range opts {
			for _, h := range opts[i].headers {
				hdr = abi.AppendHeader(hdr, h.Key, h.Value)
			}
		}
	}
	inst.emitLen = n + size
	return nil
}

// emitNow hands one record to the host through emit, bypassing the buffer.
func emitNow(o *output, output string, key, value []byte, opts []EmitOption, ts int64) error {
	if rc := emit(o.handle, inst.current, key, value, headerList(opts), ts); rc < 0 {
		return hostError(abi.FuncEmit, output, rc)
	}
	return nil
}

// optionTotals returns the timestamp the options set (the last one wins),
// their number of headers and the size of the header list they make up: 0
// when there are none, so that the entry carries no list rather than an
// empty one, which spares the host decoding it.
func optionTotals(opts []EmitOption) (ts int64, count, size int) {
	ts = abi.InheritTimestamp
	for i := range opts {
		if opts[i].ts != 0 {
			ts = opts[i].timestamp()
		}
		for _, h := range opts[i].headers {
			size += abi.HeaderSize(h.Key, h.Value)
		}
		count += len(opts[i].headers)
	}
	if count == 0 {
		return ts, 0, 0
	}
	return ts, count, 4 + size
}

// headerList encodes the options' headers as emit takes them, in reused
// scratch memory, or returns nil when there are none.
func headerList(opts []EmitOption) []byte {
	count := 0
	for i := range opts {
		count += len(opts[i].headers)
	}
	if count == 0 {
		return nil
	}
	hdr := binary.LittleEndian.AppendUint32(inst.headers[:0], uint32(count))
	for i := range opts {
		for _, h := range opts[i].headers {
			hdr = abi.AppendHeader(hdr, h.Key, h.Value)
		}
	}
	inst.headers = hdr
	return hdr
}

// emitBufferSize is the size of the buffer Emit collects entries in. It is
// one Wasm page: enough for hundreds of typical records, which share the
// one crossing into the host (about 75 ns) until its cost per record is
// lost in the noise, so a larger buffer would save nothing; and small
// enough to stay in the processor's cache and to cost an instance little
// memory. An entry larger than the buffer goes to the host on its own.
const emitBufferSize = 64 << 10

// Flush hands the records that Emit has buffered to the host now. The SDK
// does so itself when the buffer fills and when a batch ends, which is all
// a stage needs: Flush is for code that also calls the host's emit
// functions itself, through //go:wasmimport declarations of its own, and
// wants those records to come after the buffered ones. Outside a batch
// there is nothing to flush. A flush the host refuses fails the batch.
func Flush() error { return flushEmits() }

// beginEmits turns the buffer on for a streamrt_process call.
func beginEmits() {
	if inst.emitArea == nil {
		inst.emitArea = make([]byte, emitBufferSize)
	}
	inst.emits, inst.emitLen, inst.emitMark, inst.emitErr = inst.emitArea, 0, 0, nil
}

// endEmits ends a streamrt_process call that returns rc: a completed batch
// hands over what the buffer holds, a failed one drops it (the host undoes
// the batch anyway). It turns the buffer off, and returns the call's
// result: a flush the host refused fails the batch.
func endEmits(rc int32) int32 {
	if rc == 0 {
		flushEmits()
		if inst.emitErr != nil {
			rc = failBatch(inst.emitErr)
		}
	}
	inst.emits, inst.emitLen, inst.emitMark, inst.emitErr = nil, 0, 0, nil
	return rc
}

// flushEmits hands the buffered entries to the host in one emit_batch call.
// The host refuses a buffer only for what the SDK checks itself (a handle
// it opened, a record index it stamped), so a refusal is a bug; it is kept
// to fail the batch.
func flushEmits() error {
	b := inst.emits[:inst.emitLen]
	if len(b) == 0 {
		return nil
	}
	inst.emitLen, inst.emitMark = 0, 0
	if rc := hostEmitBatch(unsafe.SliceData(b), int32(len(b))); rc < 0 {
		err := hostError(abi.FuncEmitBatch, "", rc)
		if inst.emitErr == nil {
			inst.emitErr = err
		}
		return err
	}
	return nil
}

// dropEmits takes record rec's entries off the tail of the buffer, looking
// from offset from on, so that a failed record's buffered records never
// reach the host (record_error undoes those already handed over). Entries
// of rec followed by another record's, from a batch handler that went back
// to an earlier record, cannot be taken off alone: then it hands the buffer
// over as it is, so that the host sees the records in the order they were
// made and treats the failure as it would have without the buffer.
func dropEmits(rec int32, from int) {
	b := inst.emits[:inst.emitLen]
	tail, stranded := -1, false
	for p := from; p < len(b); p += entryLen(b[p:]) {
		switch {
		case int32(binary.LittleEndian.Uint32(b[p+4:])) != rec:
			stranded = stranded || tail >= 0
			tail = -1
		case tail < 0:
			tail = p
		}
	}
	switch {
	case stranded:
		flushEmits()
	case tail >= 0:
		inst.emitLen = tail
	}
}

// entryLen is the size of the buffered entry at the start of e.
func entryLen(e []byte) int {
	n := abi.EmitFixedSize + int(binary.LittleEndian.Uint32(e[24:]))
	for _, l := range [2]uint32{binary.LittleEndian.Uint32(e[16:]), binary.LittleEndian.Uint32(e[20:])} {
		if l != nullLen {
			n += int(l)
		}
	}
	return n
}

// output is an output handle, opened on first use.
type output struct {
	name   string
	handle int32
	err    error // sticky: the host said the output is not declared
}

// same reports whether name is the very string o was opened with, as when a
// stage names its outputs with string constants. It compares without a
// branch.
func (o *output) same(name string) bool {
	return uintptr(unsafe.Pointer(unsafe.StringData(o.name)))^uintptr(unsafe.Pointer(unsafe.StringData(name)))|uintptr(len(o.name)^len(name)) == 0
}

// openOutput returns the named output, opening its handle the first time,
// and makes it the last output used, which Emit checks first.
func openOutput(name string) (*output, error) {
	o := lookupOutput(name)
	if o.handle < 0 {
		if o.err != nil {
			return nil, o.err
		}
		rc := outputOpen(name)
		if rc < 0 {
			err := hostError(abi.FuncOutputOpen, name, rc)
			if abi.Code(rc) == abi.ErrUnknownOut {
				o.err = err
			}
			return nil, err
		}
		o.handle = rc
	}
	inst.lastOutput = o
	return o, nil
}

// lookupOutput finds or adds the named output. It first looks for the very
// same string among the outputs (a stage has few, named by constants), then
// in a map by content.
func lookupOutput(name string) *output {
	for _, o := range inst.outputList {
		if o.same(name) {
			return o
		}
	}
	if o, ok := inst.outputs[name]; ok {
		return o
	}
	if inst.outputs == nil {
		inst.outputs = make(map[string]*output)
	}
	o := &output{name: name, handle: -1}
	inst.outputs[name] = o
	inst.outputList = append(inst.outputList, o)
	return o
}

// EmitOption changes how Emit produces its record.
type EmitOption struct {
	headers []Header
	// ts is the timestamp plus one, so that the zero value means "inherit"
	// and a single option needs no flag test: WithTimestamp(-1) also
	// inherits.
	ts int64
}

func (o *EmitOption) timestamp() int64 { return o.ts - 1 }

// WithHeaders gives the output record headers; several WithHeaders add up.
// Emit encodes them before it returns and does not keep hs.
func WithHeaders(hs ...Header) EmitOption {
	return EmitOption{headers: hs}
}

// WithTimestamp sets the output record's timestamp in milliseconds since the
// Unix epoch. -1 (abi.InheritTimestamp) is the default: inherit the input
// record's timestamp.
func WithTimestamp(ms int64) EmitOption {
	return EmitOption{ts: ms + 1}
}
