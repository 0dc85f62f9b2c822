//go:build !wasip1

package streamrt

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/abi/abitest"
)

// The golden vectors shared with the host and the other SDKs.
func loadVectors(t *testing.T, kind string) []abitest.Vector {
	t.Helper()
	all, err := abitest.Load("../../abi/testdata")
	if err != nil {
		t.Fatal(err)
	}
	var vs []abitest.Vector
	for _, v := range all {
		if v.Kind == kind {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		t.Fatalf("no %s vectors", kind)
	}
	return vs
}

// cloneRecord copies r out of the SDK's buffers, keeping nil apart from
// empty; an empty header list becomes nil.
func cloneRecord(r *Record) abi.Record {
	c := abi.Record{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value),
	}
	for _, h := range r.Headers {
		c.Headers = append(c.Headers, Header{Key: h.Key, Value: bytes.Clone(h.Value)})
	}
	return c
}

func wantRecords(b abi.Batch) []abi.Record {
	var out []abi.Record
	for _, r := range b.Records {
		if len(r.Headers) == 0 {
			r.Headers = nil
		}
		out = append(out, r)
	}
	return out
}

func TestVectorBatchesPerRecord(t *testing.T) {
	for _, v := range loadVectors(t, "batch") {
		t.Run(v.Name, func(t *testing.T) {
			f := newFakeHost(FakeConfig{})
			var got []abi.Record
			HandleRecord(func(r *Record) error {
				if r.Index() != len(got) {
					t.Errorf("record %d: Index() = %d", len(got), r.Index())
				}
				if StreamTime() != v.Batch.StreamTime {
					t.Errorf("StreamTime() = %d, want %d", StreamTime(), v.Batch.StreamTime)
				}
				got = append(got, cloneRecord(r))
				return nil
			})
			if rc := f.ProcessEncoded(v.Encoded); rc != 0 {
				t.Fatalf("%s:%d: process = %d, errors %v", v.File, v.Line, rc, f.errs)
			}
			if want := wantRecords(v.Batch); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s:%d: decoded\n got %+v\nwant %+v", v.File, v.Line, got, want)
			}
			if StreamTime() != v.Batch.StreamTime {
				t.Errorf("StreamTime() after the batch = %d, want %d", StreamTime(), v.Batch.StreamTime)
			}
		})
	}
}

func TestVectorBatchesPerBatch(t *testing.T) {
	for _, v := range loadVectors(t, "batch") {
		t.Run(v.Name, func(t *testing.T) {
			f := newFakeHost(FakeConfig{})
			var got []abi.Record
			var streamTime int64
			calls := 0
			HandleBatch(func(b *Batch) error {
				calls++
				streamTime = b.StreamTime()
				for i := 0; i < b.Len(); i++ {
					if b.Record(i).Index() != i {
						t.Errorf("Record(%d).Index() = %d", i, b.Record(i).Index())
					}
					got = append(got, cloneRecord(b.Record(i)))
				}
				return nil
			})
			if rc := f.ProcessEncoded(v.Encoded); rc != 0 {
				t.Fatalf("%s:%d: process = %d, errors %v", v.File, v.Line, rc, f.errs)
			}
			if calls != 1 || streamTime != v.Batch.StreamTime {
				t.Errorf("calls = %d, stream time %d; want 1, %d", calls, streamTime, v.Batch.StreamTime)
			}
			if want := wantRecords(v.Batch); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s:%d: decoded\n got %+v\nwant %+v", v.File, v.Line, got, want)
			}
		})
	}
}

// Emit's header encoding must match the vectors byte for byte, whether the
// headers come in one WithHeaders or several. An empty list is the one
// exception: Emit passes no list (hdr_len 0), which the ABI defines as the
// same thing and which spares the host decoding it.
func TestVectorHeaders(t *testing.T) {
	for _, v := range loadVectors(t, "headers") {
		t.Run(v.Name, func(t *testing.T) {
			f := newFakeHost(FakeConfig{Outputs: []string{"out"}})
			half := len(v.Headers) / 2
			HandleRecord(func(r *Record) error {
				if err := Emit("out", r.Key, r.Value, WithHeaders(v.Headers...)); err != nil {
					return err
				}
				return Emit("out", r.Key, r.Value, WithHeaders(v.Headers[:half]...), WithTimestamp(5), WithHeaders(v.Headers[half:]...))
			})
			f.Process(&abi.Batch{Records: []abi.Record{{Topic: "in"}}})
			if len(f.emits) != 2 {
				t.Fatalf("emits = %d, errors %v", len(f.emits), f.errs)
			}
			want := v.Encoded
			if len(v.Headers) == 0 {
				want = nil
			}
			for i, e := range f.emits {
				if !bytes.Equal(e.Headers, want) || (want == nil) != (e.Headers == nil) {
					t.Errorf("%s:%d: emit %d headers\n got %x\nwant %x", v.File, v.Line, i, e.Headers, want)
				}
			}
		})
	}
}

