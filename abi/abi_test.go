package abi_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/abi/abitest"
)

var update = flag.Bool("update", false, "rewrite the encoded lines of testdata/*.vec from their decoded form")

func TestVectors(t *testing.T) {
	vs, err := abitest.Load("testdata")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		rewrite(t, vs)
		if vs, err = abitest.Load("testdata"); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			if got := v.Encode(); !bytes.Equal(got, v.Encoded) {
				t.Fatalf("%s:%d: encode\n got %x\nwant %x", v.File, v.Line, got, v.Encoded)
			}
			switch v.Kind {
			case "batch":
				b, err := abi.DecodeBatch(v.Encoded)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(normBatch(*b), normBatch(v.Batch)) {
					t.Fatalf("decode\n got %+v\nwant %+v", *b, v.Batch)
				}
			case "headers":
				hs, err := abi.DecodeHeaders(v.Encoded, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(hs, v.Headers) && !(len(hs) == 0 && len(v.Headers) == 0) {
					t.Fatalf("decode\n got %+v\nwant %+v", hs, v.Headers)
				}
			case "query":
				q, err := abi.DecodeQueryRequest(v.Encoded)
				if err != nil {
					t.Fatal(err)
				}
				want := v.Query
				if len(want.Body) == 0 {
					want.Body = []byte{}
				}
				if !reflect.DeepEqual(*q, want) {
					t.Fatalf("decode\n got %+v\nwant %+v", *q, want)
				}
			case "emits":
				got, err := abi.DecodeEmits(v.Encoded)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(v.Emits) {
					t.Fatalf("decoded %d emits, want %d", len(got), len(v.Emits))
				}
				for i := range got {
					if !sameEmit(got[i], v.Emits[i]) {
						t.Fatalf("emit %d\n got %+v\nwant %+v", i, got[i], v.Emits[i])
					}
				}
			case "entries":
				rest := v.Encoded
				for i, want := range v.Entries {
					k, val, r, err := abi.NextEntry(rest)
					if err != nil {
						t.Fatalf("entry %d: %v", i, err)
					}
					if !bytes.Equal(k, want[0]) || !bytes.Equal(val, want[1]) {
						t.Fatalf("entry %d: got %x=%x want %x=%x", i, k, val, want[0], want[1])
					}
					rest = r
				}
				if len(rest) != 0 {
					t.Fatalf("%d bytes left after the entries", len(rest))
				}
			}
		})
	}
}

// sameEmit compares emits keeping nil (null) apart from empty in keys and
// values; header lists compare by their bytes.
func sameEmit(a, b abi.Emit) bool {
	return a.Output == b.Output && a.Rec == b.Rec && a.Timestamp == b.Timestamp &&
		(a.Key == nil) == (b.Key == nil) && bytes.Equal(a.Key, b.Key) &&
		(a.Value == nil) == (b.Value == nil) && bytes.Equal(a.Value, b.Value) &&
		bytes.Equal(a.Headers, b.Headers)
}

// normBatch makes empty and nil header lists compare equal; keys and values
// keep their nil-versus-empty distinction, which is the point of the test.
func normBatch(b abi.Batch) abi.Batch {
	recs := make([]abi.Record, len(b.Records))
	for i, r := range b.Records {
		if len(r.Headers) == 0 {
			r.Headers = nil
		}
		recs[i] = r
	}
	b.Records = recs
	if len(b.Topics) == 0 {
		b.Topics = nil
	}
	if len(b.Records) == 0 {
		b.Records = nil
	}
	return b
}

