package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func openMem(t testing.TB) *DB {
	t.Helper()
	return openFS(t, vfs.NewMem())
}

func openFS(t testing.TB, fs vfs.FS) *DB {
	t.Helper()
	db, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustKeyspace(t testing.TB, db *DB, store string, partition int32) Keyspace {
	t.Helper()
	ks, err := db.Keyspace(store, partition)
	mustOK(t, err)
	return ks
}

// scanAll returns the committed entries of ks as "key=value".
func scanAll(t testing.TB, db *DB, ks Keyspace, start, end []byte, limit int) []string {
	t.Helper()
	var got []string
	mustOK(t, db.Scan(ks, start, end, limit, func(k, v []byte) error {
		got = append(got, string(k)+"="+string(v))
		return nil
	}))
	return got
}

// put commits key=value pairs (alternating) to ks.
func put(t testing.TB, db *DB, ks Keyspace, kv ...string) {
	t.Helper()
	tx := db.NewTxn()
	for i := 0; i < len(kv); i += 2 {
		mustOK(t, tx.Put(ks, []byte(kv[i]), []byte(kv[i+1])))
	}
	mustOK(t, tx.Commit())
}

func TestScan(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 1)
	put(t, db, ks, "a", "1", "b", "2", "c", "3", "d", "4", "e", "5")
	// Neighbours that a sloppy bound would leak into the scan.
	put(t, db, mustKeyspace(t, db, "s", 0), "z", "prev")
	put(t, db, mustKeyspace(t, db, "s", 2), "a", "next")

	tests := []struct {
		name       string
		start, end []byte
		limit      int
		want       []string
	}{
		{"all", nil, nil, 0, []string{"a=1", "b=2", "c=3", "d=4", "e=5"}},
		{"from", []byte("b"), nil, 0, []string{"b=2", "c=3", "d=4", "e=5"}},
		{"to", nil, []byte("c"), 0, []string{"a=1", "b=2"}},
		{"from to", []byte("b"), []byte("d"), 0, []string{"b=2", "c=3"}},
		{"between keys", []byte("bb"), []byte("dd"), 0, []string{"c=3", "d=4"}},
		{"limit", nil, nil, 2, []string{"a=1", "b=2"}},
		{"from limit", []byte("c"), nil, 2, []string{"c=3", "d=4"}},
		{"limit beyond end", []byte("d"), nil, 10, []string{"d=4", "e=5"}},
		{"empty start is unbounded", []byte{}, nil, 0, []string{"a=1", "b=2", "c=3", "d=4", "e=5"}},
		{"empty end is empty range", nil, []byte{}, 0, nil},
		{"start equals end", []byte("c"), []byte("c"), 0, nil},
		{"inverted", []byte("d"), []byte("b"), 0, nil},
		{"past last", []byte("f"), nil, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scanAll(t, db, ks, tt.start, tt.end, tt.limit); !slices.Equal(got, tt.want) {
				t.Errorf("Scan(%q, %q, %d) = %q, want %q", tt.start, tt.end, tt.limit, got, tt.want)
			}
		})
	}
}

