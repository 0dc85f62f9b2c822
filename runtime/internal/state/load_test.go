package state

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// loadOps applies ops to l: "k=v" puts v under k, "-k" deletes k.
func loadOps(t *testing.T, l *Load, ops []string) {
	t.Helper()
	for _, op := range ops {
		if k, ok := strings.CutPrefix(op, "-"); ok {
			mustOK(t, l.Delete([]byte(k)))
			continue
		}
		k, v, _ := strings.Cut(op, "=")
		mustOK(t, l.Put([]byte(k), []byte(v)))
	}
}

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name    string
		before  []string   // committed through a Txn first, as key, value pairs
		commits [][]string // one Commit each
		want    []string
	}{
		{
			name:    "ascending",
			commits: [][]string{{"a=1", "b=2", "c=3"}},
			want:    []string{"a=1", "b=2", "c=3"},
		},
		{
			name:    "scattered, last change wins",
			commits: [][]string{{"c=1", "a=1", "c=2", "b=1", "a=2", "c=3"}},
			want:    []string{"a=2", "b=1", "c=3"},
		},
		{
			name:    "delete after put in one commit",
			commits: [][]string{{"b=1", "a=1", "-b"}},
			want:    []string{"a=1"},
		},
		{
			name:    "put after delete in one commit",
			commits: [][]string{{"b=1", "-a", "a=2"}},
			want:    []string{"a=2", "b=1"},
		},
		{
			name:    "deletes and puts over committed data",
			before:  []string{"a", "old", "b", "old", "c", "old"},
			commits: [][]string{{"-b", "c=new"}},
			want:    []string{"a=old", "c=new"},
		},
		{
			name:    "later commits override earlier ones",
			commits: [][]string{{"a=1", "b=1", "c=1"}, {"b=2", "-c"}, {"c=3", "a=3"}},
			want:    []string{"a=3", "b=2", "c=3"},
		},
		{
			name:    "keys sharing a prefix, shorter than eight bytes past it",
			commits: [][]string{{"key/ab=1", "key/a\x00=2", "key/a=3", "key/b=4", "key/abcdefghij=5", "key/abcdefghi=6", "key/=7"}},
			want:    []string{"key/=7", "key/a=3", "key/a\x00=2", "key/ab=1", "key/abcdefghi=6", "key/abcdefghij=5", "key/b=4"},
		},
		{
			name:    "empty commit",
			before:  []string{"a", "1"},
			commits: [][]string{{}},
			want:    []string{"a=1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openMem(t)
			ks := mustKeyspace(t, db, "s", 1)
			other := mustKeyspace(t, db, "s", 2)
			put(t, db, other, "a", "other")
			if len(tc.before) > 0 {
				put(t, db, ks, tc.before...)
			}
			l, err := db.NewLoad(ks)
			mustOK(t, err)
			defer l.Close()
			for _, ops := range tc.commits {
				loadOps(t, l, ops)
				mustOK(t, l.Commit(context.Background()))
			}
			mustOK(t, l.Wait())
			if got := scanAll(t, db, ks, nil, nil, 0); !slices.Equal(got, tc.want) {
				t.Errorf("after load, Scan = %q, want %q", got, tc.want)
			}
			if got, want := scanAll(t, db, other, nil, nil, 0), []string{"a=other"}; !slices.Equal(got, want) {
				t.Errorf("other keyspace = %q, want %q", got, want)
			}
		})
	}
}

// TestLoadMatchesModel loads random changes to keys that share long
// prefixes, in several commits, and compares the result with a map.
func TestLoadMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	model := map[string]string{}
	l, err := db.NewLoad(ks)
	mustOK(t, err)
	defer l.Close()
	for c := range 5 {
		for i := range 2000 {
			k := fmt.Sprintf("user/%d", rng.IntN(3000))
			if rng.IntN(5) == 0 {
				mustOK(t, l.Delete([]byte(k)))
				delete(model, k)
				continue
			}
			v := fmt.Sprintf("%d.%d", c, i)
			mustOK(t, l.Put([]byte(k), []byte(v)))
			model[k] = v
		}
		mustOK(t, l.Commit(context.Background()))
	}
	mustOK(t, l.Wait())
	keys := slices.Sorted(maps.Keys(model))
	want := make([]string, len(keys))
	for i, k := range keys {
		want[i] = k + "=" + model[k]
	}
	if got := scanAll(t, db, ks, nil, nil, 0); !slices.Equal(got, want) {
		t.Errorf("after load, Scan has %d entries, want %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestLoadCheckpoint(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	l, err := db.NewLoad(ks)
	mustOK(t, err)
	defer l.Close()

	loadOps(t, l, []string{"a=1"})
	mustOK(t, l.Commit(context.Background()))
	mustOK(t, l.Wait())
	if _, found, err := db.Offset("", "log", 0); err != nil || found {
		t.Fatalf("Offset before any SetOffset = found %v, error %v; want not found", found, err)
	}

	loadOps(t, l, []string{"b=1"})
	mustOK(t, l.SetOffset("", "log", 0, 42))
	mustOK(t, l.Commit(context.Background()))
	// A commit without changes still writes its checkpoint.
	mustOK(t, l.SetOffset("", "log", 0, 43))
	mustOK(t, l.Commit(context.Background()))
	mustOK(t, l.Wait())
	if next, found, err := db.Offset("", "log", 0); err != nil || !found || next != 43 {
		t.Errorf("Offset = %d, %v, %v; want 43, true, nil", next, found, err)
	}
	if got, want := scanAll(t, db, ks, nil, nil, 0), []string{"a=1", "b=1"}; !slices.Equal(got, want) {
		t.Errorf("Scan = %q, want %q", got, want)
	}
	if err := l.SetOffset("", "log", 0, -1); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("SetOffset(-1) error = %v, want ErrCheckpoint", err)
	}
}

