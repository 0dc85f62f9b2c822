package state

import "github.com/streamrt/streamrt/abi"

// Cursors are the store iterators a guest opened during one call, by
// handle, read out in range_next's encoding (abi.AppendEntry). Both the
// batch host and the query host serve store_range with them.
type Cursors struct {
	list []*cursor
}

// cursor adds a one-entry lookahead to an iterator, so that an entry that
// does not fit the guest's buffer is handed out on the next call.
type cursor struct {
	it      *Iter
	pending bool
	k, v    []byte
}

// Open adds it and returns its handle.
func (c *Cursors) Open(it *Iter) int32 {
	c.list = append(c.list, &cursor{it: it})
	return int32(len(c.list) - 1)
}

// Next writes whole entries of iterator h into buf and returns the bytes
// written, or need > len(buf) when the next entry does not fit an empty
// buf; n is 0 when the iterator is exhausted.
func (c *Cursors) Next(h int32, buf []byte) (n, need int, code abi.Code) {
	cur := c.get(h)
	if cur == nil {
		return 0, 0, abi.ErrBadIterator
	}
	for {
		k, v, ok := cur.peek()
		if !ok {
			return n, 0, abi.OK
		}
		size := abi.EntrySize(k, v)
		if n+size > len(buf) {
			if n == 0 {
				return 0, size, abi.OK
			}
			return n, 0, abi.OK
		}
		n = len(abi.AppendEntry(buf[:n], k, v))
		cur.pending = false
	}
}

// Close closes iterator h.
func (c *Cursors) Close(h int32) abi.Code {
	cur := c.get(h)
	if cur == nil {
		return abi.ErrBadIterator
	}
	cur.it.Close()
	c.list[h] = nil
	return abi.OK
}

// CloseAll closes the iterators the guest left open; they live for one
// call.
func (c *Cursors) CloseAll() {
	for i, cur := range c.list {
		if cur != nil {
			cur.it.Close()
			c.list[i] = nil
		}
	}
	c.list = c.list[:0]
}

func (c *Cursors) get(h int32) *cursor {
	if h < 0 || int(h) >= len(c.list) {
		return nil
	}
	return c.list[h]
}

func (cur *cursor) peek() (k, v []byte, ok bool) {
	if cur.pending {
		return cur.k, cur.v, true
	}
	k, v, ok = cur.it.Next()
	if !ok {
		return nil, nil, false
	}
	// The iterator's slices are valid only until its next call; keep copies.
	cur.k, cur.v, cur.pending = append(cur.k[:0], k...), append(cur.v[:0], v...), true
	return cur.k, cur.v, true
}
