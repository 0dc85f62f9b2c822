//go:build !wasip1

package streamrt

import (
	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/sdk/go/internal/native"
)

// The door through which package streamrttest runs a program's handlers on
// the native target: it attaches its host and calls the exports as the
// streamrt host calls a guest's.

func init() {
	native.Guest = native.Exports{
		Buffer:  inputBuffer,
		Process: process,
		Query:   query,
		Init:    initInstance,
		Attach:  attach,
	}
}

// registered holds the handlers the program registered from func init(),
// taken at the first attach, which comes after every init function ran.
var registered struct {
	taken    bool
	onRecord func(*Record) error
	onBatch  func(*Batch) error
	onQuery  func(*Query) Response
}

func attach(h native.Host, own bool) {
	if !registered.taken {
		registered.taken = true
		registered.onRecord, registered.onBatch, registered.onQuery = inst.onRecord, inst.onBatch, inst.onQuery
	}
	resetInstance()
	if !own {
		inst.onRecord, inst.onBatch, inst.onQuery = registered.onRecord, registered.onBatch, registered.onQuery
	}
	nativeHost = nil
	if h != nil {
		nativeHost = linked{h}
	}
}

// resetInstance puts the SDK in the state of a new instance, without
// handlers. Stores opened in package variables keep their names and forget
// their handles.
func resetInstance() {
	for _, s := range inst.stores {
		*s = Store{name: s.name}
	}
	inst = instance{current: abi.NoRecord, streamTime: -1, stores: inst.stores}
}

// linked is an attached native.Host seen as the SDK's host.
type linked struct{ h native.Host }

func (l linked) storeOpen(name string) int32                 { return l.h.StoreOpen(name) }
func (l linked) storeGet(store int32, key, buf []byte) int32 { return l.h.StoreGet(store, key, buf) }
func (l linked) storePut(store, rec int32, key, val []byte) int32 {
	return l.h.StorePut(store, rec, key, val)
}
func (l linked) storeDelete(store, rec int32, key []byte) int32 {
	return l.h.StoreDelete(store, rec, key)
}
func (l linked) storeRange(store int32, start, end []byte) int32 {
	return l.h.StoreRange(store, start, end)
}
func (l linked) rangeNext(iter int32, buf []byte) int32 { return l.h.RangeNext(iter, buf) }
func (l linked) rangeClose(iter int32) int32            { return l.h.RangeClose(iter) }
func (l linked) outputOpen(name string) int32           { return l.h.OutputOpen(name) }
func (l linked) emit(output, rec int32, key, val, hdr []byte, ts int64) int32 {
	return l.h.Emit(output, rec, key, val, hdr, ts)
}
func (l linked) emitBatch(buf []byte) int32              { return l.h.EmitBatch(buf) }
func (l linked) log(level int32, msg string)             { l.h.Log(level, msg) }
func (l linked) recordError(rec int32, msg string) int32 { return l.h.RecordError(rec, msg) }
func (l linked) respond(status int32, contentType string, body []byte) int32 {
	return l.h.Respond(status, contentType, body)
}
