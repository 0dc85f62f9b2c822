package rawjson

import (
	"math"
	"slices"
	"testing"
)

func mustParse(t testing.TB, doc string) Value {
	t.Helper()
	v, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse(%q): %v", doc, err)
	}
	return v
}

func TestKind(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want Kind
	}{
		{"null", Null}, {"true", Bool}, {"false", Bool}, {"0", Number}, {"-1.5e3", Number},
		{`""`, String}, {"[]", Array}, {"{}", Object},
	} {
		if got := mustParse(t, tc.doc).Kind(); got != tc.want {
			t.Errorf("Kind(%s) = %v, want %v", tc.doc, got, tc.want)
		}
	}
	var zero Value
	if zero.Kind() != Null || !zero.IsNull() || string(zero.Raw()) != "null" {
		t.Errorf("zero Value: kind %v, raw %q; want null", zero.Kind(), zero.Raw())
	}
	if got := Kind(9).String(); got != "Kind(9)" {
		t.Errorf("Kind(9).String() = %q", got)
	}
}

func TestScalars(t *testing.T) {
	type want struct {
		null   bool
		b, bOK bool
		n      int64
		nOK    bool
		f      float64
		fOK    bool
		text   string
		textOK bool
	}
	for _, tc := range []struct {
		doc string
		want
	}{
		{"null", want{null: true}},
		{"true", want{b: true, bOK: true}},
		{"false", want{bOK: true}},
		{"0", want{nOK: true, fOK: true}},
		{"-0", want{nOK: true, f: math.Copysign(0, -1), fOK: true}},
		{"42", want{n: 42, nOK: true, f: 42, fOK: true}},
		{"-17", want{n: -17, nOK: true, f: -17, fOK: true}},
		{"9223372036854775807", want{n: math.MaxInt64, nOK: true, f: 9223372036854775807, fOK: true}},
		{"-9223372036854775808", want{n: math.MinInt64, nOK: true, f: -9223372036854775808, fOK: true}},
		{"9223372036854775808", want{f: 9223372036854775808, fOK: true}},
		{"-9223372036854775809", want{f: -9223372036854775809, fOK: true}},
		{"99999999999999999999", want{f: 1e20, fOK: true}},
		{"1.5", want{f: 1.5, fOK: true}},
		{"1.0", want{f: 1, fOK: true}},
		{"1e2", want{f: 100, fOK: true}},
		{"-2.5E-3", want{f: -2.5e-3, fOK: true}},
		{"0.1", want{f: 0.1, fOK: true}},
		{"123456789012345.6", want{f: 123456789012345.6, fOK: true}},
		{"0.0000000000000000000001", want{f: 1e-22, fOK: true}},
		{"0.00000000000000000000001", want{f: 1e-23, fOK: true}},
		{"1e400", want{}},
		{"1e-400", want{fOK: true}},
		{`"abc"`, want{text: "abc", textOK: true}},
		{`""`, want{textOK: true}},
		{`"a\"b\\c\/d"`, want{text: `a"b\c/d`, textOK: true}},
		{"[]", want{}},
		{"{}", want{}},
	} {
		v := mustParse(t, tc.doc)
		got := want{null: v.IsNull()}
		got.b, got.bOK = v.Bool()
		got.n, got.nOK = v.Int()
		got.f, got.fOK = v.Float()
		got.text, got.textOK = v.Unquote()
		if got != tc.want || math.Signbit(got.f) != math.Signbit(tc.want.f) {
			t.Errorf("%s: got %+v, want %+v", tc.doc, got, tc.want)
		}
	}
}

// The Rust enrich stage's table (string_undoes_escapes), and invalid UTF-8
// as encoding/json decodes it.
func TestUnquote(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`""`, ""},
		{`"plain é"`, "plain é"},
		{`"a\"b\\c\/d"`, "a\"b\\c/d"},
		{`"\b\f\n\r\t"`, "\b\f\n\r\t"},
		{`"\u0041\u00e9\u20AC"`, "Aé€"},
		{`"\ud83d\ude00!"`, "😀!"},
		{`"\u0000"`, "\x00"},
		// Lone surrogates become U+FFFD, as Go decodes them.
		{`"\ud83d"`, "\uFFFD"},
		{`"\ud83dx"`, "\uFFFDx"},
		{`"\ud83d\u0041"`, "\uFFFDA"},
		{`"\ude00\ud83d"`, "\uFFFD\uFFFD"},
		{`"\ud83d\ud83d\ude00"`, "\uFFFD😀"},
		{"\"a\xffb\"", "a\uFFFDb"},
		{"\"\xe2\x82\"", "\uFFFD\uFFFD"},
		{"\"\xed\xa0\x80\"", "\uFFFD\uFFFD\uFFFD"}, // an encoded surrogate is not UTF-8
	} {
		v := mustParse(t, tc.doc)
		if got, ok := v.Unquote(); !ok || got != tc.want {
			t.Errorf("Unquote(%s) = %q, %v; want %q", tc.doc, got, ok, tc.want)
		}
		if got, ok := v.AppendUnquoted([]byte("<")); !ok || string(got) != "<"+tc.want {
			t.Errorf("AppendUnquoted(%s) = %q, %v; want %q", tc.doc, got, ok, "<"+tc.want)
		}
		if !v.EqualString(tc.want) || v.EqualString(tc.want+"x") {
			t.Errorf("EqualString(%s) does not match %q alone", tc.doc, tc.want)
		}
	}
	n := mustParse(t, "12")
	if got, ok := n.AppendUnquoted([]byte("<")); ok || string(got) != "<" {
		t.Errorf("AppendUnquoted(12) = %q, %v; want dst unchanged and false", got, ok)
	}
	if n.EqualString("12") {
		t.Errorf("the number 12 equals the string 12")
	}
}

