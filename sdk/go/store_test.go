//go:build !wasip1

package streamrt

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/streamrt/streamrt/abi"
)

// runOnce registers fn as a per-record handler and runs it for one record.
func runOnce(t *testing.T, f *fakeHost, fn func() error) {
	t.Helper()
	HandleRecord(func(*Record) error { return fn() })
	if rc := f.Process(batchOf("v")); rc != 0 || len(f.errs) != 0 {
		t.Fatalf("process = %d, record errors %v", rc, f.errs)
	}
}

func TestStoreGetPutDelete(t *testing.T) {
	f := newFakeHost(FakeConfig{Stores: []string{"s"}})
	f.Set("s", "old", "1")
	s := OpenStore("s")
	if OpenStore("s") != s {
		t.Fatal("OpenStore must cache handles by name")
	}
	runOnce(t, f, func() error {
		check := func(key, want string, wantFound bool) {
			t.Helper()
			v, found, err := s.Get([]byte(key))
			if err != nil || found != wantFound || string(v) != want {
				t.Errorf("Get(%q) = %q, %v, %v; want %q, %v, nil", key, v, found, err, want, wantFound)
			}
			if found && v == nil {
				t.Errorf("Get(%q): found with a nil value", key)
			}
		}
		check("old", "1", true)
		check("new", "", false)
		if err := s.Put([]byte("new"), []byte("2")); err != nil {
			return err
		}
		check("new", "2", true)
		if err := s.Put([]byte("empty"), nil); err != nil {
			return err
		}
		check("empty", "", true)
		if err := s.Put(nil, []byte("nil key")); err != nil {
			return err
		}
		check("", "nil key", true)
		if err := s.Delete([]byte("old")); err != nil {
			return err
		}
		check("old", "", false)
		return s.Delete([]byte("never there"))
	})
	if f.opens != 1 {
		t.Errorf("store_open called %d times, want 1", f.opens)
	}
	if v, ok := f.Stored("s", "new"); !ok || v != "2" {
		t.Errorf("host holds new=%q, %v", v, ok)
	}
}

// Values from several Gets stay valid side by side, including across the
// arena's growth, and values larger than the arena's first chunk arrive
// whole.
func TestStoreGetValues(t *testing.T) {
	f := newFakeHost(FakeConfig{Stores: []string{"s"}})
	sizes := []int{0, 1, 100, arenaMin - 1, arenaMin, 3 * arenaMin, 2 * arenaChunk, 7}
	for i, n := range sizes {
		f.Set("s", fmt.Sprint(i), strings.Repeat(string(rune('a'+i)), n))
	}
	s := OpenStore("s")
	for round := 0; round < 2; round++ {
		runOnce(t, f, func() error {
			var got [][]byte
			for i := range sizes {
				v, found, err := s.Get([]byte(fmt.Sprint(i)))
				if err != nil || !found {
					return fmt.Errorf("get %d: %v, %v", i, found, err)
				}
				got = append(got, v)
			}
			for i, n := range sizes {
				if want := strings.Repeat(string(rune('a'+i)), n); string(got[i]) != want {
					t.Errorf("round %d value %d: got %d bytes %.10q..., want %d", round, i, len(got[i]), got[i], n)
				}
				if cap(got[i]) != len(got[i]) {
					t.Errorf("value %d has spare capacity %d: appending would overwrite the next value", i, cap(got[i])-len(got[i]))
				}
			}
			return nil
		})
		newHandler(t)
	}
}

// newHandler lets a test register another handler on the same fake host.
func newHandler(t *testing.T) {
	t.Helper()
	inst.onRecord, inst.onBatch = nil, nil
}

func TestStoreErrors(t *testing.T) {
	f := newFakeHost(FakeConfig{Stores: []string{"rw"}, ReadOnly: []string{"ro"}})
	runOnce(t, f, func() error {
		missing := OpenStore("click-countz")
		for i := 0; i < 2; i++ {
			_, _, err := missing.Get([]byte("k"))
			var he *HostError
			if !errors.Is(err, ErrUnknownStore) || !errors.As(err, &he) || he.Name != "click-countz" {
				t.Errorf("Get on an undeclared store: %v", err)
			}
			if want := `streamrt: store_open "click-countz": unknown store`; err.Error() != want {
				t.Errorf("error text %q, want %q", err, want)
			}
			if err := missing.Put([]byte("k"), nil); !errors.Is(err, ErrUnknownStore) {
				t.Errorf("Put: %v", err)
			}
			if err := missing.Delete([]byte("k")); !errors.Is(err, ErrUnknownStore) {
				t.Errorf("Delete: %v", err)
			}
			it := missing.Range(nil, nil)
			if it.Next() || !errors.Is(it.Err(), ErrUnknownStore) || it.Close() != nil {
				t.Errorf("Range: %v", it.Err())
			}
		}
		ro := OpenStore("ro")
		if _, found, err := ro.Get([]byte("k")); err != nil || found {
			t.Errorf("Get on a read-only store: %v, %v", found, err)
		}
		err := ro.Put([]byte("k"), []byte("v"))
		var he *HostError
		if !errors.Is(err, ErrReadOnly) || !errors.As(err, &he) || he.Func != abi.FuncStorePut || he.Code != abi.ErrReadOnly {
			t.Errorf("Put on a read-only store: %#v", err)
		}
		if err := ro.Delete([]byte("k")); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Delete on a read-only store: %v", err)
		}
		return nil
	})
	if f.opens != 2 {
		t.Errorf("store_open called %d times, want 2 (an unknown store is asked about once)", f.opens)
	}
}

