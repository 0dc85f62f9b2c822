package state

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ingestDir is the directory, inside the Pebble directory, where a Load
// writes its sstables before Pebble links them into the database. Pebble
// ignores names it did not make; Open empties it of tables a crash left.
const ingestDir = "ingest"

// Load writes a long stream of changes to one keyspace, such as a changelog
// being replayed, as sorted sstables that Pebble ingests, instead of through
// batches. A batch is written twice before it reaches an sstable, to the WAL
// and then by a memtable flush; an ingested table is written once, and when
// its keys do not overlap data already in the database (a store replayed in
// key order, or one chunk's worth of store into an empty keyspace) it goes
// straight to the bottom level, where no compaction rewrites it.
//
// Changes are buffered until Commit, which writes them in the background
// while the next ones are buffered. Within one Commit the last change to a
// key wins, as in a batch. Committed changes shadow every older write to
// their keys, deletes included: Pebble gives an ingested table a sequence
// number above everything already in the database, and places it above any
// level that holds those keys.
//
// A Load is not safe for concurrent use, and nothing else may write its
// keyspace while it is open. It holds the DB open, and up to two buffers of
// changes in memory, until Close.
type Load struct {
	db *DB
	ks Keyspace
	// err is what calls return once the Load is closed, or ErrClosed if the
	// DB was closing when the Load was created. Once a commit fails, err is
	// its error and sticks.
	err error
	// cur buffers the changes since the last Commit; spare is the other
	// buffer, nil while the commit in flight holds it.
	cur, spare *loadBuf
	// done receives the result of the commit in flight; nil if none is.
	done chan error
}

// loadBuf is one Commit's worth of changes.
type loadBuf struct {
	// arena holds the keys and values back to back; ents index it in the
	// order the changes were made.
	arena []byte
	ents  []loadEntry
	// sorted is true while every key is above the one before, as it is when
	// a store is replayed in key order; the commit then need not sort.
	sorted bool
	// checkpoint and offset are the key and value of the checkpoint to write
	// once the changes are ingested, if hasCheckpoint.
	checkpoint    []byte
	offset        [8]byte
	hasCheckpoint bool
	// key is scratch for full keys, tmp for sorting.
	key []byte
	tmp []loadEntry
}

// loadEntry is one buffered change: its key at arena[off:off+klen] and, for
// a put, its value right after. vlen is -1 for a delete. sortKey holds eight
// bytes of the key for sorting (see sortEntries).
type loadEntry struct {
	sortKey uint64
	off     uint32
	klen    uint32
	vlen    int32
}

func (b *loadBuf) reset() {
	b.arena = b.arena[:0]
	b.ents = b.ents[:0]
	b.sorted = true
	b.hasCheckpoint = false
}

// NewLoad starts a Load into ks. If the DB is closed or closing, the Load's
// calls return ErrClosed.
func (db *DB) NewLoad(ks Keyspace) (*Load, error) {
	if err := ks.check(); err != nil {
		return nil, err
	}
	if err := db.acquire(); err != nil {
		return &Load{err: err}, nil
	}
	return &Load{db: db, ks: ks, cur: &loadBuf{sorted: true}, spare: &loadBuf{sorted: true}}, nil
}

// Put buffers a write of value to key. It copies both, so the caller may
// reuse them as soon as Put returns.
func (l *Load) Put(key, value []byte) error { return l.add(key, value, false) }

// Delete buffers a delete of key. It copies key.
func (l *Load) Delete(key []byte) error { return l.add(key, nil, true) }