// TestLoadSortedGoesToBottom checks the point of Load: tables of keys that
// nothing in the database overlaps skip L0.
func TestLoadSortedGoesToBottom(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	mustOK(t, db.DropPartition("s", 0)) // empty: writes no range deletion
	l, err := db.NewLoad(ks)
	mustOK(t, err)
	defer l.Close()
	for c := range 3 {
		for i := range 100 {
			mustOK(t, l.Put(fmt.Appendf(nil, "k%03d", c*100+i), []byte("v")))
		}
		mustOK(t, l.Commit(context.Background()))
	}
	mustOK(t, l.Wait())
	m := db.pdb.Metrics()
	if n := m.Levels[0].TablesCount; n != 0 {
		t.Errorf("L0 holds %d tables after loading ascending chunks, want 0", n)
	}
	if n := m.Levels[6].TablesCount; n != 3 {
		t.Errorf("L6 holds %d tables, want 3", n)
	}
}

func TestLoadEnded(t *testing.T) {
	db := openMem(t)
	ks := mustKeyspace(t, db, "s", 0)
	l, err := db.NewLoad(ks)
	mustOK(t, err)
	l.Close()
	l.Close()
	if err := l.Put([]byte("k"), nil); !errors.Is(err, ErrTxnDone) {
		t.Errorf("Put after Close error = %v, want ErrTxnDone", err)
	}
	if err := l.Commit(context.Background()); !errors.Is(err, ErrTxnDone) {
		t.Errorf("Commit after Close error = %v, want ErrTxnDone", err)
	}

	if _, err := db.NewLoad(Keyspace{}); !errors.Is(err, ErrStoreName) {
		t.Errorf("NewLoad(zero Keyspace) error = %v, want ErrStoreName", err)
	}

	mustOK(t, db.Close())
	l, err = db.NewLoad(ks)
	mustOK(t, err)
	defer l.Close()
	if err := l.Put([]byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Put on a closed DB error = %v, want ErrClosed", err)
	}
}

// TestLoadCommitFailureSticks checks that once a commit fails, no later
// commit writes its checkpoint past the changes that were lost.
func TestLoadCommitFailureSticks(t *testing.T) {
	fs := &failCreateFS{FS: vfs.NewMem()}
	db := openFS(t, fs)
	ks := mustKeyspace(t, db, "s", 0)
	l, err := db.NewLoad(ks)
	mustOK(t, err)
	defer l.Close()
	fs.fail.Store(true)
	defer fs.fail.Store(false)
	loadOps(t, l, []string{"a=1"})
	mustOK(t, l.SetOffset("", "log", 0, 1))
	mustOK(t, l.Commit(context.Background()))
	if err := l.Wait(); err == nil {
		t.Fatal("Wait: no error from a commit whose table could not be written")
	}
	loadOps(t, l, nil)
	if err := l.SetOffset("", "log", 0, 2); err == nil {
		t.Error("SetOffset after a failed commit: no error")
	}
	if err := l.Commit(context.Background()); err == nil {
		t.Error("Commit after a failed commit: no error")
	}
	if _, found, err := db.Offset("", "log", 0); err != nil || found {
		t.Errorf("Offset after failed commits = found %v, error %v; want not found", found, err)
	}
}

// failCreateFS fails to create files once fail is set.
type failCreateFS struct {
	vfs.FS
	fail atomic.Bool
}

func (fs *failCreateFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if fs.fail.Load() {
		return nil, errors.New("injected create failure")
	}
	return fs.FS.Create(name, category)
}

func TestOpenClearsIngestDir(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("db", Options{FS: fs})
	mustOK(t, err)
	left := fs.PathJoin(db.ingestPath, "7.sst")
	f, err := fs.Create(left, vfs.WriteCategoryUnspecified)
	mustOK(t, err)
	mustOK(t, f.Close())
	mustOK(t, db.Close())

	db = openFS(t, fs)
	if _, err := fs.Stat(left); err == nil {
		t.Errorf("%s left by a crash is still there after Open", left)
	}
}