func rewrite(t *testing.T, vs []abitest.Vector) {
	byFile := map[string]map[string][]byte{}
	for _, v := range vs {
		if byFile[v.File] == nil {
			byFile[v.File] = map[string][]byte{}
		}
		byFile[v.File][v.Name] = v.Encode()
	}
	for file, enc := range byFile {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		name := ""
		for i, l := range lines {
			f := strings.Fields(l)
			if len(f) == 2 && f[0] == "vector" {
				name = f[1]
			}
			if len(f) >= 1 && f[0] == "encoded" {
				lines[i] = "encoded " + hex.EncodeToString(enc[name])
			}
		}
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNullAndEmptyAreDistinct(t *testing.T) {
	enc := abi.EncodeBatch(nil, &abi.Batch{Records: []abi.Record{
		{Topic: "t", Key: nil, Value: []byte{}},
		{Topic: "t", Key: []byte{}, Value: nil},
	}})
	b, err := abi.DecodeBatch(enc)
	if err != nil {
		t.Fatal(err)
	}
	r0, r1 := b.Records[0], b.Records[1]
	if r0.Key != nil || r0.Value == nil || r1.Key == nil || r1.Value != nil {
		t.Fatalf("null/empty lost: %#v %#v", r0, r1)
	}
}

func TestDecodeErrorsNameThePlace(t *testing.T) {
	full := abi.EncodeBatch(nil, &abi.Batch{Records: []abi.Record{{Topic: "clicks", Key: []byte("k"), Value: []byte("value")}}})
	tests := []struct {
		name string
		buf  []byte
		want string
	}{
		{"short header", full[:5], "batch header"},
		{"truncated value", full[:len(full)-6], "record 0 value"},
		{"trailing bytes", append(append([]byte(nil), full...), 0), "trailing bytes"},
		{"bad topic index", func() []byte {
			b := append([]byte(nil), full...)
			b[abi.BatchHeaderSize+2+len("clicks")+1] = 9
			return b
		}(), "topic index 9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := abi.DecodeBatch(tc.buf)
			var de *abi.DecodeError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a DecodeError mentioning %q", err, tc.want)
			}
		})
	}
}

