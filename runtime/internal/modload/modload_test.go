package modload

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var quiet = slog.New(slog.DiscardHandler)

// guestDir writes a standalone Go guest package (its own module, no
// dependencies) with the given main.go body.
func guestDir(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/guest\n\ngo 1.24\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(body), 0o644)
	return dir
}

const okGuest = `package main

//go:wasmexport streamrt_abi_version
func version() int32 { return 1 }

func main() {}
`

func TestLoadFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "m.wasm")
	os.WriteFile(f, []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	b, err := Load(context.Background(), f, t.TempDir(), quiet)
	if err != nil || !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatalf("Load = %q, %v", b, err)
	}
	if _, err := Load(context.Background(), filepath.Join(t.TempDir(), "missing.wasm"), t.TempDir(), quiet); err == nil || !strings.Contains(err.Error(), "missing.wasm") {
		t.Fatalf("missing file: got %v, want an error naming it", err)
	}
}

func TestLoadBuildsGoDirectoryOnce(t *testing.T) {
	dir, cache := guestDir(t, okGuest), t.TempDir()
	b, err := Load(context.Background(), dir, cache, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatalf("built %d bytes that are not Wasm", len(b))
	}
	built, _ := filepath.Glob(filepath.Join(cache, "go-build", "*.wasm"))
	if len(built) != 1 {
		t.Fatalf("cache holds %v, want one build", built)
	}
	// A second load is served from the cache: make the cached file
	// recognisable and see it come back.
	os.WriteFile(built[0], []byte("\x00asm cached"), 0o644)
	if b, err = Load(context.Background(), dir, cache, quiet); err != nil || string(b) != "\x00asm cached" {
		t.Fatalf("second load rebuilt or failed: %q, %v", b[:min(len(b), 16)], err)
	}
}

func TestLoadReportsCompileErrors(t *testing.T) {
	dir := guestDir(t, "package main\n\nfunc main() { undefinedThing() }\n")
	_, err := Load(context.Background(), dir, t.TempDir(), quiet)
	if err == nil || !strings.Contains(err.Error(), "go build for wasip1 failed") || !strings.Contains(err.Error(), "undefinedThing") {
		t.Fatalf("got %v, want the build failure with the compiler's message", err)
	}
}

func TestFingerprintChangesWithContent(t *testing.T) {
	dir := guestDir(t, okGuest)
	a, err := Fingerprint(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Fingerprint(dir)
	os.WriteFile(filepath.Join(dir, "extra.go"), []byte("package main\n"), 0o644)
	c, _ := Fingerprint(dir)
	if a != b || a == c {
		t.Fatalf("fingerprints %s %s %s: want stable, then changed", a[:8], b[:8], c[:8])
	}
}

// A guest's build depends on the local packages it imports through replace
// directives, such as the SDK: a change there must change the fingerprint,
// or a cached build would run the old SDK.
func TestFingerprintCoversLocalDependencies(t *testing.T) {
	root := t.TempDir()
	lib, guest := filepath.Join(root, "lib"), filepath.Join(root, "guest")
	os.MkdirAll(lib, 0o755)
	os.MkdirAll(guest, 0o755)
	os.WriteFile(filepath.Join(lib, "go.mod"), []byte("module example.com/lib\n\ngo 1.24\n"), 0o644)
	os.WriteFile(filepath.Join(lib, "lib.go"), []byte("package lib\n\nconst V = 1\n"), 0o644)
	os.WriteFile(filepath.Join(guest, "go.mod"), []byte("module example.com/guest\n\ngo 1.24\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ../lib\n"), 0o644)
	os.WriteFile(filepath.Join(guest, "main.go"), []byte("package main\n\nimport \"example.com/lib\"\n\nvar _ = lib.V\n\nfunc main() {}\n"), 0o644)
	a, err := Fingerprint(guest)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(lib, "lib.go"), []byte("package lib\n\nconst V = 2\n"), 0o644)
	b, err := Fingerprint(guest)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("fingerprint unchanged after the local dependency changed")
	}
}

func TestWatchHandsOverNewVersions(t *testing.T) {
	f := filepath.Join(t.TempDir(), "m.wasm")
	os.WriteFile(f, []byte("\x00asm v1"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 4)
	go Watch(ctx, f, t.TempDir(), 20*time.Millisecond, quiet, func(b []byte) { got <- string(b) })
	time.Sleep(100 * time.Millisecond) // no change yet: nothing handed over
	os.WriteFile(f, []byte("\x00asm v2"), 0o644)
	select {
	case v := <-got:
		if v != "\x00asm v2" {
			t.Fatalf("handed over %q, want v2", v)
		}
	case <-ctx.Done():
		t.Fatal("the change was not handed over")
	}
	select {
	case v := <-got:
		t.Fatalf("handed over %q without a change", v)
	case <-time.After(100 * time.Millisecond):
	}
}
