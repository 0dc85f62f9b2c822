package streamrt

import "unsafe"

// Arguments for the host functions, and wrappers that take slices. A host
// call returns through every function between it and the handler, and in
// the Go Wasm port each of those returns is mispredicted (wazero leaves and
// re-enters Wasm code by switching stacks), so the hot paths (Emit,
// Store.Get, Store.Put, Store.Delete) call the host functions directly and
// the wrappers serve the rest.

// bytesArg passes b as (ptr, len); nil is the same as empty.
func bytesArg(b []byte) (*byte, int32) { return unsafe.SliceData(b), int32(len(b)) }

// nullableArg passes b as (ptr, len) with len -1 (abi.Null) for nil.
func nullableArg(b []byte) (*byte, int32) {
	if b == nil {
		return nil, -1
	}
	return unsafe.SliceData(b), int32(len(b))
}

// capArg passes buf as (ptr, cap): the host may write up to cap(buf) bytes.
func capArg(buf []byte) (*byte, int32) { return unsafe.SliceData(buf[:cap(buf)]), int32(cap(buf)) }

func storeOpen(name string) int32 { return hostStoreOpen(name) }

// storeGet passes buf's whole capacity.
func storeGet(store int32, key, buf []byte) int32 {
	kp, kl := bytesArg(key)
	bp, bc := capArg(buf)
	return hostStoreGet(store, kp, kl, bp, bc)
}

func storeRange(store int32, start, end []byte) int32 {
	sp, sl := nullableArg(start)
	ep, el := nullableArg(end)
	return hostStoreRange(store, sp, sl, ep, el)
}

// rangeNext passes buf's whole capacity.
func rangeNext(iter int32, buf []byte) int32 {
	bp, bc := capArg(buf)
	return hostRangeNext(iter, bp, bc)
}

func rangeClose(iter int32) int32 { return hostRangeClose(iter) }

func outputOpen(name string) int32 { return hostOutputOpen(name) }

func emit(output, rec int32, key, val, hdr []byte, ts int64) int32 {
	kp, kl := nullableArg(key)
	vp, vl := nullableArg(val)
	hp, hl := bytesArg(hdr)
	return hostEmit(output, rec, kp, kl, vp, vl, hp, hl, ts)
}

func logMessage(level int32, msg string) { hostLog(level, msg) }

func recordError(rec int32, msg string) int32 { return hostRecordError(rec, msg) }

func respond(status int32, contentType string, body []byte) int32 {
	p, n := bytesArg(body)
	return hostRespond(status, contentType, p, n)
}
