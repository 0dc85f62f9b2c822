package state

import (
	"errors"
	"maps"
	"math"
	"slices"
	"testing"
)

// txnView returns what tx sees in ks as "key=value", read by iteration.
func txnView(t testing.TB, tx *Txn, ks Keyspace, start, end []byte) []string {
	t.Helper()
	it, err := tx.NewIter(ks, start, end)
	mustOK(t, err)
	var got []string
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		got = append(got, string(k)+"="+string(v))
	}
	mustOK(t, it.Close())
	return got
}

func TestTxnReadYourWrites(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	neighbour := mustKeyspace(t, db, "s", 1)
	put(t, db, ks, "a", "committed-a", "b", "committed-b", "c", "committed-c")

	tx := db.NewTxn()
	defer tx.Discard()
	mustOK(t, tx.Put(ks, []byte("b"), []byte("txn-b")))
	mustOK(t, tx.Delete(ks, []byte("c")))
	mustOK(t, tx.Put(ks, []byte("d"), []byte("txn-d")))
	mustOK(t, tx.Put(neighbour, []byte("a"), []byte("other partition")))

	gets := []struct {
		key, want string // want "" means not found
	}{
		{"a", "committed-a"},
		{"b", "txn-b"},
		{"c", ""},
		{"d", "txn-d"},
		{"e", ""},
	}
	var buf []byte
	for _, g := range gets {
		var found bool
		var err error
		buf, found, err = tx.Get(ks, []byte(g.key), buf)
		mustOK(t, err)
		if found != (g.want != "") || string(buf) != g.want {
			t.Errorf("Txn.Get(%q) = %q, %v; want %q", g.key, buf, found, g.want)
		}
	}

	iters := []struct {
		name       string
		start, end []byte
		want       []string
	}{
		{"all", nil, nil, []string{"a=committed-a", "b=txn-b", "d=txn-d"}},
		{"bounded", []byte("b"), []byte("d"), []string{"b=txn-b"}},
		{"from", []byte("c"), nil, []string{"d=txn-d"}},
		{"inverted", []byte("d"), []byte("a"), nil},
	}
	for _, tt := range iters {
		if got := txnView(t, tx, ks, tt.start, tt.end); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Txn iteration = %q, want %q", tt.name, got, tt.want)
		}
	}

	// Nothing is visible outside the Txn until it commits.
	if got := scanAll(t, db, ks, nil, nil, 0); !slices.Equal(got, []string{"a=committed-a", "b=committed-b", "c=committed-c"}) {
		t.Errorf("committed view before Commit = %q", got)
	}
	mustOK(t, tx.Commit())
	if got := scanAll(t, db, ks, nil, nil, 0); !slices.Equal(got, []string{"a=committed-a", "b=txn-b", "d=txn-d"}) {
		t.Errorf("committed view after Commit = %q", got)
	}
}

// TestTxnArgumentsCopied checks Put's and Delete's contract that the caller
// may reuse their arguments, and Get's reuse of dst.
func TestTxnArgumentsCopied(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	tx := db.NewTxn()
	defer tx.Discard()
	key, val := []byte("k1"), []byte("v1")
	mustOK(t, tx.Put(ks, key, val))
	key[1], val[1] = '2', '2'
	mustOK(t, tx.Put(ks, key, val))
	if got := txnView(t, tx, ks, nil, nil); !slices.Equal(got, []string{"k1=v1", "k2=v2"}) {
		t.Errorf("after reusing Put's arguments, view = %q", got)
	}

	dst := make([]byte, 0, 16)
	got, found, err := tx.Get(ks, []byte("k1"), dst)
	if err != nil || !found || string(got) != "v1" || &got[:1][0] != &dst[:1][0] {
		t.Errorf("Get into dst = %q, %v, %v; want v1 in dst's array", got, found, err)
	}
	got, found, err = tx.Get(ks, []byte("missing"), got)
	if err != nil || found || len(got) != 0 {
		t.Errorf("Get(missing) = %q, %v, %v; want empty, not found", got, found, err)
	}
}

