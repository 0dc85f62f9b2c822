package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// FuncEmitBatch is (ptr, len i32) -> i32: emit the entries encoded back to
// back at ptr..ptr+len (AppendEmit), each carrying what one emit call
// carries. The host checks the whole buffer first: a malformed one is
// ErrInvalid and emits nothing. It then emits the entries in order and
// stops at the first one it refuses (a bad output handle or record index),
// returning that entry's code with the entries before it emitted. Added in
// ABI 1.2; ErrNotAllowed in a query handler, as emit is.
const FuncEmitBatch = "emit_batch"

// EmitFixedSize is the size of an emit entry before its key:
//
//	entry := output:i32 rec:i32 ts:i64 key_len:u32 value_len:u32 headers_len:u32
//	         key value headers
//
// A key_len or value_len of 0xFFFFFFFF is null (no bytes follow); a
// headers_len of 0 is no headers, and any other holds a header list as emit
// takes it (AppendHeaders).
const EmitFixedSize = 4 + 4 + 8 + 4 + 4 + 4

// nullLen is the length word of a null key or value.
const nullLen = 0xFFFFFFFF

// Emit is one entry of an emit_batch buffer: the arguments of one emit call.
type Emit struct {
	Output    int32 // output handle, from output_open
	Rec       int32 // the batch record the emit is made for, or NoRecord
	Timestamp int64 // milliseconds since the Unix epoch, or InheritTimestamp
	Key       []byte
	Value     []byte
	Headers   []byte // an encoded header list (AppendHeaders); nil or empty for none
}

// EmitSize is the encoded size of an emit entry with this key, value and
// encoded header list.
func EmitSize(key, value, headers []byte) int {
	return EmitFixedSize + len(key) + len(value) + len(headers)
}

// AppendEmit appends the encoding of e. A nil Key or Value is null, as
// opposed to an empty one.
func AppendEmit(dst []byte, e *Emit) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(e.Output))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(e.Rec))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(e.Timestamp))
	dst = binary.LittleEndian.AppendUint32(dst, lenOrNull(e.Key))
	dst = binary.LittleEndian.AppendUint32(dst, lenOrNull(e.Value))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(e.Headers)))
	dst = append(dst, e.Key...)
	dst = append(dst, e.Value...)
	return append(dst, e.Headers...)
}

func lenOrNull(b []byte) uint32 {
	if b == nil {
		return nullLen
	}
	return uint32(len(b))
}

// NextEmit decodes the first entry of b into e and returns the rest of b.
// It checks the entry whole, its header list included, and copies nothing:
// e's slices alias b. A zero-length header list decodes as nil.
func NextEmit(b []byte, e *Emit) (rest []byte, err error) {
	if len(b) < EmitFixedSize {
		return b, &DecodeError{What: "emit", Offset: 0, Err: ErrTruncated}
	}
	e.Output = int32(binary.LittleEndian.Uint32(b))
	e.Rec = int32(binary.LittleEndian.Uint32(b[4:]))
	e.Timestamp = int64(binary.LittleEndian.Uint64(b[8:]))
	kl := binary.LittleEndian.Uint32(b[16:])
	vl := binary.LittleEndian.Uint32(b[20:])
	hl := binary.LittleEndian.Uint32(b[24:])
	pos := EmitFixedSize
	if e.Key, pos, err = nullable(b, pos, kl); err != nil {
		return b, &DecodeError{What: "emit key", Offset: pos, Err: err}
	}
	if e.Value, pos, err = nullable(b, pos, vl); err != nil {
		return b, &DecodeError{What: "emit value", Offset: pos, Err: err}
	}
	if uint64(hl) > uint64(len(b)-pos) {
		return b, &DecodeError{What: "emit headers", Offset: pos, Err: ErrTruncated}
	}
	e.Headers = nil
	if hl > 0 {
		e.Headers = b[pos : pos+int(hl) : pos+int(hl)]
		if err := checkHeaderList(e.Headers); err != nil {
			return b, &DecodeError{What: "emit headers", Offset: pos, Err: err}
		}
		pos += int(hl)
	}
	return b[pos:], nil
}

// nullable reads n bytes at pos, or none for a null length.
func nullable(b []byte, pos int, n uint32) ([]byte, int, error) {
	if n == nullLen {
		return nil, pos, nil
	}
	if uint64(n) > uint64(len(b)-pos) {
		return nil, pos, ErrTruncated
	}
	end := pos + int(n)
	return b[pos:end:end], end, nil
}

// DecodeEmits decodes a whole emit_batch buffer. The entries alias b.
func DecodeEmits(b []byte) ([]Emit, error) {
	var out []Emit
	for off := 0; off < len(b); {
		var e Emit
		rest, err := NextEmit(b[off:], &e)
		if err != nil {
			var de *DecodeError
			if errors.As(err, &de) {
				de.What = fmt.Sprintf("%s (entry %d)", de.What, len(out))
				de.Offset += off
			}
			return nil, err
		}
		out = append(out, e)
		off = len(b) - len(rest)
	}
	return out, nil
}

// errHeaderTrailing reports a header list longer than its pairs.
var errHeaderTrailing = errors.New("bytes after the last header")

// checkHeaderList checks that b is exactly one header list, allocating
// nothing.
func checkHeaderList(b []byte) error {
	if len(b) < 4 {
		return ErrTruncated
	}
	n := binary.LittleEndian.Uint32(b)
	b = b[4:]
	// Each pair takes at least 8 bytes.
	if uint64(n) > uint64(len(b)/8) {
		return ErrTruncated
	}
	for range n {
		if len(b) < 4 {
			return ErrTruncated
		}
		kl := uint64(binary.LittleEndian.Uint32(b))
		if kl > uint64(len(b)-4) {
			return ErrTruncated
		}
		b = b[4+kl:]
		if len(b) < 4 {
			return ErrTruncated
		}
		vl := binary.LittleEndian.Uint32(b)
		b = b[4:]
		if vl != nullLen {
			if uint64(vl) > uint64(len(b)) {
				return ErrTruncated
			}
			b = b[vl:]
		}
	}
	if len(b) != 0 {
		return errHeaderTrailing
	}
	return nil
}
