package wasm

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/streamrt/streamrt/abi"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Host serves one instance's host-function calls during a batch. Byte slices
// passed to it alias guest memory and are valid only until the method
// returns: a Host copies what it keeps. A nil key or value is null; nil
// range bounds are unbounded.
type Host interface {
	OpenStore(name string) (handle int32, code abi.Code)
	Get(store int32, key []byte) (value []byte, code abi.Code)
	Put(store, rec int32, key, value []byte) abi.Code
	Delete(store, rec int32, key []byte) abi.Code
	Range(store int32, start, end []byte) (iter int32, code abi.Code)
	// RangeNext writes whole entries (abi.AppendEntry) into buf and returns
	// the bytes written, or need > len(buf) when the next entry does not fit.
	RangeNext(iter int32, buf []byte) (n int, need int, code abi.Code)
	RangeClose(iter int32) abi.Code
	OpenOutput(name string) (handle int32, code abi.Code)
	Emit(out, rec int32, key, value, headers []byte, ts int64) abi.Code
	Log(level int32, msg []byte)
	RecordError(rec int32, msg []byte) abi.Code
}

// Responder is the Host of a query handler call: it takes the guest's
// answer. During a batch the host is no Responder and respond returns
// ERR_NOT_ALLOWED; during a query emit_batch does.
type Responder interface {
	Respond(status int32, contentType, body []byte) abi.Code
}

// LogLevel maps a log host call's level to slog's; levels outside 0–3 are
// info, as abi/ABI.md says.
func LogLevel(level int32) slog.Level {
	switch level {
	case abi.LevelDebug:
		return slog.LevelDebug
	case abi.LevelWarn:
		return slog.LevelWarn
	case abi.LevelError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// hostFunc is one function of the streamrt_v1 host module.
type hostFunc struct {
	params, results []api.ValueType
	fn              func(h Host, mem api.Memory, s []uint64)
}

// hostFuncs is the whole streamrt_v1 import surface; module validation checks
// a guest's imports against the same table.
var hostFuncs = map[string]hostFunc{
	abi.FuncStoreOpen: {[]api.ValueType{i32, i32}, []api.ValueType{i32}, func(h Host, mem api.Memory, s []uint64) {
		name, ok := mem.Read(u32(s[0]), u32(s[1]))
		if !ok {
			s[0] = code(abi.ErrInvalid)
			return
		}
		hd, c := h.OpenStore(string(name))
		s[0] = result(hd, c)
	}},
	abi.FuncStoreGet: {[]api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}, func(h Host, mem api.Memory, s []uint64) {
		key, ok := mem.Read(u32(s[1]), u32(s[2]))
		if !ok {
			s[0] = code(abi.ErrInvalid)
			return
		}
		v, c := h.Get(int32(s[0]), key)
		if c < 0 {
			s[0] = code(c)
			return
		}
		if uint32(len(v)) <= u32(s[4]) && !mem.Write(u32(s[3]), v) {
			s[0] = code(abi.ErrInvalid)
			return
		}
		s[0] = uint64(uint32(len(v)))
	}},
	abi.FuncStorePut: {[]api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{i32}, func(h Host, mem api.Memory, s []uint64) {
		key, ok1 := mem.Read(u32(s[2]), u32(s[3]))
		val, ok2 := mem.Read(u32(s[4]), u32(s[5]))
		if !ok1 || !ok2 {
			s[0] = code(abi.ErrInvalid)
			return
		}
		s[0] = code(h.Put(int32(s[0]), int32(s[1]), key, val))
	}},
	abi.FuncStoreDelete: {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, func(h Host, mem api.Memory, s []uint64) {
		key, ok := mem.Read(u32(s[2]), u32(s[3]))
		if !ok {
			s[0] = code(abi.ErrInvalid)
			return
		}
		s[0] = code(h.Delete(int32(s[0]), int32(s[1]), key))
	}},
	abi.FuncStoreRange: {[]api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}, func(h Host, mem api.Memory, s []uint64) {
		start, ok1 := readNullable(mem, s[1], s[2])
		end, ok2 := readNullable(mem, s[3], s[4])
		if !ok1 || !ok2 {
			s[0] = code(abi.ErrInvalid)
			return
		}
		it, c := h.Range(int32(s[0]), start, end)
		s[0] = result(it, c)
	}},
	abi.FuncRangeNext: {[]api.ValueType{i32, i32, i32}, []api.ValueType{i32}, func(h Host, mem api.Memory, s []uint64) {
		buf, ok := mem.Read(u32(s[1]), u32(s[2]))
		if !ok {
			s[0] = code(abi.ErrInvalid)
			return
		}
		n, need, c := h.RangeNext(int32(s[0]), buf)
		switch {
		case c < 0:
			s[0] = code(c)
		case need > len(buf):
			s[0] = uint64(uint32(need))
		default:
			s[0] = uint64(uint32(n))
		}
	}},
	abi.FuncRangeClose: {[]api.ValueType{i32}, []api.ValueType{i32}, func(h Host, _ api.Memory, s []uint64) {
		s[0] = code(h.RangeClose(int32(s[0])))
	}},
	abi.FuncOutputOpen: {[]api.ValueType{i32, i32}, []api.ValueType{i32}, func(h Host, mem api.Memory, s []uint64) {
		name, ok := mem.Read(u32(s[0]), u32(s[1]))
		if !ok {
			s[0] = code(abi.ErrInvalid)
			return
		}
		hd, c := h.OpenOutput(string(name))
		s[0] = result(hd, c)
	}},
	abi.FuncEmit: {[]api.ValueType{i32, i32, i32, i32, i32, i32, i32, i32, i64}, []api.ValueType{i32}, func(h Host, mem api.Memory, s []uint64) {
		key, ok1 := readNullable(mem, s[2], s[3])
		val, ok2 := readNullable(mem, s[4], s[5])
		var hdr []byte
		ok3 := true
		if s[7] != 0 { // most records carry no headers
			hdr, ok3 = mem.Read(u32(s[6]), u32(s[7]))
		}
		if !ok1 || !ok2 || !ok3 {
			s[0] = code(abi.ErrInvalid)
			return
		}
		s[0] = code(h.Emit(int32(s[0]), int32(s[1]), key, val, hdr, int64(s[8])))
	}},
	abi.FuncEmitBatch: {[]api.ValueType{i32, i32}, []api.ValueType{i32}, func(h Host, mem api.Memory, s []uint64) {
		if _, ok := h.(Responder); ok {
			s[0] = code(abi.ErrNotAllowed)
			return
		}
		buf, ok := mem.Read(u32(s[0]), u32(s[1]))
		if !ok {
			s[0] = code(abi.ErrInvalid)
			return
		}
		s[0] = code(emitBatch(h, buf))
	}},
	abi.FuncLog: {[]api.ValueType{i32, i32, i32}, nil, func(h Host, mem api.Memory, s []uint64) {
		if msg, ok := mem.Read(u32(s[1]), u32(s[2])); ok {
			h.Log(int32(s[0]), msg)
		}
	}},
	abi.FuncRecordError: {[]api.ValueType{i32, i32, i32}, []api.ValueType{i32}, func(h Host, mem api.Memory, s []uint64) {
		msg, ok := mem.Read(u32(s[1]), u32(s[2]))
		if !ok {
			s[0] = code(abi.ErrInvalid)
			return
		}
		s[0] = code(h.RecordError(int32(s[0]), msg))
	}},
	abi.FuncRespond: {[]api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}, func(h Host, mem api.Memory, s []uint64) {
		r, ok := h.(Responder)
		if !ok {
			s[0] = code(abi.ErrNotAllowed)
			return
		}
		ctype, ok1 := mem.Read(u32(s[1]), u32(s[2]))
		body, ok2 := mem.Read(u32(s[3]), u32(s[4]))
		if !ok1 || !ok2 {
			s[0] = code(abi.ErrInvalid)
			return
		}
		s[0] = code(r.Respond(int32(s[0]), ctype, body))
	}},
}

