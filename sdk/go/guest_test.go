//go:build !wasip1

package streamrt

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/streamrt/streamrt/abi"
)

// batchOf returns a batch of records on topic "in" with the given values
// and keys k0, k1, ...
func batchOf(values ...string) *abi.Batch {
	b := &abi.Batch{StreamTime: 1000}
	for i, v := range values {
		b.Records = append(b.Records, abi.Record{
			Topic: "in", Partition: 3, Offset: int64(10 + i), Timestamp: int64(900 + i),
			Key: fmt.Appendf(nil, "k%d", i), Value: []byte(v),
		})
	}
	return b
}

func TestRecordFailures(t *testing.T) {
	var nilMap map[string]int
	var empty []int
	tests := []struct {
		name    string
		fail    func() error // what the handler does for the record with value "bad"
		want    string
		panicky bool
	}{
		{"error", func() error { return errors.New("bad record") }, "bad record", false},
		{"wrapped error", func() error { return fmt.Errorf("parse: %w", ErrInvalid) }, "parse: streamrt: invalid argument", false},
		{"panic string", func() error { panic("boom") }, "panic: boom", true},
		{"panic error", func() error { panic(fmt.Errorf("oops %d", 7)) }, "panic: oops 7", true},
		{"panic int", func() error { panic(42) }, "panic: 42", true},
		{"nil map", func() error { nilMap["x"] = 1; return nil }, "panic: assignment to entry in nil map", true},
		{"index", func() error { _ = empty[len(empty)]; return nil }, "panic: runtime error: index out of range [0] with length 0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeHost(FakeConfig{Outputs: []string{"out"}})
			HandleRecord(func(r *Record) error {
				if err := Emit("out", r.Key, r.Value); err != nil {
					return err
				}
				if string(r.Value) == "bad" {
					return tt.fail()
				}
				return nil
			})
			if rc := f.Process(batchOf("a", "bad", "c", "bad")); rc != 0 {
				t.Fatalf("process = %d, want 0", rc)
			}
			want := []FakeRecordError{{1, tt.want}, {3, tt.want}}
			if !reflect.DeepEqual(f.errs, want) {
				t.Fatalf("record errors\n got %q\nwant %q", f.errs, want)
			}
			// The failed records' emits never reach the host.
			var recs []int32
			for _, e := range f.emits {
				recs = append(recs, e.Rec)
			}
			if !reflect.DeepEqual(recs, []int32{0, 2}) {
				t.Errorf("emits attributed to %v, want [0 2]", recs)
			}
			logged := strings.Join(f.logs, "\n")
			if tt.panicky != strings.Contains(logged, "error streamrt: record 1: "+tt.want+"\ngoroutine") {
				t.Errorf("panic stack logged = %v, want %v; logs:\n%s", !tt.panicky, tt.panicky, logged)
			}
		})
	}
}

// One deferred recover serves a whole batch: after a panic the handler goes
// on with the next record, also when panics come in a row, at the first or
// the last record, or in every record; and across chunks of decoding.
func TestPanicsResume(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		panics func(i int) bool
	}{
		{"first", 4, func(i int) bool { return i == 0 }},
		{"last", 4, func(i int) bool { return i == 3 }},
		{"in a row", 6, func(i int) bool { return i >= 1 && i <= 3 }},
		{"every record", 5, func(int) bool { return true }},
		{"many", 1000, func(i int) bool { return i%127 == 0 || i == 128 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeHost(FakeConfig{Outputs: []string{"out"}})
			var seen []int
			HandleRecord(func(r *Record) error {
				seen = append(seen, r.Index())
				if err := Emit("out", r.Key, r.Value); err != nil {
					return err
				}
				if tt.panics(r.Index()) {
					panic(fmt.Sprintf("boom %d", r.Index()))
				}
				if r.Index()%5 == 4 {
					return errors.New("plain error")
				}
				return nil
			})
			values := make([]string, tt.n)
			if rc := f.Process(batchOf(values...)); rc != 0 {
				t.Fatalf("process = %d, errors %v", rc, f.errs)
			}
			var wantSeen []int
			var wantErrs []FakeRecordError
			var wantEmits []int32
			for i := range tt.n {
				wantSeen = append(wantSeen, i)
				switch {
				case tt.panics(i):
					wantErrs = append(wantErrs, FakeRecordError{int32(i), fmt.Sprintf("panic: boom %d", i)})
				case i%5 == 4:
					wantErrs = append(wantErrs, FakeRecordError{int32(i), "plain error"})
				default:
					wantEmits = append(wantEmits, int32(i))
				}
			}
			if !reflect.DeepEqual(seen, wantSeen) {
				t.Errorf("handled records %v, want %v", seen, wantSeen)
			}
			if !reflect.DeepEqual(f.errs, wantErrs) {
				t.Errorf("record errors\n got %v\nwant %v", f.errs, wantErrs)
			}
			var emits []int32
			for _, e := range f.emits {
				emits = append(emits, e.Rec)
			}
			if !reflect.DeepEqual(emits, wantEmits) {
				t.Errorf("emits attributed to %v, want those of the records that did not fail, %v", emits, wantEmits)
			}
			if inst.current != abi.NoRecord {
				t.Errorf("current record %d after the batch", inst.current)
			}
			// The next batch starts afresh.
			seen = nil
			f.errs = nil
			if rc := f.Process(batchOf("x")); rc != 0 || !reflect.DeepEqual(seen, []int{0}) {
				t.Errorf("next batch: process = %d, handled %v", rc, seen)
			}
		})
	}
}

