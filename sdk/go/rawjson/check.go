package rawjson

import (
	"strconv"
)

// maxDepth is how deeply Parse lets arrays and objects nest, encoding/json's
// limit.
const maxDepth = 10000

// check checks the value that starts at b[i] and returns where it ends.
//
// It keeps the open arrays and objects in a bit stack rather than recursing,
// so that a deep document is refused with an error rather than exhausting
// the guest's stack, and it inlines the common steps of the loop: on Go's
// Wasm port every call and every taken branch is costly.
func check(b []byte, i int) (end int, err error) {
	var open nesting
	for {
		// A value starts at b[i], after any whitespace.
		i = skipSpace(b, i)
		if i >= len(b) {
			return 0, syntaxError(b, i, "looking for the beginning of a value")
		}
		switch c := b[i]; c {
		case '"':
			if i, err = checkString(b, i); err != nil {
				return 0, err
			}
		case '{', '[':
			if open.depth == maxDepth {
				return 0, &SyntaxError{Offset: i, msg: "nesting deeper than " + strconv.Itoa(maxDepth) + " levels"}
			}
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' or ']'
				i++
				break
			}
			open.push(c == '{')
			if c == '{' {
				if i, err = checkName(b, i); err != nil {
					return 0, err
				}
			}
			continue
		case 't':
			if i, err = checkLiteral(b, i, "true"); err != nil {
				return 0, err
			}
		case 'f':
			if i, err = checkLiteral(b, i, "false"); err != nil {
				return 0, err
			}
		case 'n':
			if i, err = checkLiteral(b, i, "null"); err != nil {
				return 0, err
			}
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			if i, err = checkNumber(b, i); err != nil {
				return 0, err
			}
		default:
			return 0, syntaxError(b, i, "looking for the beginning of a value")
		}
		// A value ended at i: close the arrays and objects it ends, then
		// go on to the next item or member.
	closing:
		for open.depth > 0 {
			i = skipSpace(b, i)
			inObject := open.top()
			switch {
			case i < len(b) && b[i] == ',':
				i++
				if inObject {
					if i, err = checkName(b, skipSpace(b, i)); err != nil {
						return 0, err
					}
				}
				break closing
			case i < len(b) && b[i] == '}' && inObject, i < len(b) && b[i] == ']' && !inObject:
				i++
				open.pop()
			case inObject:
				return 0, syntaxError(b, i, "after an object member")
			default:
				return 0, syntaxError(b, i, "after an array element")
			}
		}
		if open.depth == 0 {
			return i, nil
		}
	}
}

// checkName checks the member name that starts at b[i] and its colon, and
// returns where the colon ends.
func checkName(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, syntaxError(b, i, "looking for the beginning of an object member's name")
	}
	i, err := checkString(b, i)
	if err != nil {
		return 0, err
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return 0, syntaxError(b, i, "after an object member's name")
	}
	return i + 1, nil
}

// checkString checks the string that starts at b[i] and returns where it
// ends. Bytes of 0x80 and above go through unchecked, as in encoding/json.
func checkString(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		c := b[i]
		if plainByte[c] {
			continue
		}
		switch {
		case c == '"':
			return i + 1, nil
		case c < ' ':
			return 0, syntaxError(b, i, "in a string (control characters must be escaped)")
		}
		// An escape.
		i++
		if i >= len(b) {
			return 0, syntaxError(b, i, "in a string escape")
		}
		switch b[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			for k := 0; k < 4; k++ {
				i++
				if i >= len(b) || unhex(b[i]) < 0 {
					return 0, syntaxError(b, i, `in a \u escape`)
				}
			}
		default:
			return 0, syntaxError(b, i, "in a string escape")
		}
	}
	return 0, syntaxError(b, i, "in a string")
}

// checkLiteral checks that word (true, false or null) starts at b[i] and
// returns where it ends.
func checkLiteral(b []byte, i int, word string) (int, error) {
	if len(b)-i >= len(word) && string(b[i:i+len(word)]) == word {
		return i + len(word), nil
	}
	k := 0
	for i+k < len(b) && b[i+k] == word[k] {
		k++
	}
	return 0, syntaxError(b, i+k, "in literal "+word)
}

// checkNumber checks the number that starts at b[i] and returns where it
// ends.
func checkNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return 0, syntaxError(b, i, "in a number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return 0, syntaxError(b, i, "after the decimal point")
		}
		i = skipDigits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return 0, syntaxError(b, i, "in an exponent")
		}
		i = skipDigits(b, i+1)
	}
	return i, nil
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// skipSpace returns the position of the first byte at or after i that is
// not JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// plainByte tells the bytes that stand for themselves in a string: all but
// the quote, the backslash and the control characters.
var plainByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= ' ' && c != '"' && c != '\\'
	}
	return t
}()

// unhex returns the value of a hex digit, or -1.
func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// nesting is a stack of the arrays and objects open around a value, one bit
// each (1 for an object). The innermost 64 live in a word, which is all
// that most documents need; deeper levels spill to a slice.
type nesting struct {
	depth int
	bits  uint64
	spill []byte
}

// push opens an object (obj) or an array.
func (n *nesting) push(obj bool) {
	if n.depth >= 64 {
		n.spill = append(n.spill, byte(n.bits>>63))
	}
	n.bits <<= 1
	if obj {
		n.bits |= 1
	}
	n.depth++
}

func (n *nesting) pop() {
	n.bits >>= 1
	n.depth--
	if n.depth >= 64 {
		last := len(n.spill) - 1
		n.bits |= uint64(n.spill[last]) << 63
		n.spill = n.spill[:last]
	}
}

// top reports whether the innermost open value is an object.
func (n *nesting) top() bool { return n.bits&1 == 1 }
