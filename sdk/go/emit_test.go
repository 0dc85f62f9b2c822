//go:build !wasip1

package streamrt

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
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
// it, buffered during a batch and handed over at once outside one: the last
// timestamp wins, headers add up, an empty header list is no list, and
// WithTimestamp(-1) inherits.
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
		for _, inBatch := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/batch=%v", tt.name, inBatch), func(t *testing.T) {
				f := newFakeHost(FakeConfig{Outputs: []string{"out", "other"}})
				emits := func() error {
					// Twice, so that the second Emit takes the fast path if
					// it can, and with another output in between.
					for _, out := range []string{"out", "other", "out", string([]byte("out"))} {
						if err := Emit(out, []byte("k"), []byte("v"), tt.opts...); err != nil {
							return err
						}
					}
					return nil
				}
				if inBatch {
					HandleBatch(func(*Batch) error { return emits() })
					if rc := f.Process(batchOf("a")); rc != 0 {
						t.Fatalf("process = %d, errors %v", rc, f.errs)
					}
				} else if err := emits(); err != nil {
					t.Fatal(err)
				}
				if got := len(f.batches); got != map[bool]int{false: 0, true: 1}[inBatch] {
					t.Errorf("%d emit_batch calls", got)
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
}

// keysOf lists the emitted records as OUTPUT:REC:KEY.
func keysOf(es []FakeEmit) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s:%d:%s", e.Output, e.Rec, e.Key))
	}
	return out
}

// During a batch Emit buffers its records and the SDK hands them over in
// one emit_batch call when the batch ends; outside a batch each goes to
// the host at once through emit.
func TestEmitsAreBufferedForTheBatch(t *testing.T) {
	f := newFakeHost(FakeConfig{Outputs: []string{"a", "b"}})
	HandleRecord(func(r *Record) error {
		if err := Emit("a", r.Key, r.Value); err != nil {
			return err
		}
		if len(f.emits) != 0 {
			t.Errorf("record %d: %d records reached the host during the batch", r.Index(), len(f.emits))
		}
		return Emit("b", r.Key, nil, WithTimestamp(int64(r.Index())))
	})
	if rc := f.Process(batchOf("x", "y", "z")); rc != 0 || len(f.errs) != 0 {
		t.Fatalf("process = %d, errors %v", rc, f.errs)
	}
	want := []string{"a:0:k0", "b:0:k0", "a:1:k1", "b:1:k1", "a:2:k2", "b:2:k2"}
	if got := keysOf(f.emits); !reflect.DeepEqual(got, want) {
		t.Errorf("emits %v, want %v", got, want)
	}
	if len(f.batches) != 1 {
		t.Errorf("%d emit_batch calls, want 1", len(f.batches))
	}
	if err := Emit("a", []byte("late"), nil); err != nil || len(f.emits) != 7 || len(f.batches) != 1 {
		t.Errorf("Emit outside a batch: %v, %d emits, %d emit_batch calls; want it emitted at once", err, len(f.emits), len(f.batches))
	}
	if err := Flush(); err != nil || len(f.batches) != 1 {
		t.Errorf("Flush outside a batch: %v, %d emit_batch calls", err, len(f.batches))
	}
}

// The buffer is handed over whenever the next entry would not fit, so no
// emit_batch call exceeds it, and the records arrive once each, in order;
// an entry larger than the whole buffer goes alone through emit, after
// what the buffer held.
func TestEmitBufferFlushesWhenFull(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, emitBufferSize)
	f := newFakeHost(FakeConfig{Outputs: []string{"out"}})
	HandleRecord(func(r *Record) error {
		for j := range 10 {
			if err := Emit("out", fmt.Appendf(nil, "%d.%d", r.Index(), j), r.Value); err != nil {
				return err
			}
		}
		if r.Index() == 7 {
			return Emit("out", []byte("big"), big, WithHeaders(Header{Key: "h"}))
		}
		return nil
	})
	values := make([]string, 20)
	for i := range values {
		values[i] = strings.Repeat("v", 1000)
	}
	if rc := f.Process(batchOf(values...)); rc != 0 || len(f.errs) != 0 {
		t.Fatalf("process = %d, errors %v", rc, f.errs)
	}
	var want []string
	for i := range 20 {
		for j := range 10 {
			want = append(want, fmt.Sprintf("out:%d:%d.%d", i, i, j))
		}
		if i == 7 {
			want = append(want, "out:7:big")
		}
	}
	if got := keysOf(f.emits); !reflect.DeepEqual(got, want) {
		t.Fatalf("emits %v\nwant %v", got, want)
	}
	total := 0
	for _, b := range f.batches {
		if len(b) > emitBufferSize {
			t.Errorf("an emit_batch call of %d bytes, over the buffer's %d", len(b), emitBufferSize)
		}
		total += len(b)
	}
	entry := abi.EmitSize([]byte("0.0"), []byte(values[0]), nil)
	if len(f.batches) < 200*entry/emitBufferSize || total < 200*entry {
		t.Errorf("%d emit_batch calls of %d bytes in all, for 200 entries of about %d bytes", len(f.batches), total, entry)
	}
}

