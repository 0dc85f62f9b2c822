package rawjson

import (
	"encoding/binary"
	"math/bits"
	"strconv"
)

// maxDepth is how deeply Parse lets arrays and objects nest, encoding/json's
// limit.
const maxDepth = 10000

// check checks the value that starts at b[i], after any whitespace, and
// returns where it ends.
//
// It is one loop whose common steps (compact JSON, and strings that end
// within 16 bytes, tested two words at a time) make no call and take few
// branches: on Go's Wasm port a call costs as much as dozens of arithmetic
// instructions, and every taken branch goes through the function's
// dispatch loop, where a batch deadline adds an indirect call to wazero's
// termination check. Whitespace, longer strings and escapes go to calls,
// which the compiler lays out of the common path. It keeps the open arrays
// and objects in a bit stack rather than recursing, so that a deep
// document is refused rather than exhausting the guest's stack.
func check(b []byte, i int) (end int, err error) {
	var open nesting
	name := false // a member's name comes next, not a value
values:
	for {
		if i < len(b) && b[i] <= ' ' {
			i = skipSpace(b, i)
		}
		if i >= len(b) {
			if name {
				return 0, syntaxError(b, i, "looking for the beginning of an object member's name")
			}
			return 0, syntaxError(b, i, "looking for the beginning of a value")
		}
		switch c := b[i]; {
		case c == '"':
			// A string that ends within its first 16 bytes and has no
			// escape takes no branch; checkString does the others.
			n := 16
			if i+17 <= len(b) {
				n = firstStop(stringStops(binary.LittleEndian.Uint64(b[i+1:])),
					stringStops(binary.LittleEndian.Uint64(b[i+9:])))
			}
			if n < 16 && b[i+1+n] == '"' {
				i += n + 2
			} else if i, err = checkString(b, i); err != nil {
				return 0, err
			}
			if name {
				if i < len(b) && b[i] == ':' {
					i++
				} else if i, err = checkColon(b, i); err != nil {
					return 0, err
				}
				name = false
				continue values
			}
		case name:
			return 0, syntaxError(b, i, "looking for the beginning of an object member's name")
		case c == '{' || c == '[':
			if open.depth == maxDepth {
				return 0, &SyntaxError{Offset: i, msg: "nesting deeper than " + strconv.Itoa(maxDepth) + " levels"}
			}
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' or ']': empty
				i++
				break
			}
			open.push(c == '{')
			name = c == '{'
			continue values
		case c == '-' || c-'0' < 10:
			if c == '-' {
				i++
			}
			switch {
			case i < len(b) && b[i] == '0':
				i++
			case i < len(b) && b[i]-'1' < 9:
				for i++; i < len(b) && b[i]-'0' < 10; i++ {
				}
			default:
				return 0, syntaxError(b, i, "in a number")
			}
			if i < len(b) && b[i] == '.' {
				i++
				if i >= len(b) || b[i]-'0' >= 10 {
					return 0, syntaxError(b, i, "after the decimal point")
				}
				for i++; i < len(b) && b[i]-'0' < 10; i++ {
				}
			}
			if i < len(b) && b[i]|0x20 == 'e' {
				i++
				if i < len(b) && (b[i] == '+' || b[i] == '-') {
					i++
				}
				if i >= len(b) || b[i]-'0' >= 10 {
					return 0, syntaxError(b, i, "in an exponent")
				}
				for i++; i < len(b) && b[i]-'0' < 10; i++ {
				}
			}
		case c == 't' && i+4 <= len(b) && binary.LittleEndian.Uint32(b[i:]) == trueWord,
			c == 'n' && i+4 <= len(b) && binary.LittleEndian.Uint32(b[i:]) == nullWord:
			i += 4
		case c == 'f' && i+5 <= len(b) && binary.LittleEndian.Uint32(b[i+1:]) == alseWord:
			i += 5
		default:
			return 0, badValue(b, i)
		}
		// A value ended at i: close the arrays and objects it ends, then
		// go on to the next item or member.
		for open.depth > 0 {
			if i < len(b) && b[i] <= ' ' {
				i = skipSpace(b, i)
			}
			inObject := open.top()
			if i < len(b) {
				if b[i] == ',' {
					i++
					name = inObject
					continue values
				}
				if b[i] == '}' && inObject || b[i] == ']' && !inObject {
					i++
					open.pop()
					continue
				}
			}
			if inObject {
				return 0, syntaxError(b, i, "after an object member")
			}
			return 0, syntaxError(b, i, "after an array element")
		}
		return i, nil
	}
}