func TestPanicErrorUnwraps(t *testing.T) {
	var got error
	f := newFakeHost(FakeConfig{})
	HandleBatch(func(b *Batch) error {
		err := callBatch(func(*Batch) error { panic(ErrTooLarge) }, b)
		got = err
		return nil
	})
	f.Process(batchOf("a"))
	var pe *PanicError
	if !errors.As(got, &pe) || !errors.Is(got, ErrTooLarge) || len(pe.Stack) == 0 {
		t.Fatalf("got %#v", got)
	}
}

func TestBatchHandler(t *testing.T) {
	f := newFakeHost(FakeConfig{Stores: []string{"s"}, Outputs: []string{"out"}})
	s := OpenStore("s")
	HandleBatch(func(b *Batch) error {
		if err := Emit("out", nil, []byte("before")); err != nil {
			return err
		}
		for i, r := range b.All() {
			if err := Emit("out", r.Key, r.Value); err != nil {
				return err
			}
			if err := s.Put(r.Key, r.Value); err != nil {
				return err
			}
			if string(r.Value) == "bad" {
				b.Fail(i, errors.New("bad value"))
			}
		}
		if err := s.Put([]byte("total"), []byte("3")); err != nil {
			return err
		}
		for i := range b.All() {
			if i == 1 {
				break
			}
		}
		return Emit("out", nil, []byte("after"))
	})
	if rc := f.Process(batchOf("a", "bad", "c")); rc != 0 {
		t.Fatalf("process = %d, errors %v", rc, f.errs)
	}
	var emits []string
	for _, e := range f.emits {
		emits = append(emits, fmt.Sprintf("%d:%s", e.Rec, e.Value))
	}
	// Batch.Fail drops the failed record's buffered emit.
	if want := []string{"-1:before", "0:a", "2:c", "-1:after"}; !reflect.DeepEqual(emits, want) {
		t.Errorf("emits %v, want %v", emits, want)
	}
	var writes []string
	for _, w := range f.writes {
		writes = append(writes, fmt.Sprintf("%d:%s", w.rec, w.key))
	}
	if want := []string{"0:k0", "1:k1", "2:k2", "-1:total"}; !reflect.DeepEqual(writes, want) {
		t.Errorf("writes %v, want %v", writes, want)
	}
	if want := []FakeRecordError{{1, "bad value"}}; !reflect.DeepEqual(f.errs, want) {
		t.Errorf("record errors %v, want %v", f.errs, want)
	}
}