func TestGet(t *testing.T) {
	doc := mustParse(t, ` { "id" : "o1", "pro\u0064uct_id":"p\"1", "n" : [1, {"x": 2}] ,
		"nested": {"a": {"b": true}, "é": 1, "a\u0000": 2}, "id":2, "": 3, "\ud800": 4, "`+"\xff"+`": 5 } `)
	for _, tc := range []struct {
		path []string
		want string // "" when missing
	}{
		{nil, string(doc.Raw())},
		{[]string{"id"}, "2"}, // the last of a name given twice
		{[]string{"product_id"}, `"p\"1"`},
		{[]string{"pro\\u0064uct_id"}, ""},
		{[]string{"n"}, `[1, {"x": 2}]`},
		{[]string{"n", "x"}, ""},
		{[]string{"nested", "a", "b"}, "true"},
		{[]string{"nested", "a"}, `{"b": true}`},
		{[]string{"nested", "é"}, "1"},
		{[]string{"nested", "a\x00"}, "2"},
		{[]string{"nested", "a", "b", "c"}, ""},
		{[]string{"nested", "x"}, ""},
		{[]string{"missing"}, ""},
		{[]string{""}, "3"},
		{[]string{"\uFFFD"}, "5"}, // "\ud800" and "\xff" both read U+FFFD; the last counts
		{[]string{"\xff"}, ""},
		{[]string{"Id"}, ""},
	} {
		got, ok := doc.Get(tc.path...)
		if ok != (tc.want != "") || ok && string(got.Raw()) != tc.want {
			t.Errorf("Get(%q) = %q, %v; want %q", tc.path, got.Raw(), ok, tc.want)
		}
	}
	for _, doc := range []string{"[1]", `"a"`, "null", "1", "{}"} {
		if got, ok := mustParse(t, doc).Get("a"); ok {
			t.Errorf("%s: Get(a) = %q, want none", doc, got.Raw())
		}
	}
	if got, ok := (Value{}).Get("a"); ok {
		t.Errorf("zero Value: Get(a) = %q, want none", got.Raw())
	}
}

func TestMembersAndItems(t *testing.T) {
	obj := mustParse(t, `{"a":1, "b\u0021" : [true, null] ,"a":{"c":"}"}}`)
	var got []string
	for name, v := range obj.Members() {
		text, _ := name.Unquote()
		got = append(got, text+"="+string(v.Raw()))
	}
	if want := []string{"a=1", "b!=[true, null]", `a={"c":"}"}`}; !slices.Equal(got, want) {
		t.Errorf("Members = %q, want %q", got, want)
	}

	arr := mustParse(t, `[ 1 ,"x]",[2,[3]], {"a":[]},-0.5 ]`)
	got = nil
	for i, v := range arr.Items() {
		got = append(got, string(rune('0'+i))+":"+string(v.Raw()))
		if w, ok := arr.Index(i); !ok || string(w.Raw()) != string(v.Raw()) {
			t.Errorf("Index(%d) = %q, %v; want %q", i, w.Raw(), ok, v.Raw())
		}
	}
	if want := []string{"0:1", `1:"x]"`, "2:[2,[3]]", `3:{"a":[]}`, "4:-0.5"}; !slices.Equal(got, want) {
		t.Errorf("Items = %q, want %q", got, want)
	}
	for _, i := range []int{-1, 5} {
		if v, ok := arr.Index(i); ok {
			t.Errorf("Index(%d) = %q, want none", i, v.Raw())
		}
	}

	// Breaking out of the loop stops the walk.
	n := 0
	for range obj.Members() {
		n++
		break
	}
	for range arr.Items() {
		n++
		break
	}
	if n != 2 {
		t.Errorf("%d iterations after a break, want 2", n)
	}
	for _, doc := range []string{"{}", "[]", "{ }", "[ ]", "1", `"a"`, "null"} {
		v := mustParse(t, doc)
		for range v.Members() {
			t.Errorf("%s: Members yields", doc)
		}
		for range v.Items() {
			t.Errorf("%s: Items yields", doc)
		}
	}
}

// The Values a Value hands out alias its document, and cannot grow into it.
func TestValuesAliasTheDocument(t *testing.T) {
	doc := []byte(`{"a":"xy","b":2}`)
	v, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := v.Get("a")
	doc[6] = 'z'
	if got := string(a.Raw()); got != `"zy"` {
		t.Errorf("after a change to the document, a = %s, want %q", got, `"zy"`)
	}
	_ = append(a.Raw(), '!')
	if string(doc) != `{"a":"zy","b":2}` {
		t.Errorf("appending to a value changed the document: %s", doc)
	}
}
