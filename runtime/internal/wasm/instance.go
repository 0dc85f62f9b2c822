package wasm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/internal/wasm/instrument"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// Instance is one guest instance, owned by one task. It is not safe for
// concurrent use: wazero instances are single-threaded, like the guests.
type Instance struct {
	m      *Module
	mod    api.Module
	mem    api.Memory
	fns    struct{ version, buffer, process, query api.Function }
	stack  [2]uint64
	output *tail
	guard  *guard // nil without a deadline
	broken error
}

// Instantiate creates a fresh instance and runs its initialisers
// (_initialize, then streamrt_init) under the engine's deadline.
func (m *Module) Instantiate(ctx context.Context) (*Instance, error) {
	out := &tail{max: 4096}
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous, so a module can have an instance per task
		WithStartFunctions().
		WithStdout(out).
		WithStderr(out)
	mod, err := m.engine.rt.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil {
		return nil, &ModuleError{Module: m.name, Reason: fmt.Sprintf("does not instantiate: %v", err)}
	}
	inst := &Instance{m: m, mod: mod, mem: mod.Memory(), output: out}
	if w := m.engine.watchdog; w != nil {
		flag, ok := mod.ExportedGlobal(instrument.InterruptExport).(api.MutableGlobal)
		if !ok {
			mod.Close(ctx)
			return nil, &ModuleError{Module: m.name, Reason: "has no interrupt flag: it was compiled without a deadline"}
		}
		inst.guard = w.register(flag)
	}
	inst.fns.version = mod.ExportedFunction(abi.ExportABIVersion)
	inst.fns.buffer = mod.ExportedFunction(abi.ExportBuffer)
	inst.fns.process = mod.ExportedFunction(abi.ExportProcess)
	inst.fns.query = mod.ExportedFunction(abi.ExportQuery)
	for _, name := range []string{abi.ExportInitialize, abi.ExportInit} {
		fn := mod.ExportedFunction(name)
		if fn == nil {
			continue
		}
		inst.guard.begin(ctx)
		err := fn.CallWithStack(ctx, inst.stack[:])
		o := inst.guard.end(err == nil)
		if err != nil {
			inst.Close(ctx)
			return nil, &ModuleError{Module: m.name, Reason: fmt.Sprintf("%s failed: %v", name, inst.describe(err, o))}
		}
		if name == abi.ExportInit && int32(inst.stack[0]) != 0 {
			inst.Close(ctx)
			return nil, &ModuleError{Module: m.name, Reason: fmt.Sprintf("%s returned %d%s", name, int32(inst.stack[0]), out.suffix())}
		}
	}
	return inst, nil
}

// Module returns the module the instance runs.
func (i *Instance) Module() *Module { return i.m }

// Process runs streamrt_process on one encoded batch, with h serving the
// guest's host calls. A *CallError wrapping ErrTrap or ErrDeadline means the
// instance is unusable (Broken reports it) and must be replaced; one wrapping
// ErrBatchFailed means the guest refused the batch and the instance lives on.
// When ctx itself ends, Process returns ctx's error; with a deadline, the
// engine stops the guest then, within a tick of its watchdog.
func (i *Instance) Process(ctx context.Context, h Host, batch []byte) error {
	return i.call(ctx, h, i.fns.process, abi.ExportProcess, "the batch", batch)
}

// ProcessBatch is Process for a batch encoded straight into guest memory,
// which spares copying it there. The caller gives the batch's exact size;
// ProcessBatch asks the guest for a buffer of that size (streamrt_buffer),
// calls encode with dst, an empty slice whose capacity is that buffer, and
// runs streamrt_process on the size bytes encode appended to dst. Errors
// are as for Process, and encode appending more or fewer bytes than size
// is an error too (an append past dst's capacity would leave guest memory).
//
// dst aliases the guest's linear memory, and is valid only while encode
// runs: no guest code runs between streamrt_buffer and streamrt_process, so
// the memory cannot grow under dst meanwhile (a grown memory moves), and
// from streamrt_process on the bytes are the guest's. encode must not keep
// dst or slices of it.
func (i *Instance) ProcessBatch(ctx context.Context, h Host, size int, encode func(dst []byte) []byte) error {
	if i.broken != nil {
		return i.broken
	}
	i.output.reset()
	i.guard.begin(ctx)
	ptr, err := i.enterEncoded(withHost(ctx, h), size, encode)
	o := i.guard.end(err == nil)
	if err != nil {
		if errors.Is(err, errEncode) {
			return err
		}
		return i.fail(ctx, err, o)
	}
	if ptr == 0 {
		return &CallError{Module: i.m.name, Kind: ErrBatchFailed,
			Detail: fmt.Sprintf("%s could not provide %d bytes for the batch%s", abi.ExportBuffer, size, i.output.suffix())}
	}
	if rc := int32(i.stack[0]); rc != 0 {
		return &CallError{Module: i.m.name, Kind: ErrBatchFailed, Detail: fmt.Sprintf("%s returned %d%s", abi.ExportProcess, rc, i.output.suffix())}
	}
	return nil
}

// errEncode marks a batch encoder that did not fill the buffer it was
// given exactly: the host's fault, not the guest's.
var errEncode = errors.New("the batch encoder did not fill its buffer exactly")

