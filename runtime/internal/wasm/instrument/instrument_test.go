package instrument

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Each instruction is read to its end, immediates included, exactly as
// wazero reads it; what wazero's default features refuse is refused.
func TestInstrReadsWhatWazeroReads(t *testing.T) {
	v128 := bytes.Repeat([]byte{0xaa}, 16)
	tests := []struct {
		name string
		in   []byte
		n    int    // bytes the instruction takes
		err  string // or the error
	}{
		{"nop", []byte{0x01}, 1, ""},
		{"i32.add", []byte{0x6a}, 1, ""},
		{"i64.extend32_s", []byte{0xc4}, 1, ""},
		{"block", []byte{0x02, 0x40}, 2, ""},
		{"loop with a result", []byte{0x03, tI32}, 2, ""},
		{"if with a type index", []byte{0x04, 0x80, 0x01}, 3, ""},
		{"block of (ref null func)", []byte{0x02, 0x63, 0x70}, 3, ""},
		{"block type of five bytes, the last continued, as wazero stops", []byte{0x02, 0x80, 0x80, 0x80, 0x80, 0x80}, 6, ""},
		{"block type overflowing 33 bits", []byte{0x02, 0x80, 0x80, 0x80, 0x80, 0x20}, 0, "s33 overflows"},
		{"br", []byte{0x0c, 0x81, 0x01}, 3, ""},
		{"br_table", []byte{0x0e, 0x02, 0x00, 0x01, 0x00}, 5, ""},
		{"br_table cut short", []byte{0x0e, 0x05, 0x00}, 0, "unexpected end"},
		{"call_indirect", []byte{0x11, 0x03, 0x00}, 3, ""},
		{"typed select", []byte{0x1c, 0x01, tI64}, 3, ""},
		{"typed select of (ref null func)", []byte{0x1c, 0x01, 0x63, 0x70}, 4, ""},
		{"typed select with two types", []byte{0x1c, 0x02, tI32, tI32}, 0, "typed select with 2 types"},
		{"local.tee", []byte{0x22, 0x05}, 2, ""},
		{"global.set", []byte{0x24, 0x80, 0x80, 0x01}, 4, ""},
		{"table.get", []byte{0x25, 0x00}, 2, ""},
		{"i32.load", []byte{0x28, 0x02, 0x80, 0x01}, 4, ""},
		{"i64.store32", []byte{0x3e, 0x02, 0x00}, 3, ""},
		{"memory.grow", []byte{0x40, 0x00}, 2, ""},
		{"i32.const -1", []byte{0x41, 0x7f}, 2, ""},
		{"i32.const of five bytes", []byte{0x41, 0xff, 0xff, 0xff, 0xff, 0x07}, 6, ""},
		{"i32.const of six bytes", []byte{0x41, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 0, "s32 longer than 5 bytes"},
		{"i32.const overflowing", []byte{0x41, 0xff, 0xff, 0xff, 0xff, 0x1f}, 0, "s32 overflows"},
		{"i64.const of ten bytes", []byte{0x42, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 11, ""},
		{"f32.const", []byte{0x43, 0, 0, 0x80, 0x3f}, 5, ""},
		{"f64.const", []byte{0x44, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f}, 9, ""},
		{"f64.const cut short", []byte{0x44, 0, 0, 0}, 0, "unexpected end"},
		{"ref.null func", []byte{0xd0, 0x70}, 2, ""},
		{"ref.null of a type index", []byte{0xd0, 0x00}, 0, "typed function references"},
		{"ref.is_null", []byte{0xd1}, 1, ""},
		{"ref.func", []byte{0xd2, 0x05}, 2, ""},
		{"i32.trunc_sat_f32_s", []byte{0xfc, 0x00}, 2, ""},
		{"i64.trunc_sat_f64_u, sub-opcode in two bytes", []byte{0xfc, 0x87, 0x00}, 3, ""},
		{"memory.init", []byte{0xfc, 0x08, 0x01, 0x00}, 4, ""},
		{"data.drop", []byte{0xfc, 0x09, 0x01}, 3, ""},
		{"memory.copy", []byte{0xfc, 0x0a, 0x00, 0x00}, 4, ""},
		{"memory.fill", []byte{0xfc, 0x0b, 0x00}, 3, ""},
		{"table.init", []byte{0xfc, 0x0c, 0x01, 0x00}, 4, ""},
		{"elem.drop", []byte{0xfc, 0x0d, 0x01}, 3, ""},
		{"table.copy", []byte{0xfc, 0x0e, 0x00, 0x00}, 4, ""},
		{"table.grow", []byte{0xfc, 0x0f, 0x00}, 3, ""},
		{"table.size", []byte{0xfc, 0x10, 0x00}, 3, ""},
		{"table.fill", []byte{0xfc, 0x11, 0x00}, 3, ""},
		{"0xfc 18", []byte{0xfc, 0x12}, 0, "0xfc instruction 18"},
		{"v128.load", []byte{0xfd, 0x00, 0x04, 0x00}, 4, ""},
		{"v128.store", []byte{0xfd, 0x0b, 0x04, 0x10}, 4, ""},
		{"v128.const", append([]byte{0xfd, 0x0c}, v128...), 18, ""},
		{"i8x16.shuffle", append([]byte{0xfd, 0x0d}, v128...), 18, ""},
		{"v128.const cut short", []byte{0xfd, 0x0c, 0, 0}, 0, "unexpected end"},
		{"i8x16.swizzle", []byte{0xfd, 0x0e}, 2, ""},
		{"i8x16.extract_lane_s", []byte{0xfd, 0x15, 0x0f}, 3, ""},
		{"f64x2.replace_lane", []byte{0xfd, 0x22, 0x01}, 3, ""},
		{"v128.load8_lane", []byte{0xfd, 0x54, 0x00, 0x00, 0x07}, 5, ""},
		{"v128.store64_lane", []byte{0xfd, 0x5b, 0x03, 0x08, 0x01}, 5, ""},
		{"v128.load32_zero", []byte{0xfd, 0x5c, 0x02, 0x00}, 4, ""},
		{"v128.any_true", []byte{0xfd, 0x53}, 2, ""},
		// A sub-opcode above 0x7f is one byte to wazero; its LEB128
		// continuation byte 0x01 is a nop that follows.
		{"i32x4.add", []byte{0xfd, 0xae, 0x01}, 2, ""},
		{"f64x2.convert_low_i32x4_u", []byte{0xfd, 0xff, 0x01}, 2, ""},
		{"0xfd 0x9a, no instruction", []byte{0xfd, 0x9a, 0x01}, 0, "does not exist"},
		{"atomics", []byte{0xfe, 0x00}, 0, "not enabled"},
		{"return_call", []byte{0x12, 0x00}, 0, "not enabled"},
		{"try_table", []byte{0x1f, 0x40, 0x00}, 0, "not enabled"},
		{"call_ref", []byte{0x14, 0x00}, 0, "not enabled"},
		{"throw", []byte{0x08, 0x00}, 0, "not enabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := append(tc.in, 0x01, 0x01) // what follows must not be read
			c := cursor{buf: in, end: len(in)}
			op, err := c.instr()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if op != tc.in[0] || c.pos != tc.n {
				t.Fatalf("read opcode 0x%02x and %d bytes, want 0x%02x and %d", op, c.pos, tc.in[0], tc.n)
			}
		})
	}
}

// The flag and the countdown are appended after the module's own globals,
// imported ones first; the sections the rewrite needs are created where they
// belong; every function entry and loop head gets the check.
func TestInterruptibleRewrites(t *testing.T) {
	importGlobal := func(name string) []byte { return cat(str("env"), str(name), []byte{0x03, tI32, 0}) }
	global := []byte{tI32, 1, opI32Const, 0, opEnd}
	check := func(flag uint32) []byte { return checkCode(flag, flag+1) }
	globals := func(own ...[]byte) []byte {
		items := append(own, []byte{tI32, 1, opI32Const, 0, opEnd}, append(appendS32([]byte{tI32, 1, opI32Const}, countdown), opEnd))
		return sec(6, vec(items...))
	}
	exportFlag := func(flag uint32, own ...[]byte) []byte {
		return sec(7, vec(append(own, cat(str(InterruptExport), []byte{0x03}, u32(flag)))...))
	}
	run := cat(str("run"), []byte{0x00, 0})
	body := func(parts ...[]byte) []byte {
		b := append([]byte{0}, cat(parts...)...)
		b = append(b, opEnd)
		return append(u32(uint32(len(b))), b...)
	}
	custom := sec(0, str("note"), []byte("kept"))
	tests := []struct {
		name    string
		in, out []byte
	}{
		{
			"a function without loops",
			wasmModule(types, oneFunc, memory, exportFunc, sec(10, vec(fn(0x01)))),
			wasmModule(types, oneFunc, memory, globals(), exportFlag(0, run), sec(10, vec(body(check(0), []byte{0x01})))),
		},
		{
			"nested loops, after their block types",
			wasmModule(types, oneFunc, memory, exportFunc, sec(10, vec(fn(opLoop, blockEmpty, opLoop, tI32, 0x41, 0, opEnd, opDrop, opEnd)))),
			wasmModule(types, oneFunc, memory, globals(), exportFlag(0, run), sec(10, vec(body(
				check(0), []byte{opLoop, blockEmpty}, check(0), []byte{opLoop, tI32}, check(0), []byte{0x41, 0, opEnd, opDrop, opEnd})))),
		},
		{
			"imported and defined globals come before the flag",
			wasmModule(types, sec(2, vec(importGlobal("a"), importGlobal("b"))), oneFunc, memory, sec(6, vec(global)), exportFunc, sec(10, vec(fn()))),
			wasmModule(types, sec(2, vec(importGlobal("a"), importGlobal("b"))), oneFunc, memory, globals(global), exportFlag(3, run), sec(10, vec(body(check(3))))),
		},
		{
			"no memory: one of zero pages",
			wasmModule(types, oneFunc, exportFunc, sec(10, vec(fn()))),
			wasmModule(types, oneFunc, sec(5, []byte{1, 0x01, 0, 0}), globals(), exportFlag(0, run), sec(10, vec(body(check(0))))),
		},
		{
			"an empty memory section gets the memory",
			wasmModule(types, oneFunc, sec(5, vec()), exportFunc, sec(10, vec(fn()))),
			wasmModule(types, oneFunc, sec(5, []byte{1, 0x01, 0, 0}), globals(), exportFlag(0, run), sec(10, vec(body(check(0))))),
		},
		{
			"an imported memory is enough",
			wasmModule(types, sec(2, vec(cat(str("env"), str("m"), []byte{0x02, 0x00, 1}))), oneFunc, exportFunc, sec(10, vec(fn()))),
			wasmModule(types, sec(2, vec(cat(str("env"), str("m"), []byte{0x02, 0x00, 1}))), oneFunc, globals(), exportFlag(0, run), sec(10, vec(body(check(0))))),
		},
		{
			"no export section: one is made, before the code",
			wasmModule(types, oneFunc, memory, sec(10, vec(fn()))),
			wasmModule(types, oneFunc, memory, globals(), exportFlag(0), sec(10, vec(body(check(0))))),
		},
		{
			"custom sections stay where they are",
			wasmModule(custom, types, custom, oneFunc, memory, custom, exportFunc, sec(10, vec(fn())), custom),
			wasmModule(custom, types, custom, oneFunc, memory, custom, globals(), exportFlag(0, run), sec(10, vec(body(check(0)))), custom),
		},
		{
			"no functions",
			wasmModule(types),
			wasmModule(types, sec(5, []byte{1, 0x01, 0, 0}), globals(), exportFlag(0)),
		},
		{
			"a local declaration is kept",
			wasmModule(types, oneFunc, memory, sec(10, vec(cat(u32(4), []byte{1, 2, tI64, opEnd})))),
			wasmModule(types, oneFunc, memory, globals(), exportFlag(0), sec(10, vec(cat(u32(uint32(4+len(check(0)))), []byte{1, 2, tI64}, check(0), []byte{opEnd})))),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Interruptible(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, tc.out) {
				t.Fatalf("got\n% x\nwant\n% x", out, tc.out)
			}
			compiles(t, tc.in)
			compiles(t, out)
		})
	}
}

