//go:build !wasip1

package streamrt

import "unsafe"

// Off wasip1 there are no Wasm imports: the host functions below, which
// have the imports' signatures, go to nativeHost, which the package's tests
// set to an in-process fake so that `go test` on the native target
// exercises the same code paths as a real guest, argument passing included.
// The fake gets slices; it must copy what it keeps, as a real host copies
// out of guest memory. A nil slice stands for a length of -1 (abi.Null)
// where the ABI allows null (range bounds, emitted keys and values).

type host interface {
	storeOpen(name string) int32
	storeGet(store int32, key, buf []byte) int32 // buf: write up to cap(buf) bytes
	storePut(store, rec int32, key, val []byte) int32
	storeDelete(store, rec int32, key []byte) int32
	storeRange(store int32, start, end []byte) int32
	rangeNext(iter int32, buf []byte) int32 // buf: write up to cap(buf) bytes
	rangeClose(iter int32) int32
	outputOpen(name string) int32
	emit(output, rec int32, key, val, hdr []byte, ts int64) int32
	emitBatch(buf []byte) int32
	log(level int32, msg string)
	recordError(rec int32, msg string) int32
	respond(status int32, contentType string, body []byte) int32
}

var nativeHost host

func theHost() host {
	if nativeHost == nil {
		panic("streamrt: no host: a guest runs inside the streamrt host; build it with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared")
	}
	return nativeHost
}

// slice is the inverse of nullableArg and bytesArg: the bytes at p, nil for
// a length of -1.
func slice(p *byte, n int32) []byte {
	if n < 0 {
		return nil
	}
	return unsafe.Slice(p, n)
}

// buffer is the inverse of capArg: an empty slice with capacity n at p.
func buffer(p *byte, n int32) []byte { return unsafe.Slice(p, n)[:0] }

func hostStoreOpen(name string) int32 { return theHost().storeOpen(name) }

func hostStoreGet(store int32, key *byte, keyLen int32, buf *byte, bufCap int32) int32 {
	return theHost().storeGet(store, notNil(slice(key, keyLen)), buffer(buf, bufCap))
}

func hostStorePut(store, rec int32, key *byte, keyLen int32, val *byte, valLen int32) int32 {
	return theHost().storePut(store, rec, notNil(slice(key, keyLen)), notNil(slice(val, valLen)))
}

func hostStoreDelete(store, rec int32, key *byte, keyLen int32) int32 {
	return theHost().storeDelete(store, rec, notNil(slice(key, keyLen)))
}

func hostStoreRange(store int32, start *byte, startLen int32, end *byte, endLen int32) int32 {
	return theHost().storeRange(store, slice(start, startLen), slice(end, endLen))
}

func hostRangeNext(iter int32, buf *byte, bufCap int32) int32 {
	return theHost().rangeNext(iter, buffer(buf, bufCap))
}

func hostRangeClose(iter int32) int32 { return theHost().rangeClose(iter) }

func hostOutputOpen(name string) int32 { return theHost().outputOpen(name) }

func hostEmit(output, rec int32, key *byte, keyLen int32, val *byte, valLen int32, hdr *byte, hdrLen int32, ts int64) int32 {
	return theHost().emit(output, rec, slice(key, keyLen), slice(val, valLen), slice(hdr, hdrLen), ts)
}

func hostEmitBatch(buf *byte, bufLen int32) int32 {
	return theHost().emitBatch(slice(buf, bufLen))
}

func hostLog(level int32, msg string) { theHost().log(level, msg) }

func hostRecordError(rec int32, msg string) int32 { return theHost().recordError(rec, msg) }

func hostRespond(status int32, contentType string, body *byte, bodyLen int32) int32 {
	return theHost().respond(status, contentType, slice(body, bodyLen))
}

// notNil mirrors the wasip1 calls, which pass a nil store key or value as
// empty rather than null: the host sees a length of 0.
func notNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
