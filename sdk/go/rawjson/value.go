// Package rawjson reads and writes JSON in place, for guests: no
// reflection, no maps, and no allocations on the common paths. It depends on
// the standard library only.
//
// Parse checks a document once and returns its Value: a slice of the
// document, as written. Everything read from a Value (Get, Index, Members,
// Items, Raw) is again a slice of that document, and a Value's methods never
// copy it; only Unquote and AppendUnquoted produce new text, and only for a
// string's escapes. So a Value is valid as long as the document's bytes are,
// which for a record's value means until the handler returns, and it must
// not be kept past that without copying the document.
//
// Builder appends JSON text to a byte slice, and Set appends a copy of an
// object with one member set, copying the object's other bytes as they are
// rather than re-encoding them.
//
// What Parse accepts is exactly what encoding/json's Valid accepts: RFC 8259
// JSON, with invalid UTF-8 let through inside strings (Unquote turns each
// bad byte into U+FFFD, as encoding/json does) and at most 10000 levels of
// nesting. Reading a member gives what encoding/json gives when it decodes
// the object into a map: names compare after unescaping, and of a name given
// twice the last counts.
package rawjson

import (
	"iter"
	"math"
	"strconv"
	"unicode/utf8"
)

// Kind is the kind of a JSON value.
type Kind uint8

const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

var kindNames = [...]string{"null", "boolean", "number", "string", "array", "object"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one JSON value as written in a document that Parse checked, with
// no whitespace around it. It aliases the document (see the package
// documentation). The zero Value is null.
type Value struct {
	raw []byte // valid JSON, trimmed; nil for the zero Value
}

// Parse checks that doc is one JSON value with nothing but whitespace
// around it, and returns the value. The Value aliases doc; doc must not
// change while the Value is in use. A document that is not JSON gives a
// *SyntaxError.
func Parse(doc []byte) (Value, error) {
	start := skipSpace(doc, 0)
	end, err := check(doc, start)
	if err != nil {
		return Value{}, err
	}
	if i := skipSpace(doc, end); i < len(doc) {
		return Value{}, syntaxError(doc, i, "after the top-level value")
	}
	return Value{doc[start:end:end]}, nil
}

// Valid reports whether doc is one JSON value with nothing but whitespace
// around it: whether Parse would succeed.
func Valid(doc []byte) bool {
	_, err := Parse(doc)
	return err == nil
}

// Raw returns the value as written: a slice of the document whose capacity
// ends with the value, so appending to it copies rather than overwrites the
// document. The zero Value's is "null".
func (v Value) Raw() []byte {
	if v.raw == nil {
		return []byte("null")
	}
	return v.raw
}

// Kind returns the kind of the value.
func (v Value) Kind() Kind {
	if len(v.raw) == 0 {
		return Null
	}
	switch v.raw[0] {
	case '{':
		return Object
	case '[':
		return Array
	case '"':
		return String
	case 't', 'f':
		return Bool
	case 'n':
		return Null
	}
	return Number
}

// IsNull reports whether the value is null.
func (v Value) IsNull() bool { return len(v.raw) == 0 || v.raw[0] == 'n' }

// Bool returns the value of a boolean; ok is false for another kind.
func (v Value) Bool() (b, ok bool) {
	if len(v.raw) == 0 {
		return false, false
	}
	return v.raw[0] == 't', v.raw[0] == 't' || v.raw[0] == 'f'
}

// Int returns the value of a number written as an integer (no fraction, no
// exponent) that fits in an int64; ok is false otherwise, as when
// encoding/json refuses to decode the number into an int64.
func (v Value) Int() (n int64, ok bool) {
	b := v.raw
	if len(b) == 0 || b[0] != '-' && (b[0] < '0' || b[0] > '9') {
		return 0, false
	}
	neg := b[0] == '-'
	i := 0
	if neg {
		i = 1
	}
	// Accumulate as a negative number, which has room for math.MinInt64.
	var acc int64
	for ; i < len(b); i++ {
		d := int64(b[i]) - '0'
		if d < 0 || d > 9 {
			return 0, false // a fraction or an exponent
		}
		if acc < (math.MinInt64+d)/10 {
			return 0, false
		}
		acc = acc*10 - d
	}
	if !neg {
		if acc == math.MinInt64 {
			return 0, false
		}
		acc = -acc
	}
	return acc, true
}

// Float returns the value of a number as the nearest float64; ok is false
// for another kind, or for a number beyond float64's range, which
// encoding/json refuses too.
func (v Value) Float() (f float64, ok bool) {
	if v.Kind() != Number {
		return 0, false
	}
	if f, ok := exactFloat(v.raw); ok {
		return f, true
	}
	f, err := strconv.ParseFloat(string(v.raw), 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// exactFloat converts a number whose digits fit in float64's mantissa and
// whose exponent is small, so that one multiplication or division by an
// exact power of ten rounds correctly (strconv's own fast path); ok is
// false for any other number, which strconv.ParseFloat then converts.
func exactFloat(b []byte) (f float64, ok bool) {
	i := 0
	if b[0] == '-' {
		i = 1
	}
	var mant uint64
	exp := 0
	digits := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		mant = mant*10 + uint64(b[i]-'0')
		digits++
	}
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			mant = mant*10 + uint64(b[i]-'0')
			digits++
			exp--
		}
	}
	if i != len(b) || digits > 15 || mant>>53 != 0 {
		return 0, false // an exponent, or too many digits
	}
	f = float64(mant)
	switch {
	case exp == 0:
	case exp >= -22:
		f /= pow10[-exp]
	default:
		return 0, false
	}
	if b[0] == '-' {
		f = -f
	}
	return f, true
}

