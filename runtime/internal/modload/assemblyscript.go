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
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrNoNode is wrapped by the error of loading an AssemblyScript project on a
// machine without Node.js and npm.
var ErrNoNode = errors.New("streamrt: node and npm not found (install Node.js 18 or later with npm: apt-get install nodejs npm)")

// IsAssemblyScriptProject reports whether path is an AssemblyScript project
// directory: one with a package.json and either an asconfig.json or a
// dependency on the assemblyscript package.
func IsAssemblyScriptProject(path string) bool {
	b, err := os.ReadFile(filepath.Join(path, "package.json"))
	if err != nil {
		return false
	}
	if fi, err := os.Stat(filepath.Join(path, "asconfig.json")); err == nil && fi.Mode().IsRegular() {
		return true
	}
	var pkg packageJSON
	if json.Unmarshal(b, &pkg) != nil {
		return false
	}
	_, dep := pkg.Dependencies["assemblyscript"]
	_, dev := pkg.DevDependencies["assemblyscript"]
	return dep || dev
}

type packageJSON struct {
	Dependencies    map[string]string `json:"dependencies"`
	DevDependencies map[string]string `json:"devDependencies"`
}

// LookNode finds node and npm on PATH, or returns an error wrapping
// ErrNoNode.
func LookNode() (node, npm string, err error) {
	node, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		return "", "", ErrNoNode
	}
	return node, npm, nil
}

// loadAssemblyScript builds the AssemblyScript project at dir with the
// compiler its package.json and package-lock.json pin, installed into its
// node_modules by npm, caching the module by the project's fingerprint.
func loadAssemblyScript(ctx context.Context, dir, cacheDir string, log *slog.Logger) ([]byte, error) {
	sum, err := asFingerprint(dir)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(cacheDir, "as-build", sum+".wasm")
	if b, err := os.ReadFile(out); err == nil {
		return b, nil
	}
	node, npm, err := LookNode()
	if err != nil {
		return nil, fmt.Errorf("module %s is an AssemblyScript project, and building it needs node and npm: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "asconfig.json")); err != nil {
		return nil, fmt.Errorf("module %s: an AssemblyScript stage needs an asconfig.json that extends node_modules/streamrt/asconfig.json (see sdk/assemblyscript/README.md)", dir)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, fmt.Errorf("module %s: %w", dir, err)
	}
	// npm rewrites node_modules as it installs: one build of a project at
	// a time, across processes (parallel test packages build the same
	// guests).
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", dir, err)
	}
	defer unlock()
	if b, err := os.ReadFile(out); err == nil {
		return b, nil
	}
	start := time.Now()
	if err := npmInstall(ctx, npm, dir, log); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", dir, err)
	}
	asc := filepath.Join(abs, "node_modules", "assemblyscript", "bin", "asc.js")
	if _, err := os.Stat(asc); err != nil {
		return nil, fmt.Errorf("module %s: the project does not install the AssemblyScript compiler (add \"assemblyscript\" to its devDependencies, pinned to one version): %w", dir, err)
	}
	log.Info("building AssemblyScript guest module", "dir", dir)
	tmp, err := filepath.Abs(fmt.Sprintf("%s.%d-%d.tmp", out, os.Getpid(), time.Now().UnixNano()))
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", dir, err)
	}
	cmd := exec.CommandContext(ctx, node, asc, "--config", "asconfig.json", "--target", "release", "--outFile", tmp, "--noColors")
	cmd.Dir = dir
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("module %s: AssemblyScript build failed: %s%w\n%s", dir, firstDiagnostic(output.String()), err, strings.TrimSpace(output.String()))
	}
	b, err := os.ReadFile(tmp)
	if err != nil {
		return nil, fmt.Errorf("module %s: asc wrote no module: %w", dir, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("module %s: %w", dir, err)
	}
	log.Info("built AssemblyScript guest module", "dir", dir, "took", time.Since(start).Round(time.Millisecond), "bytes", len(b))
	return b, nil
}

