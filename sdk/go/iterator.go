package streamrt

import (
	"fmt"
	"slices"

	"github.com/streamrt/streamrt/abi"
)

// rangeBufSize is the initial size of an iterator's buffer; a variable so
// that tests can make it small enough to exercise growth.
var rangeBufSize = 4 << 10

// Range returns an iterator over the keys in [start, end) in byte order. A
// nil start or end is unbounded; an empty, non-nil end makes an empty range.
// The iterator sees the store as it was when Range was called.
//
// An iterator is valid only until the handler returns; close it when done
// (the SDK closes any left open when the batch ends).
func (s *Store) Range(start, end []byte) *Iterator {
	it := &Iterator{store: s}
	if !s.opened {
		if err := s.open(); err != nil {
			it.err = err
			return it
		}
	}
	rc := storeRange(s.handle, start, end)
	if rc < 0 {
		it.err = hostError(abi.FuncStoreRange, s.name, rc)
		return it
	}
	it.handle, it.open = rc, true
	it.buf = inst.rangeBuffer()
	inst.iters = append(inst.iters, it)
	return it
}

// Prefix returns an iterator over the keys that start with p, in byte order.
// An empty or nil p iterates over the whole store.
func (s *Store) Prefix(p []byte) *Iterator {
	if len(p) == 0 {
		return s.Range(nil, nil)
	}
	inst.bound = prefixEnd(inst.bound[:0], p)
	if len(inst.bound) == 0 {
		// p is all 0xff bytes: no key after the prefix exists.
		return s.Range(p, nil)
	}
	return s.Range(p, inst.bound)
}

// prefixEnd appends the smallest key greater than every key with prefix p,
// or nothing when there is none.
func prefixEnd(dst, p []byte) []byte {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0xff {
			dst = append(dst, p[:i]...)
			return append(dst, p[i]+1)
		}
	}
	return dst
}

// Iterator walks a range of a store. It fetches many entries per call to
// the host into a buffer that it reuses and grows when an entry does not
// fit.
//
//	it := counts.Prefix([]byte("user/"))
//	defer it.Close()
//	for it.Next() {
//		use(it.Key(), it.Value())
//	}
//	if err := it.Err(); err != nil { ... }
type Iterator struct {
	store      *Store
	handle     int32
	open       bool   // the host iterator is open
	buf        []byte // entries as range_next wrote them
	rest       []byte // the part of buf not yet read
	key, value []byte
	err        error
}

// Next advances to the next entry and reports whether there is one. It
// returns false at the end of the range, on error (see Err) and after Close.
func (it *Iterator) Next() bool {
	it.key, it.value = nil, nil
	for len(it.rest) == 0 {
		if !it.open || it.err != nil {
			return false
		}
		n := rangeNext(it.handle, it.buf)
		switch {
		case n < 0:
			it.fail(hostError(abi.FuncRangeNext, it.store.name, n))
			return false
		case n == 0:
			it.release(true)
			return false
		case int(n) > cap(it.buf):
			it.buf = make([]byte, 0, max(int(n), 2*cap(it.buf)))
		default:
			it.rest = it.buf[:n]
		}
	}
	k, v, rest, err := abi.NextEntry(it.rest)
	if err != nil {
		it.fail(fmt.Errorf("streamrt: store %q: range_next wrote a malformed entry: %w", it.store.name, err))
		return false
	}
	it.key, it.value, it.rest = k, v, rest
	return true
}

// Key returns the current entry's key. It is valid until the next call to
// Next or Close; copy it to keep it.
func (it *Iterator) Key() []byte { return it.key }

// Value returns the current entry's value, valid until the next call to Next
// or Close.
func (it *Iterator) Value() []byte { return it.value }

// Err returns the error that ended the iteration, if any.
func (it *Iterator) Err() error { return it.err }

// Close releases the iterator. It is safe to call more than once and after
// the iteration ended; it returns the host's error, if any.
func (it *Iterator) Close() error {
	it.key, it.value, it.rest = nil, nil, nil
	if !it.open {
		return nil
	}
	rc := rangeClose(it.handle)
	it.release(false)
	if rc < 0 {
		return hostError(abi.FuncRangeClose, it.store.name, rc)
	}
	return nil
}

func (it *Iterator) fail(err error) {
	it.err = err
	it.rest = nil
	if it.open {
		rangeClose(it.handle)
		it.release(false)
	}
}

// release forgets the host iterator and recycles the buffer. An exhausted
// iterator is closed too, so that it frees host resources early.
func (it *Iterator) release(exhausted bool) {
	if exhausted {
		rangeClose(it.handle)
	}
	it.open = false
	inst.bufs = append(inst.bufs, it.buf[:0])
	it.buf = nil
	if i := slices.Index(inst.iters, it); i >= 0 {
		inst.iters = slices.Delete(inst.iters, i, i+1)
	}
}

// rangeBuffer returns a recycled iterator buffer or a new one.
func (in *instance) rangeBuffer() []byte {
	if n := len(in.bufs); n > 0 {
		b := in.bufs[n-1]
		in.bufs = in.bufs[:n-1]
		return b
	}
	return make([]byte, 0, rangeBufSize)
}

// endIterators runs when a batch ends: the host closes the iterators left
// open, so the SDK forgets them, lest a later call reach a handle the host
// has since given to another iterator.
func (in *instance) endIterators() {
	for _, it := range in.iters {
		it.open = false
		it.rest, it.key, it.value = nil, nil, nil
		if it.err == nil {
			it.err = ErrIteratorClosed
		}
		in.bufs = append(in.bufs, it.buf[:0])
		it.buf = nil
	}
	clear(in.iters)
	in.iters = in.iters[:0]
}
