package guesttest

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/streamrt/streamrt/runtime/internal/modload"
)

// RustDir returns the directory of a crate in the Rust SDK's workspace:
// "conformance", "testdata/identity", or "" for the SDK itself.
func RustDir(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "sdk", "rust", filepath.FromSlash(name))
}

// BuildRust returns the Wasm bytes of the Rust crate at dir, building it with
// cargo for wasm32-unknown-unknown (Debian's toolchain first on PATH) when
// its sources changed, and caching the module by their content hash as
// modload does for stage modules. On a machine without cargo it fails the
// test when CI=true, so that CI cannot pass without the Rust half of the
// conformance suite, and skips it otherwise.
func BuildRust(t testing.TB, dir string) []byte {
	t.Helper()
	if _, err := modload.LookCargo(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("build Rust guest %s: %v", dir, err)
		}
		t.Skipf("skipping: the Rust guest %s needs cargo, which is not installed (apt-get install rustc cargo libstd-rust-dev-wasm32; CI=true makes this a failure)", dir)
	}
	b, err := load(dir)
	if errors.Is(err, modload.ErrNoCargo) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("build Rust guest %s: %v", dir, err)
	}
	return b
}