// enterEncoded is enter for ProcessBatch: it asks the guest for size bytes,
// encodes the batch into them and calls streamrt_process; ptr is 0 when
// the guest provided no buffer.
func (i *Instance) enterEncoded(ctx context.Context, size int, encode func(dst []byte) []byte) (ptr uint32, err error) {
	i.stack[0] = uint64(size)
	if err := i.fns.buffer.CallWithStack(ctx, i.stack[:]); err != nil {
		return 0, err
	}
	ptr = uint32(i.stack[0])
	dst, ok := i.mem.Read(ptr, uint32(size))
	if ptr == 0 || !ok || size <= 0 {
		return 0, nil
	}
	if b := encode(dst[:0]); len(b) != size || &b[0] != &dst[0] {
		return 0, fmt.Errorf("wasm: module %s: %w: wrote %d bytes into a buffer of %d", i.m.name, errEncode, len(b), size)
	}
	i.stack[0], i.stack[1] = uint64(ptr), uint64(size)
	return ptr, i.fns.process.CallWithStack(ctx, i.stack[:])
}

// Query runs streamrt_query on one encoded query request, with h (which
// should also be a Responder) serving the guest's host calls. Errors are
// as for Process; a module without a query handler fails with
// ErrBatchFailed.
func (i *Instance) Query(ctx context.Context, h Host, req []byte) error {
	if i.fns.query == nil {
		return &CallError{Module: i.m.name, Kind: ErrBatchFailed, Detail: "exports no " + abi.ExportQuery}
	}
	return i.call(ctx, h, i.fns.query, abi.ExportQuery, "the query", req)
}

// call writes in into a guest buffer and calls fn(ptr, len), both under one
// deadline.
func (i *Instance) call(ctx context.Context, h Host, fn api.Function, name, what string, in []byte) error {
	if i.broken != nil {
		return i.broken
	}
	i.output.reset()
	i.guard.begin(ctx)
	ptr, err := i.enter(withHost(ctx, h), fn, in)
	o := i.guard.end(err == nil)
	if err != nil {
		return i.fail(ctx, err, o)
	}
	if ptr == 0 {
		return &CallError{Module: i.m.name, Kind: ErrBatchFailed,
			Detail: fmt.Sprintf("%s could not provide %d bytes for %s%s", abi.ExportBuffer, len(in), what, i.output.suffix())}
	}
	if rc := int32(i.stack[0]); rc != 0 {
		return &CallError{Module: i.m.name, Kind: ErrBatchFailed, Detail: fmt.Sprintf("%s returned %d%s", name, rc, i.output.suffix())}
	}
	return nil
}

// enter asks the guest for a buffer of len(in) bytes, copies in into it and
// calls fn(ptr, len); ptr is 0 when the guest provided no buffer, and then
// fn was not called.
func (i *Instance) enter(ctx context.Context, fn api.Function, in []byte) (ptr uint32, err error) {
	i.stack[0] = uint64(len(in))
	if err := i.fns.buffer.CallWithStack(ctx, i.stack[:]); err != nil {
		return 0, err
	}
	ptr = uint32(i.stack[0])
	if ptr == 0 || !i.mem.Write(ptr, in) {
		return 0, nil
	}
	i.stack[0], i.stack[1] = uint64(ptr), uint64(len(in))
	return ptr, fn.CallWithStack(ctx, i.stack[:])
}

// Broken returns the error that made the instance unusable, or nil.
func (i *Instance) Broken() error { return i.broken }

// MemorySize returns the guest's current linear memory size in bytes.
func (i *Instance) MemorySize() uint32 { return i.mem.Size() }

// Close releases the instance.
func (i *Instance) Close(ctx context.Context) error {
	i.guard.close()
	return i.mod.Close(ctx)
}

// fail records why a call failed: o, when the watchdog stopped it, else the
// guest's trap or exit.
func (i *Instance) fail(ctx context.Context, err error, o *overrun) error {
	if ctx.Err() != nil {
		i.broken = ctx.Err()
		return ctx.Err()
	}
	kind := ErrTrap
	if o != nil {
		kind = ErrDeadline
	}
	ce := &CallError{Module: i.m.name, Kind: kind, Detail: i.describe(err, o), Cause: err}
	i.broken = ce
	return ce
}

// describe turns a failed call into one line, with what the guest printed
// (a Go guest prints its panic message before exiting): why the watchdog
// stopped it when o is not nil, else wazero's error.
func (i *Instance) describe(err error, o *overrun) string {
	var exit *sys.ExitError
	msg := err.Error()
	switch {
	case o != nil:
		msg = o.String()
	case errors.As(err, &exit):
		msg = fmt.Sprintf("exited with code %d", exit.ExitCode())
	default:
		if j := strings.Index(msg, "\nwasm stack trace:"); j >= 0 {
			msg = msg[:j]
		}
	}
	return msg + i.output.suffix()
}

// tail keeps the first max bytes a guest wrote to stdout and stderr during
// a call: where a crashing guest says why, before its stack traces.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.max - len(t.buf); room > 0 {
		t.buf = append(t.buf, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (t *tail) reset() {
	t.mu.Lock()
	t.buf = t.buf[:0]
	t.mu.Unlock()
}

// suffix renders the captured output for an error message, or "".
func (t *tail) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	// The message, not the stack traces that follow it.
	var lines []string
	for _, l := range strings.Split(string(t.buf), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "goroutine ") || strings.HasPrefix(l, "runtime stack:") || len(lines) == 5 {
			break
		}
		if l != "" && l != "[recovered]" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return " (guest output: " + strings.Join(lines, " | ") + ")"
}
