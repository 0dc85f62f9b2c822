package state

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Txn is the write set of one task's batch: writes to any number of
// keyspaces plus input checkpoints, applied atomically by Commit. Reads
// through a Txn see its own writes merged over committed data.
//
// A Txn is not safe for concurrent use. It holds the DB open until Commit or
// Discard, so every Txn must end in one of them; `defer t.Discard()` after
// NewTxn is the idiom, as Discard after Commit does nothing.
type Txn struct {
	db *DB
	// b is an indexed batch, so reads can merge it with committed data. It is
	// nil once the Txn has ended.
	b *pebble.Batch
	// err is what calls return once b is nil: ErrTxnDone, or ErrClosed if the
	// DB was closing when the Txn was created.
	err error
	// key is scratch for building full keys, so Get and Put do not allocate.
	key []byte
	// reader serves Get. Pebble's Batch.Get builds and drops an iterator
	// stack per call, with two allocations, at about ten times the cost of
	// re-seeking one kept iterator (1 µs against 0.1 µs on a small database).
	// readerLen is the batch length it last saw, so that its view of the
	// batch is refreshed only after writes.
	reader     *pebble.Iterator
	readerOpts pebble.IterOptions
	readerLen  int
	// iters are the open iterators, invalidated when b is replaced or closed.
	iters []*Iter
	// rollbacks holds the target of every rollback that discarded entries, in
	// order, so RollbackTo can reject a mark that one of them discarded.
	rollbacks []uint32
	// writeOnly is set for a Txn from NewWriteTxn: b has no index.
	writeOnly bool
}

// NewTxn starts a Txn. If the DB is closed or closing, the Txn's calls return
// ErrClosed.
func (db *DB) NewTxn() *Txn {
	if err := db.acquire(); err != nil {
		return &Txn{err: err}
	}
	return &Txn{db: db, b: db.pdb.NewIndexedBatch(), err: ErrTxnDone}
}

// NewWriteTxn starts a Txn that only writes, for loading data in bulk (a
// restore replaying a changelog): it does without the index through which
// a Txn reads its own writes, which costs a skiplist insert per write. Put,
// Delete, SetOffset, Len, Size, Commit and Discard work as on any Txn; Get,
// NewIter and RollbackTo return ErrWriteOnly.
func (db *DB) NewWriteTxn() *Txn {
	if err := db.acquire(); err != nil {
		return &Txn{err: err}
	}
	return &Txn{db: db, b: db.pdb.NewBatch(), err: ErrTxnDone, writeOnly: true}
}

// Get appends the value of key in ks, as this Txn sees it, to dst[:0] and
// returns it; found is false if the key is absent or deleted. Passing the
// previous result as dst lets a caller reuse one buffer, so that Get does not
// allocate once the buffer and the Txn's scratch space have grown. It is safe
// to modify key after Get returns.
//
// Get sees every write made through the Txn, over committed data as of the
// Txn's first Get, renewed by RollbackTo: a task is the only writer of its
// partitions, so only stores it does not own can change meanwhile.
func (t *Txn) Get(ks Keyspace, key, dst []byte) (value []byte, found bool, err error) {
	dst = dst[:0]
	if t.b == nil {
		return dst, false, t.err
	}
	if t.writeOnly {
		return dst, false, ErrWriteOnly
	}
	if err := ks.check(); err != nil {
		return dst, false, err
	}
	t.key = ks.appendKey(t.key[:0], key)
	it, err := t.refreshReader()
	if err != nil {
		return dst, false, fmt.Errorf("get %v: %w", ks, err)
	}
	// The default comparer has no key suffixes, so the prefix is the whole
	// key and a hit is an exact match; SeekPrefixGE also consults the bloom
	// filters that a plain SeekGE would skip.
	if !it.SeekPrefixGE(t.key) {
		if err := it.Error(); err != nil {
			t.closeReader()
			return dst, false, fmt.Errorf("get %v: %w", ks, err)
		}
		return dst, false, nil
	}
	v, err := it.ValueAndErr()
	if err != nil {
		t.closeReader()
		return dst, false, fmt.Errorf("get %v: %w", ks, err)
	}
	return append(dst, v...), true, nil
}

// refreshReader returns the iterator Get seeks, seeing every write so far.
func (t *Txn) refreshReader() (*pebble.Iterator, error) {
	n := t.b.Len()
	switch {
	case t.reader == nil:
		it, err := t.b.NewIter(&t.readerOpts)
		if err != nil {
			return nil, err
		}
		t.reader = it
	case t.readerLen != n:
		t.reader.SetOptions(&t.readerOpts)
	}
	t.readerLen = n
	return t.reader, nil
}

// closeReader closes Get's iterator, before its batch is replaced or closed
// or after it failed; the next Get opens a new one.
func (t *Txn) closeReader() {
	if t.reader != nil {
		// Its errors were reported by the Get that met them.
		_ = t.reader.Close()
		t.reader = nil
	}
}

