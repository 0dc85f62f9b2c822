package wasm

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/tetratelabs/wazero"
)

// Cache is a compilation cache kept on disk, shared by the engines of a
// process so that a module compiles once per version, across restarts too.
// An entry that cannot be read back (a file cut short by a full disk or a
// crash, or one that fails its checksum) is no reason to refuse a module:
// Compile then clears the cache's entries and compiles afresh, which writes
// the entry again.
type Cache struct {
	wazero.CompilationCache
	dir string
	// Logger receives a Warn line when the cache is cleared; nil logs
	// nothing. Set it before the cache is used.
	Logger *slog.Logger
}

// NewCache returns a compilation cache kept in dir.
func NewCache(dir string) (*Cache, error) {
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wasm compilation cache %s: %w", dir, err)
	}
	return &Cache{CompilationCache: c, dir: dir}, nil
}

// unreadable reports whether err, from wazero's CompileModule, is its
// refusal of a cache entry it could not read back.
func unreadable(err error) bool {
	return strings.Contains(err.Error(), "compilationcache:")
}

// clear removes the cache's entries, leaving the files being written (the
// temporary files wazero renames into place) alone. wazero's entries are
// named by a hash that includes the CPU's features, which this package
// cannot work out, so the unreadable one cannot be told from the others:
// they all go, and each module compiles once more. An engine reading an
// entry meanwhile keeps the file it opened.
func (c *Cache) clear(ctx context.Context, cause error) {
	removed := 0
	filepath.WalkDir(c.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(d.Name(), ".tmp") {
			return nil
		}
		if os.Remove(path) == nil {
			removed++
		}
		return nil
	})
	if c.Logger != nil {
		c.Logger.WarnContext(ctx, "compiled-module cache entry unreadable: cleared the cache and compiling again",
			"dir", c.dir, "entries_removed", removed, "err", cause.Error())
	}
}