func TestScanStopsOnCallbackError(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	put(t, db, ks, "a", "1", "b", "2", "c", "3")
	stop := errors.New("stop")
	var seen []string
	err := db.Scan(ks, nil, nil, 0, func(k, v []byte) error {
		seen = append(seen, string(k))
		if string(k) == "b" {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("Scan error = %v, want the callback's error unwrapped", err)
	}
	if want := []string{"a", "b"}; !slices.Equal(seen, want) {
		t.Errorf("seen %q, want %q", seen, want)
	}
}

func TestGetReturnsCopy(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	put(t, db, ks, "k", "value", "empty", "")
	v, _, err := db.Get(ks, []byte("k"))
	mustOK(t, err)
	v[0] = 'X'
	if again, _, _ := db.Get(ks, []byte("k")); string(again) != "value" {
		t.Errorf("after modifying a returned value, Get = %q", again)
	}
	v, found, err := db.Get(ks, []byte("empty"))
	if err != nil || !found || len(v) != 0 {
		t.Errorf("Get(empty value) = %q, %v, %v; want found empty", v, found, err)
	}
}

func TestDropPartition(t *testing.T) {
	db := openMem(t)
	keyspaces := []Keyspace{
		mustKeyspace(t, db, "s", 0),
		mustKeyspace(t, db, "s", 1),
		mustKeyspace(t, db, "s", 2),
		mustKeyspace(t, db, "s2", 1),
		mustKeyspace(t, db, "t", 1),
	}
	for _, ks := range keyspaces {
		put(t, db, ks, "a", ks.String(), "b", ks.String())
	}
	tx := db.NewTxn()
	mustOK(t, tx.SetOffset("g", "in", 1, 99))
	mustOK(t, tx.Commit())

	mustOK(t, db.DropPartition("s", 1))

	for _, ks := range keyspaces {
		got := scanAll(t, db, ks, nil, nil, 0)
		want := []string{"a=" + ks.String(), "b=" + ks.String()}
		if ks.Store() == "s" && ks.Partition() == 1 {
			want = nil
		}
		if !slices.Equal(got, want) {
			t.Errorf("after DropPartition(s, 1), Scan(%v) = %q, want %q", ks, got, want)
		}
	}
	if next, found, err := db.Offset("g", "in", 1); err != nil || !found || next != 99 {
		t.Errorf("Offset after drop = %d, %v, %v; want 99 kept", next, found, err)
	}
	if err := db.DropPartition("", 1); !errors.Is(err, ErrStoreName) {
		t.Errorf("DropPartition(\"\") error = %v, want ErrStoreName", err)
	}
}

// TestReopen commits data and offsets to a database on disk and reads both
// back after reopening it; a discarded Txn leaves no trace.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{Sync: true})
	mustOK(t, err)
	counts := mustKeyspace(t, db, "counts", 3)
	totals := mustKeyspace(t, db, "totals", 3)

	tx := db.NewTxn()
	mustOK(t, tx.Put(counts, []byte("k"), []byte("1")))
	mustOK(t, tx.Put(totals, []byte("sum"), []byte("10")))
	mustOK(t, tx.SetOffset("app", "orders", 3, 1001))
	mustOK(t, tx.SetOffset("", "app-counts-changelog", 3, 57))
	mustOK(t, tx.Commit())

	tx = db.NewTxn()
	mustOK(t, tx.Put(counts, []byte("k"), []byte("2")))
	mustOK(t, tx.SetOffset("app", "orders", 3, 1002))
	tx.Discard()
	mustOK(t, db.Close())

	db, err = Open(dir, Options{})
	mustOK(t, err)
	defer db.Close()
	for _, c := range []struct {
		ks        Keyspace
		key, want string
	}{
		{counts, "k", "1"},
		{totals, "sum", "10"},
	} {
		if v, found, err := db.Get(c.ks, []byte(c.key)); err != nil || !found || string(v) != c.want {
			t.Errorf("after reopen Get(%v, %q) = %q, %v, %v; want %q", c.ks, c.key, v, found, err, c.want)
		}
	}
	for _, c := range []struct {
		group, topic string
		want         int64
	}{
		{"app", "orders", 1001},
		{"", "app-counts-changelog", 57},
	} {
		if next, found, err := db.Offset(c.group, c.topic, 3); err != nil || !found || next != c.want {
			t.Errorf("after reopen Offset(%q, %q, 3) = %d, %v, %v; want %d", c.group, c.topic, next, found, err, c.want)
		}
	}
	if _, found, err := db.Offset("app", "orders", 4); err != nil || found {
		t.Errorf("Offset of an unset partition: found=%v err=%v", found, err)
	}
}

func TestClosedDB(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	mustOK(t, db.Close())

	calls := []struct {
		name string
		call func() error
	}{
		{"Close", db.Close},
		{"Get", func() error { _, _, err := db.Get(ks, []byte("k")); return err }},
		{"Scan", func() error { return db.Scan(ks, nil, nil, 0, func(k, v []byte) error { return nil }) }},
		{"Offset", func() error { _, _, err := db.Offset("g", "t", 0); return err }},
		{"DropPartition", func() error { return db.DropPartition("s", 0) }},
		{"Txn.Put", func() error { return db.NewTxn().Put(ks, []byte("k"), nil) }},
		{"Txn.Commit", func() error { return db.NewTxn().Commit() }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s on a closed DB: error = %v, want ErrClosed", c.name, err)
		}
	}
}

// TestCloseWaitsForTxn checks that a Txn open when Close starts can still
// commit, and that Close returns only after it has.
func TestCloseWaitsForTxn(t *testing.T) {
	fs := vfs.NewMem()
	db := openFS(t, fs)
	ks := mustKeyspace(t, db, "s", 0)
	tx := db.NewTxn()
	mustOK(t, tx.Put(ks, []byte("k"), []byte("v")))

	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	for {
		if _, _, err := db.Get(ks, []byte("k")); errors.Is(err, ErrClosed) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a Txn was open", err)
	case <-time.After(20 * time.Millisecond):
	}
	mustOK(t, tx.Commit())
	mustOK(t, <-closed)

	db = openFS(t, fs)
	if v, found, err := db.Get(ks, []byte("k")); err != nil || !found || string(v) != "v" {
		t.Errorf("after reopen Get = %q, %v, %v; want the commit made during Close", v, found, err)
	}
}

// TestConcurrentReadsWhileCommitting hammers committed reads from several
// goroutines while one writer commits. Every commit sets all keys to the same
// counter and the offset to it, so a reader that sees keys disagree, or
// values or offsets go backwards, saw a torn or reordered commit.
func TestConcurrentReadsWhileCommitting(t *testing.T) {
	const (
		keys    = 10
		commits = 1000
		readers = 4
	)
	db := openMem(t)
	ks := mustKeyspace(t, db, "counts", 0)
	other := mustKeyspace(t, db, "counts", 1)
	keyOf := func(i int) []byte { return fmt.Appendf(nil, "k%02d", i) }
	u64 := func(v []byte) uint64 { return binary.BigEndian.Uint64(v) }

	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, readers+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for n := uint64(1); n <= commits; n++ {
			tx := db.NewTxn()
			val := binary.BigEndian.AppendUint64(nil, n)
			for i := range keys {
				if err := tx.Put(ks, keyOf(i), val); err != nil {
					errs <- err
					return
				}
			}
			if err := tx.Put(other, []byte("noise"), val); err != nil {
				errs <- err
				return
			}
			if err := tx.SetOffset("g", "in", 0, int64(n)); err != nil {
				errs <- err
				return
			}
			if err := tx.Commit(); err != nil {
				errs <- err
				return
			}
			if n%50 == 0 {
				if err := db.DropPartition("counts", 1); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lastScan, lastGet uint64
			var lastOffset int64
			for {
				select {
				case <-done:
					return
				default:
				}
				off, _, err := db.Offset("g", "in", 0)
				if err != nil {
					errs <- err
					return
				}
				if off < lastOffset {
					errs <- fmt.Errorf("offset went back from %d to %d", lastOffset, off)
					return
				}
				lastOffset = off

				var vals []uint64
				err = db.Scan(ks, nil, nil, 0, func(k, v []byte) error {
					vals = append(vals, u64(v))
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
				if len(vals) > 0 {
					if len(vals) != keys {
						errs <- fmt.Errorf("scan saw %d keys, want 0 or %d", len(vals), keys)
						return
					}
					for _, v := range vals {
						if v != vals[0] {
							errs <- fmt.Errorf("scan saw a torn commit: %v", vals)
							return
						}
					}
					if vals[0] < lastScan || int64(vals[0]) < off {
						errs <- fmt.Errorf("scan saw %d after %d and offset %d", vals[0], lastScan, off)
						return
					}
					lastScan = vals[0]
				}

				v, found, err := db.Get(ks, keyOf(3))
				if err != nil {
					errs <- err
					return
				}
				if found {
					if u64(v) < lastGet {
						errs <- fmt.Errorf("get went back from %d to %d", lastGet, u64(v))
						return
					}
					lastGet = u64(v)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if off, _, _ := db.Offset("g", "in", 0); off != commits {
		t.Errorf("final offset %d, want %d", off, commits)
	}
}

func TestClearOffset(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	txn := db.NewTxn()
	if err := txn.SetOffset("", "app-s-changelog", 3, 42); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.ClearOffset("", "app-s-changelog", 3); err != nil {
		t.Fatal(err)
	}
	if _, found, err := db.Offset("", "app-s-changelog", 3); found || err != nil {
		t.Fatalf("offset still found (err %v) after ClearOffset", err)
	}
}

// A state dir another instance has open is refused with a message that
// says so, and the first instance's store is left alone, whatever the
// second one's recovery setting.
func TestSecondOpenIsRefusedNamingTheHolder(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	mustOK(t, err)
	defer db.Close()
	second, err := Open(dir, Options{})
	if err == nil {
		second.Close()
		t.Fatal("a second Open of a state dir in use succeeded")
	}
	if !strings.Contains(err.Error(), "another instance holds it") || !strings.Contains(err.Error(), "state_dir of its own") {
		t.Errorf("the second Open said %q; want it to say another instance holds the dir, and what to do", err)
	}
	ks := mustKeyspace(t, db, "counts", 0)
	tx := db.NewTxn()
	mustOK(t, tx.Put(ks, []byte("k"), []byte("1")))
	mustOK(t, tx.Commit())
}
