package rawjson

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// ErrNotObject is Set's error for a value that is not an object.
var ErrNotObject = errors.New("streamrt: JSON value is not an object")

// SyntaxError says where and why a document is not JSON.
type SyntaxError struct {
	// Offset is the position in the document of the first wrong byte, or
	// the document's length when it ends too early.
	Offset int
	msg    string
}

func (e *SyntaxError) Error() string {
	return e.msg + " at byte " + strconv.Itoa(e.Offset)
}

// syntaxError describes what is wrong at b[i], such as "invalid character
// 'x' in a number" or "unexpected end of input in a number"; context is
// what was being read. (The wording is the Rust enrich stage's, so that the
// two stages dead-letter a bad order with the same message.)
func syntaxError(b []byte, i int, context string) error {
	if i >= len(b) {
		return &SyntaxError{Offset: len(b), msg: "unexpected end of input " + context}
	}
	r, _ := utf8.DecodeRune(b[i:])
	return &SyntaxError{Offset: i, msg: "invalid character " + strconv.QuoteRune(r) + " " + context}
}