func TestBatchHandlerFails(t *testing.T) {
	tests := []struct {
		name string
		fn   func(b *Batch) error
		want []FakeRecordError
	}{
		{"error", func(*Batch) error { return errors.New("no good") },
			[]FakeRecordError{{-1, "no good"}}},
		{"record error", func(*Batch) error {
			return fmt.Errorf("wrapped: %w", &RecordError{Index: 2, Err: errors.New("bad third")})
		},
			[]FakeRecordError{{2, "bad third"}, {-1, "wrapped: streamrt: record 2: bad third"}}},
		{"record error out of range", func(*Batch) error { return &RecordError{Index: 9, Err: errors.New("x")} },
			[]FakeRecordError{{-1, "streamrt: record 9: x"}}},
		{"panic", func(*Batch) error { panic("boom") },
			[]FakeRecordError{{-1, "panic: boom"}}},
		{"panic in loop", func(b *Batch) error {
			for range b.All() {
				panic("boom")
			}
			return nil
		}, []FakeRecordError{{-1, "panic: boom"}}},
		{"fail out of range", func(b *Batch) error { b.Fail(3, nil); return nil },
			[]FakeRecordError{{-1, "panic: streamrt: Batch.Fail: record index out of range"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeHost(FakeConfig{})
			HandleBatch(tt.fn)
			if rc := f.Process(batchOf("a", "b", "c")); rc == 0 {
				t.Fatal("process = 0, want non-zero")
			}
			if !reflect.DeepEqual(f.errs, tt.want) {
				t.Fatalf("record errors\n got %q\nwant %q", f.errs, tt.want)
			}
			if inst.current != abi.NoRecord {
				t.Errorf("current record %d after the batch", inst.current)
			}
		})
	}
}

func TestRegistration(t *testing.T) {
	mustPanic := func(name, want string, fn func()) {
		t.Helper()
		defer func() {
			v := recover()
			if s, _ := v.(string); !strings.Contains(s, want) {
				t.Errorf("%s: panic %v, want one containing %q", name, v, want)
			}
		}()
		fn()
	}
	newFakeHost(FakeConfig{})
	HandleRecord(func(*Record) error { return nil })
	mustPanic("second HandleRecord", "already registered", func() { HandleRecord(func(*Record) error { return nil }) })
	mustPanic("HandleBatch after HandleRecord", "already registered", func() { HandleBatch(func(*Batch) error { return nil }) })
	newFakeHost(FakeConfig{})
	mustPanic("nil record handler", "nil handler", func() { HandleRecord(nil) })
	mustPanic("nil batch handler", "nil handler", func() { HandleBatch(nil) })
}

func TestNoHandler(t *testing.T) {
	f := newFakeHost(FakeConfig{})
	if rc := initInstance(); rc == 0 {
		t.Error("streamrt_init = 0 without a handler")
	}
	if rc := f.Process(batchOf("a")); rc == 0 {
		t.Error("process = 0 without a handler")
	}
	if len(f.errs) != 1 || f.errs[0].Rec != -1 || !strings.Contains(f.errs[0].Msg, "func init()") {
		t.Errorf("record errors %v", f.errs)
	}
	HandleRecord(func(*Record) error { return nil })
	if rc := initInstance(); rc != 0 {
		t.Errorf("streamrt_init = %d with a handler", rc)
	}
}

func TestBadBatch(t *testing.T) {
	good := abi.EncodeBatch(nil, batchOf("a", "b"))
	huge := append([]byte(nil), good...)
	huge[0], huge[1], huge[2], huge[3] = 0xff, 0xff, 0xff, 0x0f
	tests := []struct {
		name string
		enc  []byte
		want string
	}{
		{"short header", good[:5], "truncated"},
		{"truncated record", good[:len(good)-3], "truncated"},
		{"trailing bytes", append(append([]byte(nil), good...), 0), "trailing"},
		{"huge count", huge, ""},
	}
	for _, batch := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/batch=%v", tt.name, batch), func(t *testing.T) {
				f := newFakeHost(FakeConfig{})
				if batch {
					HandleBatch(func(*Batch) error { return nil })
				} else {
					HandleRecord(func(*Record) error { return nil })
				}
				if rc := f.ProcessEncoded(tt.enc); rc == 0 {
					t.Fatal("process = 0")
				}
				last := f.errs[len(f.errs)-1]
				if last.Rec != -1 || !strings.Contains(last.Msg, tt.want) {
					t.Errorf("record errors %v, want the last for -1 containing %q", f.errs, tt.want)
				}
			})
		}
	}
}

func TestInputBuffer(t *testing.T) {
	newFakeHost(FakeConfig{})
	if inputBuffer(-1) != nil || inputBuffer(maxInput+1) != nil {
		t.Error("out-of-range sizes must get nil")
	}
	a := inputBuffer(0)
	if len(a) == 0 {
		t.Fatal("size 0 must still get a buffer with an address")
	}
	b := inputBuffer(int32(len(a)))
	if &a[0] != &b[0] {
		t.Error("a size that fits must reuse the buffer")
	}
	c := inputBuffer(int32(len(a) + 1))
	if len(c) < len(a)+1 {
		t.Errorf("len %d, want at least %d", len(c), len(a)+1)
	}
	if d := inputBuffer(10); &d[0] != &c[0] {
		t.Error("the buffer must not shrink")
	}
}

func TestLog(t *testing.T) {
	f := newFakeHost(FakeConfig{})
	Log(LevelInfo, "plain")
	Debugf("d %d", 1)
	Infof("i %s", "x")
	Warnf("w")
	Errorf("e %v", true)
	want := []string{"info plain", "debug d 1", "info i x", "warn w", "error e true"}
	if !reflect.DeepEqual(f.logs, want) {
		t.Errorf("logs %q, want %q", f.logs, want)
	}
}

func FuzzProcess(f *testing.F) {
	for _, v := range []*abi.Batch{batchOf(), batchOf("a"), batchOf("a", "b", "c")} {
		f.Add(abi.EncodeBatch(nil, v), false)
		f.Add(abi.EncodeBatch(nil, v), true)
	}
	f.Fuzz(func(t *testing.T, enc []byte, batch bool) {
		h := newFakeHost(FakeConfig{Outputs: []string{"out"}})
		n := 0
		if batch {
			HandleBatch(func(b *Batch) error {
				for _, r := range b.All() {
					n++
					_ = Emit("out", r.Key, r.Value, WithHeaders(r.Headers...))
				}
				return nil
			})
		} else {
			HandleRecord(func(r *Record) error {
				n++
				return Emit("out", r.Key, r.Value, WithHeaders(r.Headers...))
			})
		}
		rc := h.ProcessEncoded(enc)
		if rc == 0 && len(h.errs) != 0 {
			t.Fatalf("process = 0 with errors %v", h.errs)
		}
		if rc != 0 && (len(h.errs) == 0 || h.errs[len(h.errs)-1].Rec != -1) {
			t.Fatalf("process = %d without a batch error: %v", rc, h.errs)
		}
		// A batch that fails (here, one that stops decoding part way) is
		// undone whole: the host keeps none of its emits.
		if rc == 0 && len(h.emits) != n {
			t.Fatalf("%d emits for %d records", len(h.emits), n)
		}
	})
}
