package guesttest

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/streamrt/streamrt/runtime/internal/modload"
)

// ASDir returns the directory of a project beside the AssemblyScript SDK:
// "conformance", "testdata/identity", or "" for the SDK itself.
func ASDir(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "sdk", "assemblyscript", filepath.FromSlash(name))
}

// BuildAS returns the Wasm bytes of the AssemblyScript project at dir, built
// as modload builds stage modules (npm installs the compiler its lock file
// pins; the module is cached by the sources' content hash). On a machine
// without node and npm it fails the test when CI=true, so that CI cannot
// pass without the AssemblyScript part of the conformance suite, and skips
// it otherwise.
func BuildAS(t testing.TB, dir string) []byte {
	t.Helper()
	if _, _, err := modload.LookNode(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("build AssemblyScript guest %s: %v", dir, err)
		}
		t.Skipf("skipping: the AssemblyScript guest %s needs node and npm, which are not installed (apt-get install nodejs npm; CI=true makes this a failure)", dir)
	}
	b, err := load(dir)
	if errors.Is(err, modload.ErrNoNode) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("build AssemblyScript guest %s: %v", dir, err)
	}
	return b
}
