package engine

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/streamrt/streamrt/runtime/internal/state"
)

// Readers that fill the cache from Pebble race a writer that commits new
// versions and drops the key after each commit. Once the writer's last
// drop is done, every read must give the last version: no reader may have
// kept a value it read before a commit that the commit's drop missed.
func TestGlobalCacheNeverKeepsAStaleValue(t *testing.T) {
	db, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ks, err := db.Keyspace("products", 0)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("p1")
	c := newGlobalCache()
	read := func() string {
		cv, ok, gen := c.get(key)
		if !ok {
			v, found, err := db.Get(ks, key)
			if err != nil {
				t.Error(err)
				return ""
			}
			c.put(gen, key, v, found)
			cv = cachedValue{v: v, found: found}
		}
		return string(cv.v)
	}
	const versions = 2000
	var done atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				read()
			}
		}()
	}
	for i := 1; i <= versions; i++ {
		txn := db.NewWriteTxn()
		if err := txn.Put(ks, key, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		c.changed([][]byte{key})
	}
	done.Store(true)
	wg.Wait()
	for range 10 {
		if got := read(); got != strconv.Itoa(versions) {
			t.Fatalf("read %q after the last version %d was committed and dropped", got, versions)
		}
	}
}