// TestTxnIterViewFixed documents what Pebble gives: an iterator sees the
// Txn's writes as of NewIter, and several iterators may be open at once.
func TestTxnIterViewFixed(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	put(t, db, ks, "a", "1", "c", "3")
	tx := db.NewTxn()
	defer tx.Discard()

	first, err := tx.NewIter(ks, nil, nil)
	mustOK(t, err)
	k, _, ok := first.Next()
	if !ok || string(k) != "a" {
		t.Fatalf("first.Next = %q, %v", k, ok)
	}
	mustOK(t, tx.Put(ks, []byte("b"), []byte("2")))
	second, err := tx.NewIter(ks, nil, nil)
	mustOK(t, err)

	var rest []string
	for k, _, ok := first.Next(); ok; k, _, ok = first.Next() {
		rest = append(rest, string(k))
	}
	if !slices.Equal(rest, []string{"c"}) {
		t.Errorf("iterator opened before Put saw %q, want [c]", rest)
	}
	var all []string
	for k, _, ok := second.Next(); ok; k, _, ok = second.Next() {
		all = append(all, string(k))
	}
	if !slices.Equal(all, []string{"a", "b", "c"}) {
		t.Errorf("iterator opened after Put saw %q, want [a b c]", all)
	}
	mustOK(t, first.Close())
	mustOK(t, second.Close())
	mustOK(t, second.Close())
}

