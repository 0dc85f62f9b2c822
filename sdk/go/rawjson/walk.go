package rawjson

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// The functions below walk JSON that check accepted: they find where
// things end without checking them again.

// skip returns where the value that starts at b[i] ends.
func skip(b []byte, i int) int {
	switch b[i] {
	case '"':
		end, _ := skipString(b, i)
		return end
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i, _ = skipString(b, i)
				i--
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	// A number or a literal ends at a delimiter or at the end.
	for i < len(b) && b[i] > ' ' && b[i] != ',' && b[i] != '}' && b[i] != ']' {
		i++
	}
	return i
}

// skipString returns where the string that starts at b[i] ends, and whether
// it has escapes.
func skipString(b []byte, i int) (end int, escaped bool) {
	for i++; ; i++ {
		var x uint64
		if i+8 <= len(b) {
			x = binary.LittleEndian.Uint64(b[i:])
		} else {
			x = loadEnd(b, i)
		}
		m := quotesAndEscapes(x)
		if m == 0 {
			i += 7
			continue
		}
		i += bits.TrailingZeros64(m) >> 3
		if i >= len(b) || b[i] == '"' {
			return i + 1, escaped
		}
		escaped = true
		i++ // the escaped byte
	}
}

// span is one member of an object.
type span struct {
	nameEnd          int  // just past the name's closing quote
	escapedName      bool // the name has escapes
	valStart, valEnd int
	next             int // where the next member's name starts, or the closing brace
}

// readMember reads the member whose name starts at b[i].
func readMember(b []byte, i int) (m span) {
	m.nameEnd, m.escapedName = skipString(b, i)
	m.valStart = skipSpace(b, skipSpace(b, m.nameEnd)+1) // past the colon
	m.valEnd = skip(b, m.valStart)
	j := skipSpace(b, m.valEnd)
	if b[j] == ',' {
		j = skipSpace(b, j+1)
	}
	m.next = j
	return m
}

// find returns where the name of the first member of obj named name
// starts, and where the value of the last one starts and ends, or -1s when
// there is none.
//
// It is Get's and Set's walk. Like check, it is written so that the common
// case (compact JSON; names and string values that end within 16 bytes,
// with no escapes; numbers and literals) takes one branch per member, its
// loop's.
func find(obj []byte, name string) (first, valStart, valEnd int) {
	first, valStart, valEnd = -1, -1, -1
	var high byte
	for k := 0; k < len(name); k++ {
		high |= name[k]
	}
	ascii := high < utf8.RuneSelf
	b := obj
	i := 1
	for {
		if b[i] <= ' ' {
			i = skipSpace(b, i)
		}
		if b[i] != '"' {
			return first, valStart, valEnd // the closing brace
		}
		start := i
		n := 16
		if i+17 <= len(b) {
			n = firstStop(quotesAndEscapes(binary.LittleEndian.Uint64(b[i+1:])),
				quotesAndEscapes(binary.LittleEndian.Uint64(b[i+9:])))
		}
		escaped := false
		if n < 16 && b[i+1+n] == '"' {
			i += n + 2
		} else {
			i, escaped = skipString(b, i)
		}
		// A name that has no escapes and is ASCII reads as written; other
		// names are compared unescaped.
		raw := b[start+1 : i-1]
		match := !escaped && ascii && string(raw) == name || (escaped || !ascii) && unquotedIs(raw, name)
		if b[i] != ':' {
			i = skipSpace(b, i)
		}
		i++
		if b[i] <= ' ' {
			i = skipSpace(b, i)
		}
		// The value.
		value := i
		if b[i] == '"' {
			n = 16
			if i+17 <= len(b) {
				n = firstStop(quotesAndEscapes(binary.LittleEndian.Uint64(b[i+1:])),
					quotesAndEscapes(binary.LittleEndian.Uint64(b[i+9:])))
			}
			if n < 16 && b[i+1+n] == '"' {
				i += n + 2
			} else {
				i, _ = skipString(b, i)
			}
		} else if i+8 <= len(b) && b[i] != '{' && b[i] != '[' {
			// A number or a literal: up to the comma, brace or space
			// after it.
			x := binary.LittleEndian.Uint64(b[i:])
			c, e := x^(ones*','), x^(ones*'}')
			if k := bits.TrailingZeros64(((c-ones)&^c|(e-ones)&^e|(x-ones*'!')&^x)&highs) >> 3; k < 8 {
				i += k
			} else {
				i = skip(b, i) // a long number
			}
		} else {
			i = skip(b, i) // an array or an object, or the end is close
		}
		if match {
			if first < 0 {
				first = start
			}
			valStart, valEnd = value, i
		}
		if b[i] <= ' ' {
			i = skipSpace(b, i)
		}
		if b[i] == ',' {
			i++
		}
	}
}

// nameIs reports whether the string token tok (quotes included) reads s
// once unescaped.
func nameIs(tok []byte, s string) bool {
	inner := tok[1 : len(tok)-1]
	if plain(inner) {
		return string(inner) == s
	}
	return unquotedIs(inner, s)
}

// unquotedIs reports whether the contents of a string read s once
// unescaped.
func unquotedIs(inner []byte, s string) bool {
	// Unescaping never lengthens a string's contents, except that each
	// byte of invalid UTF-8 becomes U+FFFD, three bytes.
	if len(s) > 3*len(inner) {
		return false
	}
	var buf [64]byte
	return string(appendUnquoted(buf[:0], inner)) == s
}

// appendUnquoted appends the contents of a string that check accepted,
// unescaped, to dst, replacing what encoding/json replaces with U+FFFD: an
// escaped surrogate that is not half of a pair, and each byte of invalid
// UTF-8.
func appendUnquoted(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		c = s[i+1]
		i += 2
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i:])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2 = hex4(s[i+2:])
				}
				if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
					r = pair
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\' and '/' stand for themselves
			dst = append(dst, c)
		}
	}
	return dst
}

// hex4 returns the value of the four hex digits that s starts with.
func hex4(s []byte) rune {
	return rune(unhex(s[0])<<12 | unhex(s[1])<<8 | unhex(s[2])<<4 | unhex(s[3]))
}
