package wasm

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/abi"
)

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := NewEngine(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func TestCompileRefusesBadModules(t *testing.T) {
	e := newEngine(t, Config{})
	without := func(export string) []byte {
		m := validGuest()
		var fs []tinyFunc
		for _, f := range m.funcs {
			if f.export != export {
				fs = append(fs, f)
			}
		}
		m.funcs = fs
		return m.bytes()
	}
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{"not wasm", []byte("#!/bin/sh\necho hello\n"), "not a WebAssembly module"},
		{"truncated", validGuest().bytes()[:20], "does not compile"},
		{"no process export", without("streamrt_process"), "lacks required export(s) streamrt_process"},
		{"empty file", nil, "not a WebAssembly module"},
		{"no buffer export", without("streamrt_buffer"), "lacks required export(s) streamrt_buffer"},
		{"no memory", func() []byte { m := validGuest(); m.memory = false; return m.bytes() }(), `does not export its memory as "memory"`},
		{"wrong ABI version import", func() []byte {
			m := validGuest()
			m.imports = []tinyImport{{module: "streamrt_v2", name: "emit", params: []byte{tI32}, results: []byte{tI32}}}
			return m.bytes()
		}(), "was built for host ABI v2 (imports streamrt_v2), this host speaks ABI v1"},
		{"wrong ABI version export", func() []byte {
			m := validGuest()
			m.funcs[0].body = i32const(7)
			return m.bytes()
		}(), "was built for host ABI v7 (streamrt_abi_version returned 7), this host speaks ABI v1"},
		{"unknown host function", func() []byte {
			m := validGuest()
			m.imports = []tinyImport{{module: "streamrt_v1", name: "fly", results: []byte{tI32}}}
			return m.bytes()
		}(), "imports streamrt_v1.fly, which host ABI v1 does not provide"},
		{"host function with wrong signature", func() []byte {
			m := validGuest()
			m.imports = []tinyImport{{module: "streamrt_v1", name: "store_open", params: []byte{tI32}, results: []byte{tI32}}}
			return m.bytes()
		}(), "imports streamrt_v1.store_open with signature (i32) -> (i32), want (i32, i32) -> (i32)"},
		{"unknown import module", func() []byte {
			m := validGuest()
			m.imports = []tinyImport{{module: "env", name: "abort"}}
			return m.bytes()
		}(), `imports env.abort from unknown module "env"`},
		{"export with wrong signature", func() []byte {
			m := validGuest()
			m.funcs[2].params = []byte{tI32}
			return m.bytes()
		}(), "exports streamrt_process with signature (i32) -> (i32), want (i32, i32) -> (i32)"},
		{"init refuses", func() []byte {
			m := validGuest()
			m.funcs = append(m.funcs, tinyFunc{export: "streamrt_init", results: []byte{tI32}, body: i32const(3)})
			return m.bytes()
		}(), "streamrt_init returned 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Compile(context.Background(), "bad.wasm", tc.wasm)
			if !errors.Is(err, ErrInvalidModule) {
				t.Fatalf("got %v, want an ErrInvalidModule", err)
			}
			if !strings.Contains(err.Error(), "module bad.wasm: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name the module and %q", err, tc.want)
			}
		})
	}
}

func TestMinimalModuleProcesses(t *testing.T) {
	e := newEngine(t, Config{})
	m, err := e.Compile(context.Background(), "min.wasm", validGuest().bytes())
	if err != nil {
		t.Fatal(err)
	}
	inst, err := m.Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(context.Background())
	batch := abi.EncodeBatch(nil, &abi.Batch{Records: []abi.Record{{Topic: "t"}}})
	if err := inst.Process(context.Background(), nil, batch); err != nil {
		t.Fatal(err)
	}
	if len(m.Version()) != 64 {
		t.Fatalf("version %q is not a sha256", m.Version())
	}
}