// emitBatch serves emit_batch: it checks every entry of buf before it emits
// any, so that a malformed buffer emits nothing, then hands the entries to
// h.Emit in order and stops at the first one h refuses. The entries alias
// guest memory, as emit's arguments do.
func emitBatch(h Host, buf []byte) abi.Code {
	var e abi.Emit
	for b := buf; len(b) > 0; {
		var err error
		if b, err = abi.NextEmit(b, &e); err != nil {
			return abi.ErrInvalid
		}
	}
	for b := buf; len(b) > 0; {
		b, _ = abi.NextEmit(b, &e)
		if c := h.Emit(e.Output, e.Rec, e.Key, e.Value, e.Headers, e.Timestamp); c < 0 {
			return c
		}
	}
	return abi.OK
}

type hostKey struct{}

// hostBox carries the Host in the call's context. Asserting the context
// value to this concrete type, unlike to the Host interface, needs no itab
// lookup: it is on the path of every host call.
type hostBox struct{ h Host }

// withHost makes h serve the host calls made during a guest call under ctx.
func withHost(ctx context.Context, h Host) context.Context {
	return context.WithValue(ctx, hostKey{}, &hostBox{h})
}

func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(abi.ImportModule)
	for name, f := range hostFuncs {
		fn := f.fn
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			box, _ := ctx.Value(hostKey{}).(*hostBox)
			if box == nil {
				// Called outside a batch, such as from an initialiser.
				stack[0] = code(abi.ErrNotAllowed)
				return
			}
			fn(box.h, mod.Memory(), stack)
		}), f.params, f.results).Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("wasm: instantiate host module %s: %w", abi.ImportModule, err)
	}
	return nil
}

func u32(v uint64) uint32 { return uint32(v) }

func code(c abi.Code) uint64 { return uint64(uint32(int32(c))) }

func result(v int32, c abi.Code) uint64 {
	if c < 0 {
		return code(c)
	}
	return uint64(uint32(v))
}

// readNullable reads ptr/len where a length of -1 means null.
func readNullable(mem api.Memory, ptr, n uint64) ([]byte, bool) {
	if int32(n) == abi.Null {
		return nil, true
	}
	b, ok := mem.Read(u32(ptr), u32(n))
	if ok && b == nil {
		b = []byte{}
	}
	return b, ok
}