// The iterator must decode what range_next writes, as the vectors pin it,
// also when it arrives in a buffer too small at first.
func TestVectorEntries(t *testing.T) {
	for _, v := range loadVectors(t, "entries") {
		for _, size := range []int{1, 4 << 10} {
			t.Run(fmt.Sprintf("%s/buf=%d", v.Name, size), func(t *testing.T) {
				setRangeBufSize(t, size)
				f := newFakeHost(FakeConfig{Stores: []string{"s"}})
				var got [][2][]byte
				HandleRecord(func(r *Record) error {
					f.Canned = [][]byte{v.Encoded}
					it := OpenStore("s").Range(nil, nil)
					defer it.Close()
					for it.Next() {
						got = append(got, [2][]byte{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
					}
					return it.Err()
				})
				if rc := f.Process(&abi.Batch{Records: []abi.Record{{Topic: "in"}}}); rc != 0 || len(f.errs) != 0 {
					t.Fatalf("process = %d, errors %v", rc, f.errs)
				}
				if len(got) != len(v.Entries) {
					t.Fatalf("%s:%d: got %d entries, want %d", v.File, v.Line, len(got), len(v.Entries))
				}
				for i := range got {
					if !bytes.Equal(got[i][0], v.Entries[i][0]) || !bytes.Equal(got[i][1], v.Entries[i][1]) {
						t.Errorf("entry %d: got %x=%x, want %x=%x", i, got[i][0], got[i][1], v.Entries[i][0], v.Entries[i][1])
					}
				}
			})
		}
	}
}

func setRangeBufSize(t *testing.T, n int) {
	old := rangeBufSize
	rangeBufSize = n
	t.Cleanup(func() { rangeBufSize = old })
}

// Emit's buffer must hold the vectors' bytes: each vector's entries, made
// with Emit by a batch handler (outside its loop for record -1, in it for
// the others), reach the host as one emit_batch buffer equal to the
// vector's encoding. Emit passes no header list for no headers, so an
// entry with an empty list is expected with none instead.
func TestVectorEmits(t *testing.T) {
	for _, v := range loadVectors(t, "emits") {
		t.Run(v.Name, func(t *testing.T) {
			outputs := []string{"o0"}
			records := 0
			var want []byte
			for _, e := range v.Emits {
				for int(e.Output) >= len(outputs) {
					outputs = append(outputs, fmt.Sprintf("o%d", len(outputs)))
				}
				records = max(records, int(e.Rec)+1)
				if len(e.Headers) == 4 {
					e.Headers = nil
				}
				want = abi.AppendEmit(want, &e)
			}
			f := newFakeHost(FakeConfig{Outputs: outputs})
			next := 0
			emitFor := func(rec int32) error {
				for ; next < len(v.Emits) && v.Emits[next].Rec == rec; next++ {
					e := v.Emits[next]
					var opts []EmitOption
					if e.Timestamp != abi.InheritTimestamp {
						opts = append(opts, WithTimestamp(e.Timestamp))
					}
					if len(e.Headers) > 0 {
						hs, err := abi.DecodeHeaders(e.Headers, nil)
						if err != nil {
							return err
						}
						opts = append(opts, WithHeaders(hs...))
					}
					if err := Emit(outputs[e.Output], e.Key, e.Value, opts...); err != nil {
						return err
					}
				}
				return nil
			}
			HandleBatch(func(b *Batch) error {
				if err := emitFor(abi.NoRecord); err != nil {
					return err
				}
				for i := range b.All() {
					if err := emitFor(int32(i)); err != nil {
						return err
					}
				}
				return emitFor(abi.NoRecord)
			})
			if rc := f.Process(batchOf(make([]string, records)...)); rc != 0 {
				t.Fatalf("process = %d, errors %v", rc, f.errs)
			}
			if next != len(v.Emits) {
				t.Fatalf("%s:%d: the handler made %d of the %d emits: their records are out of order", v.File, v.Line, next, len(v.Emits))
			}
			var got []byte
			if len(f.batches) > 0 {
				got = f.batches[0]
			}
			if len(f.batches) > 1 || !bytes.Equal(got, want) {
				t.Fatalf("%s:%d: emit_batch buffers %x\nwant one holding %x", v.File, v.Line, f.batches, want)
			}
		})
	}
}
