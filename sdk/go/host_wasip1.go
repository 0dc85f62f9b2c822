//go:build wasip1

package streamrt

// The streamrt_v1 host functions (see abi/ABI.md). A Go string parameter is
// passed as two i32s, pointer then length; a *byte as one i32 pointer.
// host_other.go defines the same functions for the native target; host.go
// wraps them for all but the hot paths.

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

//go:wasmimport streamrt_v1 emit_batch
func hostEmitBatch(buf *byte, bufLen int32) int32

//go:wasmimport streamrt_v1 log
func hostLog(level int32, msg string)

//go:wasmimport streamrt_v1 record_error
func hostRecordError(rec int32, msg string) int32

//go:wasmimport streamrt_v1 respond
func hostRespond(status int32, contentType string, body *byte, bodyLen int32) int32