func TestHostErrorUnknownCode(t *testing.T) {
	err := hostError("store_get", "s", -99)
	if errors.Unwrap(err) != nil || err.Error() != `streamrt: store_get "s": code -99` {
		t.Errorf("%v, unwraps to %v", err, errors.Unwrap(err))
	}
}

func TestRange(t *testing.T) {
	keys := []string{"", "a", "ab", "abc", "ab\xff", "ab\xff\xff", "ac", "b", "\xff", "\xff\xff"}
	big := strings.Repeat("x", 10<<10)
	for _, bufSize := range []int{1, 16, 4 << 10} {
		for _, maxEntries := range []int{0, 1, 3} {
			t.Run(fmt.Sprintf("buf=%d/max=%d", bufSize, maxEntries), func(t *testing.T) {
				setRangeBufSize(t, bufSize)
				f := newFakeHost(FakeConfig{Stores: []string{"s"}})
				f.MaxEntries = maxEntries
				for _, k := range keys {
					v := "v" + k
					if k == "abc" {
						v = big
					}
					f.Set("s", k, v)
				}
				s := OpenStore("s")
				scan := func(it *Iterator) []string {
					t.Helper()
					defer it.Close()
					var got []string
					for it.Next() {
						want := "v" + string(it.Key())
						if string(it.Key()) == "abc" {
							want = big
						}
						if string(it.Value()) != want {
							t.Errorf("key %q: value %.20q, want %.20q", it.Key(), it.Value(), want)
						}
						got = append(got, string(it.Key()))
					}
					if err := it.Err(); err != nil {
						t.Error(err)
					}
					return got
				}
				b := func(s string) []byte { return []byte(s) }
				sorted := []string{"", "a", "ab", "abc", "ab\xff", "ab\xff\xff", "ac", "b", "\xff", "\xff\xff"}
				tests := []struct {
					name string
					it   func() *Iterator
					want []string
				}{
					{"all", func() *Iterator { return s.Range(nil, nil) }, sorted},
					{"from", func() *Iterator { return s.Range(b("ab\xff"), nil) }, []string{"ab\xff", "ab\xff\xff", "ac", "b", "\xff", "\xff\xff"}},
					{"to", func() *Iterator { return s.Range(nil, b("ab")) }, []string{"", "a"}},
					{"between", func() *Iterator { return s.Range(b("a"), b("ac")) }, []string{"a", "ab", "abc", "ab\xff", "ab\xff\xff"}},
					{"empty end", func() *Iterator { return s.Range(nil, b("")) }, nil},
					{"prefix", func() *Iterator { return s.Prefix(b("ab")) }, []string{"ab", "abc", "ab\xff", "ab\xff\xff"}},
					{"prefix ff", func() *Iterator { return s.Prefix(b("ab\xff")) }, []string{"ab\xff", "ab\xff\xff"}},
					{"prefix all ff", func() *Iterator { return s.Prefix(b("\xff")) }, []string{"\xff", "\xff\xff"}},
					{"prefix none", func() *Iterator { return s.Prefix(b("zz")) }, nil},
					{"prefix empty", func() *Iterator { return s.Prefix(nil) }, sorted},
				}
				runOnce(t, f, func() error {
					for _, tt := range tests {
						if got := scan(tt.it()); !reflect.DeepEqual(got, tt.want) {
							t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
						}
					}
					return nil
				})
				if len(f.iters) != 0 {
					t.Errorf("%d host iterators left open", len(f.iters))
				}
				if bufSize < len(big) && f.grows == 0 {
					t.Error("the host never asked for a bigger buffer")
				}
			})
		}
	}
}

func TestIteratorLifetime(t *testing.T) {
	f := newFakeHost(FakeConfig{Stores: []string{"s"}})
	for i := 0; i < 5; i++ {
		f.Set("s", fmt.Sprint(i), "v")
	}
	s := OpenStore("s")
	var leaked *Iterator
	runOnce(t, f, func() error {
		// Snapshot: writes after Range are not seen.
		it := s.Range(nil, nil)
		if err := s.Put([]byte("5"), []byte("new")); err != nil {
			return err
		}
		n := 0
		for it.Next() {
			n++
		}
		if n != 5 {
			t.Errorf("saw %d entries, want the 5 present at Range", n)
		}
		if it.Next() || it.Key() != nil || it.Close() != nil || it.Close() != nil {
			t.Error("an exhausted iterator must stay exhausted and close twice")
		}
		// Closed early.
		it = s.Range(nil, nil)
		if !it.Next() || string(it.Key()) != "0" {
			t.Fatalf("first key %q", it.Key())
		}
		if err := it.Close(); err != nil {
			t.Error(err)
		}
		if it.Next() || it.Err() != nil {
			t.Errorf("Next after Close: %v", it.Err())
		}
		// Left open past the batch.
		leaked = s.Range(nil, nil)
		leaked.Next()
		return nil
	})
	if len(inst.iters) != 0 {
		t.Errorf("the SDK still tracks %d iterators", len(inst.iters))
	}
	if leaked.Next() || !errors.Is(leaked.Err(), ErrIteratorClosed) {
		t.Errorf("an iterator from an earlier batch: Next = true or Err = %v", leaked.Err())
	}
	if leaked.Close() != nil {
		t.Error("Close of a leaked iterator must succeed")
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ p, want string }{
		{"a", "b"}, {"ab", "ac"}, {"a\xff", "b"}, {"a\xff\xff", "b"}, {"\xff", ""}, {"\x00", "\x01"}, {"a\xfe", "a\xff"},
	}
	for _, tt := range tests {
		if got := prefixEnd(nil, []byte(tt.p)); !bytes.Equal(got, []byte(tt.want)) {
			t.Errorf("prefixEnd(%q) = %q, want %q", tt.p, got, tt.want)
		}
	}
}
