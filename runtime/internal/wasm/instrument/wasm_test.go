package instrument

// Helpers that assemble test modules from sections, without a toolchain.

// wasmModule returns the header and the sections.
func wasmModule(sections ...[]byte) []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		out = append(out, s...)
	}
	return out
}

// sec returns section id with the concatenated payload.
func sec(id byte, payload ...[]byte) []byte {
	p := cat(payload...)
	return append(appendU32([]byte{id}, uint32(len(p))), p...)
}

// vec returns a vector: the count, then the items.
func vec(items ...[]byte) []byte { return append(appendU32(nil, uint32(len(items))), cat(items...)...) }

// str returns a name.
func str(s string) []byte { return append(appendU32(nil, uint32(len(s))), s...) }

// fn returns a function body with no locals: size, then code and end.
func fn(code ...byte) []byte {
	b := append([]byte{0}, code...)
	b = append(b, opEnd)
	return append(appendU32(nil, uint32(len(b))), b...)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func u32(v uint32) []byte { return appendU32(nil, v) }

const (
	tI32 = 0x7f
	tI64 = 0x7e
)

// Common sections: types 0 () -> () and 1 (i32) -> (i32); one function of
// type 0; a one-page memory.
var (
	types   = sec(1, vec([]byte{0x60, 0, 0}, []byte{0x60, 1, tI32, 1, tI32}))
	oneFunc = sec(3, vec(u32(0)))
	memory  = sec(5, vec([]byte{0x00, 1}))
)

// exportFunc exports function 0 as "run".
var exportFunc = sec(7, vec(cat(str("run"), []byte{0x00, 0})))

// spinner is a module whose run spins in loop br 0.
func spinner() []byte {
	return wasmModule(types, oneFunc, memory, exportFunc, sec(10, vec(fn(opLoop, blockEmpty, 0x0c, 0, opEnd))))
}

// kitchenSink is a valid module with an instruction of every kind the
// reader knows, for the tests that compile rewritten modules and for the
// fuzzer's corpus. It imports global env.g, so it compiles but does not
// instantiate alone.
func kitchenSink() []byte {
	v128 := func(sub byte, imm ...byte) []byte { return append([]byte{prefixSIMD, sub}, imm...) }
	zeros := make([]byte, 16)
	lanes := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	code := cat(
		[]byte{0x02, tI32, 0x41, 1, opEnd, opDrop},                             // block (result i32)
		[]byte{0x41, 5, 0x02, 1, 0x41, 1, 0x6a, opEnd, opDrop},                 // block (type 1): i32 -> i32
		[]byte{opLoop, blockEmpty, 0x41, 0, 0x0d, 0, opEnd},                    // loop; br_if 0
		[]byte{0x41, 0, opIf, blockEmpty, 0x01, 0x05, 0x01, opEnd},             // if; nop; else; nop
		[]byte{0x02, 0x40, 0x02, 0x40, 0x41, 0, 0x0e, 1, 0, 1, opEnd, opEnd},   // br_table
		[]byte{0x41, 1, 0x41, 2, 0x41, 1, 0x1b, opDrop},                        // select
		[]byte{0x41, 1, 0x41, 2, 0x41, 1, 0x1c, 1, tI32, opDrop},               // select (result i32)
		[]byte{0x41, 0, 0x28, 2, 4, opDrop},                                    // i32.load align=4 offset=4
		[]byte{0x41, 0, 0x42, 0x7f, 0x37, 3, 0},                                // i64.store
		[]byte{0x3f, 0, opDrop, 0x41, 0, opMemoryGrow, 0, opDrop},              // memory.size, memory.grow
		[]byte{0x43, 0, 0, 0x80, 0x3f, opDrop},                                 // f32.const 1
		[]byte{0x44, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, opDrop},                     // f64.const 1
		[]byte{opGlobalGet, 0, opDrop, 0x41, 7, opGlobalSet, 1},                // the imported and the defined global
		[]byte{0x41, 1, 0xc0, opDrop},                                          // i32.extend8_s
		[]byte{0x43, 0, 0, 0, 0, prefixMisc, 0, opDrop},                        // i32.trunc_sat_f32_s
		[]byte{0x41, 0, 0x41, 0, 0x41, 0, prefixMisc, 8, 0, 0},                 // memory.init 0
		[]byte{prefixMisc, 9, 0},                                               // data.drop 0
		[]byte{0x41, 0, 0x41, 0, 0x41, 0, prefixMisc, 10, 0, 0},                // memory.copy
		[]byte{0x41, 0, 0x41, 0, 0x41, 0, prefixMisc, 11, 0},                   // memory.fill
		[]byte{0x41, 0, 0x41, 0, 0x41, 0, prefixMisc, 12, 0, 0},                // table.init 0 0
		[]byte{prefixMisc, 13, 0},                                              // elem.drop 0
		[]byte{0x41, 0, 0x41, 0, 0x41, 0, prefixMisc, 14, 0, 0},                // table.copy 0 0
		[]byte{0xd0, 0x70, 0x41, 0, prefixMisc, 15, 0, opDrop},                 // table.grow 0
		[]byte{prefixMisc, 16, 0, opDrop},                                      // table.size 0
		[]byte{0x41, 0, 0xd0, 0x70, 0x41, 0, prefixMisc, 17, 0},                // table.fill 0
		[]byte{0x41, 0, 0x25, 0, opDrop},                                       // table.get 0
		[]byte{0x41, 0, 0xd2, 0, 0x26, 0},                                      // ref.func 0; table.set 0
		[]byte{0xd0, 0x70, 0xd1, opDrop},                                       // ref.null func; ref.is_null
		[]byte{0x41, 0, opIf, blockEmpty, 0x10, 0, 0x41, 0, 0x11, 0, 0, opEnd}, // call 0; call_indirect
		v128(0x0c, zeros...), v128(0x0c, zeros...), v128(0x0d, lanes...), v128(0x15, 0), []byte{opDrop},
		v128(0x0c, zeros...), v128(0x0c, zeros...), v128(0xae, 1), v128(0x53), []byte{opDrop}, // i32x4.add, whose 0x01 is a nop to wazero
		[]byte{0x41, 0}, v128(0x00, 4, 0), []byte{opDrop}, // v128.load
		[]byte{0x41, 0}, v128(0x5c, 2, 0), []byte{opDrop}, // v128.load32_zero
		[]byte{0x41, 0}, v128(0x0c, zeros...), v128(0x54, 0, 0, 0), []byte{opDrop}, // v128.load8_lane
		[]byte{0x41, 0}, v128(0x0c, zeros...), v128(0x0b, 4, 0), // v128.store
		v128(0x0c, zeros...), []byte{0x41, 0}, v128(0x17, 0), []byte{opDrop}, // i8x16.replace_lane 0
		[]byte{0x0f}, // return
	)
	return wasmModule(
		types,
		sec(2, vec(cat(str("env"), str("g"), []byte{0x03, tI32, 0}))),
		oneFunc,
		sec(4, vec([]byte{0x70, 0x00, 1})),
		sec(5, vec([]byte{0x01, 1, 2})),
		sec(6, vec([]byte{tI32, 1, 0x41, 0, opEnd})),
		exportFunc,
		sec(9, vec([]byte{0x01, 0x00, 1, 0})), // a passive segment holding function 0
		sec(12, u32(1)),
		sec(10, vec(fn(code...))),
		sec(11, vec(cat([]byte{0x01}, str("abc")))), // a passive data segment
	)
}
