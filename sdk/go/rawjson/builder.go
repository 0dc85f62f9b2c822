package rawjson

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// Builder appends JSON text to a byte slice, writing the commas and colons
// between items and members itself:
//
//	var b rawjson.Builder
//	b.Reset(buf[:0])
//	b.StartObject()
//	b.Key("id")
//	b.String("o1")
//	b.Key("quantity")
//	b.Int(2)
//	b.EndObject()
//	buf = b.Bytes() // {"id":"o1","quantity":2}
//
// It writes what it is told in the order it is told: it does not check that
// keys and values alternate in objects or that every start has its end,
// which is the caller's part of producing valid JSON. Everything it is given
// is copied into the slice; it keeps nothing else. The zero Builder appends
// to a nil slice.
type Builder struct {
	buf  []byte
	more bool // something was written at this level: the next item needs a comma
}

// Reset makes the Builder append to dst.
func (b *Builder) Reset(dst []byte) { b.buf, b.more = dst, false }

// Bytes returns the slice with what was appended.
func (b *Builder) Bytes() []byte { return b.buf }

// StartObject writes the start of an object.
func (b *Builder) StartObject() { b.open('{') }

// EndObject writes the end of an object.
func (b *Builder) EndObject() { b.buf, b.more = append(b.buf, '}'), true }

// StartArray writes the start of an array.
func (b *Builder) StartArray() { b.open('[') }

// EndArray writes the end of an array.
func (b *Builder) EndArray() { b.buf, b.more = append(b.buf, ']'), true }

func (b *Builder) open(c byte) {
	b.comma()
	b.buf, b.more = append(b.buf, c), false
}

// Key writes a member's name and its colon; the member's value comes next.
func (b *Builder) Key(name string) {
	b.comma()
	b.buf, b.more = append(AppendString(b.buf, name), ':'), false
}

// String writes a string (see AppendString).
func (b *Builder) String(s string) {
	b.comma()
	b.buf, b.more = AppendString(b.buf, s), true
}

// StringBytes writes a string given as bytes (see AppendString).
func (b *Builder) StringBytes(s []byte) {
	b.comma()
	b.buf, b.more = appendString(b.buf, s), true
}

// Int writes an integer.
func (b *Builder) Int(n int64) {
	b.comma()
	b.buf, b.more = strconv.AppendInt(b.buf, n, 10), true
}

// Float writes a number in the shortest form that reads back as f, as
// encoding/json writes it (1e21 and above, and below 1e-6, with an
// exponent). NaN and the infinities, which JSON cannot write, are written
// as null, as JavaScript's JSON.stringify does.
func (b *Builder) Float(f float64) {
	b.comma()
	b.buf, b.more = appendFloat(b.buf, f), true
}

// Bool writes true or false.
func (b *Builder) Bool(v bool) {
	b.comma()
	if v {
		b.buf = append(b.buf, "true"...)
	} else {
		b.buf = append(b.buf, "false"...)
	}
	b.more = true
}

// Null writes null.
func (b *Builder) Null() {
	b.comma()
	b.buf, b.more = append(b.buf, "null"...), true
}

// Raw writes a value as it was written in its document.
func (b *Builder) Raw(v Value) {
	b.comma()
	b.buf, b.more = appendValue(b.buf, v), true
}

func (b *Builder) comma() {
	if b.more {
		b.buf = append(b.buf, ',')
	}
}

// appendValue appends v as written; the zero Value is null.
func appendValue(dst []byte, v Value) []byte {
	if v.raw == nil {
		return append(dst, "null"...)
	}
	return append(dst, v.raw...)
}

func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 reads better as 1e-7.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// AppendString appends s to dst as a JSON string and returns the extended
// slice. It escapes the quote, the backslash and the control characters,
// and nothing else; each byte of invalid UTF-8 becomes U+FFFD, so that the
// result is valid UTF-8.
func AppendString(dst []byte, s string) []byte {
	return appendString(dst, s)
}

func appendString[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	from := 0 // s[from:i] is still to be copied
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainByte[c] {
				i++
				continue
			}
			dst = append(dst, s[from:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			from = i
			continue
		}
		// At most UTFMax bytes, so that converting []byte copies little.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[from:i]...)
			dst = append(dst, `\ufffd`...)
			from = i + 1
		}
		i += size
	}
	dst = append(dst, s[from:]...)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"