func TestReaderReuseAllocatesNothing(t *testing.T) {
	hs := []abi.Header{{Key: "trace", Value: []byte("t1")}, {Key: "source", Value: nil}}
	enc := abi.EncodeBatch(nil, &abi.Batch{Records: []abi.Record{
		{Topic: "clicks", Key: []byte("a"), Value: []byte("1"), Headers: hs},
		{Topic: "clicks", Key: []byte("b"), Value: []byte("2"), Headers: hs},
	}})
	var r abi.BatchReader
	var rec abi.Record
	allocs := testing.AllocsPerRun(100, func() {
		if err := r.Reset(enc); err != nil {
			t.Fatal(err)
		}
		for r.Next(&rec) == nil {
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch, want 0", allocs)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	vs, err := abitest.Load("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range vs {
		f.Add(v.Encoded)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		batch, err := abi.DecodeBatch(b)
		if err != nil {
			return
		}
		// What decodes must re-encode to the same bytes, but for the
		// reserved flag bits, which decoding ignores and encoding clears:
		// the re-encoding decodes to the same batch and is stable.
		got := abi.EncodeBatch(nil, batch)
		again, err := abi.DecodeBatch(got)
		if err != nil {
			t.Fatalf("the re-encoding does not decode: %v\n in %x\nout %x", err, b, got)
		}
		if !reflect.DeepEqual(again, batch) || !bytes.Equal(abi.EncodeBatch(nil, again), got) {
			t.Fatalf("re-encode differs:\n in %x\nout %x", b, got)
		}
		if len(got) != len(b) {
			t.Fatalf("re-encoding changed the length from %d to %d", len(b), len(got))
		}
	})
}

func FuzzDecodeHeaders(f *testing.F) {
	f.Add(abi.AppendHeaders(nil, []abi.Header{{Key: "a", Value: nil}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := abi.DecodeHeaders(b, nil)
		if err != nil {
			return
		}
		if got := abi.AppendHeaders(nil, hs); !bytes.Equal(got, b) {
			t.Fatalf("re-encode differs:\n in %x\nout %x", b, got)
		}
	})
}

// The emit vectors' entries one at a time, as the host reads them; every
// way to cut or corrupt a valid buffer is an error that names the entry and
// the place, never a panic.
func TestEmitsDecodeErrors(t *testing.T) {
	hs := abi.AppendHeaders(nil, []abi.Header{{Key: "a", Value: []byte("1")}})
	two := abi.AppendEmit(nil, &abi.Emit{Output: 0, Rec: 0, Timestamp: -1, Key: []byte("k"), Value: []byte("v")})
	two = abi.AppendEmit(two, &abi.Emit{Output: 1, Rec: 1, Timestamp: 5, Value: []byte("vv"), Headers: hs})
	if n := abi.EmitSize([]byte("k"), []byte("v"), nil) + abi.EmitSize(nil, []byte("vv"), hs); n != len(two) {
		t.Fatalf("EmitSize says %d bytes, the encoding has %d", n, len(two))
	}
	for n := 1; n < len(two); n++ {
		if n == abi.EmitSize([]byte("k"), []byte("v"), nil) {
			continue // one whole entry
		}
		if _, err := abi.DecodeEmits(two[:n]); err == nil {
			t.Errorf("a buffer cut to %d of %d bytes decoded", n, len(two))
		}
	}
	bad := func(mutate func(b []byte) []byte) []byte { return mutate(append([]byte(nil), two...)) }
	first := abi.EmitSize([]byte("k"), []byte("v"), nil)
	tests := []struct {
		name string
		buf  []byte
		want string
	}{
		{"short fixed part", two[:10], "decode emit (entry 0) at byte 0"},
		{"key past the end", bad(func(b []byte) []byte { b[16] = 0xf0; return b }), "emit key (entry 0)"},
		{"value past the end", bad(func(b []byte) []byte { b[first+20] = 0xf0; return b }), "emit value (entry 1)"},
		{"headers past the end", bad(func(b []byte) []byte { b[first+24]++; return b }), "emit headers (entry 1)"},
		{"header list too long", bad(func(b []byte) []byte {
			b[first+24]++
			return append(b, 0)
		}), "bytes after the last header"},
		{"header count too high", bad(func(b []byte) []byte { b[len(b)-len(hs)] = 2; return b }), "emit headers (entry 1)"},
		{"null headers length", bad(func(b []byte) []byte {
			copy(b[24:28], []byte{0xff, 0xff, 0xff, 0xff})
			return b
		}), "emit headers (entry 0)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := abi.DecodeEmits(tc.buf)
			var de *abi.DecodeError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a DecodeError mentioning %q", err, tc.want)
			}
		})
	}
}

func TestNextEmitAllocatesNothing(t *testing.T) {
	hs := abi.AppendHeaders(nil, []abi.Header{{Key: "a", Value: []byte("1")}, {Key: "b"}})
	var buf []byte
	for i := range 10 {
		buf = abi.AppendEmit(buf, &abi.Emit{Rec: int32(i), Timestamp: -1, Key: []byte("k"), Value: []byte("v"), Headers: hs})
	}
	var e abi.Emit
	allocs := testing.AllocsPerRun(100, func() {
		for b := buf; len(b) > 0; {
			var err error
			if b, err = abi.NextEmit(b, &e); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per buffer, want 0", allocs)
	}
}

func TestSizes(t *testing.T) {
	topics := []string{"clicks", "", "orders"}
	hs := []abi.Header{{Key: "trace", Value: []byte("t1")}, {Key: "gone"}}
	recs := []abi.Record{
		{Topic: "clicks", Key: []byte("k"), Value: []byte("value"), Headers: hs},
		{Topic: "orders"},
		{Topic: "", Key: []byte{}, Value: nil},
	}
	want := abi.BatchHeaderSize + abi.TopicTableSize(topics)
	for _, r := range recs {
		want += abi.RecordSize(r.Key, r.Value)
		for _, h := range r.Headers {
			want += abi.HeaderSize(h.Key, h.Value)
		}
	}
	if got := len(abi.EncodeBatch(nil, &abi.Batch{Topics: topics, Records: recs})); got != want {
		t.Fatalf("the sizes add up to %d bytes, the encoding has %d", want, got)
	}
}

func FuzzDecodeEmits(f *testing.F) {
	vs, err := abitest.Load("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range vs {
		if v.Kind == "emits" {
			f.Add(v.Encoded)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := abi.DecodeEmits(b)
		if err != nil {
			return
		}
		// What decodes must re-encode to the same bytes, and every header
		// list in it must decode.
		var got []byte
		for i := range es {
			got = abi.AppendEmit(got, &es[i])
			if len(es[i].Headers) > 0 {
				if _, err := abi.DecodeHeaders(es[i].Headers, nil); err != nil {
					t.Fatalf("entry %d: the header list passed the check but does not decode: %v", i, err)
				}
			}
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("re-encode differs:\n in %x\nout %x", b, got)
		}
	})
}
