package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// StoreBytes counts each store's flushed tables, and nothing of the
// others: not a store whose name extends it, nor the checkpoints.
func TestStoreBytes(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	mustOK(t, err)
	defer db.Close()
	big := strings.Repeat("v", 1000)
	for p := range int32(3) {
		ks := mustKeyspace(t, db, "counts", p)
		for i := range 200 {
			put(t, db, ks, fmt.Sprintf("key-%d", i), big)
		}
	}
	put(t, db, mustKeyspace(t, db, "countsx", 0), "a", "1")
	if n, err := db.StoreBytes("counts"); err != nil || n != 0 {
		t.Errorf("before a flush: StoreBytes = %d, %v; want 0 (the memtable is not counted)", n, err)
	}
	mustOK(t, db.pdb.Flush())
	n, err := db.StoreBytes("counts")
	mustOK(t, err)
	// 600 values of 1,000 bytes, compressed by Pebble: well over a few KiB.
	if n < 4<<10 {
		t.Errorf("StoreBytes(counts) = %d after writing 600 KB, want more", n)
	}
	other, err := db.StoreBytes("other")
	mustOK(t, err)
	if other != 0 {
		t.Errorf("StoreBytes of a store with no keys = %d, want 0", other)
	}
	if _, err := db.StoreBytes(""); err == nil {
		t.Error("StoreBytes of an empty name: no error")
	}
}

func TestDirBytesAndFreeSpace(t *testing.T) {
	dir := t.TempDir()
	mustOK(t, os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
	mustOK(t, os.WriteFile(filepath.Join(dir, "a", "x"), make([]byte, 100), 0o644))
	mustOK(t, os.WriteFile(filepath.Join(dir, "a", "b", "y"), make([]byte, 23), 0o644))
	if n := DirBytes(dir); n != 123 {
		t.Errorf("DirBytes = %d, want 123", n)
	}
	if n := DirBytes(filepath.Join(dir, "missing")); n != 0 {
		t.Errorf("DirBytes of a missing directory = %d, want 0", n)
	}
	sp, err := FreeSpace(dir)
	if err != nil {
		t.Skip(err)
	}
	if sp.Total == 0 || sp.Free > sp.Total {
		t.Errorf("FreeSpace = %+v", sp)
	}
}

// EnsureReserve writes the reserve file whole, and again once it is gone
// or cut short; a database on another filesystem than the operating
// system's keeps none.
func TestEnsureReserve(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	db, err := Open(dir, Options{Reserve: 3<<20 + 5})
	mustOK(t, err)
	defer db.Close()
	reserve := dir + ".reserve"
	size := func() int64 {
		fi, err := os.Stat(reserve)
		if err != nil {
			return -1
		}
		return fi.Size()
	}
	for _, damage := range []func(){
		func() {},
		func() { mustOK(t, os.Remove(reserve)) },
		func() { mustOK(t, os.Truncate(reserve, 10)) },
	} {
		damage()
		ok, err := db.EnsureReserve()
		if !ok || err != nil || size() != 3<<20+5 {
			t.Fatalf("EnsureReserve: %v, %v; reserve of %d bytes, want %d", ok, err, size(), 3<<20+5)
		}
	}

	mem, err := Open("db", Options{FS: vfs.NewMem(), Reserve: 1 << 20})
	mustOK(t, err)
	defer mem.Close()
	if ok, err := mem.EnsureReserve(); !ok || err != nil {
		t.Errorf("EnsureReserve on a memory filesystem: %v, %v; want nothing to do", ok, err)
	}
}

// Corruption found while the database runs is marked beside it, and the
// next Open treats the database as corrupt even though it opens: under
// Rebuild the mark goes with the copy moved aside.
func TestCorruptionFoundWhileRunningIsMarked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	db, err := Open(dir, Options{})
	mustOK(t, err)
	ks := mustKeyspace(t, db, "counts", 0)
	put(t, db, ks, "a", strings.Repeat("1", 100), "b", strings.Repeat("2", 100))
	mustOK(t, db.pdb.Flush())
	mustOK(t, db.Close())
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	for _, p := range tables {
		b, err := os.ReadFile(p)
		mustOK(t, err)
		for i := 0; i < len(b)/3; i++ {
			b[i] ^= 0x5a
		}
		mustOK(t, os.WriteFile(p, b, 0o644))
	}

	db, err = Open(dir, Options{})
	mustOK(t, err)
	if _, _, err := db.Get(ks, []byte("a")); !IsCorrupt(err) {
		t.Fatalf("Get from a damaged table: %v, want a corruption error", err)
	}
	mustOK(t, db.Close())
	if _, err := os.Stat(dir + ".damaged"); err != nil {
		t.Fatalf("no mark of the corruption: %v", err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "corruption found while it ran") {
		t.Fatalf("Open of a database marked damaged: %v, want a *CorruptError", err)
	}
	db, err = Open(dir, Options{Recovery: Rebuild})
	mustOK(t, err)
	defer db.Close()
	aside, _ := filepath.Glob(dir + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("copies moved aside: %v", aside)
	}
	if _, err := os.Stat(filepath.Join(aside[0], "DAMAGED")); err != nil {
		t.Errorf("the mark did not go with the copy: %v", err)
	}
	if _, err := os.Stat(dir + ".damaged"); !os.IsNotExist(err) {
		t.Errorf("the mark is still beside the new database: %v", err)
	}
}
