package instrument

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tetratelabs/wazero"
)

// FuzzInterruptible checks, for any input, that Interruptible does not
// panic and gives the same answer twice; and, for an input wazero compiles,
// that it is rewritten (unless it exports the reserved name) and that the
// rewrite compiles too. wazero is asked only about inputs whose numbers are
// all small (see smallNumbers).
//
//	go test -run '^$' -fuzz FuzzInterruptible ./runtime/internal/wasm/instrument/
func FuzzInterruptible(f *testing.F) {
	for _, seed := range [][]byte{
		spinner(),
		spinsAfterEntering(),
		kitchenSink(),
		wasmModule(types),
		wasmModule(types, oneFunc, sec(5, vec()), exportFunc, sec(10, vec(fn(0x02, 0x63, 0x70, 0xd0, 0x70, opEnd, opDrop)))),
		wasmModule(types, oneFunc, memory, sec(7, vec(cat(str(InterruptExport), []byte{0x00, 0}))), sec(10, vec(fn()))),
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Interruptible(in)
		again, err2 := Interruptible(in)
		if !bytes.Equal(out, again) || (err == nil) != (err2 == nil) {
			t.Fatal("two rewrites of one input differ")
		}
		var e *Error
		if err != nil && !errors.Is(err, ErrReservedExport) && !errors.As(err, &e) {
			t.Fatalf("error %v is neither ErrReservedExport nor an *Error", err)
		}
		if !smallNumbers(in) || compile(ctx, rt, in) != nil {
			return // wazero refuses it too; any refusal will do
		}
		if errors.Is(err, ErrReservedExport) {
			return
		}
		if err != nil {
			t.Fatalf("wazero compiles the input, but it is not rewritten: %v", err)
		}
		if err := compile(ctx, rt, out); err != nil {
			t.Fatalf("wazero compiles the input, but not its rewrite: %v", err)
		}
	})
}

// compile compiles wasm and closes it. wazero 1.12's validator panics on
// some malformed modules (testdata/fuzz holds one: a function whose type
// index is out of range); that counts as a refusal.
func compile(ctx context.Context, rt wazero.Runtime, wasm []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("wazero panicked: %v", r)
		}
	}()
	m, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return err
	}
	return m.Close(ctx)
}

// smallNumbers reports whether no LEB128 number read at any offset of wasm
// exceeds 65,536. wazero 1.12 allocates what a module's counts and lengths
// claim before it reads what they count, so a few bytes claiming four
// billion imports exhaust the fuzzer's memory; such inputs are kept from it.
func smallNumbers(wasm []byte) bool {
	for i := range wasm {
		var v uint64
		for j := 0; j < 5 && i+j < len(wasm); j++ {
			b := wasm[i+j]
			v |= uint64(b&0x7f) << (7 * j)
			if b < 0x80 {
				break
			}
		}
		if v > 1<<16 {
			return false
		}
	}
	return true
}
