package wasm

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/streamrt/streamrt/abi"
)

// echoEmitsGuest hands its input buffer to emit_batch as it is, from
// streamrt_process and streamrt_query, and returns emit_batch's result: the
// test writes an emit_batch buffer where a batch would go.
func echoEmitsGuest() tinyModule {
	g := validGuest()
	g.imports = []tinyImport{{module: abi.ImportModule, name: abi.FuncEmitBatch,
		params: []byte{tI32, tI32}, results: []byte{tI32}}}
	echo := []byte{
		0x20, 0x00, // local.get 0: ptr
		0x20, 0x01, // local.get 1: len
		0x10, 0x00, // call emit_batch
	}
	g.funcs[2].body = echo
	g.funcs = append(g.funcs, tinyFunc{export: abi.ExportQuery, params: []byte{tI32, tI32}, results: []byte{tI32}, body: echo})
	return g
}

// emitsHost keeps the emits it is given and refuses output handles from 2
// on, as a stage with two outputs does.
type emitsHost struct {
	recordingHost
	emits []abi.Emit
}

func (h *emitsHost) Emit(out, rec int32, key, value, headers []byte, ts int64) abi.Code {
	if out < 0 || out >= 2 {
		return abi.ErrUnknownOut
	}
	h.emits = append(h.emits, abi.Emit{Output: out, Rec: rec, Timestamp: ts,
		Key: bytes.Clone(key), Value: bytes.Clone(value), Headers: bytes.Clone(headers)})
	return abi.OK
}

// queryEmitsHost is emitsHost serving a query.
type queryEmitsHost struct{ emitsHost }

func (*queryEmitsHost) Respond(int32, []byte, []byte) abi.Code { return abi.OK }

// emit_batch emits a well-formed buffer's entries in order as emit would
// (null apart from empty, headers passed on as their list), refuses a
// malformed buffer whole, stops at the first entry the host refuses with
// that entry's code, and is not allowed in a query.
func TestEmitBatch(t *testing.T) {
	ctx := context.Background()
	m, err := newEngine(t, Config{}).Compile(ctx, "echo.wasm", echoEmitsGuest().bytes())
	if err != nil {
		t.Fatal(err)
	}
	inst, err := m.Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	hs := abi.AppendHeaders(nil, []abi.Header{{Key: "a", Value: []byte("1")}, {Key: "n"}})
	good := []abi.Emit{
		{Output: 0, Rec: 0, Timestamp: -1, Key: []byte("k"), Value: []byte("v")},
		{Output: 1, Rec: -1, Timestamp: 42, Key: nil, Value: []byte{}, Headers: hs},
		{Output: 0, Rec: 3, Timestamp: 0, Key: []byte{}, Value: nil},
	}
	encode := func(es ...abi.Emit) []byte {
		var b []byte
		for i := range es {
			b = abi.AppendEmit(b, &es[i])
		}
		return b
	}
	bad := abi.Emit{Output: 2, Rec: 1, Timestamp: -1, Key: []byte("x")}
	tests := []struct {
		name  string
		buf   []byte
		query bool
		rc    abi.Code
		want  []abi.Emit
	}{
		{"empty", nil, false, abi.OK, nil},
		{"three", encode(good...), false, abi.OK, good},
		{"truncated", encode(good...)[:len(encode(good...))-1], false, abi.ErrInvalid, nil},
		{"trailing byte", append(encode(good...), 0), false, abi.ErrInvalid, nil},
		{"bad header list", encode(good[0], abi.Emit{Headers: []byte{1, 0, 0, 0}}), false, abi.ErrInvalid, nil},
		{"refused entry", encode(good[0], good[1], bad, good[2]), false, abi.ErrUnknownOut, good[:2]},
		{"query", encode(good...), true, abi.ErrNotAllowed, nil},
		{"empty query", nil, true, abi.ErrNotAllowed, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Host
			var got *[]abi.Emit
			if tc.query {
				qh := &queryEmitsHost{}
				h, got = qh, &qh.emits
			} else {
				eh := &emitsHost{}
				h, got = eh, &eh.emits
			}
			in := tc.buf
			if len(in) == 0 {
				in = []byte{} // a zero-length input still gets a buffer
			}
			call := inst.Process
			if tc.query {
				call = inst.Query
			}
			err := call(ctx, h, in)
			want := ""
			if tc.rc != abi.OK {
				want = fmt.Sprintf("returned %d", tc.rc)
			}
			if (err == nil) != (want == "") || (err != nil && !bytes.Contains([]byte(err.Error()), []byte(want))) {
				t.Fatalf("got %v, want the guest to return %d (%s)", err, tc.rc, tc.rc)
			}
			if len(*got) != len(tc.want) {
				t.Fatalf("%d emits, want %d: %+v", len(*got), len(tc.want), *got)
			}
			for i, e := range *got {
				w := tc.want[i]
				if e.Output != w.Output || e.Rec != w.Rec || e.Timestamp != w.Timestamp ||
					(e.Key == nil) != (w.Key == nil) || !bytes.Equal(e.Key, w.Key) ||
					(e.Value == nil) != (w.Value == nil) || !bytes.Equal(e.Value, w.Value) ||
					!bytes.Equal(e.Headers, w.Headers) {
					t.Errorf("emit %d: %+v, want %+v", i, e, w)
				}
			}
		})
	}
}

