package instrument

// Section ids.
const (
	secCustom    = 0
	secImport    = 2
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secCode      = 10
	secDataCount = 12
	secTag       = 13
)

// rank orders the sections that are not custom, which must appear at most
// once each, in this order. The data count section (12) sits between the
// element (9) and code (10) sections.
func rank(id byte) int {
	if id == secDataCount {
		return 2*9 + 1
	}
	return 2 * int(id)
}

// section is one section of the input: its id, where it starts (at the id
// byte) and where its payload starts and ends.
type section struct {
	id                  byte
	start, payload, end int
}

// module is what the rewrite needs to know about its input.
type module struct {
	buf             []byte
	sections        []section
	importedGlobals uint32
	hasMemory       bool
	globals         uint32 // defined ones
	bodies          []body
}

// body is one function body: where it starts (after its size), where its
// instructions start (after its locals) and ends, and where each loop's
// block type ends, which is where a loop body's check goes.
type body struct {
	start, code, end int
	loops            []int
}

func parseModule(buf []byte) (*module, error) {
	c := &cursor{buf: buf, end: len(buf)}
	if len(buf) < 8 || string(buf[:4]) != "\x00asm" {
		return nil, c.fail("not a WebAssembly module (no \\0asm header)")
	}
	if string(buf[4:8]) != "\x01\x00\x00\x00" {
		c.pos = 4
		return nil, c.fail("WebAssembly version %x, want 1", buf[4:8])
	}
	c.pos = 8
	m := &module{buf: buf}
	last := 0
	for c.pos < c.end {
		start := c.pos
		id, _ := c.byte()
		size, err := c.u32()
		if err != nil {
			return nil, err
		}
		payload, err := c.sub(size, "section")
		if err != nil {
			return nil, err
		}
		switch {
		case id == secTag:
			c.pos = start
			return nil, c.fail("tag section needs exception handling, which wazero's default features lack")
		case id > secDataCount:
			c.pos = start
			return nil, c.fail("unknown section id %d", id)
		case id != secCustom && rank(id) <= last:
			c.pos = start
			return nil, c.fail("section %d out of order", id)
		case id != secCustom:
			last = rank(id)
		}
		m.sections = append(m.sections, section{id: id, start: start, payload: payload.pos, end: payload.end})
		switch id {
		case secImport:
			err = m.readImports(&payload)
		case secMemory:
			var n uint32
			n, err = payload.u32()
			m.hasMemory = m.hasMemory || n > 0
		case secGlobal:
			m.globals, err = payload.u32()
		case secExport:
			err = readExports(&payload)
		case secCode:
			err = m.readCode(&payload)
		}
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// readImports counts the imported globals, which come first in the global
// index space, and notes an imported memory.
func (m *module) readImports(c *cursor) error {
	n, err := c.u32()
	if err != nil {
		return err
	}
	for range n {
		if _, err := c.name(); err != nil {
			return err
		}
		if _, err := c.name(); err != nil {
			return err
		}
		kind, err := c.byte()
		if err != nil {
			return err
		}
		switch kind {
		case 0x00: // function: type index
			_, err = c.u32()
		case 0x01:
			err = c.tableType()
		case 0x02:
			m.hasMemory = true
			err = c.limits()
		case 0x03:
			m.importedGlobals++
			if err = c.valueType(); err == nil {
				_, err = c.byte() // mutability
			}
		default:
			c.pos--
			return c.fail("import kind 0x%02x is not enabled by wazero's default features", kind)
		}
		if err != nil {
			return err
		}
	}
	return c.done("import section")
}

// tableType reads a table type as wazero does: an optional 0x40 0x00 prefix
// announcing an initialiser, the element type, limits, and the initialiser.
func (c *cursor) tableType() error {
	t, err := c.byte()
	if err != nil {
		return err
	}
	init := t == 0x40
	if init {
		if _, err := c.byte(); err != nil {
			return err
		}
		if t, err = c.byte(); err != nil {
			return err
		}
	}
	if t == refNullable || t == refNonNullable {
		if _, err := c.s33(); err != nil {
			return err
		}
	}
	if err := c.limits(); err != nil {
		return err
	}
	if init {
		return c.constExpr()
	}
	return nil
}

// limits reads a table's or memory's limits: a flag byte, the minimum, and
// the maximum when the flag's low bit is set.
func (c *cursor) limits() error {
	flag, err := c.byte()
	if err != nil {
		return err
	}
	if flag > 3 {
		c.pos--
		return c.fail("limits flag 0x%02x", flag)
	}
	if _, err := c.u32(); err != nil {
		return err
	}
	if flag&1 != 0 {
		_, err = c.u32()
	}
	return err
}

// constExpr skips a constant expression, up to and including its end.
func (c *cursor) constExpr() error {
	for {
		start := c.pos
		op, err := c.byte()
		if err != nil {
			return err
		}
		switch op {
		case opEnd:
			return nil
		case opI32Const:
			err = c.signed(32)
		case 0x42:
			err = c.signed(64)
		case 0x43:
			err = c.skip(4)
		case 0x44:
			err = c.skip(8)
		case opGlobalGet, 0xd2: // global.get, ref.func
			_, err = c.u32()
		case 0xd0: // ref.null: a type byte, or a type index
			var t byte
			if t, err = c.byte(); err == nil && t != 0x70 && t != 0x6f && t != 0x69 {
				c.pos--
				_, err = c.u32()
			}
		case prefixSIMD:
			var sub byte
			if sub, err = c.byte(); err == nil && sub != 0x0c {
				c.pos = start
				return c.fail("0xfd instruction 0x%02x in a constant expression", sub)
			}
			if err == nil {
				err = c.skip(16)
			}
		default:
			c.pos = start
			return c.fail("instruction 0x%02x in a constant expression", op)
		}
		if err != nil {
			return err
		}
	}
}

// readExports refuses a module that already exports InterruptExport.
func readExports(c *cursor) error {
	n, err := c.u32()
	if err != nil {
		return err
	}
	for range n {
		name, err := c.name()
		if err != nil {
			return err
		}
		if name == InterruptExport {
			return ErrReservedExport
		}
		if _, err := c.byte(); err != nil {
			return err
		}
		if _, err := c.u32(); err != nil {
			return err
		}
	}
	return c.done("export section")
}

// readCode finds the loops of every function body.
func (m *module) readCode(c *cursor) error {
	n, err := c.u32()
	if err != nil {
		return err
	}
	for range n {
		size, err := c.u32()
		if err != nil {
			return err
		}
		fc, err := c.sub(size, "function body")
		if err != nil {
			return err
		}
		b := body{start: fc.pos, end: fc.end}
		locals, err := fc.u32()
		if err != nil {
			return err
		}
		for range locals {
			if _, err := fc.u32(); err != nil {
				return err
			}
			if err := fc.valueType(); err != nil {
				return err
			}
		}
		b.code = fc.pos
		for fc.pos < fc.end {
			op, err := fc.instr()
			if err != nil {
				return err
			}
			if op == opLoop {
				b.loops = append(b.loops, fc.pos)
			}
		}
		m.bodies = append(m.bodies, b)
	}
	return c.done("code section")
}

// done checks that c's region was read to its end.
func (c *cursor) done(what string) error {
	if c.pos != c.end {
		return c.fail("%s has %d bytes after its entries", what, c.end-c.pos)
	}
	return nil
}

// rewrite assembles the output: the input's sections in order, with the
// global, export and code sections rewritten, and those of the three that
// the input lacks (and a memory section when it has no memory) inserted
// where they belong.
func (m *module) rewrite() []byte {
	flag := m.importedGlobals + m.globals
	check := checkCode(flag, flag+1)
	grow := len(check) * len(m.bodies)
	for _, b := range m.bodies {
		grow += len(check) * len(b.loops)
	}
	out := make([]byte, 0, len(m.buf)+grow+64)
	out = append(out, m.buf[:8]...)
	var pending []byte
	if !m.hasMemory && !m.has(secMemory) {
		pending = append(pending, secMemory)
	}
	for _, id := range []byte{secGlobal, secExport} {
		if !m.has(id) {
			pending = append(pending, id)
		}
	}
	for i := range m.sections {
		s := &m.sections[i]
		for len(pending) > 0 && s.id != secCustom && rank(pending[0]) < rank(s.id) {
			out = m.appendSection(out, pending[0], nil, flag, check)
			pending = pending[1:]
		}
		out = m.appendSection(out, s.id, s, flag, check)
	}
	for _, id := range pending {
		out = m.appendSection(out, id, nil, flag, check)
	}
	return out
}

func (m *module) has(id byte) bool {
	for _, s := range m.sections {
		if s.id == id {
			return true
		}
	}
	return false
}

// appendSection appends section id to out: the input's section s, rewritten
// when it is one the rewrite extends, or a new one when s is nil.
func (m *module) appendSection(out []byte, id byte, s *section, flag uint32, check []byte) []byte {
	var own []byte // the input's payload: its entry count, then its entries
	if s != nil {
		own = m.buf[s.payload:s.end]
	}
	var p []byte
	switch id {
	case secMemory:
		if m.hasMemory {
			return append(out, m.buf[s.start:s.end]...)
		}
		p = []byte{1, 0x01, 0, 0} // one memory of zero pages, at most zero
	case secGlobal:
		n, entries := split(own)
		p = append(appendU32(nil, n+2), entries...)
		p = append(p, 0x7f, 1, opI32Const, 0, opEnd) // the flag: a mutable i32, 0
		p = appendS32(append(p, 0x7f, 1, opI32Const), countdown)
		p = append(p, opEnd)
	case secExport:
		n, entries := split(own)
		p = append(appendU32(nil, n+1), entries...)
		p = appendU32(p, uint32(len(InterruptExport)))
		p = append(p, InterruptExport...)
		p = appendU32(append(p, 0x03), flag) // a global
	case secCode:
		p = m.code(make([]byte, 0, s.end-s.payload+len(check)*8), own, check)
	default:
		return append(out, m.buf[s.start:s.end]...)
	}
	out = appendU32(append(out, id), uint32(len(p)))
	return append(out, p...)
}

// split returns the entry count at the start of a section's payload and the
// entries after it; a nil payload has none.
func split(payload []byte) (uint32, []byte) {
	if payload == nil {
		return 0, nil
	}
	c := cursor{buf: payload, end: len(payload)}
	n, _ := c.u32() // parseModule read it already
	return n, payload[c.pos:]
}

// code appends the rewritten code section: each body gets a check first and
// one after each loop's block type, and its size grows to match.
func (m *module) code(out, own []byte, check []byte) []byte {
	n, _ := split(own)
	out = appendU32(out, n)
	for _, b := range m.bodies {
		size := b.end - b.start + len(check)*(1+len(b.loops))
		out = appendU32(out, uint32(size))
		out = append(out, m.buf[b.start:b.code]...)
		out = append(out, check...)
		at := b.code
		for _, l := range b.loops {
			out = append(out, m.buf[at:l]...)
			out = append(out, check...)
			at = l
		}
		out = append(out, m.buf[at:b.end]...)
	}
	return out
}

// checkCode returns the check inserted at each function entry and loop head:
//
//	global.get $flag
//	if
//	  unreachable
//	end
//	global.get $countdown
//	i32.const 1
//	i32.sub
//	global.set $countdown
//	global.get $countdown
//	i32.eqz
//	if
//	  i32.const 0
//	  memory.grow 0
//	  drop
//	  i32.const 65536
//	  global.set $countdown
//	end
func checkCode(flag, countdownGlobal uint32) []byte {
	get := func(out []byte, g uint32) []byte { return appendU32(append(out, opGlobalGet), g) }
	set := func(out []byte, g uint32) []byte { return appendU32(append(out, opGlobalSet), g) }
	var out []byte
	out = get(out, flag)
	out = append(out, opIf, blockEmpty, opUnreachable, opEnd)
	out = get(out, countdownGlobal)
	out = append(out, opI32Const, 1, opI32Sub)
	out = set(out, countdownGlobal)
	out = get(out, countdownGlobal)
	out = append(out, opI32Eqz, opIf, blockEmpty, opI32Const, 0, opMemoryGrow, 0, opDrop)
	out = appendS32(append(out, opI32Const), countdown)
	out = set(out, countdownGlobal)
	return append(out, opEnd)
}
