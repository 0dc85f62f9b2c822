// Package modload turns a stage's configured module into Wasm bytes: a .wasm
// file is read as it is; a Go guest package directory is built with the local
// Go toolchain for wasip1 in c-shared (reactor) mode, and a Rust crate
// directory (one with a Cargo.toml) with cargo for wasm32-unknown-unknown,
// and an AssemblyScript project directory (a package.json with an
// asconfig.json) with the compiler version its package-lock.json pins,
// installed by npm; builds are cached by the content hash of the sources, so
// a restart does not rebuild.
// Watch polls a module's source and hands over each new version, for live
// swaps during development.
package modload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Load returns the Wasm bytes of the module at path, building it first when
// path is a Go package, Rust crate or AssemblyScript project directory. Builds are cached under
// cacheDir.
func Load(ctx context.Context, path, cacheDir string, log *slog.Logger) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	if !fi.IsDir() {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", path, err)
		}
		return b, nil
	}
	if IsRustCrate(path) {
		return loadRust(ctx, path, cacheDir, log)
	}
	if IsAssemblyScriptProject(path) {
		return loadAssemblyScript(ctx, path, cacheDir, log)
	}
	sum, err := Fingerprint(path)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(cacheDir, "go-build", sum+".wasm")
	if b, err := os.ReadFile(out); err == nil {
		return b, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("module %s is a Go package directory, and building it needs the go command: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	log.Info("building Go guest module", "dir", path)
	start := time.Now()
	// A unique name, since several processes (parallel test packages) may
	// build the same guest at once; the rename publishes one of them.
	tmp := fmt.Sprintf("%s.%d-%d.tmp", out, os.Getpid(), time.Now().UnixNano())
	cmd := exec.CommandContext(ctx, goBin, "build", "-buildmode=c-shared", "-o", tmp, ".")
	cmd.Dir = path
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("module %s: go build for wasip1 failed: %w\n%s", path, err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	log.Info("built Go guest module", "dir", path, "took", time.Since(start).Round(time.Millisecond))
	return os.ReadFile(out)
}

// Fingerprint returns a hash that changes when the module at path changes: of
// the file, or of every file in a package directory (subdirectories, which
// are other packages, excluded). The Go version is part of it, since a new
// toolchain builds different code. A Rust crate's covers its sources, its
// path dependencies and the rustc version (see rustFingerprint), an
// AssemblyScript project's its sources, its lock file and its file:
// dependencies (see asFingerprint).
func Fingerprint(path string) (string, error) {
	h := sha256.New()
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("module %s: %w", path, err)
	}
	if !fi.IsDir() {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("module %s: %w", path, err)
		}
		h.Write(b)
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	if IsRustCrate(path) {
		return rustFingerprint(path)
	}
	if IsAssemblyScriptProject(path) {
		return asFingerprint(path)
	}
	fmt.Fprintf(h, "go %s\ndir %s\n", goVersion(), path)
	if err := hashPackageDir(h, path); err != nil {
		return "", fmt.Errorf("module %s: %w", path, err)
	}
	// Local packages the guest imports (the SDK through a replace
	// directive, shared code of the app) change its build as much as its
	// own files do.
	own := hex.EncodeToString(h.Sum(nil))
	deps, err := localDeps(path, own)
	if err != nil {
		return "", fmt.Errorf("module %s: %w", path, err)
	}
	for _, d := range deps {
		fmt.Fprintf(h, "dep %s\n", d)
		if err := hashPackageDir(h, d); err != nil {
			return "", fmt.Errorf("module %s: dependency %s: %w", path, d, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashPackageDir hashes the names and contents of the regular files in dir
// (subdirectories, which are other packages, excluded).
func hashPackageDir(h hash.Hash, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", n, len(b))
		h.Write(b)
	}
	return nil
}

// hashFiles hashes a project of kind in dir: its path, then each of files
// (paths below dir) by its relative name, size and contents, in name order.
func hashFiles(h hash.Hash, kind, dir string, files []string) error {
	sort.Strings(files)
	fmt.Fprintf(h, "%s %s\n", kind, dir)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(b))
		h.Write(b)
	}
	return nil
}

// depsMemo caches localDeps by the hash of the guest's own files: listing
// packages runs the go command, too slow for every poll of Watch, and the
// imports change only when those files do.
var depsMemo sync.Map // own hash -> []string

// localDeps lists the directories of the non-standard packages the Go
// package in dir imports, directly or not, that live outside the module
// cache: those whose files may change without a version change.
func localDeps(dir, own string) ([]string, error) {
	if v, ok := depsMemo.Load(own); ok {
		return v.([]string), nil
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	modCache := goEnv("GOMODCACHE")
	abs, _ := filepath.Abs(dir)
	var deps []string
	for _, d := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if d == "" || d == abs || d == dir || (modCache != "" && strings.HasPrefix(d, modCache+string(filepath.Separator))) {
			continue
		}
		deps = append(deps, d)
	}
	sort.Strings(deps)
	depsMemo.Store(own, deps)
	return deps, nil
}

func goEnv(key string) string {
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

var goVersion = sync.OnceValue(func() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
})

// Watch polls the module at path every interval and calls onChange with the
// bytes of each new version until ctx ends. A version that fails to load or
// build is logged and skipped; the caller keeps running the last good one.
func Watch(ctx context.Context, path, cacheDir string, interval time.Duration, log *slog.Logger, onChange func([]byte)) {
	last, _ := Fingerprint(path)
	var handed [sha256.Size]byte
	pending := ""
	if b, err := Load(ctx, path, cacheDir, log); err == nil {
		handed = sha256.Sum256(b)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sum, err := Fingerprint(path)
		if err != nil || sum == last {
			pending = ""
			continue
		}
		// A change is taken once it has held for a whole interval, so a
		// file caught mid-write is not loaded half written.
		if sum != pending {
			pending = sum
			continue
		}
		last, pending = sum, ""
		b, err := Load(ctx, path, cacheDir, log)
		if err != nil {
			log.Error("changed module does not load; still running the previous version", "module", path, "err", err)
			continue
		}
		// A file caught mid-write changes twice for one new version:
		// hand each version over once.
		if v := sha256.Sum256(b); v != handed {
			handed = v
			onChange(b)
		}
	}
}
