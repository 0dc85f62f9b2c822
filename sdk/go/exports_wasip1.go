//go:build wasip1

package streamrt

import (
	"unsafe"

	"github.com/streamrt/streamrt/abi"
)

// The guest's exports. //go:wasmexport works in any package of the program,
// so importing this package is all a guest needs to export them.

//go:wasmexport streamrt_abi_version
func exportABIVersion() int32 { return abi.Version }

//go:wasmexport streamrt_init
func exportInit() int32 { return initInstance() }

//go:wasmexport streamrt_buffer
func exportBuffer(size int32) *byte {
	b := inputBuffer(size)
	if b == nil {
		return nil
	}
	return &b[0]
}

//go:wasmexport streamrt_process
func exportProcess(ptr *byte, n int32) int32 {
	b, ok := inBuffer(ptr, n)
	if !ok {
		return failBatch(errBatchOutsideBuffer)
	}
	return process(b)
}

//go:wasmexport streamrt_query
func exportQuery(ptr *byte, n int32) int32 {
	b, ok := inBuffer(ptr, n)
	if !ok {
		return respondError(500, errBatchOutsideBuffer)
	}
	return query(b)
}

// inBuffer returns ptr..ptr+n, which must lie in the buffer streamrt_buffer
// handed out: it is the only guest memory the host may write.
func inBuffer(ptr *byte, n int32) ([]byte, bool) {
	b := inst.input[:cap(inst.input)]
	off := uintptr(unsafe.Pointer(ptr)) - uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if len(b) == 0 || n < 0 || off > uintptr(len(b)) || uintptr(n) > uintptr(len(b))-off {
		return nil, false
	}
	return b[off : off+uintptr(n)], true
}
