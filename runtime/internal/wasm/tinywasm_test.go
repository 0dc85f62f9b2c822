package wasm

// A minimal Wasm binary writer, so validation tests can make exactly the
// broken modules they need without a toolchain.

type tinyFunc struct {
	export  string // "" = not exported
	params  []byte // value types: 0x7f i32, 0x7e i64
	results []byte
	body    []byte // instructions, without the final end
}

type tinyImport struct {
	module, name    string
	params, results []byte
}

type tinyModule struct {
	imports []tinyImport
	funcs   []tinyFunc
	memory  bool // a memory of one page, exported as "memory"
}

func (m tinyModule) bytes() []byte {
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	var types [][]byte
	typeOf := func(params, results []byte) uint32 {
		t := append([]byte{0x60}, uleb(uint32(len(params)))...)
		t = append(t, params...)
		t = append(t, uleb(uint32(len(results)))...)
		t = append(t, results...)
		types = append(types, t)
		return uint32(len(types) - 1)
	}
	var imports, funcs, exports, code [][]byte
	for _, im := range m.imports {
		e := append(name(im.module), name(im.name)...)
		e = append(e, 0x00)
		e = append(e, uleb(typeOf(im.params, im.results))...)
		imports = append(imports, e)
	}
	for i, f := range m.funcs {
		funcs = append(funcs, uleb(typeOf(f.params, f.results)))
		if f.export != "" {
			e := append(name(f.export), 0x00)
			exports = append(exports, append(e, uleb(uint32(len(m.imports)+i))...))
		}
		body := append([]byte{0x00}, f.body...) // no locals
		body = append(body, 0x0b)
		code = append(code, append(uleb(uint32(len(body))), body...))
	}
	var mems [][]byte
	if m.memory {
		mems = append(mems, []byte{0x00, 0x01})
		exports = append(exports, append(name("memory"), 0x02, 0x00))
	}
	out = append(out, section(1, types)...)
	out = append(out, section(2, imports)...)
	out = append(out, section(3, funcs)...)
	out = append(out, section(5, mems)...)
	out = append(out, section(7, exports)...)
	out = append(out, section(10, code)...)
	return out
}

func section(id byte, items [][]byte) []byte {
	if len(items) == 0 {
		return nil
	}
	body := uleb(uint32(len(items)))
	for _, it := range items {
		body = append(body, it...)
	}
	return append(append([]byte{id}, uleb(uint32(len(body)))...), body...)
}

func name(s string) []byte { return append(uleb(uint32(len(s))), s...) }

func uleb(v uint32) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			out = append(out, b|0x80)
			continue
		}
		return append(out, b)
	}
}

// i32const returns the instruction i32.const v (v small and non-negative).
func i32const(v byte) []byte { return []byte{0x41, v & 0x3f} }

const (
	tI32 = 0x7f
	tI64 = 0x7e
)

// validGuest is the smallest module host ABI v1 accepts: it processes every
// batch by doing nothing.
func validGuest() tinyModule {
	return tinyModule{
		memory: true,
		funcs: []tinyFunc{
			{export: "streamrt_abi_version", results: []byte{tI32}, body: i32const(1)},
			{export: "streamrt_buffer", params: []byte{tI32}, results: []byte{tI32}, body: i32const(16)},
			{export: "streamrt_process", params: []byte{tI32, tI32}, results: []byte{tI32}, body: i32const(0)},
		},
	}
}
