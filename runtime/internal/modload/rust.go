package modload

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// ErrNoCargo is wrapped by the error of loading a Rust crate on a machine
// without cargo.
var ErrNoCargo = errors.New("streamrt: cargo not found (install Debian's toolchain: apt-get install rustc cargo libstd-rust-dev-wasm32)")

// RustTarget is the target Rust stage modules are built for.
const RustTarget = "wasm32-unknown-unknown"

// IsRustCrate reports whether path is a Rust crate directory: one with a
// Cargo.toml.
func IsRustCrate(path string) bool {
	fi, err := os.Stat(filepath.Join(path, "Cargo.toml"))
	return err == nil && fi.Mode().IsRegular()
}

// RustEnv returns env with PATH changed to start with /usr/bin, where
// Debian's rustc and cargo live: they have the wasm32-unknown-unknown
// standard library (libstd-rust-dev-wasm32), which a rustup toolchain earlier
// on PATH may lack.
func RustEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	path := ""
	for _, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = p
			continue
		}
		out = append(out, kv)
	}
	return append(out, "PATH="+rustPath(path))
}

func rustPath(path string) string {
	if path == "" {
		return "/usr/bin"
	}
	return "/usr/bin" + string(os.PathListSeparator) + path
}

// LookCargo finds cargo as RustEnv's PATH does, or returns an error wrapping
// ErrNoCargo.
func LookCargo() (string, error) {
	if p := lookRust("cargo"); p != "" {
		return p, nil
	}
	return "", ErrNoCargo
}

// lookRust finds the named command on RustEnv's PATH, or returns "".
func lookRust(name string) string {
	for _, dir := range filepath.SplitList(rustPath(os.Getenv("PATH"))) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// loadRust builds the Rust crate at dir for wasm32-unknown-unknown in
// release mode, caching the module by the crate's fingerprint.
func loadRust(ctx context.Context, dir, cacheDir string, log *slog.Logger) ([]byte, error) {
	sum, err := rustFingerprint(dir)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(cacheDir, "rust-build", sum+".wasm")
	if b, err := os.ReadFile(out); err == nil {
		return b, nil
	}
	cargo, err := LookCargo()
	if err != nil {
		return nil, fmt.Errorf("module %s is a Rust crate, and building it needs cargo: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, fmt.Errorf("module %s: %w", dir, err)
	}
	log.Info("building Rust guest module", "dir", dir)
	start := time.Now()
	cmd := exec.CommandContext(ctx, cargo, "build", "--release", "--target", RustTarget, "--message-format=json-render-diagnostics")
	cmd.Dir = dir
	cmd.Env = RustEnv(os.Environ())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("module %s: cargo build for %s failed: %w\n%s", dir, RustTarget, err, strings.TrimSpace(stderr.String()))
	}
	built, err := wasmArtifact(dir, stdout.Bytes())
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(built)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", dir, err)
	}
	// A unique name, since several processes may build the same crate at
	// once; the rename publishes one of them.
	tmp := fmt.Sprintf("%s.%d-%d.tmp", out, os.Getpid(), time.Now().UnixNano())
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return nil, fmt.Errorf("module %s: %w", dir, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("module %s: %w", dir, err)
	}
	log.Info("built Rust guest module", "dir", dir, "took", time.Since(start).Round(time.Millisecond), "bytes", len(b))
	return b, nil
}

// wasmArtifact finds the .wasm file of the crate at dir among cargo's JSON
// messages.
func wasmArtifact(dir string, messages []byte) (string, error) {
	manifest, err := filepath.Abs(filepath.Join(dir, "Cargo.toml"))
	if err != nil {
		return "", fmt.Errorf("module %s: %w", dir, err)
	}
	var found string
	sc := bufio.NewScanner(bytes.NewReader(messages))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var m struct {
			Reason       string   `json:"reason"`
			ManifestPath string   `json:"manifest_path"`
			Filenames    []string `json:"filenames"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil || m.Reason != "compiler-artifact" {
			continue
		}
		if filepath.Clean(m.ManifestPath) != manifest {
			continue
		}
		for _, f := range m.Filenames {
			if strings.HasSuffix(f, ".wasm") {
				found = f
			}
		}
	}
	if found == "" {
		return "", fmt.Errorf("module %s: cargo built no .wasm for this crate: a stage crate needs [lib] crate-type = [\"cdylib\"] in its Cargo.toml", dir)
	}
	return found, nil
}

// rustFingerprint hashes what a Rust crate's build depends on: the rustc
// version, the crate's files (recursively, without target/ directories,
// hidden ones and nested crates), the crates it names as path dependencies,
// recursively, and the Cargo.toml of the workspace it belongs to. Cargo.lock
// is left out, since cargo writes it on the first build; a crate without
// registry dependencies (the SDK has none) does not depend on it.
func rustFingerprint(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("module %s: %w", dir, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "rustc %s\ntarget %s\ncrate %s\n", rustcVersion(), RustTarget, abs)
	seen := map[string]bool{}
	if err := hashCrate(h, abs, seen); err != nil {
		return "", fmt.Errorf("module %s: %w", dir, err)
	}
	if ws := workspaceRoot(abs); ws != "" {
		b, err := os.ReadFile(filepath.Join(ws, "Cargo.toml"))
		if err != nil {
			return "", fmt.Errorf("module %s: %w", dir, err)
		}
		fmt.Fprintf(h, "workspace %s %d\n", ws, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// pathDep matches the path of a dependency in a Cargo.toml, such as
// streamrt = { path = "../../sdk/rust" }.
var pathDep = regexp.MustCompile(`\bpath\s*=\s*"([^"]+)"`)

func hashCrate(h hash.Hash, dir string, seen map[string]bool) error {
	if seen[dir] {
		return nil
	}
	seen[dir] = true
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && (d.Name() == "target" || strings.HasPrefix(d.Name(), ".") || IsRustCrate(p)) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && d.Name() != "Cargo.lock" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := hashFiles(h, "crate", dir, files); err != nil {
		return err
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "Cargo.toml"))
	if err != nil {
		return err
	}
	for _, m := range pathDep.FindAllSubmatch(manifest, -1) {
		dep := filepath.Clean(filepath.Join(dir, string(m[1])))
		if IsRustCrate(dep) {
			if err := hashCrate(h, dep, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// workspaceRoot returns the nearest directory above dir whose Cargo.toml
// declares a [workspace], or "".
func workspaceRoot(dir string) string {
	for d := filepath.Dir(dir); d != filepath.Dir(d); d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "Cargo.toml"))
		if err == nil && bytes.Contains(b, []byte("[workspace]")) {
			return d
		}
	}
	return ""
}

var rustcVersion = sync.OnceValue(func() string {
	// cargo runs $RUSTC, or the rustc on its PATH.
	rustc := os.Getenv("RUSTC")
	if rustc == "" {
		if rustc = lookRust("rustc"); rustc == "" {
			return "none"
		}
	}
	cmd := exec.Command(rustc, "--version")
	cmd.Env = RustEnv(os.Environ())
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
})
