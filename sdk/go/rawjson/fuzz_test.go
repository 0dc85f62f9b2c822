package rawjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	`{"id":"o0000001","product_id":"p000042","customer_id":"c01234","quantity":3}`,
	`{"id":"p1", "name":"widget", "price":10}`,
	` { "id" : "o2", "product_id" : "p\"2\u00e9", "note" : "a  b\"" } `,
	`{"product":{"id":"fake"},"product_id":"p9","produc\u0074":1,"product_id":"p1"}`,
	`[1, -0.5e+10, "x", true, false, null, {}, [], {"a":[{"b":null}]}]`,
	`"\ud83d\ude00\ud83d\u0041\ude00"`,
	"\"a\xffb\"",
	`{"a":1,"a":{"b":2},"":[]}`,
	`9223372036854775808`,
	`-9223372036854775808`,
	`1.7976931348623157e308`,
	`4.9e-324`,
	`0.1`,
	`{"a":1`,
	`[1,]`,
	`not json`,
	"",
}

// FuzzParse holds Parse to encoding/json: the same documents are JSON, and a
// document reads the same through a Value as through encoding/json's
// decoding into interface values (objects as maps, numbers as written);
// numbers convert alike, Set sets one member and keeps the others, and a
// Value written back through a Builder reads the same again.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		checkLikeEncodingJSON(t, doc)
		v, err := Parse(doc)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(doc) {
				t.Fatalf("Parse(%q): %#v", doc, err)
			}
			return
		}
		if string(v.Raw()) != string(bytes.Trim(doc, " \t\r\n")) {
			t.Fatalf("Parse(%q) = %q, want the document trimmed", doc, v.Raw())
		}
		want := decodeStd(t, doc)
		var b Builder
		rewrite(&b, v)
		if got := decodeStd(t, b.Bytes()); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q rewritten as %q reads %#v, want %#v", doc, b.Bytes(), got, want)
		}
	})
}

// decodeStd decodes doc with encoding/json into interface values, numbers
// as json.Number.
func decodeStd(t *testing.T, doc []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json cannot decode %q: %v", doc, err)
	}
	return v
}

// toAny reads v the way encoding/json decodes into interface values, and
// checks the typed getters and Get against what it reads.
func toAny(t *testing.T, v Value) any {
	switch v.Kind() {
	case Null:
		if !v.IsNull() {
			t.Fatalf("%q: kind null but not IsNull", v.Raw())
		}
		return nil
	case Bool:
		b, ok := v.Bool()
		if !ok {
			t.Fatalf("%q: kind bool but Bool fails", v.Raw())
		}
		return b
	case Number:
		checkNumberGetters(t, v)
		return json.Number(v.Raw())
	case String:
		s, ok := v.Unquote()
		if !ok || !v.EqualString(s) {
			t.Fatalf("%q: Unquote %q, %v, or EqualString disagrees", v.Raw(), s, ok)
		}
		return s
	case Array:
		a := []any{}
		for i, item := range v.Items() {
			if i != len(a) {
				t.Fatalf("%q: item %d yielded as %d", v.Raw(), len(a), i)
			}
			a = append(a, toAny(t, item))
		}
		return a
	case Object:
		m := map[string]any{}
		last := map[string]Value{}
		for name, value := range v.Members() {
			s, ok := name.Unquote()
			if !ok {
				t.Fatalf("%q: member name %q is not a string", v.Raw(), name.Raw())
			}
			m[s] = toAny(t, value)
			last[s] = value
		}
		for name, want := range last {
			// The very slice of the last member of that name.
			got, ok := v.Get(name)
			if !ok || len(got.Raw()) != len(want.Raw()) || &got.Raw()[0] != &want.Raw()[0] {
				t.Fatalf("%q: Get(%q) = %q, %v; want %q", v.Raw(), name, got.Raw(), ok, want.Raw())
			}
		}
		return m
	}
	t.Fatalf("%q: kind %v", v.Raw(), v.Kind())
	return nil
}

