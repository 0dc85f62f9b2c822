// Package wasm runs stage modules on wazero behind streamrt's host ABI v1
// (abi/ABI.md): it compiles and validates modules, instantiates one guest
// instance per task, and dispatches the guest's host-function calls to a Host
// that the caller provides for each batch.
//
// An Engine owns one wazero runtime, and so one memory limit: a runtime is the
// unit of isolation (modules in one runtime could import each other), so each
// stage, and later each tenant, gets its own. Compiled code is cached on disk
// across restarts through a shared wazero compilation cache.
package wasm

import (
	"context"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Config configures an Engine.
type Config struct {
	// Cache is the compilation cache shared by the process's engines; nil
	// compiles without one.
	Cache wazero.CompilationCache
	// MemoryLimit bounds each guest instance's linear memory, in bytes; it is
	// rounded down to whole 64 KiB pages. Zero means wazero's default (4 GiB).
	MemoryLimit int64
	// Deadline bounds the CPU time of one guest call (a batch, or an
	// initialiser). Zero means no deadline.
	Deadline time.Duration
}

// Engine compiles and instantiates modules in one wazero runtime.
type Engine struct {
	rt       wazero.Runtime
	deadline time.Duration
}

// NewCache returns a compilation cache kept in dir, shared by the engines of a
// process so that a module compiles once per version, across restarts too.
func NewCache(dir string) (wazero.CompilationCache, error) {
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wasm compilation cache %s: %w", dir, err)
	}
	return c, nil
}

// NewEngine creates a runtime with the streamrt_v1 host module and WASI
// (without file system, network or environment) instantiated in it.
func NewEngine(ctx context.Context, cfg Config) (*Engine, error) {
	rc := wazero.NewRuntimeConfig()
	if cfg.Cache != nil {
		rc = rc.WithCompilationCache(cfg.Cache)
	}
	if cfg.MemoryLimit > 0 {
		pages := cfg.MemoryLimit / 65536
		if pages < 1 {
			return nil, fmt.Errorf("wasm: memory limit %d bytes is below one 64 KiB page", cfg.MemoryLimit)
		}
		if pages > 65536 {
			pages = 65536
		}
		rc = rc.WithMemoryLimitPages(uint32(pages))
	}
	if cfg.Deadline > 0 {
		// Needed for the deadline to stop a guest that never returns; it costs
		// a check in every loop of compiled guest code (see BENCHMARKS.md).
		rc = rc.WithCloseOnContextDone(true)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	if err := instantiateHostModule(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	return &Engine{rt: rt, deadline: cfg.Deadline}, nil
}

// Close releases the runtime and every module and instance made from it.
func (e *Engine) Close(ctx context.Context) error { return e.rt.Close(ctx) }

// callCtx bounds one guest call by the engine's deadline.
func (e *Engine) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if e.deadline <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, e.deadline)
}
