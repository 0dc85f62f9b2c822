// Package wasm runs stage modules on wazero behind streamrt's host ABI v1
// (abi/ABI.md): it compiles and validates modules, instantiates one guest
// instance per task, and dispatches the guest's host-function calls to a Host
// that the caller provides for each batch.
//
// An Engine owns one wazero runtime, and so one memory limit and one
// deadline: a runtime is the unit of isolation (modules in one runtime could
// import each other), so each stage, and later each tenant, gets its own.
// Compiled code is cached on disk across restarts through a shared wazero
// compilation cache.
//
// With a deadline, Compile rewrites each module so that it can be stopped
// (package instrument), and a watchdog goroutine per engine stops the calls
// that use more CPU time than the deadline, or more wall time than the wall
// cap (watchdog.go).
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
	Cache *Cache
	// MemoryLimit bounds each guest instance's linear memory, in bytes; it is
	// rounded down to whole 64 KiB pages. Zero means wazero's default (4 GiB).
	MemoryLimit int64
	// Deadline bounds the CPU time of one guest call (a batch, a query
	// handler call, or an initialiser): the CPU time of the thread the call
	// runs on, host functions included, so that a guest is not stopped for
	// the time other work held the CPU. A call is stopped after between
	// Deadline and Deadline plus a tenth of it (at most 200 ms more), and
	// fails with ErrDeadline. On systems other than Linux, which offer no
	// per-thread CPU clock, it bounds wall time instead.
	//
	// Zero means no protection at all: modules run as they are, and nothing
	// stops a guest that never returns (a garbage collection would then
	// wait for it, and with it the whole process).
	Deadline time.Duration
	// WallLimit bounds the wall time of one guest call, for a guest that
	// the machine starves of CPU or that waits in a host call: the safety
	// net under Deadline. Zero means 10 × Deadline. It has no effect when
	// Deadline is zero.
	WallLimit time.Duration
}

// defaultWallFactor is WallLimit when Config leaves it zero, as a multiple of
// Deadline.
const defaultWallFactor = 10

// Engine compiles and instantiates modules in one wazero runtime.
type Engine struct {
	rt       wazero.Runtime
	cache    *Cache    // nil without one
	watchdog *watchdog // nil without a deadline
}

// NewEngine creates a runtime with the streamrt_v1 host module and WASI
// (without file system, network or environment) instantiated in it.
func NewEngine(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Deadline < 0 || cfg.WallLimit < 0 {
		return nil, fmt.Errorf("wasm: deadline %v and wall limit %v must not be negative", cfg.Deadline, cfg.WallLimit)
	}
	rc := wazero.NewRuntimeConfig()
	if cfg.Cache != nil {
		rc = rc.WithCompilationCache(cfg.Cache.CompilationCache)
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
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	if err := instantiateHostModule(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	e := &Engine{rt: rt, cache: cfg.Cache}
	if cfg.Deadline > 0 {
		wall := cfg.WallLimit
		if wall == 0 {
			wall = defaultWallFactor * cfg.Deadline
		}
		e.watchdog = newWatchdog(cfg.Deadline, wall)
	}
	return e, nil
}

// Close releases the runtime and every instance made from it. The code of
// its modules is released with it only when the engine has no compilation
// cache: a cache's code is shared by the engines using it, and each Module
// of it lives until it is closed.
func (e *Engine) Close(ctx context.Context) error {
	if e.watchdog != nil {
		e.watchdog.close()
	}
	return e.rt.Close(ctx)
}
