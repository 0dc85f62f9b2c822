//go:build !wasip1

package streamrt

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/streamrt/streamrt/abi"
)

func TestEmit(t *testing.T) {
	f := newFakeHost(FakeConfig{Outputs: []string{"a", "b"}})
	HandleRecord(func(r *Record) error {
		switch r.Index() {
		case 0:
			return Emit("a", r.Key, r.Value)
		case 1:
			return Emit("b", nil, nil, WithTimestamp(1234))
		default:
			return Emit("a", []byte{}, []byte{}, WithTimestamp(abi.InheritTimestamp))
		}
	})
	if rc := f.Process(batchOf("x", "y", "z")); rc != 0 || len(f.errs) != 0 {
		t.Fatalf("process = %d, errors %v", rc, f.errs)
	}
	if err := Emit("b", []byte("k"), nil); err != nil {
		t.Fatal(err)
	}
	want := []FakeEmit{
		{Output: "a", Rec: 0, Key: []byte("k0"), Value: []byte("x"), Timestamp: -1},
		{Output: "b", Rec: 1, Timestamp: 1234},
		{Output: "a", Rec: 2, Key: []byte{}, Value: []byte{}, Timestamp: -1},
		{Output: "b", Rec: -1, Key: []byte("k"), Timestamp: -1},
	}
	if !reflect.DeepEqual(f.emits, want) {
		t.Errorf("emits\n got %+v\nwant %+v", f.emits, want)
	}
	if f.opens != 2 {
		t.Errorf("output_open called %d times, want 2", f.opens)
	}
}

func TestEmitUnknownOutput(t *testing.T) {
	f := newFakeHost(FakeConfig{Outputs: []string{"out"}})
	for i := 0; i < 2; i++ {
		err := Emit("outt", nil, nil)
		var he *HostError
		if !errors.Is(err, ErrUnknownOutput) || !errors.As(err, &he) || he.Name != "outt" || he.Func != abi.FuncOutputOpen {
			t.Errorf("Emit to an undeclared output: %#v", err)
		}
	}
	if f.opens != 1 {
		t.Errorf("output_open called %d times, want 1", f.opens)
	}
}

// Emit's options, on its fast path (at most one option, no headers) and off
// it: the last timestamp wins, headers add up, an empty header list is no
// list, and WithTimestamp(-1) inherits.
func TestEmitOptions(t *testing.T) {
	h1 := []Header{{Key: "a", Value: []byte("1")}}
	h2 := []Header{{Key: "b", Value: nil}}
	tests := []struct {
		name    string
		opts    []EmitOption
		ts      int64
		headers []Header
	}{
		{"none", nil, -1, nil},
		{"timestamp", []EmitOption{WithTimestamp(7)}, 7, nil},
		{"timestamp 0", []EmitOption{WithTimestamp(0)}, 0, nil},
		{"inherit", []EmitOption{WithTimestamp(abi.InheritTimestamp)}, -1, nil},
		{"max", []EmitOption{WithTimestamp(math.MaxInt64)}, math.MaxInt64, nil},
		{"min", []EmitOption{WithTimestamp(math.MinInt64)}, math.MinInt64, nil},
		{"empty headers", []EmitOption{WithHeaders()}, -1, nil},
		{"empty headers twice", []EmitOption{WithHeaders(), WithTimestamp(3), WithHeaders()}, 3, nil},
		{"last timestamp wins", []EmitOption{WithTimestamp(5), WithTimestamp(9)}, 9, nil},
		{"later option without timestamp", []EmitOption{WithTimestamp(5), WithHeaders(h1...)}, 5, h1},
		{"headers add up", []EmitOption{WithHeaders(h1...), WithHeaders(), WithHeaders(h2...)}, -1, append(slices.Clone(h1), h2...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeHost(FakeConfig{Outputs: []string{"out", "other"}})
			// Twice, so that the second Emit takes the fast path if it can,
			// and with another output in between.
			for _, out := range []string{"out", "other", "out", string([]byte("out"))} {
				if err := Emit(out, []byte("k"), []byte("v"), tt.opts...); err != nil {
					t.Fatal(err)
				}
			}
			var want []byte
			if len(tt.headers) > 0 {
				want = abi.AppendHeaders(nil, tt.headers)
			}
			for i, e := range f.emits {
				if e.Timestamp != tt.ts || !bytes.Equal(e.Headers, want) {
					t.Errorf("emit %d: timestamp %d, headers %x; want %d, %x", i, e.Timestamp, e.Headers, tt.ts, want)
				}
			}
			if got := []string{f.emits[0].Output, f.emits[1].Output, f.emits[2].Output, f.emits[3].Output}; !reflect.DeepEqual(got, []string{"out", "other", "out", "out"}) {
				t.Errorf("outputs %v", got)
			}
			if f.opens != 2 {
				t.Errorf("output_open called %d times, want 2", f.opens)
			}
		})
	}
}