// The literals' bytes as little-endian words (false without its f).
var (
	trueWord = binary.LittleEndian.Uint32([]byte("true"))
	nullWord = binary.LittleEndian.Uint32([]byte("null"))
	alseWord = binary.LittleEndian.Uint32([]byte("alse"))
)

// checkString checks the string that starts at b[i] and returns where it
// ends, for the strings check leaves out: long ones, and those with
// escapes, control characters or the end of the document close by.
func checkString(b []byte, i int) (int, error) {
	for i++; ; i++ {
		var x uint64
		if i+8 <= len(b) {
			x = binary.LittleEndian.Uint64(b[i:])
		} else {
			x = loadEnd(b, i)
		}
		m := stringStops(x)
		if m == 0 {
			i += 7
			continue
		}
		i += bits.TrailingZeros64(m) >> 3
		switch {
		case i >= len(b):
			return 0, syntaxError(b, i, "in a string")
		case b[i] == '"':
			return i + 1, nil
		case b[i] < ' ':
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
}

// checkColon checks that a colon, after any whitespace, starts at b[i] and
// returns where it ends.
func checkColon(b []byte, i int) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return 0, syntaxError(b, i, "after an object member's name")
	}
	return i + 1, nil
}

// badValue describes what is wrong with the value at b[i], which is no
// string, array, object or number, nor a whole literal.
func badValue(b []byte, i int) error {
	for _, word := range []string{"true", "false", "null"} {
		if b[i] == word[0] {
			k := 1
			for i+k < len(b) && k < len(word) && b[i+k] == word[k] {
				k++
			}
			return syntaxError(b, i+k, "in literal "+word)
		}
	}
	return syntaxError(b, i, "looking for the beginning of a value")
}

// skipSpace returns the position of the first byte at or after i that is
// not JSON whitespace. It is not inlined: the scanners call it only after
// seeing whitespace, and a call tells the compiler to lay that case out of
// the common path (see check).
//
//go:noinline
func skipSpace(b []byte, i int) int {
	for i < len(b) && spaceByte[b[i]] {
		i++
	}
	return i
}

// spaceByte tells JSON's whitespace.
var spaceByte = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// plainByte tells the bytes that stand for themselves in a string: all but
// the quote, the backslash and the control characters.
var plainByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= ' ' && c != '"' && c != '\\'
	}
	return t
}()

// Words of eight equal bytes, for testing eight bytes at once.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// stringStops returns the high bit of each byte of x that ends a run of
// bytes standing for themselves in a string: a quote, a backslash or a
// control character. Borrows may mark bytes after the first such byte too,
// never before it, so the lowest bit is exact.
func stringStops(x uint64) uint64 {
	q, e := x^(ones*'"'), x^(ones*'\\')
	return ((q-ones)&^q | (e-ones)&^e | (x-ones*' ')&^x) & highs
}

// firstStop returns the position of the first byte that m1 or m2, the
// stops of two words that follow each other, mark, or 16 when they mark
// none; it takes no branch.
func firstStop(m1, m2 uint64) int {
	n1 := bits.TrailingZeros64(m1) >> 3 // 8 when m1 is 0
	n2 := bits.TrailingZeros64(m2) >> 3
	none := int((m1 - 1) &^ m1 >> 63) // 1 when m1 is 0
	return n1 + none*n2
}

// quotesAndEscapes is stringStops for a string known to be valid: only its
// quote and its backslashes stop it.
func quotesAndEscapes(x uint64) uint64 {
	q, e := x^(ones*'"'), x^(ones*'\\')
	return ((q-ones)&^q | (e-ones)&^e) & highs
}

// loadEnd returns the eight bytes at b[i:] as a little-endian word, for
// an i less than eight bytes from the end of b, with quotes standing for
// the bytes past the end: a string scan that reaches the end stops there.
// (Its callers load the words before it themselves, to save a call.)
func loadEnd(b []byte, i int) uint64 {
	if n := i - (len(b) - 8); len(b) >= 8 && n < 8 {
		// The last eight bytes, shifted past those before i.
		return binary.LittleEndian.Uint64(b[len(b)-8:])>>(8*n) | ones*'"'<<(64-8*n)
	}
	x := uint64(ones * '"')
	for k := 7; k >= 0; k-- {
		if i+k < len(b) && i+k >= 0 {
			x = x<<8 | uint64(b[i+k])
		} else {
			x = x<<8 | '"'
		}
	}
	return x
}

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
