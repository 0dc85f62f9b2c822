package wasm

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// The AssemblyScript identity guest loads like any module (exports, memory,
// no WASI, no env imports), and passes records through with null and empty
// fields and headers intact, batch after batch.
func TestASIdentityGuest(t *testing.T) {
	bin := guesttest.BuildAS(t, guesttest.ASDir("testdata/identity"))
	ctx := context.Background()
	m, err := newEngine(t, Config{MemoryLimit: 16 << 20, Deadline: 5 * time.Second}).Compile(ctx, "identity.wasm", bin)
	if err != nil {
		t.Fatal(err)
	}
	if m.hasWASI || !m.hasInit {
		t.Errorf("AssemblyScript module: imports WASI %v, exports streamrt_init %v; want false, true", m.hasWASI, m.hasInit)
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
}

// An AssemblyScript module built for another ABI version is refused at
// load, with both versions named.
func TestASModuleForAnotherABIVersionIsRefused(t *testing.T) {
	bin := guesttest.BuildAS(t, guesttest.ASDir("testdata/abiv2"))
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
