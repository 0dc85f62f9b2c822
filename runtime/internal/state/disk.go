package state

import (
	"fmt"
	"io/fs"
	"path/filepath"
)

// Space is what a filesystem holds and has free.
type Space struct {
	Total uint64 // bytes
	// Free is what an unprivileged process may still write: the
	// filesystem's reserved blocks are not counted.
	Free uint64
}

// DirBytes is the size of the files under dir; files that vanish while it
// walks are not counted.
func DirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// StoreBytes estimates the bytes the tables hold of store, over every
// partition. Changes still in the memtable (and the WAL) are not counted
// until they are flushed.
func (db *DB) StoreBytes(store string) (uint64, error) {
	lower, err := newKeyspace(store, 0)
	if err != nil {
		return 0, err
	}
	// The store's keys run from partition 0's prefix up to, not including,
	// the prefix of a store one byte longer or of the next name: the
	// store's tag and length bytes followed by the name and 0xff... cover
	// every partition and user key.
	start := []byte(lower.prefix[:len(lower.prefix)-4])
	end := append(append([]byte{}, start...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	if err := db.acquire(); err != nil {
		return 0, err
	}
	defer db.release()
	n, err := db.pdb.EstimateDiskUsage(start, end)
	if err != nil {
		return 0, fmt.Errorf("disk usage of store %q: %w", store, err)
	}
	return n, nil
}