// Put sets key to value in ks. It copies both, so the caller may reuse them
// as soon as Put returns.
func (t *Txn) Put(ks Keyspace, key, value []byte) error {
	if t.b == nil {
		return t.err
	}
	if err := ks.check(); err != nil {
		return err
	}
	t.key = ks.appendKey(t.key[:0], key)
	if err := t.b.Set(t.key, value, nil); err != nil {
		return fmt.Errorf("put %v: %w", ks, err)
	}
	return nil
}

// Delete deletes key in ks. It copies key, so the caller may reuse it as soon
// as Delete returns.
func (t *Txn) Delete(ks Keyspace, key []byte) error {
	if t.b == nil {
		return t.err
	}
	if err := ks.check(); err != nil {
		return err
	}
	t.key = ks.appendKey(t.key[:0], key)
	if err := t.b.Delete(t.key, nil); err != nil {
		return fmt.Errorf("delete %v: %w", ks, err)
	}
	return nil
}

// SetOffset records next as the next input offset to consume for (group,
// topic, partition), in this Txn, so the checkpoint commits atomically with
// the state it reflects. Group may be empty for a position that belongs to no
// consumer group, such as a changelog's. It returns ErrCheckpoint for a topic
// that is empty, a group or topic over 65535 bytes, or a negative partition or
// offset.
func (t *Txn) SetOffset(group, topic string, partition int32, next int64) error {
	if t.b == nil {
		return t.err
	}
	if next < 0 {
		return fmt.Errorf("%w: group %q topic %q partition %d offset %d is negative", ErrCheckpoint, group, topic, partition, next)
	}
	var err error
	if t.key, err = appendOffsetKey(t.key[:0], group, topic, partition); err != nil {
		return err
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(next))
	if err := t.b.Set(t.key, v[:], nil); err != nil {
		return fmt.Errorf("set offset of group %q topic %q partition %d: %w", group, topic, partition, err)
	}
	return nil
}

// Len returns the number of entries (puts, deletes and offsets) in the Txn.
func (t *Txn) Len() int {
	if t.b == nil {
		return 0
	}
	return int(t.b.Count())
}

// Size returns the size in bytes of the Txn's encoded entries.
func (t *Txn) Size() int {
	if t.b == nil {
		return 0
	}
	return t.b.Len()
}

// Mark is a point in a Txn's sequence of writes, to roll back to.
type Mark struct {
	t *Txn
	// n is the number of entries the batch held when the mark was taken.
	n uint32
	// rollbacks is len(t.rollbacks) when the mark was taken: only rollbacks
	// made after it can discard it.
	rollbacks int
}

// Mark returns the current point in the Txn's writes. Taking a mark costs
// nothing; only RollbackTo does work.
func (t *Txn) Mark() Mark {
	if t.b == nil {
		return Mark{t: t}
	}
	return Mark{t: t, n: t.b.Count(), rollbacks: len(t.rollbacks)}
}

// RollbackTo undoes every Put, Delete and SetOffset made after m was taken;
// writes made before it stay. Marks at or before m's point stay valid, m
// included; later ones are discarded, and RollbackTo returns ErrInvalidMark
// for them and for marks of another Txn.
//
// Pebble batches cannot be truncated in place, because their index would keep
// the discarded entries, so RollbackTo builds a new batch by replaying the
// entries before m: it costs time proportional to the Txn's size, and nothing
// when no entry was added since m. It invalidates the Txn's open iterators.
func (t *Txn) RollbackTo(m Mark) error {
	if t.b == nil {
		return t.err
	}
	if t.writeOnly {
		return ErrWriteOnly
	}
	if m.t != t {
		return fmt.Errorf("%w: mark belongs to another Txn", ErrInvalidMark)
	}
	n := t.b.Count()
	if m.n > n {
		return fmt.Errorf("%w: mark at entry %d, txn has %d", ErrInvalidMark, m.n, n)
	}
	for _, r := range t.rollbacks[m.rollbacks:] {
		if r < m.n {
			return fmt.Errorf("%w: mark at entry %d was discarded by a rollback to entry %d", ErrInvalidMark, m.n, r)
		}
	}
	if m.n == n {
		return nil
	}

	nb := t.db.pdb.NewIndexedBatchWithSize(t.b.Len())
	r := t.b.Reader()
	for i := uint32(0); i < m.n; i++ {
		kind, k, v, ok, err := r.Next()
		if err == nil && !ok {
			err = fmt.Errorf("%w: batch ends at entry %d of %d", ErrCorrupt, i, n)
		}
		if err == nil {
			switch kind {
			case pebble.InternalKeyKindSet:
				err = nb.Set(k, v, nil)
			case pebble.InternalKeyKindDelete:
				err = nb.Delete(k, nil)
			default:
				err = fmt.Errorf("%w: unexpected entry kind %v", ErrCorrupt, kind)
			}
		}
		if err != nil {
			_ = nb.Close()
			return fmt.Errorf("rollback to entry %d of %d: %w", m.n, n, err)
		}
	}
	t.invalidateIters()
	// Closing an uncommitted batch only fails if it was closed already.
	_ = t.b.Close()
	t.b = nb
	t.rollbacks = append(t.rollbacks, m.n)
	return nil
}