func TestDeadlineStopsALoopingGuest(t *testing.T) {
	// A wall-clock cap well above the deadline, so that a busy machine
	// cannot make the cap stop the guest first.
	e := newEngine(t, Config{Deadline: 50 * time.Millisecond, WallLimit: time.Minute})
	g := validGuest()
	g.funcs[2].body = []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x41, 0x00} // loop br 0 end; i32.const 0
	m, err := e.Compile(context.Background(), "loop.wasm", g.bytes())
	if err != nil {
		t.Fatal(err)
	}
	inst, err := m.Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	err = process(t, context.Background(), inst, nil, abi.EncodeBatch(nil, &abi.Batch{}))
	if !errors.Is(err, ErrDeadline) || inst.Broken() == nil {
		t.Fatalf("got %v (broken %v), want ErrDeadline and a broken instance", err, inst.Broken())
	}
	if !strings.Contains(err.Error(), "stopped after 50ms of "+clock()) {
		t.Fatalf("error %q does not say how long the guest ran", err)
	}
}

func TestTrapIsReported(t *testing.T) {
	e := newEngine(t, Config{})
	g := validGuest()
	g.funcs[2].body = []byte{0x00} // unreachable
	m, err := e.Compile(context.Background(), "trap.wasm", g.bytes())
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := m.Instantiate(context.Background())
	err = inst.Process(context.Background(), nil, abi.EncodeBatch(nil, &abi.Batch{}))
	if !errors.Is(err, ErrTrap) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("got %v, want an ErrTrap naming unreachable", err)
	}
}

// Engines sharing a compilation cache share a module's code, counted once
// per Compile: closing one Module twice must not free the code another
// Module of the same bytes runs, and closing every one of them releases it,
// so that compiling the bytes again (a rollback) loads them afresh.
func TestModuleCloseReleasesItsCodeOnce(t *testing.T) {
	ctx := context.Background()
	cache, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close(ctx) })
	bin := validGuest().bytes()
	batch := abi.EncodeBatch(nil, &abi.Batch{Records: []abi.Record{{Topic: "t"}}})
	run := func(m *Module) error {
		inst, err := m.Instantiate(ctx)
		if err != nil {
			return err
		}
		defer inst.Close(ctx)
		return inst.Process(ctx, nil, batch)
	}
	a, err := newEngine(t, Config{Cache: cache}).Compile(ctx, "a.wasm", bin)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newEngine(t, Config{Cache: cache}).Compile(ctx, "b.wasm", bin)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := a.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !a.Closed() || b.Closed() {
		t.Fatalf("closed: a %v, b %v; want a only", a.Closed(), b.Closed())
	}
	if err := run(b); err != nil {
		t.Fatalf("the other module of the same bytes, after one was closed twice: %v", err)
	}
	b.Close(ctx)
	again, err := newEngine(t, Config{Cache: cache}).Compile(ctx, "again.wasm", bin)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(ctx)
	if err := run(again); err != nil {
		t.Fatalf("the bytes compiled again after every module of them was closed: %v", err)
	}
}

// A compilation cache entry cut short (a full disk, a crash) does not stop
// a module from compiling: the entry is removed and written again whole.
func TestCacheEntryTruncatedIsRebuilt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bin := validGuest().bytes()
	compile := func() error {
		cache, err := NewCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer cache.Close(ctx)
		m, err := newEngine(t, Config{Cache: cache}).Compile(ctx, "guest.wasm", bin)
		if err != nil {
			return err
		}
		return m.Close(ctx)
	}
	entries := func() map[string]int64 {
		out := map[string]int64{}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				info, _ := d.Info()
				out[p] = info.Size()
			}
			return nil
		})
		return out
	}
	if err := compile(); err != nil {
		t.Fatal(err)
	}
	whole := entries()
	if len(whole) == 0 {
		t.Fatal("no cache entry written")
	}
	for p, size := range whole {
		if err := os.Truncate(p, size/2); err != nil {
			t.Fatal(err)
		}
	}
	if err := compile(); err != nil {
		t.Fatalf("compiling over a truncated cache entry: %v", err)
	}
	if again := entries(); !maps.Equal(again, whole) {
		t.Errorf("cache entries after the rebuild: %v, want them whole again: %v", again, whole)
	}
}
