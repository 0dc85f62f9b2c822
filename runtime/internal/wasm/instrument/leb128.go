package instrument

import "fmt"

// cursor reads a region of a module: buf is the whole module, so that
// positions and errors are offsets into it, and end bounds the region.
// Every read checks the bound: no input makes the reader panic.
type cursor struct {
	buf      []byte
	pos, end int
}

func (c *cursor) fail(format string, args ...any) error {
	return &Error{Offset: c.pos, Reason: fmt.Sprintf(format, args...)}
}

// sub returns a cursor over the next n bytes and moves c past them.
func (c *cursor) sub(n uint32, what string) (cursor, error) {
	if uint64(n) > uint64(c.end-c.pos) {
		return cursor{}, c.fail("%s of %d bytes overruns its container (%d bytes left)", what, n, c.end-c.pos)
	}
	s := cursor{buf: c.buf, pos: c.pos, end: c.pos + int(n)}
	c.pos += int(n)
	return s, nil
}

func (c *cursor) byte() (byte, error) {
	if c.pos >= c.end {
		return 0, c.fail("unexpected end")
	}
	b := c.buf[c.pos]
	c.pos++
	return b, nil
}

func (c *cursor) skip(n int) error {
	if n > c.end-c.pos {
		return c.fail("unexpected end: %d bytes needed, %d left", n, c.end-c.pos)
	}
	c.pos += n
	return nil
}

// The LEB128 readers accept exactly the encodings wazero's leb128 package
// accepts, and consume as many bytes.

// u32 reads an unsigned 32-bit LEB128: at most five bytes, the fifth with
// no bits above the 32nd.
func (c *cursor) u32() (uint32, error) {
	start := c.pos
	var v uint32
	for i := 0; i < 5; i++ {
		b, err := c.byte()
		if err != nil {
			return 0, err
		}
		if b < 0x80 {
			if i == 4 && b&0xf0 != 0 {
				c.pos = start
				return 0, c.fail("u32 overflows 32 bits")
			}
			return v | uint32(b)<<(7*i), nil
		}
		v |= uint32(b&0x7f) << (7 * i)
	}
	c.pos = start
	return 0, c.fail("u32 longer than 5 bytes")
}

// signed skips a signed LEB128 of bits bits: it ends at the first byte
// without the continuation bit, within (bits+6)/7 bytes; in a full-length
// encoding the bits of the last byte above the value's sign bit, up to bit 5,
// repeat the sign. (Bit 6 of that byte goes unchecked, as in wazero.)
func (c *cursor) signed(bits int) error {
	start := c.pos
	max := (bits + 6) / 7
	for n := 1; ; n++ {
		b, err := c.byte()
		if err != nil {
			return err
		}
		if b&0x80 != 0 {
			continue
		}
		if n > max {
			c.pos = start
			return c.fail("s%d longer than %d bytes", bits, max)
		}
		if n == max {
			used := uint(bits - 7*(max-1)) // value bits in the last byte
			sign := b>>(used-1)&1 == 1
			unused := b & (0x3f &^ (1<<used - 1))
			if sign && unused != 0x3f&^(1<<used-1) || !sign && unused != 0 {
				c.pos = start
				return c.fail("s%d overflows %d bits", bits, bits)
			}
		}
		return nil
	}
}

// s33 reads a signed 33-bit LEB128, as block types and heap types are
// written. As in wazero it stops after five bytes even when the fifth has
// its continuation bit set.
func (c *cursor) s33() (int64, error) {
	start := c.pos
	var v int64
	var b byte
	shift, n := 0, 0
	for shift < 35 {
		var err error
		if b, err = c.byte(); err != nil {
			return 0, err
		}
		n++
		v |= int64(b&0x7f) << shift
		shift += 7
		if b&0x80 == 0 {
			break
		}
	}
	const mask33 = 1<<33 - 1
	if shift < 33 && b&0x40 != 0 {
		v |= mask33 << shift
	}
	v &= mask33
	if v&(1<<32) != 0 {
		v -= 1 << 33
	}
	if n == 5 && (v < 0 && b&0x20 == 0 || v >= 0 && b&0x20 != 0) {
		c.pos = start
		return 0, c.fail("s33 overflows 33 bits")
	}
	return v, nil
}

// name skips a length-prefixed name and returns it.
func (c *cursor) name() (string, error) {
	n, err := c.u32()
	if err != nil {
		return "", err
	}
	s, err := c.sub(n, "name")
	if err != nil {
		return "", err
	}
	return string(s.buf[s.pos:s.end]), nil
}

func appendU32(out []byte, v uint32) []byte {
	for v >= 0x80 {
		out = append(out, byte(v)|0x80)
		v >>= 7
	}
	return append(out, byte(v))
}

func appendS32(out []byte, v int32) []byte {
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v == 0 && b&0x40 == 0 || v == -1 && b&0x40 != 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}