// ProcessBatch has the batch encoded straight into the buffer the guest
// provides: the guest here hands that buffer to emit_batch, so the host
// gets back exactly what the encoder wrote. An encoder that writes more or
// fewer bytes than it asked for fails the call, and leaves the instance
// usable.
func TestProcessBatchEncodesIntoGuestMemory(t *testing.T) {
	ctx := context.Background()
	m, err := newEngine(t, Config{}).Compile(ctx, "echo.wasm", echoEmitsGuest().bytes())
	if err != nil {
		t.Fatal(err)
	}
	inst, err := m.Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	es := []abi.Emit{
		{Output: 0, Rec: 0, Timestamp: -1, Key: []byte("k"), Value: []byte("v")},
		{Output: 1, Rec: 1, Timestamp: 9, Value: bytes.Repeat([]byte("x"), 1000)},
	}
	size := abi.EmitSize(es[0].Key, es[0].Value, nil) + abi.EmitSize(es[1].Key, es[1].Value, nil)
	encode := func(dst []byte) []byte {
		for i := range es {
			dst = abi.AppendEmit(dst, &es[i])
		}
		return dst
	}
	h := &emitsHost{}
	var view []byte
	if err := inst.ProcessBatch(ctx, h, size, func(dst []byte) []byte {
		if len(dst) != 0 || cap(dst) != size {
			t.Errorf("dst has length %d and capacity %d, want 0 and %d", len(dst), cap(dst), size)
		}
		view = encode(dst)
		return view
	}); err != nil {
		t.Fatal(err)
	}
	if len(h.emits) != 2 || h.emits[1].Timestamp != 9 || len(h.emits[1].Value) != 1000 {
		t.Fatalf("the guest handed back %+v", h.emits)
	}
	// The encoder wrote into guest memory, at the buffer the guest gave
	// (address 16 in this module).
	if mem, ok := inst.mem.Read(16, uint32(size)); !ok || !bytes.Equal(mem, encode(nil)) || &mem[0] != &view[0] {
		t.Fatal("the batch is not in guest memory at the guest's buffer")
	}
	for _, n := range []int{size - 1, size + 1} {
		err := inst.ProcessBatch(ctx, &emitsHost{}, n, encode)
		if err == nil || inst.Broken() != nil {
			t.Fatalf("size %d for %d bytes: got %v (broken %v), want an error and a usable instance", n, size, err, inst.Broken())
		}
	}
	if err := inst.ProcessBatch(ctx, h, size, encode); err != nil {
		t.Fatal(err)
	}
}
