package streamrt

import (
	"encoding/binary"

	"github.com/streamrt/streamrt/abi"
)

type output struct {
	name   string
	handle int32
	err    error // sticky: the host said the output is not declared
}

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
	h, err := openOutput(output)
	if err != nil {
		return err
	}
	ts := int64(abi.InheritTimestamp)
	var hdr []byte
	count, withHeaders := 0, false
	for i := range opts {
		o := &opts[i]
		if o.setTimestamp {
			ts = o.timestamp
		}
		if o.setHeaders {
			withHeaders = true
			count += len(o.headers)
		}
	}
	if withHeaders {
		hdr = binary.LittleEndian.AppendUint32(inst.headers[:0], uint32(count))
		for i := range opts {
			for _, h := range opts[i].headers {
				hdr = abi.AppendHeader(hdr, h.Key, h.Value)
			}
		}
		inst.headers = hdr
	}
	if rc := emit(h, inst.current, key, value, hdr, ts); rc < 0 {
		return hostError(abi.FuncEmit, output, rc)
	}
	return nil
}

func openOutput(name string) (int32, error) {
	// Most stages emit to one output: remember the last one to skip the map.
	if o := inst.lastOutput; o != nil && o.name == name && o.handle >= 0 {
		return o.handle, nil
	}
	o, ok := inst.outputs[name]
	if !ok {
		if inst.outputs == nil {
			inst.outputs = make(map[string]*output)
		}
		o = &output{name: name, handle: -1}
		inst.outputs[name] = o
	}
	if o.handle >= 0 {
		inst.lastOutput = o
		return o.handle, nil
	}
	if o.err != nil {
		return 0, o.err
	}
	rc := outputOpen(name)
	if rc < 0 {
		err := hostError(abi.FuncOutputOpen, name, rc)
		if abi.Code(rc) == abi.ErrUnknownOut {
			o.err = err
		}
		return 0, err
	}
	o.handle = rc
	inst.lastOutput = o
	return rc, nil
}

// EmitOption changes how Emit produces its record.
type EmitOption struct {
	headers      []Header
	timestamp    int64
	setHeaders   bool
	setTimestamp bool
}

// WithHeaders gives the output record headers; several WithHeaders add up.
// Emit encodes them before it returns and does not keep hs.
func WithHeaders(hs ...Header) EmitOption {
	return EmitOption{headers: hs, setHeaders: true}
}

// WithTimestamp sets the output record's timestamp in milliseconds since the
// Unix epoch. -1 (abi.InheritTimestamp) is the default: inherit the input
// record's timestamp.
func WithTimestamp(ms int64) EmitOption {
	return EmitOption{timestamp: ms, setTimestamp: true}
}