// Commit applies the Txn's writes atomically, waiting for an fsync if the DB
// was opened with Options.Sync, and ends the Txn, invalidating its open
// iterators. The Txn ends even if Commit fails.
func (t *Txn) Commit() error {
	if t.b == nil {
		return t.err
	}
	b, n := t.b, t.b.Count()
	t.invalidateIters()
	t.b = nil
	var err error
	if !b.Empty() {
		err = t.db.pdb.Apply(b, t.db.wo)
	}
	_ = b.Close()
	t.db.release()
	if err != nil {
		return fmt.Errorf("commit txn of %d entries: %w", n, err)
	}
	return nil
}

// Discard drops the Txn's writes and ends it, invalidating its open
// iterators. It does nothing if the Txn has already ended.
func (t *Txn) Discard() {
	if t.b == nil {
		return
	}
	t.invalidateIters()
	_ = t.b.Close()
	t.b = nil
	t.db.release()
}

func (t *Txn) invalidateIters() {
	t.closeReader()
	for _, it := range t.iters {
		it.invalidate()
	}
	clear(t.iters)
	t.iters = t.iters[:0]
}

// Iter iterates over one keyspace as a Txn sees it. It is not safe for
// concurrent use.
type Iter struct {
	t  *Txn
	ks Keyspace
	// it is nil once the iterator is closed or invalidated.
	it      *pebble.Iterator
	started bool
	// err is sticky: once set, Next reports the end and Close returns it.
	err error
}

// NewIter returns an iterator over the user keys of ks in [start, end), in
// ascending order, as this Txn sees them: its writes merged over committed
// data. A nil start or end leaves that side unbounded within ks. The caller
// must Close it; Commit and Discard close any left open.
//
// The view is fixed when NewIter is called. Pebble iterators over a batch
// observe the writes it held when they were created, and committed data as
// of that moment, so writes made through the Txn while the iterator is open
// are not visible to it. Several iterators may be open at once. RollbackTo,
// Commit and Discard invalidate open iterators: Next reports the end and
// Close returns ErrIterInvalidated.
func (t *Txn) NewIter(ks Keyspace, start, end []byte) (*Iter, error) {
	if t.b == nil {
		return nil, t.err
	}
	if t.writeOnly {
		return nil, ErrWriteOnly
	}
	if err := ks.check(); err != nil {
		return nil, err
	}
	lower, upper := ks.bounds(start, end)
	it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("iterate %v: %w", ks, err)
	}
	i := &Iter{t: t, ks: ks, it: it}
	t.iters = append(t.iters, i)
	return i, nil
}

// Next advances to the next key and returns it and its value, or ok=false at
// the end of the range or on an error, which Close then returns. key (a user
// key) and value are valid until the next call to Next or Close and must not
// be modified.
func (i *Iter) Next() (key, value []byte, ok bool) {
	if i.it == nil || i.err != nil {
		return nil, nil, false
	}
	var valid bool
	if i.started {
		valid = i.it.Next()
	} else {
		i.started = true
		valid = i.it.First()
	}
	if !valid {
		return nil, nil, false
	}
	v, err := i.it.ValueAndErr()
	if err != nil {
		i.err = fmt.Errorf("iterate %v: %w", i.ks, err)
		return nil, nil, false
	}
	return i.it.Key()[len(i.ks.prefix):], v, true
}

// Close releases the iterator and returns the error that ended iteration
// early, if any: ErrIterInvalidated if the Txn was rolled back, committed or
// discarded while it was open. Closing again returns the same error.
func (i *Iter) Close() error {
	if i.it == nil {
		return i.err
	}
	err := i.it.Close()
	i.it = nil
	if i.err == nil && err != nil {
		i.err = fmt.Errorf("iterate %v: %w", i.ks, err)
	}
	iters := i.t.iters
	for j, o := range iters {
		if o == i {
			last := len(iters) - 1
			iters[j] = iters[last]
			iters[last] = nil
			i.t.iters = iters[:last]
			break
		}
	}
	return i.err
}

func (i *Iter) invalidate() {
	if i.it == nil {
		return
	}
	// The Txn is being rolled back or ended, which outranks any error the
	// Pebble iterator met.
	_ = i.it.Close()
	i.it = nil
	if i.err == nil {
		i.err = fmt.Errorf("%v: %w", i.ks, ErrIterInvalidated)
	}
}
