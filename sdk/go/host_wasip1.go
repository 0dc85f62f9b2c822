//go:build wasip1

package streamrt

import "unsafe"

// The streamrt_v1 host functions (see abi/ABI.md). A Go string parameter is
// passed as two i32s, pointer then length; a *byte as one i32 pointer.

//go:wasmimport streamrt_v1 store_open
func hostStoreOpen(name string) int32

//go:wasmimport streamrt_v1 store_get
func hostStoreGet(store int32, key *byte, keyLen int32, buf *byte, bufCap int32) int32

//go:wasmimport streamrt_v1 store_put
func hostStorePut(store, rec int32, key *byte, keyLen int32, val *byte, valLen int32) int32

//go:wasmimport streamrt_v1 store_delete
func hostStoreDelete(store, rec int32, key *byte, keyLen int32) int32

//go:wasmimport streamrt_v1 store_range
func hostStoreRange(store int32, start *byte, startLen int32, end *byte, endLen int32) int32

//go:wasmimport streamrt_v1 range_next
func hostRangeNext(iter int32, buf *byte, bufCap int32) int32

//go:wasmimport streamrt_v1 range_close
func hostRangeClose(iter int32) int32

//go:wasmimport streamrt_v1 output_open
func hostOutputOpen(name string) int32

//go:wasmimport streamrt_v1 emit
func hostEmit(output, rec int32, key *byte, keyLen int32, val *byte, valLen int32, hdr *byte, hdrLen int32, ts int64) int32

//go:wasmimport streamrt_v1 log
func hostLog(level int32, msg string)

//go:wasmimport streamrt_v1 record_error
func hostRecordError(rec int32, msg string) int32

// bytesArg passes b as (ptr, len); nil is the same as empty.
func bytesArg(b []byte) (*byte, int32) { return unsafe.SliceData(b), int32(len(b)) }

// nullableArg passes b as (ptr, len) with len -1 (abi.Null) for nil.
func nullableArg(b []byte) (*byte, int32) {
	if b == nil {
		return nil, -1
	}
	return unsafe.SliceData(b), int32(len(b))
}

func storeOpen(name string) int32 { return hostStoreOpen(name) }

// storeGet passes buf's whole capacity.
func storeGet(store int32, key, buf []byte) int32 {
	kp, kl := bytesArg(key)
	return hostStoreGet(store, kp, kl, unsafe.SliceData(buf[:cap(buf)]), int32(cap(buf)))
}

func storePut(store, rec int32, key, val []byte) int32 {
	kp, kl := bytesArg(key)
	vp, vl := bytesArg(val)
	return hostStorePut(store, rec, kp, kl, vp, vl)
}

func storeDelete(store, rec int32, key []byte) int32 {
	kp, kl := bytesArg(key)
	return hostStoreDelete(store, rec, kp, kl)
}

func storeRange(store int32, start, end []byte) int32 {
	sp, sl := nullableArg(start)
	ep, el := nullableArg(end)
	return hostStoreRange(store, sp, sl, ep, el)
}

// rangeNext passes buf's whole capacity.
func rangeNext(iter int32, buf []byte) int32 {
	return hostRangeNext(iter, unsafe.SliceData(buf[:cap(buf)]), int32(cap(buf)))
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
