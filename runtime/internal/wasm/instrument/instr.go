package instrument

// Opcodes the rewrite looks for or writes.
const (
	opUnreachable = 0x00
	opLoop        = 0x03
	opIf          = 0x04
	opEnd         = 0x0b
	opDrop        = 0x1a
	opGlobalGet   = 0x23
	opGlobalSet   = 0x24
	opMemoryGrow  = 0x40
	opI32Const    = 0x41
	opI32Eqz      = 0x45
	opI32Sub      = 0x6b
	blockEmpty    = 0x40 // the block type of a block with no parameters or results

	prefixMisc = 0xfc
	prefixSIMD = 0xfd
)

// Type bytes that introduce a reference type with a heap type after them:
// (ref null ht) and (ref ht). wazero decodes them in block types, typed
// selects, locals and globals whatever its features.
const (
	refNullable    = 0x63
	refNonNullable = 0x64
)

// instr moves c over one instruction and returns its opcode.
func (c *cursor) instr() (byte, error) {
	start := c.pos
	op, err := c.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case op <= 0x01, op == 0x05, op == opEnd, op == 0x0f, op == 0x1a, op == 0x1b,
		0x45 <= op && op <= 0xc4, op == 0xd1:
		// No immediates: unreachable, nop, else, end, return, drop, select,
		// the numeric instructions (sign extension included), ref.is_null.
		return op, nil
	case 0x02 <= op && op <= 0x04: // block, loop, if
		return op, c.blockType()
	case op == 0x0c, op == 0x0d, op == 0x10, 0x20 <= op && op <= 0x26, op == 0xd2:
		// br, br_if, call, local.get/set/tee, global.get/set, table.get/set,
		// ref.func: one index.
		_, err = c.u32()
	case op == 0x0e: // br_table
		var n uint32
		if n, err = c.u32(); err != nil {
			return 0, err
		}
		for i := uint64(0); i <= uint64(n) && err == nil; i++ { // n labels and the default
			_, err = c.u32()
		}
	case op == 0x11: // call_indirect: type index, table index
		if _, err = c.u32(); err == nil {
			_, err = c.u32()
		}
	case op == 0x1c: // select with types: wazero takes exactly one, counted in one byte
		var n byte
		if n, err = c.byte(); err == nil && n != 1 {
			c.pos = start
			return 0, c.fail("typed select with %d types; wazero takes 1", n)
		}
		if err == nil {
			err = c.valueType()
		}
	case 0x28 <= op && op <= 0x3e: // loads and stores
		err = c.memArg()
	case op == 0x3f || op == opMemoryGrow: // memory.size, memory.grow: memory index
		_, err = c.u32()
	case op == opI32Const:
		err = c.signed(32)
	case op == 0x42: // i64.const
		err = c.signed(64)
	case op == 0x43: // f32.const
		err = c.skip(4)
	case op == 0x44: // f64.const
		err = c.skip(8)
	case op == 0xd0: // ref.null: a reference type in one byte
		var t byte
		if t, err = c.byte(); err == nil && t != 0x70 && t != 0x6f && t != 0x69 {
			c.pos = start
			return 0, c.fail("ref.null of type 0x%02x needs typed function references", t)
		}
	case op == prefixMisc:
		err = c.misc()
	case op == prefixSIMD:
		err = c.simd()
	default:
		c.pos = start
		return 0, c.fail("instruction 0x%02x is not enabled by wazero's default features", op)
	}
	if err != nil {
		return 0, err
	}
	return op, nil
}

// blockType reads a block type: 0x40, a value type, or a type index, as a
// signed 33-bit number; a reference type is followed by its heap type.
func (c *cursor) blockType() error {
	t, err := c.s33()
	if err != nil {
		return err
	}
	if t == refNullable-0x80 || t == refNonNullable-0x80 {
		_, err = c.s33()
	}
	return err
}

// valueType reads a value type: one byte, and a heap type after the
// reference type prefixes.
func (c *cursor) valueType() error {
	t, err := c.byte()
	if err != nil {
		return err
	}
	if t == refNullable || t == refNonNullable {
		_, err = c.s33()
	}
	return err
}

// memArg reads a load's or store's alignment and offset.
func (c *cursor) memArg() error {
	if _, err := c.u32(); err != nil {
		return err
	}
	_, err := c.u32()
	return err
}

// misc reads the rest of an 0xfc instruction: its sub-opcode, a LEB128
// u32, and the immediates of saturating truncation, bulk memory and table
// instructions.
func (c *cursor) misc() error {
	start := c.pos
	sub, err := c.u32()
	if err != nil {
		return err
	}
	var indices int
	switch sub {
	case 0, 1, 2, 3, 4, 5, 6, 7: // the saturating truncations
	case 9, 11, 13, 15, 16, 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		indices = 1
	case 8, 10, 12, 14: // memory.init, memory.copy, table.init, table.copy
		indices = 2
	default:
		c.pos = start
		return c.fail("0xfc instruction %d is not enabled by wazero's default features", sub)
	}
	for range indices {
		if _, err := c.u32(); err != nil {
			return err
		}
	}
	return nil
}

// simdInvalid marks the SIMD sub-opcodes below 0x100 that are not
// instructions.
var simdInvalid = [256]bool{
	0x9a: true, 0xa2: true, 0xa5: true, 0xa6: true, 0xaf: true, 0xb0: true, 0xb2: true,
	0xb3: true, 0xb4: true, 0xbb: true, 0xc2: true, 0xc5: true, 0xc6: true, 0xcf: true,
	0xd0: true, 0xd2: true, 0xd3: true, 0xd4: true, 0xe2: true, 0xee: true,
}

// simd reads the rest of an 0xfd instruction. The sub-opcode is one byte, as
// wazero reads it (see the package comment).
func (c *cursor) simd() error {
	start := c.pos
	sub, err := c.byte()
	if err != nil {
		return err
	}
	switch {
	case sub <= 0x0b, sub == 0x5c, sub == 0x5d: // loads, v128.store, load32_zero, load64_zero
		return c.memArg()
	case sub == 0x0c, sub == 0x0d: // v128.const, i8x16.shuffle
		return c.skip(16)
	case 0x15 <= sub && sub <= 0x22: // extract_lane, replace_lane
		return c.skip(1)
	case 0x54 <= sub && sub <= 0x5b: // load_lane, store_lane
		if err := c.memArg(); err != nil {
			return err
		}
		return c.skip(1)
	case simdInvalid[sub]:
		c.pos = start
		return c.fail("0xfd instruction 0x%02x does not exist", sub)
	}
	return nil
}