// npmInstall installs the project's dependencies unless what is installed
// was installed from its current package.json and package-lock.json:
// npm ci with a lock file (the versions it pins), npm install without
// writing one otherwise.
func npmInstall(ctx context.Context, npm, dir string, log *slog.Logger) error {
	h := sha256.New()
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("module %s: %w", dir, err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	want := hex.EncodeToString(h.Sum(nil))
	stamp := filepath.Join(dir, "node_modules", ".streamrt-installed")
	if b, err := os.ReadFile(stamp); err == nil && string(b) == want {
		return nil
	}
	args := []string{"ci"}
	if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err != nil {
		log.Warn("AssemblyScript project has no package-lock.json: its compiler version is whatever package.json's range resolves to today", "dir", dir)
		args = []string{"install", "--no-package-lock"}
	}
	args = append(args, "--no-audit", "--no-fund", "--loglevel=error")
	log.Info("installing AssemblyScript project dependencies", "dir", dir, "npm", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, npm, args...)
	cmd.Dir = dir
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("module %s: npm %s failed: %w\n%s", dir, args[0], err, strings.TrimSpace(output.String()))
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		return fmt.Errorf("module %s: %w", dir, err)
	}
	return nil
}

// ascDiagnostic matches asc's diagnostics: a line "ERROR TS2304: text."
// and, a few lines on, "└─ in assembly/index.ts(3,10)".
var (
	ascError    = regexp.MustCompile(`^(ERROR|FAILURE) ([A-Z]+[0-9]+: .*)$`)
	ascLocation = regexp.MustCompile(`in (\S+)\((\d+),(\d+)\)\s*$`)
)

// firstDiagnostic returns asc's first error as "FILE:LINE:COL: TEXT; ", or
// "" when the output has none.
func firstDiagnostic(output string) string {
	sc := bufio.NewScanner(strings.NewReader(output))
	msg := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := ascError.FindStringSubmatch(line); m != nil && msg == "" {
			msg = m[2]
			continue
		}
		if m := ascLocation.FindStringSubmatch(line); m != nil && msg != "" {
			return fmt.Sprintf("%s:%s:%s: %s; ", m[1], m[2], m[3], msg)
		}
	}
	if msg != "" {
		return msg + "; "
	}
	return ""
}

// asFingerprint hashes what an AssemblyScript project's build depends on:
// the Node.js version, the project's files (recursively, without
// node_modules, build output, hidden directories and nested projects,
// package-lock.json included: it pins the compiler), and the local packages
// its package.json names with file: specifiers (the SDK), recursively.
func asFingerprint(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("module %s: %w", dir, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "node %s\nproject %s\n", nodeVersion(), abs)
	if err := hashNodePackage(h, abs, map[string]bool{}); err != nil {
		return "", fmt.Errorf("module %s: %w", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashNodePackage(h hash.Hash, dir string, seen map[string]bool) error {
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
			if p == dir {
				return nil
			}
			name := d.Name()
			if name == "node_modules" || name == "build" || strings.HasPrefix(name, ".") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "package.json")); err == nil {
				return filepath.SkipDir // a nested project
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := hashFiles(h, "package", dir, files); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return err
	}
	var pkg packageJSON
	if err := json.Unmarshal(b, &pkg); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "package.json"), err)
	}
	var deps []string
	for _, m := range []map[string]string{pkg.Dependencies, pkg.DevDependencies} {
		for _, spec := range m {
			if p, ok := strings.CutPrefix(spec, "file:"); ok {
				deps = append(deps, filepath.Clean(filepath.Join(dir, p)))
			}
		}
	}
	sort.Strings(deps)
	for _, d := range deps {
		if err := hashNodePackage(h, d, seen); err != nil {
			return err
		}
	}
	return nil
}

var nodeVersion = sync.OnceValue(func() string {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return "none"
	}
	return strings.TrimSpace(string(out))
})

// lockDir takes an exclusive lock named after dir, shared by every process
// on the machine, and returns its release.
func lockDir(dir string) (func(), error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(abs))
	locks := filepath.Join(os.TempDir(), "streamrt-npm-locks")
	if err := os.MkdirAll(locks, 0o755); err != nil {
		return nil, err
	}
	return lockFile(filepath.Join(locks, hex.EncodeToString(sum[:8])+".lock"))
}
