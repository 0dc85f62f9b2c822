package wasm

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// A Rust module built for another ABI version is refused at load, with both
// versions named. (The conformance suite in package engine drives Rust
// guests through every host function.)
func TestRustModuleForAnotherABIVersionIsRefused(t *testing.T) {
	bin := guesttest.BuildRust(t, guesttest.RustDir("testdata/abiv2"))
	e := newEngine(t, Config{})
	_, err := e.Compile(context.Background(), "abiv2.wasm", bin)
	if !errors.Is(err, ErrInvalidModule) {
		t.Fatalf("got %v, want an ErrInvalidModule", err)
	}
	const want = "module abiv2.wasm: was built for host ABI v2 (imports streamrt_v2), this host speaks ABI v1 (streamrt_v1)"
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

// recordingHost keeps what a guest emits; it declares no stores.
type recordingHost struct {
	emitted []abi.Record
}

func (h *recordingHost) OpenStore(string) (int32, abi.Code)            { return 0, abi.ErrUnknownStore }
func (h *recordingHost) Get(int32, []byte) ([]byte, abi.Code)          { return nil, abi.ErrUnknownStore }
func (h *recordingHost) Put(int32, int32, []byte, []byte) abi.Code     { return abi.ErrUnknownStore }
func (h *recordingHost) Delete(int32, int32, []byte) abi.Code          { return abi.ErrUnknownStore }
func (h *recordingHost) Range(int32, []byte, []byte) (int32, abi.Code) { return 0, abi.ErrUnknownStore }
func (h *recordingHost) RangeNext(int32, []byte) (int, int, abi.Code) {
	return 0, 0, abi.ErrBadIterator
}
func (h *recordingHost) RangeClose(int32) abi.Code                  { return abi.ErrBadIterator }
func (h *recordingHost) OpenOutput(string) (int32, abi.Code)        { return 0, abi.OK }
func (h *recordingHost) Log(int32, []byte)                          {}
func (h *recordingHost) RecordError(rec int32, msg []byte) abi.Code { return abi.OK }

func (h *recordingHost) Emit(out, rec int32, key, value, headers []byte, ts int64) abi.Code {
	r := abi.Record{Key: bytes.Clone(key), Value: bytes.Clone(value), Timestamp: ts, Offset: int64(rec)}
	if len(headers) > 0 {
		hs, err := abi.DecodeHeaders(headers, nil)
		if err != nil {
			return abi.ErrInvalid
		}
		for _, h := range hs {
			r.Headers = append(r.Headers, abi.Header{Key: h.Key, Value: bytes.Clone(h.Value)})
		}
	}
	h.emitted = append(h.emitted, r)
	return abi.OK
}

// The Rust identity guest loads like any module (exports, memory, no WASI),
// and passes records through with null and empty fields and headers intact.
func TestRustIdentityGuest(t *testing.T) {
	bin := guesttest.BuildRust(t, guesttest.RustDir("testdata/identity"))
	ctx := context.Background()
	m, err := newEngine(t, Config{MemoryLimit: 16 << 20, Deadline: 5 * time.Second}).Compile(ctx, "identity.wasm", bin)
	if err != nil {
		t.Fatal(err)
	}
	if m.hasWASI || !m.hasInit {
		t.Errorf("Rust module: imports WASI %v, exports streamrt_init %v; want false, true", m.hasWASI, m.hasInit)
	}
	inst, err := m.Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	in := []abi.Record{
		{Topic: "in", Key: []byte("k"), Value: []byte("v"), Timestamp: 5},
		{Topic: "in", Key: nil, Value: []byte{}, Timestamp: 6, Headers: []abi.Header{{Key: "a", Value: []byte{0, 0xff}}, {Key: "n"}, {Key: "", Value: []byte{}}}},
		{Topic: "in", Key: []byte{}, Value: nil, Timestamp: 7},
	}
	h := &recordingHost{}
	for range 3 { // the guest reuses its buffers from batch to batch
		h.emitted = nil
		if err := inst.Process(ctx, h, abi.EncodeBatch(nil, &abi.Batch{StreamTime: 7, Records: in})); err != nil {
			t.Fatal(err)
		}
		if len(h.emitted) != len(in) {
			t.Fatalf("%d records emitted, want %d", len(h.emitted), len(in))
		}
		for i, got := range h.emitted {
			want := in[i]
			if got.Offset != int64(i) || got.Timestamp != abi.InheritTimestamp ||
				(got.Key == nil) != (want.Key == nil) || !bytes.Equal(got.Key, want.Key) ||
				(got.Value == nil) != (want.Value == nil) || !bytes.Equal(got.Value, want.Value) ||
				len(got.Headers) != len(want.Headers) {
				t.Fatalf("record %d: emitted %+v for %+v", i, got, want)
			}
			for j, hd := range got.Headers {
				w := want.Headers[j]
				if hd.Key != w.Key || (hd.Value == nil) != (w.Value == nil) || !bytes.Equal(hd.Value, w.Value) {
					t.Fatalf("record %d header %d: %+v, want %+v", i, j, hd, w)
				}
			}
		}
	}
	if mem := inst.MemorySize(); mem > 4<<20 {
		t.Errorf("the identity guest uses %d bytes of memory", mem)
	}
	if !strings.HasPrefix(string(bin), "\x00asm") {
		t.Fatal("not Wasm")
	}
}