// Unquote returns the text of a string with its escapes undone; ok is false
// for another kind. It allocates the string; AppendUnquoted does not.
func (v Value) Unquote() (s string, ok bool) {
	if v.Kind() != String {
		return "", false
	}
	inner := v.raw[1 : len(v.raw)-1]
	if plain(inner) {
		return string(inner), true
	}
	return string(appendUnquoted(nil, inner)), true
}

// AppendUnquoted appends the text of a string, with its escapes undone, to
// dst and returns the extended slice; ok is false, and dst is returned
// unchanged, for another kind. Escapes that encoding/json would decode to
// U+FFFD (a lone surrogate) give U+FFFD, and so does each byte of invalid
// UTF-8, so the text is always valid UTF-8.
func (v Value) AppendUnquoted(dst []byte) (text []byte, ok bool) {
	if v.Kind() != String {
		return dst, false
	}
	inner := v.raw[1 : len(v.raw)-1]
	if plain(inner) {
		return append(dst, inner...), true
	}
	return appendUnquoted(dst, inner), true
}

// EqualString reports whether the value is a string whose text, with its
// escapes undone, is s. It allocates nothing.
func (v Value) EqualString(s string) bool {
	if v.Kind() != String {
		return false
	}
	return nameIs(v.raw, s)
}

// Get returns the value at path, a list of member names leading down
// through nested objects: Get("a", "b") is member "b" of member "a". With
// no names it returns v. ok is false when a name is missing or the value it
// names is not an object. Of a name an object gives twice, the last member
// counts.
func (v Value) Get(path ...string) (Value, bool) {
	for _, name := range path {
		if len(v.raw) == 0 || v.raw[0] != '{' {
			return Value{}, false
		}
		_, start, end := find(v.raw, name)
		if start < 0 {
			return Value{}, false
		}
		v = Value{v.raw[start:end:end]}
	}
	return v, true
}

// Index returns item i of an array; ok is false for another kind or when i
// is out of range.
func (v Value) Index(i int) (Value, bool) {
	if len(v.raw) == 0 || v.raw[0] != '[' || i < 0 {
		return Value{}, false
	}
	for j, item := range v.Items() {
		if j == i {
			return item, true
		}
	}
	return Value{}, false
}

// Members yields the name and value of each member of an object, in the
// order written; the name is a string Value (see Unquote and EqualString).
// A name given twice is yielded twice. For another kind it yields nothing.
func (v Value) Members() iter.Seq2[Value, Value] {
	return func(yield func(Value, Value) bool) {
		if len(v.raw) == 0 || v.raw[0] != '{' {
			return
		}
		b := v.raw
		for i := skipSpace(b, 1); b[i] == '"'; {
			m := readMember(b, i)
			if !yield(Value{b[i:m.nameEnd:m.nameEnd]}, Value{b[m.valStart:m.valEnd:m.valEnd]}) {
				return
			}
			i = m.next
		}
	}
}

// Items yields the index and value of each item of an array, in order. For
// another kind it yields nothing.
func (v Value) Items() iter.Seq2[int, Value] {
	return func(yield func(int, Value) bool) {
		if len(v.raw) == 0 || v.raw[0] != '[' {
			return
		}
		b := v.raw
		i := skipSpace(b, 1)
		for n := 0; b[i] != ']'; n++ {
			end := skip(b, i)
			if !yield(n, Value{b[i:end:end]}) {
				return
			}
			i = skipSpace(b, end)
			if b[i] == ',' {
				i = skipSpace(b, i+1)
			}
		}
	}
}

// plain reports whether a string's contents read the same unescaped: no
// escapes and only ASCII (so no invalid UTF-8 to replace).
func plain(s []byte) bool {
	for _, c := range s {
		if c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