func TestRollback(t *testing.T) {
	const (
		group = "g"
		topic = "in"
	)
	// Every case starts from committed a=old-a, b=old-b and offset 1.
	tests := []struct {
		name       string
		run        func(t *testing.T, tx *Txn, ks Keyspace)
		want       map[string]string
		wantOffset int64
		wantLen    int
	}{
		{
			name: "to zero",
			run: func(t *testing.T, tx *Txn, ks Keyspace) {
				m := tx.Mark()
				mustOK(t, tx.Put(ks, []byte("x"), []byte("1")))
				mustOK(t, tx.Delete(ks, []byte("a")))
				mustOK(t, tx.SetOffset(group, topic, 0, 10))
				mustOK(t, tx.RollbackTo(m))
			},
			want:       map[string]string{"a": "old-a", "b": "old-b"},
			wantOffset: 1,
			wantLen:    0,
		},
		{
			name: "keeps writes before the mark",
			run: func(t *testing.T, tx *Txn, ks Keyspace) {
				mustOK(t, tx.Put(ks, []byte("x"), []byte("1")))
				mustOK(t, tx.SetOffset(group, topic, 0, 2))
				m := tx.Mark()
				mustOK(t, tx.Put(ks, []byte("y"), []byte("2")))
				mustOK(t, tx.Put(ks, []byte("x"), []byte("overwritten")))
				mustOK(t, tx.SetOffset(group, topic, 0, 3))
				mustOK(t, tx.RollbackTo(m))
			},
			want:       map[string]string{"a": "old-a", "b": "old-b", "x": "1"},
			wantOffset: 2,
			wantLen:    2,
		},
		{
			name: "nested marks",
			run: func(t *testing.T, tx *Txn, ks Keyspace) {
				mustOK(t, tx.Put(ks, []byte("x"), []byte("1")))
				m1 := tx.Mark()
				mustOK(t, tx.Put(ks, []byte("y"), []byte("2")))
				m2 := tx.Mark()
				mustOK(t, tx.Put(ks, []byte("z"), []byte("3")))
				mustOK(t, tx.RollbackTo(m2))
				mustOK(t, tx.Put(ks, []byte("w"), []byte("4")))
				mustOK(t, tx.RollbackTo(m1))
			},
			want:       map[string]string{"a": "old-a", "b": "old-b", "x": "1"},
			wantOffset: 1,
			wantLen:    1,
		},
		{
			name: "same mark twice",
			run: func(t *testing.T, tx *Txn, ks Keyspace) {
				m := tx.Mark()
				mustOK(t, tx.Put(ks, []byte("x"), []byte("1")))
				mustOK(t, tx.RollbackTo(m))
				mustOK(t, tx.Put(ks, []byte("y"), []byte("2")))
				mustOK(t, tx.RollbackTo(m))
				mustOK(t, tx.Put(ks, []byte("z"), []byte("3")))
			},
			want:       map[string]string{"a": "old-a", "b": "old-b", "z": "3"},
			wantOffset: 1,
			wantLen:    1,
		},
		{
			name: "restores deleted committed keys",
			run: func(t *testing.T, tx *Txn, ks Keyspace) {
				m := tx.Mark()
				mustOK(t, tx.Delete(ks, []byte("a")))
				mustOK(t, tx.Delete(ks, []byte("b")))
				if got := txnView(t, tx, ks, nil, nil); len(got) != 0 {
					t.Fatalf("after deletes, view = %q", got)
				}
				mustOK(t, tx.RollbackTo(m))
			},
			want:       map[string]string{"a": "old-a", "b": "old-b"},
			wantOffset: 1,
			wantLen:    0,
		},
		{
			name: "restores the txn's own earlier value",
			run: func(t *testing.T, tx *Txn, ks Keyspace) {
				mustOK(t, tx.Put(ks, []byte("a"), []byte("new-a")))
				mustOK(t, tx.Delete(ks, []byte("b")))
				m := tx.Mark()
				mustOK(t, tx.Put(ks, []byte("a"), []byte("newer-a")))
				mustOK(t, tx.Put(ks, []byte("b"), []byte("revived-b")))
				mustOK(t, tx.RollbackTo(m))
			},
			want:       map[string]string{"a": "new-a"},
			wantOffset: 1,
			wantLen:    2,
		},
		{
			name: "nothing after the mark",
			run: func(t *testing.T, tx *Txn, ks Keyspace) {
				mustOK(t, tx.Put(ks, []byte("x"), []byte("1")))
				mustOK(t, tx.RollbackTo(tx.Mark()))
			},
			want:       map[string]string{"a": "old-a", "b": "old-b", "x": "1"},
			wantOffset: 1,
			wantLen:    1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openMem(t)
			ks := mustKeyspace(t, db, "s", 0)
			tx := db.NewTxn()
			mustOK(t, tx.Put(ks, []byte("a"), []byte("old-a")))
			mustOK(t, tx.Put(ks, []byte("b"), []byte("old-b")))
			mustOK(t, tx.SetOffset(group, topic, 0, 1))
			mustOK(t, tx.Commit())

			tx = db.NewTxn()
			defer tx.Discard()
			tt.run(t, tx, ks)
			if tx.Len() != tt.wantLen {
				t.Errorf("Len = %d, want %d", tx.Len(), tt.wantLen)
			}

			want := viewOf(tt.want)
			if got := txnView(t, tx, ks, nil, nil); !slices.Equal(got, want) {
				t.Errorf("Txn iteration = %q, want %q", got, want)
			}
			for _, k := range []string{"a", "b", "w", "x", "y", "z"} {
				v, found, err := tx.Get(ks, []byte(k), nil)
				mustOK(t, err)
				if w, ok := tt.want[k]; found != ok || string(v) != w {
					t.Errorf("Txn.Get(%q) = %q, %v; want %q, %v", k, v, found, w, ok)
				}
			}

			mustOK(t, tx.Commit())
			if got := scanAll(t, db, ks, nil, nil, 0); !slices.Equal(got, want) {
				t.Errorf("committed = %q, want %q", got, want)
			}
			if next, _, err := db.Offset(group, topic, 0); err != nil || next != tt.wantOffset {
				t.Errorf("committed offset = %d, %v; want %d", next, err, tt.wantOffset)
			}
		})
	}
}

