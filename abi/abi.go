// Package abi holds the constants and encodings of streamrt's host ABI v1: the
// contract between the host runtime and the WebAssembly guests it runs. The host
// and the guest SDKs both import it, so it depends on nothing but the standard
// library and holds no mutable state. ABI.md beside this file is the
// specification; the golden vectors in testdata/ pin the encodings byte by byte.
package abi

// Version is the ABI version this package describes.
const Version = 1

// Minor is the minor version of ABI 1 that this package describes. A minor
// version adds to the ABI without changing what was there (ABI.md,
// Versioning): 1.1 added query handlers (ExportQuery, FuncRespond), 1.2
// FuncEmitBatch. The import module and Version stay the same.
const Minor = 2

// ImportModule is the Wasm import module name under which the host provides its
// functions. It carries the version so that a guest built for another version
// fails to link with a message naming both.
const ImportModule = "streamrt_v1"

// ImportModulePrefix is what every version's import module name starts with.
const ImportModulePrefix = "streamrt_v"

// Guest exports.
const (
	// ExportMemory is the guest's linear memory. Required.
	ExportMemory = "memory"
	// ExportABIVersion is func() i32 returning the ABI version the guest was built
	// for. Required.
	ExportABIVersion = "streamrt_abi_version"
	// ExportBuffer is func(size i32) i32: return the address of a guest-owned
	// buffer of at least size bytes, valid until the next call; 0 when the guest
	// cannot allocate it. Required.
	ExportBuffer = "streamrt_buffer"
	// ExportProcess is func(ptr, len i32) i32: process the batch encoded at
	// ptr..ptr+len. 0 means the batch completed (records may still have failed
	// one by one through record_error); any other value fails the whole batch.
	// Required.
	ExportProcess = "streamrt_process"
	// ExportInit is func() i32, called once after instantiation; non-zero
	// refuses the instance. Optional.
	ExportInit = "streamrt_init"
	// ExportInitialize is the WASI reactor initialiser (Go's c-shared build
	// mode and others emit it). Optional; when present it runs before anything
	// else.
	ExportInitialize = "_initialize"
)

// Host functions, all in ImportModule. Signatures are in ABI.md.
const (
	FuncStoreOpen   = "store_open"
	FuncStoreGet    = "store_get"
	FuncStorePut    = "store_put"
	FuncStoreDelete = "store_delete"
	FuncStoreRange  = "store_range"
	FuncRangeNext   = "range_next"
	FuncRangeClose  = "range_close"
	FuncOutputOpen  = "output_open"
	FuncEmit        = "emit"
	FuncLog         = "log"
	FuncRecordError = "record_error"
)

// Null is the length that marks an absent (null) key, value or bound, as
// opposed to an empty one.
const Null = -1

// NoRecord is the record index a guest passes for effects and errors that
// belong to the batch as a whole rather than to one record.
const NoRecord = -1

// InheritTimestamp is the timestamp a guest passes to emit to give the output
// record the timestamp of the input record it belongs to (or the batch's
// stream time when it belongs to no record).
const InheritTimestamp = -1

// Code is a status returned by a host function. Non-negative results carry a
// value (a handle, a length); negative ones are these codes.
type Code int32

// Status codes. Their values are part of the ABI and never change.
const (
	OK              Code = 0
	ErrNotFound     Code = -1 // store_get: no value for the key
	ErrUnknownStore Code = -2 // store name not declared for the stage, or bad handle
	ErrUnknownOut   Code = -3 // output name not declared for the stage, or bad handle
	ErrReadOnly     Code = -4 // write to a store the stage may only read
	ErrInvalid      Code = -5 // bad argument: memory outside the guest's, a null store key or value, a record index outside the batch
	ErrBadIterator  Code = -6 // unknown or closed iterator handle
	ErrTooLarge     Code = -7 // key or value over the host's limit
	ErrInternal     Code = -8 // the host failed (I/O); the batch will be retried
	ErrNotAllowed   Code = -9 // the call is not allowed here, such as a write outside streamrt_process
)

var codeText = map[Code]string{
	OK:              "ok",
	ErrNotFound:     "not found",
	ErrUnknownStore: "unknown store",
	ErrUnknownOut:   "unknown output",
	ErrReadOnly:     "store is read-only",
	ErrInvalid:      "invalid argument",
	ErrBadIterator:  "bad iterator",
	ErrTooLarge:     "too large",
	ErrInternal:     "host internal error",
	ErrNotAllowed:   "not allowed",
}

// String returns the code's text, such as "unknown store".
func (c Code) String() string {
	if s, ok := codeText[c]; ok {
		return s
	}
	return "code " + itoa(int64(c))
}

// Log levels for the log host function.
const (
	LevelDebug = 0
	LevelInfo  = 1
	LevelWarn  = 2
	LevelError = 3
)

func itoa(v int64) string {
	var b [20]byte
	i := len(b)
	neg := v < 0
	u := uint64(v)
	if neg {
		u = uint64(-v)
	}
	for {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
