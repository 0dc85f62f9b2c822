package rawjson

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseAcceptsJSONAndTrimsIt(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"0", "0"},
		{" -0.5e+10 ", "-0.5e+10"},
		{"1E-2", "1E-2"},
		{"123456789012345678901234567890", "123456789012345678901234567890"},
		{"\t\r\ntrue\n", "true"},
		{"false", "false"},
		{"null", "null"},
		{`""`, `""`},
		{`"a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00"`, `"a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00"`},
		{"\"é €\"", "\"é €\""},
		{"\"\xff\xfe\"", "\"\xff\xfe\""}, // invalid UTF-8 passes, as in encoding/json
		{"{}", "{}"},
		{"[]", "[]"},
		{"[ ]", "[ ]"},
		{"{ }", "{ }"},
		{` { "a" : [ 1 , { } , [ [ ] ] , "x" ] , "b" : { "c" : null } } `,
			`{ "a" : [ 1 , { } , [ [ ] ] , "x" ] , "b" : { "c" : null } }`},
	} {
		v, err := Parse([]byte(tc.doc))
		if err != nil || string(v.Raw()) != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want %q", tc.doc, v.Raw(), err, tc.want)
		}
		if !json.Valid([]byte(tc.doc)) {
			t.Errorf("encoding/json refuses %q", tc.doc)
		}
	}
}

// The messages are the Rust enrich stage's (enrich-rust/src/json.rs), so
// that both stages dead-letter a bad order with the same error.
func TestParseRefusesWhatIsNotJSON(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"", "unexpected end of input looking for the beginning of a value at byte 0"},
		{"   ", "unexpected end of input looking for the beginning of a value at byte 3"},
		{"not json", "invalid character 'o' in literal null at byte 1"},
		{"nul", "unexpected end of input in literal null at byte 3"},
		{"tru", "unexpected end of input in literal true at byte 3"},
		{"fals", "unexpected end of input in literal false at byte 4"},
		{"True", "invalid character 'T' looking for the beginning of a value at byte 0"},
		{"1 2", "invalid character '2' after the top-level value at byte 2"},
		{"{} {}", "invalid character '{' after the top-level value at byte 3"},
		{"01", "invalid character '1' after the top-level value at byte 1"},
		{"+1", "invalid character '+' looking for the beginning of a value at byte 0"},
		{".5", "invalid character '.' looking for the beginning of a value at byte 0"},
		{"-", "unexpected end of input in a number at byte 1"},
		{"-a", "invalid character 'a' in a number at byte 1"},
		{"1.", "unexpected end of input after the decimal point at byte 2"},
		{"1.e5", "invalid character 'e' after the decimal point at byte 2"},
		{"1e", "unexpected end of input in an exponent at byte 2"},
		{"1e+", "unexpected end of input in an exponent at byte 3"},
		{"NaN", "invalid character 'N' looking for the beginning of a value at byte 0"},
		{`"abc`, "unexpected end of input in a string at byte 4"},
		{"\"a\nb\"", `invalid character '\n' in a string (control characters must be escaped) at byte 2`},
		{`"\x"`, "invalid character 'x' in a string escape at byte 2"},
		{`"\`, "unexpected end of input in a string escape at byte 2"},
		{`"\u12"`, `invalid character '"' in a \u escape at byte 5`},
		{`"\u12g4"`, `invalid character 'g' in a \u escape at byte 5`},
		{`"\u12`, `unexpected end of input in a \u escape at byte 5`},
		{"'a'", `invalid character '\'' looking for the beginning of a value at byte 0`},
		{"[", "unexpected end of input looking for the beginning of a value at byte 1"},
		{"[1", "unexpected end of input after an array element at byte 2"},
		{"[1,]", "invalid character ']' looking for the beginning of a value at byte 3"},
		{"[1 2]", "invalid character '2' after an array element at byte 3"},
		{"[1}", "invalid character '}' after an array element at byte 2"},
		{"{", "unexpected end of input looking for the beginning of an object member's name at byte 1"},
		{"{a:1}", "invalid character 'a' looking for the beginning of an object member's name at byte 1"},
		{`{"a"}`, "invalid character '}' after an object member's name at byte 4"},
		{`{"a" 1}`, "invalid character '1' after an object member's name at byte 5"},
		{`{"a":}`, "invalid character '}' looking for the beginning of a value at byte 5"},
		{`{"a":1,}`, "invalid character '}' looking for the beginning of an object member's name at byte 7"},
		{`{"a":1]`, "invalid character ']' after an object member at byte 6"},
		{`{"a":1 "b":2}`, `invalid character '"' after an object member at byte 7`},
		{`{"a":1`, "unexpected end of input after an object member at byte 6"},
		{`[{"a":[1,{"b":2]}]`, "invalid character ']' after an object member at byte 15"},
		{"[1]]", "invalid character ']' after the top-level value at byte 3"},
		{"\"\x00\"", `invalid character '\x00' in a string (control characters must be escaped) at byte 1`},
		{"\xef\xbb\xbf{}", "invalid character '\\ufeff' looking for the beginning of a value at byte 0"},
	} {
		v, err := Parse([]byte(tc.doc))
		var se *SyntaxError
		if !errors.As(err, &se) || err.Error() != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want error %q", tc.doc, v.Raw(), err, tc.want)
			continue
		}
		if i := strings.LastIndex(tc.want, " "); tc.want[i+1:] != strconv.Itoa(se.Offset) {
			t.Errorf("Parse(%q): Offset %d, want the one in %q", tc.doc, se.Offset, tc.want)
		}
		if json.Valid([]byte(tc.doc)) {
			t.Errorf("encoding/json accepts %q", tc.doc)
		}
		if Valid([]byte(tc.doc)) {
			t.Errorf("Valid(%q) = true", tc.doc)
		}
	}
}

// Nesting is limited as in encoding/json, and checked without recursion.
func TestParseNesting(t *testing.T) {
	for _, tc := range []struct {
		doc   string
		valid bool
	}{
		{strings.Repeat("[", 64) + strings.Repeat("]", 64), true},
		{strings.Repeat("[", 65) + strings.Repeat("]", 65), true},
		{strings.Repeat(`{"a":[`, 300) + strings.Repeat("]}", 300), true},
		{strings.Repeat(`{"a":[`, 300) + strings.Repeat("}]", 300), false},
		{strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), true},
		{strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), false},
		{strings.Repeat("[", 1_000_000), false},
		{strings.Repeat(`[{"a":`, 100) + "1" + strings.Repeat("}]", 100), true},
		{strings.Repeat(`[{"a":`, 100) + "1" + strings.Repeat("]}", 100), false},
	} {
		if got := Valid([]byte(tc.doc)); got != tc.valid {
			t.Errorf("Valid(%.20q…, %d bytes) = %v, want %v", tc.doc, len(tc.doc), got, tc.valid)
		}
		if got := json.Valid([]byte(tc.doc)); got != tc.valid {
			t.Errorf("json.Valid(%.20q…, %d bytes) = %v, want %v", tc.doc, len(tc.doc), got, tc.valid)
		}
	}
	_, err := Parse([]byte(strings.Repeat("[", maxDepth+1)))
	if want := "nesting deeper than 10000 levels at byte 10000"; err == nil || err.Error() != want {
		t.Errorf("too deep: %v, want %q", err, want)
	}
}
