package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/internal/wasm/instrument"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Module is a compiled, validated module version. It is safe for concurrent
// use; instantiate it once per task. Whoever compiled it owns it and closes
// it: Close in the Engine does not release it when the engine shares a
// compilation cache.
type Module struct {
	engine   *Engine
	compiled wazero.CompiledModule
	closed   atomic.Bool
	name     string
	version  string
	hasInit  bool
	hasWASI  bool
	hasQuery bool
}

// Name returns the label the module was compiled under, such as its file.
func (m *Module) Name() string { return m.name }

// ServesQueries reports whether the module exports a query handler
// (streamrt_query).
func (m *Module) ServesQueries() bool { return m.hasQuery }

// Version returns the module's content address: the hex sha256 of its bytes.
func (m *Module) Version() string { return m.version }

// Version returns the content address of a module's bytes.
func Version(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

type export struct {
	name            string
	params, results []api.ValueType
	required        bool
}

var exports = []export{
	{abi.ExportABIVersion, nil, []api.ValueType{i32}, true},
	{abi.ExportBuffer, []api.ValueType{i32}, []api.ValueType{i32}, true},
	{abi.ExportProcess, []api.ValueType{i32, i32}, []api.ValueType{i32}, true},
	{abi.ExportInit, nil, []api.ValueType{i32}, false},
	{abi.ExportInitialize, nil, nil, false},
	{abi.ExportQuery, []api.ValueType{i32, i32}, []api.ValueType{i32}, false},
}

// Compile compiles and validates wasm, naming it name in errors. It refuses a
// module that is not Wasm, imports what the host does not provide, lacks a
// required export or memory, or was built for another ABI version; the error
// wraps ErrInvalidModule and says which. Validation instantiates the module
// once to ask its ABI version and run its initialisers.
//
// With a deadline, the module is rewritten before it is compiled so that the
// engine can stop it (package instrument); it is refused if it exports the
// name the rewrite reserves. Version stays the hash of wasm as given.
func (e *Engine) Compile(ctx context.Context, name string, wasm []byte) (*Module, error) {
	refuse := func(format string, args ...any) error {
		return &ModuleError{Module: name, Reason: fmt.Sprintf(format, args...)}
	}
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, refuse("not a WebAssembly module (no \\0asm header)")
	}
	code := wasm
	if e.watchdog != nil {
		var err error
		if code, err = instrument.Interruptible(wasm); err != nil {
			if errors.Is(err, instrument.ErrReservedExport) {
				return nil, refuse("exports %s, a name the host reserves for stopping guests", instrument.InterruptExport)
			}
			// The rewrite reads modules as wazero does, so what it cannot
			// read wazero would refuse too. wazero is not asked: it
			// allocates what a malformed module's counts claim.
			return nil, refuse("does not compile: %v", err)
		}
	}
	compiled, err := e.rt.CompileModule(ctx, code)
	if err != nil && e.cache != nil && unreadable(err) {
		e.cache.clear(ctx, err)
		compiled, err = e.rt.CompileModule(ctx, code)
	}
	if err != nil {
		return nil, refuse("does not compile: %v", err)
	}
	m := &Module{engine: e, compiled: compiled, name: name, version: Version(wasm)}
	if err := m.validate(ctx); err != nil {
		compiled.Close(ctx)
		return nil, err
	}
	return m, nil
}

func (m *Module) validate(ctx context.Context) error {
	refuse := func(format string, args ...any) error {
		return &ModuleError{Module: m.name, Reason: fmt.Sprintf(format, args...)}
	}
	for _, f := range m.compiled.ImportedFunctions() {
		mod, fn, _ := f.Import()
		switch {
		case mod == abi.ImportModule:
			hf, ok := hostFuncs[fn]
			if !ok {
				return refuse("imports %s.%s, which host ABI v%d does not provide", mod, fn, abi.Version)
			}
			if !slices.Equal(f.ParamTypes(), hf.params) || !slices.Equal(f.ResultTypes(), hf.results) {
				return refuse("imports %s.%s with signature %s, want %s", mod, fn, sig(f.ParamTypes(), f.ResultTypes()), sig(hf.params, hf.results))
			}
		case strings.HasPrefix(mod, abi.ImportModulePrefix):
			v, _ := strconv.Atoi(strings.TrimPrefix(mod, abi.ImportModulePrefix))
			return refuse("was built for host ABI v%d (imports %s), this host speaks ABI v%d (%s)", v, mod, abi.Version, abi.ImportModule)
		case mod == "wasi_snapshot_preview1":
			m.hasWASI = true
		default:
			return refuse("imports %s.%s from unknown module %q", mod, fn, mod)
		}
	}
	if _, ok := m.compiled.ExportedMemories()[abi.ExportMemory]; !ok {
		return refuse("does not export its memory as %q", abi.ExportMemory)
	}
	fns := m.compiled.ExportedFunctions()
	var missing []string
	for _, x := range exports {
		f, ok := fns[x.name]
		if !ok {
			if x.required {
				missing = append(missing, x.name)
			}
			continue
		}
		if !slices.Equal(f.ParamTypes(), x.params) || !slices.Equal(f.ResultTypes(), x.results) {
			return refuse("exports %s with signature %s, want %s", x.name, sig(f.ParamTypes(), f.ResultTypes()), sig(x.params, x.results))
		}
		switch x.name {
		case abi.ExportInit:
			m.hasInit = true
		case abi.ExportQuery:
			m.hasQuery = true
		}
	}
	if len(missing) > 0 {
		return refuse("lacks required export(s) %s (see abi/ABI.md)", strings.Join(missing, ", "))
	}
	inst, err := m.Instantiate(ctx)
	if err != nil {
		return err
	}
	defer inst.Close(ctx)
	inst.guard.begin(ctx)
	err = inst.fns.version.CallWithStack(ctx, inst.stack[:1])
	if o := inst.guard.end(err == nil); err != nil {
		return refuse("%s failed: %v", abi.ExportABIVersion, inst.describe(err, o))
	}
	if v := int32(inst.stack[0]); v != abi.Version {
		return refuse("was built for host ABI v%d (%s returned %d), this host speaks ABI v%d", v, abi.ExportABIVersion, v, abi.Version)
	}
	return nil
}

// Close releases the compiled code. Instances made from it must be closed
// first. Closing again does nothing: engines that share a compilation cache
// share one copy of a module's code, counted once per Compile, so a second
// release would free the code under another Module of the same bytes.
func (m *Module) Close(ctx context.Context) error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	return m.compiled.Close(ctx)
}

// Closed reports whether Close was called.
func (m *Module) Closed() bool { return m.closed.Load() }

func sig(params, results []api.ValueType) string {
	name := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return name(params) + " -> " + name(results)
}
