package rawjson

import (
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
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\n', '\r', '\t':
			return i
		}
	}
	return i
}

// skipString returns where the string that starts at b[i] ends, and whether
// its contents read the same unescaped (see plain).
func skipString(b []byte, i int) (end int, plain bool) {
	var high byte // the OR of the bytes: bit 7 is set by any non-ASCII one
	plain = true
	for i++; i < len(b); i++ {
		c := b[i]
		high |= c
		if c == '"' {
			return i + 1, plain && high < utf8.RuneSelf
		}
		if c == '\\' {
			plain = false
			i++
		}
	}
	return i, false
}

// span is one member of an object.
type span struct {
	nameEnd          int  // just past the name's closing quote
	plainName        bool // the name reads the same unescaped
	valStart, valEnd int
	next             int // where the next member's name starts, or the closing brace
}

// readMember reads the member whose name starts at b[i].
func readMember(b []byte, i int) (m span) {
	m.nameEnd, m.plainName = skipString(b, i)
	m.valStart = skipSpace(b, skipSpace(b, m.nameEnd)+1) // past the colon
	m.valEnd = skip(b, m.valStart)
	j := skipSpace(b, m.valEnd)
	if b[j] == ',' {
		j = skipSpace(b, j+1)
	}
	m.next = j
	return m
}

// member returns where the value of the last member named name of obj
// starts and ends, or -1, -1.
func member(obj []byte, name string) (start, end int) {
	start, end = -1, -1
	for i := skipSpace(obj, 1); obj[i] == '"'; {
		m := readMember(obj, i)
		if m.plainName && string(obj[i+1:m.nameEnd-1]) == name ||
			!m.plainName && unquotedIs(obj[i+1:m.nameEnd-1], name) {
			start, end = m.valStart, m.valEnd
		}
		i = m.next
	}
	return start, end
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
