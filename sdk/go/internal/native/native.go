// Package native connects package streamrt, built for a native target, to a
// host that runs in the same process: the streamrttest harness. It is the
// only door between the two, so that neither needs to export more than its
// users see.
package native

// Host is the streamrt_v1 host functions (abi/ABI.md) with slices in place
// of guest memory. A nil slice stands for a length of -1 (abi.Null) where
// the ABI allows null; buf arguments are empty with the capacity the guest
// offers. Implementations copy what they keep.
type Host interface {
	StoreOpen(name string) int32
	StoreGet(store int32, key, buf []byte) int32
	StorePut(store, rec int32, key, val []byte) int32
	StoreDelete(store, rec int32, key []byte) int32
	StoreRange(store int32, start, end []byte) int32
	RangeNext(iter int32, buf []byte) int32
	RangeClose(iter int32) int32
	OutputOpen(name string) int32
	Emit(output, rec int32, key, val, hdr []byte, ts int64) int32
	EmitBatch(buf []byte) int32
	Log(level int32, msg string)
	RecordError(rec int32, msg string) int32
	Respond(status int32, contentType string, body []byte) int32
}

// Exports are the guest's exports as package streamrt implements them.
type Exports struct {
	Buffer  func(size int32) []byte // streamrt_buffer
	Process func(buf []byte) int32  // streamrt_process on buf, a prefix of Buffer's result
	Query   func(buf []byte) int32  // streamrt_query
	Init    func() int32            // streamrt_init
	// Attach makes h the host and resets the SDK to the state of a new
	// instance: no open stores, outputs or iterators. With own false the
	// handlers the program registered from func init() stay registered;
	// with own true none are, and the caller registers its own through
	// the public API. A nil h detaches.
	Attach func(h Host, own bool)
}

// Guest is set by package streamrt's init on every target but wasip1; it is
// not changed afterwards.
var Guest Exports