func (l *Load) add(key, value []byte, del bool) error {
	if l.err != nil {
		return l.err
	}
	b := l.cur
	off := len(b.arena)
	if off+len(key)+len(value) > math.MaxUint32 || len(value) > math.MaxInt32 {
		return fmt.Errorf("load into %v: %d bytes buffered, commit first", l.ks, off)
	}
	if b.sorted && len(b.ents) > 0 {
		prev := b.ents[len(b.ents)-1]
		b.sorted = bytes.Compare(b.arena[prev.off:prev.off+prev.klen], key) < 0
	}
	e := loadEntry{off: uint32(off), klen: uint32(len(key)), vlen: int32(len(value))}
	if del {
		e.vlen = -1
	}
	b.arena = append(b.arena, key...)
	b.arena = append(b.arena, value...)
	b.ents = append(b.ents, e)
	return nil
}

// SetOffset buffers a checkpoint, as Txn.SetOffset does, for Commit to write
// once the changes buffered with it are in the database.
func (l *Load) SetOffset(group, topic string, partition int32, next int64) error {
	if l.err != nil {
		return l.err
	}
	if next < 0 {
		return fmt.Errorf("%w: group %q topic %q partition %d offset %d is negative", ErrCheckpoint, group, topic, partition, next)
	}
	b := l.cur
	k, err := appendOffsetKey(b.checkpoint[:0], group, topic, partition)
	if err != nil {
		return err
	}
	b.checkpoint, b.hasCheckpoint = k, true
	binary.BigEndian.PutUint64(b.offset[:], uint64(next))
	return nil
}

// Size returns the bytes of keys and values buffered since the last Commit.
func (l *Load) Size() int {
	if l.cur == nil {
		return 0
	}
	return len(l.cur.arena)
}

// Commit starts writing the changes buffered since the last Commit as one
// sstable, for Pebble to ingest, followed by the buffered checkpoint, if
// any, in a batch of its own. It first waits for the previous Commit to
// finish, and returns that one's error if it failed: commits apply in
// order, and none starts after one has failed. Wait waits for this one.
//
// A Commit's two writes are not atomic, but their order is enough for a
// checkpoint of a replay: the table is synced and in the database before
// the checkpoint is written, so a crash leaves the checkpoint at or behind
// the data. Behind, the changes since the old checkpoint are applied again,
// which leaves the same state, since each change sets or deletes a key
// outright.
func (l *Load) Commit(ctx context.Context) error {
	if err := l.Wait(); err != nil {
		return err
	}
	b := l.cur
	l.cur, l.spare = l.spare, nil
	done := make(chan error, 1)
	l.done = done
	go func() { done <- l.commit(ctx, b) }()
	return nil
}

// Wait waits for the commit in flight, if any, and returns its error, or
// the error of an earlier failed commit.
func (l *Load) Wait() error {
	if l.err != nil {
		return l.err
	}
	if l.done == nil {
		return nil
	}
	err := <-l.done
	l.done = nil
	if err != nil {
		l.err = err
		return err
	}
	return nil
}

// commit applies b and gives it back as the spare buffer.
func (l *Load) commit(ctx context.Context, b *loadBuf) error {
	defer func() {
		b.reset()
		l.spare = b
	}()
	if len(b.ents) > 0 {
		if err := l.ingest(ctx, b); err != nil {
			return fmt.Errorf("load %d changes into %v: %w", len(b.ents), l.ks, err)
		}
	}
	if b.hasCheckpoint {
		if err := l.db.pdb.Set(b.checkpoint, b.offset[:], l.db.wo); err != nil {
			return fmt.Errorf("load into %v: set checkpoint: %w", l.ks, err)
		}
	}
	return nil
}

// Close waits for the commit in flight, drops any changes not committed and
// ends the Load. Calls after Close return ErrTxnDone. Closing again does
// nothing.
func (l *Load) Close() {
	if l.db == nil {
		return
	}
	// A caller that cares about the commit's error calls Wait; Close only
	// makes sure the commit is done with the DB.
	_ = l.Wait()
	l.db.release()
	l.db, l.cur, l.spare = nil, nil, nil
	l.err = ErrTxnDone
}

