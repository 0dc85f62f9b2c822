package state

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

const (
	benchKeys  = 10_000
	benchBatch = 500 // records per Txn, a typical task batch
)

// benchDB opens a database on disk holding a counter of 1 for each of
// benchKeys keys, flushed so that reads go through sstables and the block
// cache as they do in steady state. It returns the keys in a scattered order.
func benchDB(b *testing.B, opts Options) (*DB, Keyspace, [][]byte) {
	b.Helper()
	db, err := Open(b.TempDir(), opts)
	mustOK(b, err)
	b.Cleanup(func() { db.Close() })
	ks := mustKeyspace(b, db, "counts", 7)
	keys := make([][]byte, benchKeys)
	tx := db.NewTxn()
	one := binary.BigEndian.AppendUint64(nil, 1)
	for i := range keys {
		// 7919 is prime, so this visits every key once, out of order.
		keys[i] = fmt.Appendf(nil, "user-%05d", i*7919%benchKeys)
		mustOK(b, tx.Put(ks, keys[i], one))
	}
	mustOK(b, tx.Commit())
	mustOK(b, db.pdb.Flush())
	return db, ks, keys
}

// BenchmarkTxnGetPut measures what a counting stage does per record: get a
// counter by key through the Txn and put it back incremented. Txns of
// benchBatch records are committed outside the timer.
func BenchmarkTxnGetPut(b *testing.B) {
	db, ks, keys := benchDB(b, Options{})
	tx := db.NewTxn()
	var val []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := keys[i%benchKeys]
		var found bool
		var err error
		val, found, err = tx.Get(ks, k, val)
		if err != nil {
			b.Fatal(err)
		}
		var n uint64
		if found {
			n = binary.BigEndian.Uint64(val)
		}
		val = binary.BigEndian.AppendUint64(val[:0], n+1)
		if err := tx.Put(ks, k, val); err != nil {
			b.Fatal(err)
		}
		if (i+1)%benchBatch == 0 {
			b.StopTimer()
			mustOK(b, tx.Commit())
			tx = db.NewTxn()
			b.StartTimer()
		}
	}
	b.StopTimer()
	tx.Discard()
}

// BenchmarkTxnCommit measures committing a Txn of benchBatch counter updates
// and one offset; building the Txn is outside the timer.
func BenchmarkTxnCommit(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts Options
		mem  bool
	}{
		{"mem", Options{}, true},
		{"disk", Options{}, false},
		{"disk-sync", Options{Sync: true}, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.mem {
				bc.opts.FS = vfs.NewMem()
			}
			db, ks, keys := benchDB(b, bc.opts)
			val := make([]byte, 8)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				tx := db.NewTxn()
				for j := range benchBatch {
					binary.BigEndian.PutUint64(val, uint64(i))
					mustOK(b, tx.Put(ks, keys[(i*benchBatch+j)%benchKeys], val))
				}
				mustOK(b, tx.SetOffset("app", "orders", 7, int64(i)))
				b.StartTimer()
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTxnRollback measures undoing the last record of a Txn of
// benchBatch counter updates, the cost of one failed record at the end of a
// batch; building the Txn is outside the timer.
func BenchmarkTxnRollback(b *testing.B) {
	db, ks, keys := benchDB(b, Options{FS: vfs.NewMem()})
	val := make([]byte, 8)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tx := db.NewTxn()
		var m Mark
		for j := range benchBatch {
			if j == benchBatch-1 {
				m = tx.Mark()
			}
			mustOK(b, tx.Put(ks, keys[j], val))
		}
		b.StartTimer()
		if err := tx.RollbackTo(m); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		tx.Discard()
		b.StartTimer()
	}
}

// BenchmarkDBGet measures a committed point read, as the query server makes.
func BenchmarkDBGet(b *testing.B) {
	db, ks, keys := benchDB(b, Options{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := db.Get(ks, keys[i%benchKeys]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadSort sorts one restore chunk's worth of changes (about
// 4 MiB: 250,000 11-byte keys with 8-byte values) that came in no key
// order, as a changelog of a live store does.
//
//	go test -run '^$' -bench '^BenchmarkLoadSort$' ./runtime/internal/state/
func BenchmarkLoadSort(b *testing.B) {
	const n = 250_000
	var src loadBuf
	for i := range n {
		k := fmt.Appendf(nil, "key-%07d", uint64(i)*2654435761%n)
		src.ents = append(src.ents, loadEntry{off: uint32(len(src.arena)), klen: uint32(len(k)), vlen: 8})
		src.arena = append(append(src.arena, k...), "01234567"...)
	}
	buf := loadBuf{arena: src.arena, ents: make([]loadEntry, n)}
	b.ResetTimer()
	for range b.N {
		copy(buf.ents, src.ents)
		buf.sortEntries()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}
