// Package guesttest builds the Go test guests under
// runtime/internal/wasm/testdata/guests for tests and benchmarks, once per
// content version: builds are cached in the user cache directory across test
// runs, keyed by the guest's files and the Go version.
package guesttest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/streamrt/streamrt/runtime/internal/modload"
)

// Dir returns the directory of the named test guest.
func Dir(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "wasm", "testdata", "guests", name)
}

// CacheDir is where built guests are kept.
func CacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "streamrt", "test-guests")
}

// Build returns the Wasm bytes of the named test guest, building it if needed.
func Build(t testing.TB, name string) []byte {
	t.Helper()
	b, err := load(Dir(name))
	if err != nil {
		t.Fatalf("build test guest %s: %v", name, err)
	}
	return b
}

// BuildDir is Build for a guest package directory anywhere, such as an
// example's.
func BuildDir(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := load(dir)
	if err != nil {
		t.Fatalf("build guest %s: %v", dir, err)
	}
	return b
}

func load(dir string) ([]byte, error) {
	return modload.Load(context.Background(), dir, CacheDir(), slog.New(slog.DiscardHandler))
}
