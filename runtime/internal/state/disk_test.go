package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