// ingest writes b as an sstable, last change per key, and ingests it.
func (l *Load) ingest(ctx context.Context, b *loadBuf) error {
	ents := b.ents
	if !b.sorted {
		b.sortEntries()
	}
	db := l.db
	path := db.fs.PathJoin(db.ingestPath, strconv.FormatUint(db.ingestSeq.Add(1), 10)+".sst")
	f, err := db.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), db.writerOpts)
	b.key = append(b.key[:0], l.ks.prefix...)
	for i, e := range ents {
		k := b.arena[e.off : e.off+e.klen]
		// Sorted as they came, keys are distinct; sorted by sortEntries, the
		// first change to each key is the one to keep.
		if !b.sorted && i > 0 && e.sortKey == ents[i-1].sortKey &&
			bytes.Equal(k, b.arena[ents[i-1].off:ents[i-1].off+ents[i-1].klen]) {
			continue
		}
		b.key = append(b.key[:len(l.ks.prefix)], k...)
		if e.vlen < 0 {
			err = w.Delete(b.key)
		} else {
			v := b.arena[e.off+e.klen : e.off+e.klen+uint32(e.vlen)]
			err = w.Set(b.key, v)
		}
		if err != nil {
			break
		}
	}
	// Close syncs the file, as Pebble requires of a table it ingests.
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// On success Pebble has linked the table and removed path.
		err = db.pdb.Ingest(ctx, []string{path})
	}
	if err != nil {
		_ = db.fs.Remove(path) // the error worth reporting is err
		return err
	}
	return nil
}

// sortEntries sorts b.ents by key, and the changes to one key latest first,
// so that the first of each key is the one that wins. Comparing keys through
// the arena was the larger part of a restore's sorting time, so each entry
// first gets as its sortKey the eight bytes of its key that follow the
// prefix every key in b shares (big-endian, zero-padded); most comparisons
// end there.
func (b *loadBuf) sortEntries() {
	key := func(e loadEntry) []byte { return b.arena[e.off : e.off+e.klen] }
	first := key(b.ents[0])
	common := len(first)
	for _, e := range b.ents[1:] {
		k := key(e)
		n := min(common, len(k))
		i := 0
		for i < n && k[i] == first[i] {
			i++
		}
		common = i
	}
	for i := range b.ents {
		var w [8]byte
		k := key(b.ents[i])
		copy(w[:], k[common:])
		b.ents[i].sortKey = binary.BigEndian.Uint64(w[:])
	}
	b.radixSort()
	// Entries with equal sort keys are in arena order; sort each such run
	// by the rest of the key, latest change first.
	for i := 0; i < len(b.ents); {
		j := i + 1
		for j < len(b.ents) && b.ents[j].sortKey == b.ents[i].sortKey {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(b.ents[i:j], func(x, y loadEntry) int {
				if c := bytes.Compare(key(x)[common:], key(y)[common:]); c != 0 {
					return c
				}
				return cmp.Compare(y.off, x.off)
			})
		}
		i = j
	}
}

// radixSort orders b.ents by sortKey, stably: a least-significant-byte
// radix sort, which skips the byte positions where every key agrees. It
// costs a few passes over the entries where a comparison sort of a chunk's
// quarter-million entries made eighteen levels of comparisons.
func (b *loadBuf) radixSort() {
	if cap(b.tmp) < len(b.ents) {
		b.tmp = make([]loadEntry, len(b.ents))
	}
	src, dst := b.ents, b.tmp[:len(b.ents)]
	for shift := 0; shift < 64; shift += 8 {
		var count [257]int
		for _, e := range src {
			count[(e.sortKey>>shift)&0xff+1]++
		}
		if count[(src[0].sortKey>>shift)&0xff+1] == len(src) {
			continue // every key has the same byte here
		}
		for i := 1; i < len(count); i++ {
			count[i] += count[i-1]
		}
		for _, e := range src {
			d := (e.sortKey >> shift) & 0xff
			dst[count[d]] = e
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &b.ents[0] {
		copy(b.ents, src)
	}
}