// A failed record's buffered emits never reach the host, wherever the
// buffer was handed over: its entries still buffered are dropped before
// record_error, which undoes those handed over before. The other records'
// emits arrive once, in order.
func TestFailedRecordDropsItsEmits(t *testing.T) {
	value := bytes.Repeat([]byte{'v'}, 1000)
	for _, how := range []string{"error", "panic"} {
		t.Run(how, func(t *testing.T) {
			f := newFakeHost(FakeConfig{Outputs: []string{"out"}})
			HandleRecord(func(r *Record) error {
				// 100 entries of about 1 KB: more than the buffer holds.
				n := 1 + 99*(r.Index()%2)
				for j := range n {
					if err := Emit("out", fmt.Appendf(nil, "%d.%d", r.Index(), j), value); err != nil {
						return err
					}
				}
				if r.Index()%3 == 1 {
					if how == "panic" {
						panic("boom")
					}
					return errors.New("bad")
				}
				return nil
			})
			if rc := f.Process(batchOf(make([]string, 6)...)); rc != 0 {
				t.Fatalf("process = %d, errors %v", rc, f.errs)
			}
			var want []string
			for i := range 6 {
				if i%3 == 1 {
					continue
				}
				for j := range 1 + 99*(i%2) {
					want = append(want, fmt.Sprintf("out:%d:%d.%d", i, i, j))
				}
			}
			if got := keysOf(f.emits); !reflect.DeepEqual(got, want) {
				t.Fatalf("emits %v\nwant %v", got, want)
			}
			if len(f.batches) < 3 {
				t.Errorf("%d emit_batch calls; the test means the buffer to fill within records", len(f.batches))
			}
			for _, b := range f.batches {
				es, err := abi.DecodeEmits(b)
				if err != nil {
					t.Fatal(err)
				}
				// Record 1's tail, and record 4's after the buffer filled,
				// were dropped before they reached the host.
				if last := es[len(es)-1]; (last.Rec == 1 || last.Rec == 4) && string(last.Key) == fmt.Sprintf("%d.99", last.Rec) {
					t.Errorf("the last emit of failed record %d was handed over", last.Rec)
				}
			}
		})
	}
}

// A batch handler that fails a record after another record's emits cannot
// have the failed one's entries dropped alone: the SDK hands the buffer
// over as it is, and the host sees what it would have seen unbuffered.
func TestBatchFailAfterAnotherRecordFlushes(t *testing.T) {
	f := newFakeHost(FakeConfig{Outputs: []string{"out"}})
	HandleBatch(func(b *Batch) error {
		for i, r := range b.All() {
			if err := Emit("out", r.Key, r.Value); err != nil {
				return err
			}
			if i == 1 {
				b.Fail(0, errors.New("late"))
			}
		}
		return nil
	})
	if rc := f.Process(batchOf("a", "b", "c")); rc != 0 {
		t.Fatalf("process = %d, errors %v", rc, f.errs)
	}
	if len(f.batches) != 2 {
		t.Fatalf("%d emit_batch calls, want 2: one before record_error, one at the end", len(f.batches))
	}
	first, _ := abi.DecodeEmits(f.batches[0])
	if len(first) != 2 || first[0].Rec != 0 || first[1].Rec != 1 {
		t.Errorf("first emit_batch call %+v, want records 0 and 1", first)
	}
	if want := []FakeRecordError{{0, "late"}}; !reflect.DeepEqual(f.errs, want) {
		t.Errorf("record errors %v, want %v", f.errs, want)
	}
}

