package streamrt

import (
	"fmt"
	"strconv"

	"github.com/streamrt/streamrt/abi"
)

// Errors the host reports, one per ABI error code. A *HostError unwraps to
// one of these, so callers test with errors.Is(err, streamrt.ErrReadOnly).
var (
	ErrNotFound      = sentinel("not found")
	ErrUnknownStore  = sentinel("unknown store")
	ErrUnknownOutput = sentinel("unknown output")
	ErrReadOnly      = sentinel("store is read-only")
	ErrInvalid       = sentinel("invalid argument")
	ErrBadIterator   = sentinel("bad iterator")
	ErrTooLarge      = sentinel("key or value too large")
	ErrInternal      = sentinel("host internal error")
	ErrNotAllowed    = sentinel("not allowed here")
)

// ErrIteratorClosed is what Iterator.Err reports after the iterator was used
// past the end of the streamrt_process call that opened it.
var ErrIteratorClosed = sentinel("iterator used after its batch ended")

type sentinelError string

func sentinel(text string) error { return sentinelError("streamrt: " + text) }

func (e sentinelError) Error() string { return string(e) }

var codeErrors = map[abi.Code]error{
	abi.ErrNotFound:     ErrNotFound,
	abi.ErrUnknownStore: ErrUnknownStore,
	abi.ErrUnknownOut:   ErrUnknownOutput,
	abi.ErrReadOnly:     ErrReadOnly,
	abi.ErrInvalid:      ErrInvalid,
	abi.ErrBadIterator:  ErrBadIterator,
	abi.ErrTooLarge:     ErrTooLarge,
	abi.ErrInternal:     ErrInternal,
	abi.ErrNotAllowed:   ErrNotAllowed,
}

// HostError is a host function's error result.
type HostError struct {
	Func string   // the host function, such as "store_put"
	Name string   // the store or output the call was about ("" for emit_batch)
	Code abi.Code // the negative result
}

// hostError is not inlined: a caller's error path is then a call and a
// return, which the compiler lays out of line when the caller tests for
// success first (see Emit).
//
//go:noinline
func hostError(fn, name string, rc int32) error {
	return &HostError{Func: fn, Name: name, Code: abi.Code(rc)}
}

func (e *HostError) Error() string {
	if e.Func == abi.FuncEmitBatch { // which concerns no one output
		return "streamrt: " + e.Func + ": " + e.Code.String()
	}
	return "streamrt: " + e.Func + " " + strconv.Quote(e.Name) + ": " + e.Code.String()
}

// Unwrap returns the sentinel for e.Code, such as ErrUnknownStore, or nil for
// a code this SDK does not know.
func (e *HostError) Unwrap() error { return codeErrors[e.Code] }

// RecordError says which record of a batch failed and why.
//
// A batch handler may return one (or an error wrapping one) to say which
// record made the batch fail; the SDK then reports the message against that
// record as well as failing the batch.
type RecordError struct {
	Index int   // the record's index in its batch
	Err   error // the cause
}

func (e *RecordError) Error() string {
	return "streamrt: record " + strconv.Itoa(e.Index) + ": " + errText(e.Err)
}

func errText(err error) string {
	if err == nil {
		return "record failed"
	}
	return err.Error()
}

func (e *RecordError) Unwrap() error { return e.Err }

// PanicError is a panic recovered from a handler. Its message is "panic: "
// followed by the panic value, which is what the host receives as the
// failure's text.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the panicking goroutine's stack
}

func (e *PanicError) Error() string {
	if err, ok := e.Value.(error); ok {
		return "panic: " + err.Error()
	}
	return fmt.Sprint("panic: ", e.Value)
}

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
