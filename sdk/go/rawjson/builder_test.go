package rawjson

import (
	"encoding/json"
	"math"
	"testing"
)

func TestBuilder(t *testing.T) {
	product := mustParse(t, `{"id":"p1", "price":9.5}`)
	for _, tc := range []struct {
		name  string
		build func(b *Builder)
		want  string
	}{
		{"empty object", func(b *Builder) { b.StartObject(); b.EndObject() }, `{}`},
		{"empty array", func(b *Builder) { b.StartArray(); b.EndArray() }, `[]`},
		{"scalars", func(b *Builder) {
			b.StartArray()
			b.Null()
			b.Bool(true)
			b.Bool(false)
			b.Int(-42)
			b.Float(1.5)
			b.String("s")
			b.StringBytes([]byte("b"))
			b.Raw(product)
			b.Raw(Value{})
			b.EndArray()
		}, `[null,true,false,-42,1.5,"s","b",{"id":"p1", "price":9.5},null]`},
		{"nested", func(b *Builder) {
			b.StartObject()
			b.Key("id")
			b.String("o1")
			b.Key("lines")
			b.StartArray()
			b.StartObject()
			b.Key("qty")
			b.Int(2)
			b.EndObject()
			b.StartObject()
			b.EndObject()
			b.StartArray()
			b.EndArray()
			b.EndArray()
			b.Key("a\"b")
			b.StartObject()
			b.Key("")
			b.Null()
			b.EndObject()
			b.EndObject()
		}, `{"id":"o1","lines":[{"qty":2},{},[]],"a\"b":{"":null}}`},
		{"top-level scalar", func(b *Builder) { b.Int(7) }, `7`},
	} {
		var b Builder
		b.Reset([]byte("<"))
		tc.build(&b)
		if got := string(b.Bytes()); got != "<"+tc.want {
			t.Errorf("%s: %s, want <%s", tc.name, got, tc.want)
		}
		if !json.Valid(b.Bytes()[1:]) {
			t.Errorf("%s: %s is not JSON", tc.name, b.Bytes()[1:])
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, tc := range []struct{ s, want string }{
		{"", `""`},
		{"plain é €", `"plain é €"`},
		{`a"b\c/d`, `"a\"b\\c/d"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f" + `"`},
		{"<>&\u2028", "\"<>&\u2028\""},
		{"a\xffb", `"a\ufffdb"`},
		{"\xe2\x82", `"\ufffd\ufffd"`},
		{"😀\xf0", `"😀\ufffd"`},
	} {
		if got := string(AppendString([]byte("<"), tc.s)); got != "<"+tc.want {
			t.Errorf("AppendString(%q) = %s, want <%s", tc.s, got, tc.want)
		}
		var b Builder
		b.StringBytes([]byte(tc.s))
		if got := string(b.Bytes()); got != tc.want {
			t.Errorf("StringBytes(%q) = %s, want %s", tc.s, got, tc.want)
		}
		checkStringRoundTrip(t, tc.s)
	}
}

// checkStringRoundTrip checks that s written by AppendString reads back as
// encoding/json reads s written by itself, through both decoders, and
// returns what they read.
func checkStringRoundTrip(t *testing.T, s string) string {
	t.Helper()
	enc := AppendString(nil, s)
	var viaJSON, viaStd string
	if err := json.Unmarshal(enc, &viaJSON); err != nil {
		t.Fatalf("AppendString(%q) = %s: %v", s, enc, err)
	}
	std, _ := json.Marshal(s)
	if err := json.Unmarshal(std, &viaStd); err != nil {
		t.Fatal(err)
	}
	if viaJSON != viaStd {
		t.Errorf("AppendString(%q) = %s reads %q, encoding/json's reads %q", s, enc, viaJSON, viaStd)
	}
	v, err := Parse(enc)
	if err != nil {
		t.Fatalf("AppendString(%q) = %s: %v", s, enc, err)
	}
	if got, _ := v.Unquote(); got != viaStd {
		t.Errorf("AppendString(%q) = %s unquotes to %q, want %q", s, enc, got, viaStd)
	}
	return viaStd
}

func TestFloat(t *testing.T) {
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1.5, 1e20, 1e21, 123456789, 1e-6, 1e-7, 9.999e-7,
		-1.2345e-10, math.MaxFloat64, math.SmallestNonzeroFloat64, 1 << 53, 3.0000000000000004} {
		var b Builder
		b.Float(f)
		want, _ := json.Marshal(f)
		if got := string(b.Bytes()); got != string(want) {
			t.Errorf("Float(%v) = %s, encoding/json writes %s", f, got, want)
		}
		if back, ok := mustParse(t, string(b.Bytes())).Float(); !ok || back != f {
			t.Errorf("Float(%v) = %s reads back as %v, %v", f, b.Bytes(), back, ok)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		var b Builder
		b.Float(f)
		if got := string(b.Bytes()); got != "null" {
			t.Errorf("Float(%v) = %s, want null", f, got)
		}
	}
}

func TestSet(t *testing.T) {
	product := mustParse(t, `{"id":"p1"}`)
	for _, tc := range []struct {
		obj, name string
		value     Value
		want      string
	}{
		{`{"id":"o1","product_id":"p1"}`, "product", product, `{"id":"o1","product_id":"p1","product":{"id":"p1"}}`},
		{`{"id":"o1","product_id":"p1"}`, "product", Value{}, `{"id":"o1","product_id":"p1","product":null}`},
		{`{ "id" : "o1" , "n":[1, 2] }`, "product", product, `{ "id" : "o1" , "n":[1, 2],"product":{"id":"p1"}}`},
		{`{}`, "product", product, `{"product":{"id":"p1"}}`},
		{`{ }`, "a\"b", Value{}, `{"a\"b":null}`},
		// An existing member keeps its place; later ones of its name go.
		{`{"product":1,"id":"o1"}`, "product", product, `{"product":{"id":"p1"},"id":"o1"}`},
		{`{"id":"o1", "product" : 1 }`, "product", product, `{"id":"o1", "product" : {"id":"p1"} }`},
		{`{"a":1,"produc\u0074":2,"b":3, "product":4 ,"c":5,"product":6}`, "product", product,
			`{"a":1,"produc\u0074":{"id":"p1"},"b":3 ,"c":5}`},
		{`{"product":1,"product":2}`, "product", Value{}, `{"product":null}`},
		{`{"x":{"product":1}}`, "product", Value{}, `{"x":{"product":1},"product":null}`},
	} {
		got, err := Set([]byte("<"), mustParse(t, tc.obj), tc.name, tc.value)
		if err != nil || string(got) != "<"+tc.want {
			t.Errorf("Set(%s, %q) = %s, %v; want <%s", tc.obj, tc.name, got, err, tc.want)
		}
		if !json.Valid(got[1:]) {
			t.Errorf("Set(%s, %q) = %s: not JSON", tc.obj, tc.name, got[1:])
		}
	}
	for _, doc := range []string{"[]", "null", `"{}"`, "1"} {
		got, err := Set([]byte("<"), mustParse(t, doc), "a", Value{})
		if err != ErrNotObject || string(got) != "<" {
			t.Errorf("Set(%s) = %q, %v; want dst unchanged, ErrNotObject", doc, got, err)
		}
	}
}