// viewOf renders a key→value map as sorted "key=value".
func viewOf(m map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

func TestRollbackInvalidMark(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	putN := func(t *testing.T, tx *Txn, keys ...string) {
		for _, k := range keys {
			mustOK(t, tx.Put(ks, []byte(k), []byte("v")))
		}
	}
	tests := []struct {
		name    string
		run     func(t *testing.T, tx *Txn) error
		wantErr error
	}{
		{
			name: "mark of another txn",
			run: func(t *testing.T, tx *Txn) error {
				other := db.NewTxn()
				defer other.Discard()
				return tx.RollbackTo(other.Mark())
			},
			wantErr: ErrInvalidMark,
		},
		{
			name: "mark discarded by an earlier rollback",
			run: func(t *testing.T, tx *Txn) error {
				m1 := tx.Mark()
				putN(t, tx, "a")
				m2 := tx.Mark()
				putN(t, tx, "b")
				mustOK(t, tx.RollbackTo(m1))
				// The Txn is longer than m2 again, but m2's entry "a" is gone.
				putN(t, tx, "c", "d")
				return tx.RollbackTo(m2)
			},
			wantErr: ErrInvalidMark,
		},
		{
			name: "mark beyond the txn",
			run: func(t *testing.T, tx *Txn) error {
				putN(t, tx, "a")
				m := tx.Mark()
				mustOK(t, tx.RollbackTo(Mark{t: tx}))
				return tx.RollbackTo(m)
			},
			wantErr: ErrInvalidMark,
		},
		{
			name: "after commit",
			run: func(t *testing.T, tx *Txn) error {
				m := tx.Mark()
				putN(t, tx, "a")
				mustOK(t, tx.Commit())
				return tx.RollbackTo(m)
			},
			wantErr: ErrTxnDone,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx := db.NewTxn()
			defer tx.Discard()
			if err := tt.run(t, tx); !errors.Is(err, tt.wantErr) {
				t.Errorf("RollbackTo error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestTxnEndInvalidatesIters checks that RollbackTo, Commit and Discard end
// open iterators, and that RollbackTo with nothing to undo leaves them be.
func TestTxnEndInvalidatesIters(t *testing.T) {
	tests := []struct {
		name    string
		end     func(tx *Txn, m Mark) error
		wantErr error
	}{
		{"RollbackTo", func(tx *Txn, m Mark) error { return tx.RollbackTo(m) }, ErrIterInvalidated},
		{"Commit", func(tx *Txn, m Mark) error { return tx.Commit() }, ErrIterInvalidated},
		{"Discard", func(tx *Txn, m Mark) error { tx.Discard(); return nil }, ErrIterInvalidated},
		{"RollbackTo nothing", func(tx *Txn, m Mark) error { return tx.RollbackTo(tx.Mark()) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openMem(t)
			ks := mustKeyspace(t, db, "s", 0)
			put(t, db, ks, "a", "1", "b", "2")
			tx := db.NewTxn()
			defer tx.Discard()
			m := tx.Mark()
			mustOK(t, tx.Put(ks, []byte("c"), []byte("3")))
			it, err := tx.NewIter(ks, nil, nil)
			mustOK(t, err)
			if _, _, ok := it.Next(); !ok {
				t.Fatal("Next before the end: no entry")
			}
			mustOK(t, tt.end(tx, m))
			if tt.wantErr == nil {
				if k, _, ok := it.Next(); !ok || string(k) != "b" {
					t.Errorf("Next after %s = %q, %v; want b", tt.name, k, ok)
				}
			} else if k, _, ok := it.Next(); ok {
				t.Errorf("Next after %s = %q, want the end", tt.name, k)
			}
			if err := it.Close(); !errors.Is(err, tt.wantErr) {
				t.Errorf("Close after %s = %v, want %v", tt.name, err, tt.wantErr)
			}
		})
	}
}

func TestDiscard(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	tx := db.NewTxn()
	mustOK(t, tx.Put(ks, []byte("k"), []byte("v")))
	mustOK(t, tx.SetOffset("g", "in", 0, 5))
	tx.Discard()
	tx.Discard()

	if _, found, err := db.Get(ks, []byte("k")); err != nil || found {
		t.Errorf("Get after Discard: found=%v err=%v", found, err)
	}
	if _, found, err := db.Offset("g", "in", 0); err != nil || found {
		t.Errorf("Offset after Discard: found=%v err=%v", found, err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, _, err := tx.Get(ks, []byte("k"), nil); return err }},
		{"Put", func() error { return tx.Put(ks, []byte("k"), nil) }},
		{"Delete", func() error { return tx.Delete(ks, []byte("k")) }},
		{"SetOffset", func() error { return tx.SetOffset("g", "in", 0, 6) }},
		{"NewIter", func() error { _, err := tx.NewIter(ks, nil, nil); return err }},
		{"Commit", tx.Commit},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, ErrTxnDone) {
			t.Errorf("%s after Discard: error = %v, want ErrTxnDone", c.name, err)
		}
	}
	if tx.Len() != 0 || tx.Size() != 0 {
		t.Errorf("Len, Size after Discard = %d, %d", tx.Len(), tx.Size())
	}
}

func TestTxnLenSize(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	tx := db.NewTxn()
	defer tx.Discard()
	empty := tx.Size()
	mustOK(t, tx.Put(ks, []byte("k"), []byte("v")))
	mustOK(t, tx.Delete(ks, []byte("j")))
	mustOK(t, tx.SetOffset("g", "in", 0, 1))
	if tx.Len() != 3 {
		t.Errorf("Len = %d, want 3", tx.Len())
	}
	if tx.Size() <= empty {
		t.Errorf("Size = %d, not above the empty Txn's %d", tx.Size(), empty)
	}
}

func TestTxnGetPutDoNotAllocate(t *testing.T) {
	if raceEnabled {
		// sync.Pool drops items at random under the race detector, and
		// Pebble pools its iterators: counts would be noise. check.sh runs
		// this test again without -race.
		t.Skip("allocation counts are meaningless under -race; scripts/check.sh runs this without it")
	}
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	put(t, db, ks, "committed", "12345678")
	tx := db.NewTxn()
	defer tx.Discard()
	mustOK(t, tx.Put(ks, []byte("own"), []byte("12345678")))
	keys := [][]byte{[]byte("committed"), []byte("own"), []byte("absent")}
	buf := make([]byte, 0, 8)
	for _, k := range keys { // warm up Pebble's pools and the Txn's scratch
		buf, _, _ = tx.Get(ks, k, buf)
	}
	for _, k := range keys {
		// The steady state allocates nothing; Pebble's background work (a
		// flush changing the read state) can cost one measurement a few
		// allocations, so the best of three counts.
		best := math.Inf(1)
		for range 3 {
			best = min(best, testing.AllocsPerRun(100, func() {
				buf, _, _ = tx.Get(ks, k, buf)
			}))
		}
		if best != 0 {
			t.Errorf("Txn.Get(%q) allocates %v times, want 0", k, best)
		}
	}
}

// A write-only Txn commits its writes and checkpoints atomically like any
// Txn, and refuses reads and rollbacks.
func TestWriteTxn(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	put := db.NewTxn()
	mustOK(t, put.Put(ks, []byte("gone"), []byte("x")))
	mustOK(t, put.Commit())
	tx := db.NewWriteTxn()
	defer tx.Discard()
	mustOK(t, tx.Put(ks, []byte("k"), []byte("v")))
	mustOK(t, tx.Delete(ks, []byte("gone")))
	mustOK(t, tx.SetOffset("", "log", 0, 7))
	if _, _, err := tx.Get(ks, []byte("k"), nil); !errors.Is(err, ErrWriteOnly) {
		t.Errorf("Get: error = %v, want ErrWriteOnly", err)
	}
	if _, err := tx.NewIter(ks, nil, nil); !errors.Is(err, ErrWriteOnly) {
		t.Errorf("NewIter: error = %v, want ErrWriteOnly", err)
	}
	if err := tx.RollbackTo(tx.Mark()); !errors.Is(err, ErrWriteOnly) {
		t.Errorf("RollbackTo: error = %v, want ErrWriteOnly", err)
	}
	if tx.Len() != 3 {
		t.Errorf("Len = %d, want 3", tx.Len())
	}
	mustOK(t, tx.Commit())
	if v, found, err := db.Get(ks, []byte("k")); err != nil || !found || string(v) != "v" {
		t.Errorf("Get k = %q, %v, %v; want v", v, found, err)
	}
	if _, found, err := db.Get(ks, []byte("gone")); err != nil || found {
		t.Errorf("Get gone: found=%v err=%v, want deleted", found, err)
	}
	if next, found, err := db.Offset("", "log", 0); err != nil || !found || next != 7 {
		t.Errorf("Offset = %d, %v, %v; want 7", next, found, err)
	}
}
