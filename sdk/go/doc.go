// Package streamrt is the Go SDK for writing streamrt stage modules: Go
// programs compiled to WebAssembly that the streamrt host calls once per
// batch of input records. Its import path ends in "go", which cannot be a
// package name, so the package is named streamrt; import it as
//
//	import streamrt "github.com/streamrt/streamrt/sdk/go"
//
// A guest is a main package that registers one handler from func init():
//
//	func init() {
//		streamrt.HandleRecord(func(r *streamrt.Record) error {
//			return streamrt.Emit("out", r.Key, r.Value)
//		})
//	}
//
//	func main() {}
//
// and is built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o stage.wasm .
//
// In that build mode the host's call to _initialize runs the package init
// functions and main is never called, which is why registration belongs in
// init (main must still exist, and may be empty). Importing this package
// provides the exports the host requires (streamrt_abi_version,
// streamrt_buffer, streamrt_process and streamrt_init, which refuses an
// instance that registered no handler).
//
// # Attribution
//
// Every effect (Emit, Store.Put, Store.Delete) carries the index of the
// record it was made for, so that the host can discard a failed record's
// effects and keep the rest of the batch. The SDK stamps it automatically:
// in a per-record handler, effects belong to the record being handled; in a
// batch handler, to the record at hand inside a Batch.All loop, and to the
// batch as a whole elsewhere.
//
// # Memory
//
// Nothing the SDK hands out outlives the handler call: record keys, values
// and headers alias the host's input buffer, values from Store.Get live in a
// buffer reused for the next record, and iterator entries live in a buffer
// reused by the next Iterator.Next. Copy what you keep. In the other
// direction everything passed to the SDK is copied before the call returns:
// by the host, or for Emit into the buffer in which the SDK collects a
// batch's emits for the host (see Emit and Flush).
// With that rule the per-record path (decoding, a Get, a Put and an Emit)
// allocates nothing once warmed up. Header keys are strings interned per
// instance; only a key beyond the first 256 distinct ones is allocated for
// each record that carries it.
//
// # Failures
//
// A handler's error or panic fails one record (HandleRecord) or the batch
// (HandleBatch), never the instance. Host errors are *HostError values that
// unwrap to the sentinel errors of this package, such as ErrUnknownStore.
//
// # JSON
//
// Package rawjson (github.com/streamrt/streamrt/sdk/go/rawjson) reads and
// writes JSON record values in place, without reflection or allocations:
// encoding/json costs a guest hundreds of microseconds per record in Wasm.
//
// The SDK keeps per-instance state and is not safe for concurrent use: call
// it only from the handler, on the goroutine the handler runs on. Off the
// wasip1 target there is no host; the package's tests supply a fake one.
package streamrt
