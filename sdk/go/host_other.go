//go:build !wasip1

package streamrt

// Off wasip1 there are no Wasm imports: the SDK's calls go to nativeHost,
// which the package's tests set to an in-process fake so that `go test` on
// the native target exercises the same code paths as a real guest. Slices are
// passed as they are; the host must copy what it keeps, as a real host copies
// out of guest memory. A nil slice stands for a length of -1 (abi.Null) where
// the ABI allows null (range bounds, emitted keys and values).

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
	log(level int32, msg string)
	recordError(rec int32, msg string) int32
}

var nativeHost host

func theHost() host {
	if nativeHost == nil {
		panic("streamrt: no host: a guest runs inside the streamrt host; build it with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared")
	}
	return nativeHost
}

func storeOpen(name string) int32 { return theHost().storeOpen(name) }

func storeGet(store int32, key, buf []byte) int32 {
	return theHost().storeGet(store, notNil(key), buf)
}

func storePut(store, rec int32, key, val []byte) int32 {
	return theHost().storePut(store, rec, notNil(key), notNil(val))
}

func storeDelete(store, rec int32, key []byte) int32 {
	return theHost().storeDelete(store, rec, notNil(key))
}

func storeRange(store int32, start, end []byte) int32 {
	return theHost().storeRange(store, start, end)
}

func rangeNext(iter int32, buf []byte) int32 { return theHost().rangeNext(iter, buf) }

func rangeClose(iter int32) int32 { return theHost().rangeClose(iter) }

func outputOpen(name string) int32 { return theHost().outputOpen(name) }

func emit(output, rec int32, key, val, hdr []byte, ts int64) int32 {
	return theHost().emit(output, rec, key, val, hdr, ts)
}

func logMessage(level int32, msg string) { theHost().log(level, msg) }

func recordError(rec int32, msg string) int32 { return theHost().recordError(rec, msg) }

// notNil mirrors the wasip1 shims, which pass a nil key or value of a store
// call as empty rather than null.
func notNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