func compiles(t testing.TB, wasm []byte) {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	if _, err := rt.CompileModule(ctx, wasm); err != nil {
		t.Fatalf("does not compile: %v", err)
	}
}

// A module that already exports the flag's name is refused, and so is every
// module the reader cannot read, with where it stopped.
func TestInterruptibleRefuses(t *testing.T) {
	code := sec(10, vec(fn()))
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"the reserved export", wasmModule(types, oneFunc, memory, sec(7, vec(cat(str(InterruptExport), []byte{0x03, 0}))), code), "exports streamrt_interrupt"},
		{"no header", []byte("#!/bin/sh"), "not a WebAssembly module"},
		{"another version", []byte("\x00asm\x02\x00\x00\x00"), "version"},
		{"a section overrunning the module", append(wasmModule(types), 1, 10, 0), "overruns"},
		{"sections out of order", wasmModule(memory, types), "out of order"},
		{"a section twice", wasmModule(types, types), "out of order"},
		{"a tag section", wasmModule(sec(13, vec())), "tag section"},
		{"an unknown section", wasmModule(sec(14)), "unknown section id 14"},
		{"a function body overrunning its section", wasmModule(types, oneFunc, sec(10, []byte{1, 9, 0, 0x01})), "overruns"},
		{"an instruction cut short", wasmModule(types, oneFunc, sec(10, vec(cat(u32(2), []byte{0, 0x41})))), "unexpected end"},
		{"atomics", wasmModule(types, oneFunc, sec(10, vec(fn(0xfe, 0x03, 0)))), "0xfe"},
		{"a tag import", wasmModule(sec(2, vec(cat(str("env"), str("t"), []byte{0x04, 0, 0})))), "import kind 0x04"},
		{"bytes after the exports", wasmModule(sec(7, vec(), []byte{0})), "export section has 1 bytes after"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Interruptible(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if out != nil {
				t.Fatalf("got a module with the error")
			}
			if tc.name == "the reserved export" {
				if !errors.Is(err, ErrReservedExport) {
					t.Fatalf("%v is not ErrReservedExport", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%v is not an *Error", err)
			}
		})
	}
}