// checkNumberGetters checks Int and Float against encoding/json's decoding.
func checkNumberGetters(t *testing.T, v Value) {
	var n int64
	errN := json.Unmarshal(v.Raw(), &n)
	if got, ok := v.Int(); ok != (errN == nil) || ok && got != n {
		t.Fatalf("%q: Int = %d, %v; encoding/json: %d, %v", v.Raw(), got, ok, n, errN)
	}
	var f float64
	errF := json.Unmarshal(v.Raw(), &f)
	if got, ok := v.Float(); ok != (errF == nil) || ok && got != f {
		t.Fatalf("%q: Float = %v, %v; encoding/json: %v, %v", v.Raw(), got, ok, f, errF)
	}
}

// rewrite writes v through b, unquoting and quoting strings and names.
func rewrite(b *Builder, v Value) {
	switch v.Kind() {
	case String:
		s, _ := v.Unquote()
		b.String(s)
	case Array:
		b.StartArray()
		for _, item := range v.Items() {
			rewrite(b, item)
		}
		b.EndArray()
	case Object:
		b.StartObject()
		for name, value := range v.Members() {
			s, _ := name.Unquote()
			b.Key(s)
			rewrite(b, value)
		}
		b.EndObject()
	default:
		b.Raw(v)
	}
}

// FuzzAppendString holds AppendString to encoding/json: what it writes is
// JSON that both decoders read as encoding/json reads its own encoding.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x1f\x7f", "\xff\xe2\x82", "😀é€\u2028", strings.Repeat("ab\n", 20)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		text := checkStringRoundTrip(t, s)
		v := mustParse(t, `{"a":1,`+string(AppendString(nil, s))+`:2}`)
		if got, ok := v.Get(text); !ok || string(got.Raw()) != "2" {
			t.Fatalf("Get(%q) = %q, %v; want 2", text, got.Raw(), ok)
		}
	})
}

// The scanners read strings and numbers eight and sixteen bytes at a time,
// with other paths near the end of the document: every length of name and
// value, each with an escape or a control character at every place, reads
// as encoding/json reads it.
func TestScanLengths(t *testing.T) {
	for n := 0; n < 40; n++ {
		text := strings.Repeat("x", n)
		docs := []string{
			`{"` + text + `":"` + text + `"}`,
			`{"` + text + `":1,"k":"` + text + `"}`,
			`{"k":` + strings.Repeat("1", n+1) + `,"` + text + `":` + strings.Repeat("2", n+1) + `}`,
			`["` + text + `",` + strings.Repeat("3", n+1) + `]`,
			` { "` + text + `" : "` + text + `" } `,
		}
		for k := 0; k < n; k++ {
			for _, special := range []string{`\"`, `\\`, `\u0041`, "\x01", "\xff", "é", `"`} {
				s := text[:k] + special + text[k+1:]
				docs = append(docs, `{"`+s+`":"`+s+`","k":true}`, `{"k":false,"`+s+`":"`+s+`"}`, `"`+s+`"`)
			}
		}
		for _, doc := range docs {
			checkLikeEncodingJSON(t, []byte(doc))
		}
	}
}

// checkLikeEncodingJSON is FuzzParse's check of one document.
func checkLikeEncodingJSON(t *testing.T, doc []byte) {
	t.Helper()
	v, err := Parse(doc)
	if valid := json.Valid(doc); valid != (err == nil) {
		t.Fatalf("Parse(%q): %v; encoding/json says valid: %v", doc, err, valid)
	}
	if err != nil {
		return
	}
	want := decodeStd(t, doc)
	if got := toAny(t, v); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q reads as %#v, encoding/json reads %#v", doc, got, want)
	}
	obj, isObject := want.(map[string]any)
	for _, name := range []string{"k", "k\u00e9"} { // an ASCII name, and one that is not
		out, err := Set(nil, v, name, Value{})
		if isObject != (err == nil) {
			t.Fatalf("Set(%q, %q): %v", doc, name, err)
		}
		if isObject {
			want := maps.Clone(obj)
			want[name] = nil
			if got := decodeStd(t, out); !reflect.DeepEqual(got, want) {
				t.Fatalf("Set(%q, %q) = %q reads %#v, want %#v", doc, name, out, got, want)
			}
		}
	}
}
