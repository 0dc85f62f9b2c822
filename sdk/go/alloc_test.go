//go:build !wasip1

package streamrt

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/streamrt/streamrt/abi"
)

// encodedBatch returns a batch of n records with 16-byte keys and
// valueSize-byte values, written into the guest's buffer as the host does.
func encodedBatch(n, valueSize int) []byte { return encodedBatchHeaders(n, valueSize, 0) }

// encodedBatchHeaders is encodedBatch with nh headers per record.
func encodedBatchHeaders(n, valueSize, nh int) []byte {
	b := &abi.Batch{StreamTime: 1}
	for i := 0; i < n; i++ {
		r := abi.Record{
			Topic: "in", Offset: int64(i), Timestamp: 1,
			Key: fmt.Appendf(nil, "key-%012d", i%100), Value: bytes.Repeat([]byte{'v'}, valueSize),
		}
		for j := range nh {
			r.Headers = append(r.Headers, abi.Header{Key: fmt.Sprintf("header-%d", j), Value: []byte("value")})
		}
		b.Records = append(b.Records, r)
	}
	enc := abi.EncodeBatch(nil, b)
	buf := inputBuffer(int32(len(enc)))
	copy(buf, enc)
	return buf[:len(enc)]
}

// The per-record path allocates nothing once warmed up: decoding (headers
// included), Emit with and without options, buffered and handed over to
// the host when the buffer fills and when the batch ends, and a Get and
// Put per record.
func TestNoAllocs(t *testing.T) {
	handlers := map[string]func(r *Record) error{
		"emit": func(r *Record) error { return Emit("out", r.Key, r.Value) },
		"emit with options": func(r *Record) error {
			return Emit("out", r.Key, r.Value, WithHeaders(r.Headers...), WithTimestamp(r.Timestamp+1))
		},
		"emit with one option": func(r *Record) error {
			return Emit("out", r.Key, r.Value, WithHeaders(r.Headers...))
		},
		"get put emit": func(r *Record) error {
			s := OpenStore("s")
			v, _, err := s.Get(r.Key)
			if err != nil {
				return err
			}
			if err := s.Put(r.Key, v); err != nil {
				return err
			}
			return Emit("out", r.Key, v)
		},
	}
	for name, h := range handlers {
		for _, nh := range []int{0, 3} {
			t.Run(fmt.Sprintf("%s/headers=%d", name, nh), func(t *testing.T) {
				f := newFakeHost(FakeConfig{Stores: []string{"s"}, Outputs: []string{"out"}})
				f.Discard = true
				for i := 0; i < 100; i++ {
					f.Set("s", fmt.Sprintf("key-%012d", i), string(bytes.Repeat([]byte{'s'}, 100)))
				}
				HandleRecord(h)
				buf := encodedBatchHeaders(500, 100, nh)
				allocs := testing.AllocsPerRun(20, func() {
					if rc := process(buf); rc != 0 {
						t.Fatalf("process = %d: %v", rc, f.errs)
					}
				})
				if allocs != 0 {
					t.Errorf("%v allocations per batch, want 0", allocs)
				}
				if f.nEmits == 0 || len(f.errs) != 0 {
					t.Errorf("%d emits, errors %v", f.nEmits, f.errs)
				}
				// The batch is larger than the emit buffer: at least one
				// flush in the middle, and one at the end.
				if runs := 21; f.nBatches < 2*runs {
					t.Errorf("%d emit_batch calls in %d batches, want at least 2 per batch", f.nBatches, runs)
				}
			})
		}
	}
}

// A batch handler's decoding allocates nothing once warmed up either.
func TestNoAllocsBatch(t *testing.T) {
	f := newFakeHost(FakeConfig{Outputs: []string{"out"}})
	f.Discard = true
	HandleBatch(func(b *Batch) error {
		for _, r := range b.All() {
			if err := Emit("out", r.Key, r.Value, WithHeaders(r.Headers...)); err != nil {
				return err
			}
		}
		return nil
	})
	buf := encodedBatchHeaders(500, 100, 2)
	allocs := testing.AllocsPerRun(20, func() {
		if rc := process(buf); rc != 0 {
			t.Fatalf("process = %d: %v", rc, f.errs)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
}

// BenchmarkProcess measures the SDK's per-record cost against the fake
// host; the number that matters is the Wasm one, measured by the host.
func BenchmarkProcess(b *testing.B) {
	f := newFakeHost(FakeConfig{Stores: []string{"s"}, Outputs: []string{"out"}})
	f.Discard = true
	HandleRecord(func(r *Record) error { return Emit("out", r.Key, r.Value) })
	buf := encodedBatch(500, 100)
	b.ReportAllocs()
	for b.Loop() {
		process(buf)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*500), "ns/record")
}