// Every instruction kind survives the rewrite: the module with all of them
// compiles before and after, and the rewrite is the same each time.
func TestInterruptibleKeepsEveryInstruction(t *testing.T) {
	in := kitchenSink()
	out, err := Interruptible(in)
	if err != nil {
		t.Fatal(err)
	}
	compiles(t, in)
	compiles(t, out)
	again, _ := Interruptible(in)
	if !bytes.Equal(out, again) {
		t.Fatal("two rewrites of one module differ")
	}
}

// instantiate runs the rewrite of wasm in a new runtime, with env.entered, a
// host function that closes entered, for the guest to say where it is.
func instantiate(t testing.TB, wasm []byte, entered chan struct{}) (api.Module, api.MutableGlobal) {
	t.Helper()
	ctx := context.Background()
	out, err := Interruptible(wasm)
	if err != nil {
		t.Fatal(err)
	}
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	_, err = rt.NewHostModuleBuilder("env").
		NewFunctionBuilder().WithFunc(func() { close(entered) }).Export("entered").
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rt.Instantiate(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	flag, ok := m.ExportedGlobal(InterruptExport).(api.MutableGlobal)
	if !ok || flag.Type() != api.ValueTypeI32 || flag.Get() != 0 {
		t.Fatalf("the export %s is %v, want a mutable i32 global at 0", InterruptExport, m.ExportedGlobal(InterruptExport))
	}
	return m, flag
}

// spinsAfterEntering is a module whose run calls env.entered, then spins in
// loop br 0, and whose recurse calls env.entered, then recurses without a
// loop: two calls of depth 60, 2^60 calls in all.
func spinsAfterEntering() []byte {
	types := sec(1, vec([]byte{0x60, 0, 0}, []byte{0x60, 1, tI32, 0}))
	entered := sec(2, vec(cat(str("env"), str("entered"), []byte{0x00, 0})))
	funcs := sec(3, vec(u32(0), u32(0), u32(1)))
	exports := sec(7, vec(cat(str("run"), []byte{0x00, 1}), cat(str("recurse"), []byte{0x00, 2})))
	half := []byte{0x20, 0, opI32Const, 1, opI32Sub, 0x10, 3} // f(n - 1)
	return wasmModule(types, entered, funcs, memory, exports, sec(10, vec(
		fn(0x10, 0, opLoop, blockEmpty, 0x0c, 0, opEnd),
		fn(0x10, 0, opI32Const, 60, 0x10, 3),
		fn(cat([]byte{0x20, 0, opI32Eqz, opIf, blockEmpty, 0x0f, opEnd}, half, half)...),
	)))
}

// A guest that spins in a loop, or recurses, traps on unreachable once the
// host sets the flag from another goroutine.
func TestFlagStopsAGuest(t *testing.T) {
	for _, export := range []string{"run", "recurse"} {
		t.Run(export, func(t *testing.T) {
			entered := make(chan struct{})
			m, flag := instantiate(t, spinsAfterEntering(), entered)
			done := make(chan error, 1)
			go func() {
				_, err := m.ExportedFunction(export).Call(context.Background())
				done <- err
			}()
			<-entered
			flag.Set(1)
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "unreachable") {
					t.Fatalf("got %v, want a trap on unreachable", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("the guest was not stopped in a minute")
			}
		})
	}
}

// The guest returns to the Go runtime often enough that a garbage
// collection can stop the world and the goroutine that sets the flag gets to
// run, even on one P. Without that, runtime.GC would wait for the spinning
// guest forever, so the check runs in a child process that the test kills
// when it hangs.
func TestSpinningGuestLetsTheWorldStop(t *testing.T) {
	if os.Getenv("INSTRUMENT_TEST_CHILD") == "1" {
		runtime.GOMAXPROCS(1)
		entered := make(chan struct{})
		m, flag := instantiate(t, spinsAfterEntering(), entered)
		done := make(chan error, 1)
		go func() {
			_, err := m.ExportedFunction("run").Call(context.Background())
			done <- err
		}()
		<-entered
		runtime.GC()
		flag.Set(1)
		if err := <-done; err == nil {
			t.Fatal("the guest returned")
		}
		fmt.Println("stopped")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSpinningGuestLetsTheWorldStop$", "-test.v")
	cmd.Env = append(os.Environ(), "INSTRUMENT_TEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the child hung: a spinning guest blocked the garbage collector or starved the scheduler\n%s", out)
	}
	if err != nil || !strings.Contains(string(out), "stopped") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
