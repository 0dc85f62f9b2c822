//go:build !wasip1

package streamrt

import (
	"errors"
	"reflect"
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
