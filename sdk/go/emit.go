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
// Batch.All), so the host drops it if that record fails. The host copies
// key, value and headers: the caller may reuse them as soon as Emit returns.
// An undeclared output is an error that names it and wraps ErrUnknownOutput.
func Emit(output string, key, value []byte, opts ...EmitOption) error {
	// The common cases, the same output as last time named by the same
	// string, with no option or one without headers, are laid out for the
	// Go Wasm port, where a taken branch is costly: with one option they
	// take no branch, with none one. Anything else goes to emitSlow. Each
	// check leaves by a call of its own, and each success returns first,
	// which makes the compiler lay the rest out of line.
	o := inst.lastOutput
	if o == nil {
		return emitSlow(output, key, value, opts)
	}
	if !o.same(output) {
		return emitSlow(output, key, value, opts)
	}
	kp, kl := nullableArg(key)
	vp, vl := nullableArg(value)
	if len(opts) == 0 {
		rc := hostEmit(o.handle, inst.current, kp, kl, vp, vl, nil, 0, abi.InheritTimestamp)
		if rc >= 0 {
			return nil
		}
		return hostError(abi.FuncEmit, output, rc)
	}
	if uint(len(opts)-1)|uint(len(opts[0].headers)) != 0 {
		return emitSlow(output, key, value, opts)
	}
	rc := hostEmit(o.handle, inst.current, kp, kl, vp, vl, nil, 0, opts[0].timestamp())
	if rc >= 0 {
		return nil
	}
	return hostError(abi.FuncEmit, output, rc)
}

// emitSlow is Emit for the cases its fast path leaves out.
func emitSlow(output string, key, value []byte, opts []EmitOption) error {
	o, err := openOutput(output)
	if err != nil {
		return err
	}
	ts, hdr := applyOptions(opts)
	if rc := emit(o.handle, inst.current, key, value, hdr, ts); rc < 0 {
		return hostError(abi.FuncEmit, output, rc)
	}
	return nil
}

// applyOptions returns the timestamp the options set and the encoded list
// of their headers, nil when there are none: emit then passes no list
// rather than an empty one, which spares the host decoding it.
func applyOptions(opts []EmitOption) (ts int64, hdr []byte) {
	ts = abi.InheritTimestamp
	count := 0
	for i := range opts {
		if opts[i].ts != 0 {
			ts = opts[i].timestamp()
		}
		count += len(opts[i].headers)
	}
	if count == 0 {
		return ts, nil
	}
	hdr = binary.LittleEndian.AppendUint32(inst.headers[:0], uint32(count))
	for i := range opts {
		for _, h := range opts[i].headers {
			hdr = abi.AppendHeader(hdr, h.Key, h.Value)
		}
	}
	inst.headers = hdr
	return ts, hdr
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
