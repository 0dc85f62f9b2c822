// Package instrument rewrites a WebAssembly module so that its host can stop
// a running call from another goroutine, without the per-loop exit to Go that
// wazero's WithCloseOnContextDone compiles in.
//
// Interruptible appends two mutable i32 globals to the module (defined ones,
// after the module's own, so that no index the module uses shifts), exports
// the first as InterruptExport, and inserts a check at the entry of every
// function and at the head of every loop body:
//
//   - The interrupt flag. Once the host sets the exported global to a non-zero
//     value (api.MutableGlobal.Set writes where the compiled code reads), the
//     guest traps on "unreachable" at its next check. The check is a load and a
//     branch; the guest never leaves native code for it.
//   - A countdown. Every 65,536 checks the guest runs memory.grow 0, which
//     returns to the Go runtime and back. Compiled guest code cannot be
//     preempted: without these exits a guest that spins holds its P for as
//     long as it spins, so a garbage collection's stop-the-world waits for it
//     with every other goroutine stopped, the one that would set the flag
//     included, and the process hangs. With them, the Go scheduler and the
//     collector get their turn within microseconds to milliseconds.
//
// Between two checks a guest neither starts a loop iteration nor enters a
// function: it runs only straight-line code, what remains of the functions
// it returns through, so a call that never returns, by looping or by
// recursing, keeps reaching checks. A host function the guest called is not
// interrupted: the guest traps once it returns and reaches its next check.
//
// A module without a memory gets one of zero pages, for memory.grow. The
// rewrite is deterministic (the same bytes in, the same bytes out), so a
// compilation cache keyed by the rewritten bytes keeps hitting.
//
// # What is read
//
// The reader accepts what wazero 1.12 accepts with its default features
// (api.CoreFeaturesV2: Wasm 1.0 with mutable globals, sign extension,
// saturating float-to-int conversion, bulk memory, reference types,
// multi-value and 128-bit SIMD), and reads every immediate the way wazero's
// validator does, byte for byte, so that both agree on where each
// instruction starts. That matters in one place where wazero departs from the
// specification: it reads a SIMD sub-opcode as one byte, and the LEB128
// continuation byte 0x01 that follows sub-opcodes above 0x7f as a nop; so does
// this package. Instructions of experimental features (threads, tail calls,
// exceptions, typed function references) and the tag section are refused.
package instrument

import (
	"errors"
	"fmt"
)

// InterruptExport is the name under which a rewritten module exports its
// interrupt flag: a mutable i32 global, zero until the host stops the guest.
const InterruptExport = "streamrt_interrupt"

// countdown is the number of checks between two exits to the Go runtime. A
// loop iteration costs a nanosecond or more, so a guest that spins exits at
// least every 65 µs or so, and pays about 200 ns for it.
const countdown = 1 << 16

// ErrReservedExport is returned for a module that already exports
// InterruptExport.
var ErrReservedExport = errors.New("streamrt: module exports " + InterruptExport + ", a name the host reserves")

// Error reports a module that could not be rewritten: it is malformed, or it
// uses what this package does not read. Offset is where in the input the
// reader stopped.
type Error struct {
	Offset int
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("streamrt: rewrite module: at byte %d: %s", e.Offset, e.Reason)
}

// Interruptible returns a copy of module with the interrupt flag, the
// countdown and their checks (see the package comment). module is not
// modified. It fails with ErrReservedExport when module already exports
// InterruptExport, and with an *Error when it cannot read module.
func Interruptible(module []byte) ([]byte, error) {
	m, err := parseModule(module)
	if err != nil {
		return nil, err
	}
	return m.rewrite(), nil
}