// A flush the host refuses, which only an SDK bug can cause, fails the
// batch: the next Emit that flushes returns the error, and the batch ends
// with record_error(-1) and a non-zero result.
func TestRefusedFlushFailsTheBatch(t *testing.T) {
	value := bytes.Repeat([]byte{'v'}, 1000)
	for _, n := range []int{1, 100} { // flushed at the end, or when full
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := newFakeHost(FakeConfig{Outputs: []string{"out"}})
			f.RefuseBatch = int32(abi.ErrInvalid)
			var errs []error
			HandleRecord(func(r *Record) error {
				for range n {
					if err := Emit("out", nil, value); err != nil {
						errs = append(errs, err)
						return err
					}
				}
				return nil
			})
			if rc := f.Process(batchOf("a", "b")); rc == 0 {
				t.Fatal("process = 0, want the batch failed")
			}
			const text = "streamrt: emit_batch: invalid argument"
			last := f.errs[len(f.errs)-1]
			if last.Rec != -1 || last.Msg != text {
				t.Errorf("record errors %v, want the last for -1 with %q", f.errs, text)
			}
			if n > 1 && (len(errs) == 0 || !errors.Is(errs[0], ErrInvalid) || errs[0].Error() != text) {
				t.Errorf("Emit returned %v, want %q", errs, text)
			}
			if len(f.emits) != 0 {
				t.Errorf("%d records emitted", len(f.emits))
			}
		})
	}
}

// In a query Emit buffers nothing: with an output opened by an earlier
// batch, its record goes to the host at once, which refuses it.
func TestEmitInAQuery(t *testing.T) {
	f := newFakeHost(FakeConfig{Outputs: []string{"out"}})
	HandleRecord(func(r *Record) error { return Emit("out", r.Key, r.Value) })
	var err error
	HandleQuery(func(*Query) Response {
		err = Emit("out", nil, nil)
		return Response{}
	})
	if rc := f.Process(batchOf("a")); rc != 0 || len(f.emits) != 1 {
		t.Fatalf("process = %d, %d emits", rc, len(f.emits))
	}
	f.Query(&abi.QueryRequest{Method: "GET"})
	if !errors.Is(err, ErrNotAllowed) || len(f.emits) != 1 || len(f.batches) != 1 {
		t.Errorf("Emit in a query: %v, %d emits, %d emit_batch calls; want ErrNotAllowed from emit", err, len(f.emits), len(f.batches))
	}
}

// FuzzEmitEncoding holds Emit's own encoder, fast path and slow, to
// abi.AppendEmit's bytes.
func FuzzEmitEncoding(f *testing.F) {
	f.Add([]byte("k"), []byte("v"), false, false, int64(-1), uint8(0), []byte("h"))
	f.Add([]byte{}, []byte{}, true, false, int64(7), uint8(2), []byte{})
	f.Add([]byte(nil), []byte("vv"), false, true, int64(0), uint8(1), []byte("a\x00"))
	f.Fuzz(func(t *testing.T, key, value []byte, nullKey, nullValue bool, ts int64, nh uint8, hv []byte) {
		if nullKey {
			key = nil
		} else if key == nil {
			key = []byte{}
		}
		if nullValue {
			value = nil
		} else if value == nil {
			value = []byte{}
		}
		var hs []Header
		for i := range int(nh % 4) {
			h := Header{Key: fmt.Sprint(i), Value: hv}
			if i == 1 {
				h.Value = nil
			}
			hs = append(hs, h)
		}
		var opts []EmitOption
		if ts != abi.InheritTimestamp {
			opts = append(opts, WithTimestamp(ts))
		}
		if len(hs) > 0 {
			opts = append(opts, WithHeaders(hs...))
		}
		want := abi.Emit{Output: 1, Rec: 0, Timestamp: ts, Key: key, Value: value}
		if len(hs) > 0 {
			want.Headers = abi.AppendHeaders(nil, hs)
		}
		size := abi.EmitSize(key, value, want.Headers)
		h := newFakeHost(FakeConfig{Outputs: []string{"a", "b"}})
		HandleRecord(func(*Record) error {
			// Twice, the second on the fast path when the options allow it.
			for range 2 {
				if err := Emit("b", key, value, opts...); err != nil {
					return err
				}
			}
			return nil
		})
		if rc := h.Process(batchOf("x")); rc != 0 {
			t.Fatalf("process = %d, errors %v", rc, h.errs)
		}
		if size > emitBufferSize {
			return // sent alone, through emit
		}
		one := abi.AppendEmit(nil, &want)
		var got []byte
		for _, b := range h.batches {
			got = append(got, b...)
		}
		if !bytes.Equal(got, append(one, one...)) {
			t.Fatalf("emit_batch buffers %x\nwant twice %x", got, one)
		}
	})
}
