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
