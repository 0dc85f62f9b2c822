package modload

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// needNode skips a test on a machine without node and npm, unless CI=true,
// where they are required.
func needNode(t *testing.T) {
	t.Helper()
	if _, _, err := LookNode(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// sdkDir is the AssemblyScript SDK in this repository.
func sdkDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	dir, err := filepath.Abs(filepath.Join(filepath.Dir(file), "..", "..", "..", "sdk", "assemblyscript"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// asProject writes an AssemblyScript stage project using this repository's
// SDK and its pinned compiler (the identity test guest's lock file), with
// the given entry file.
func asProject(t *testing.T, entry string) string {
	t.Helper()
	dir := t.TempDir()
	sdk := sdkDir(t)
	lock, err := os.ReadFile(filepath.Join(sdk, "testdata", "identity", "package-lock.json"))
	must(t, err)
	pkg := `{"name": "streamrt-test-identity", "private": true, "dependencies": {"streamrt": "file:` + sdk + `"}, "devDependencies": {"assemblyscript": "0.28.20"}}`
	// The lock file names the SDK by its path relative to the project.
	rel, err := filepath.Rel(dir, sdk)
	must(t, err)
	lock = bytes.ReplaceAll(lock, []byte(`"../.."`), []byte(`"`+filepath.ToSlash(rel)+`"`))
	pkg = strings.Replace(pkg, "file:"+sdk, "file:"+filepath.ToSlash(rel), 1)
	must(t, os.WriteFile(filepath.Join(dir, "package.json"), []byte(pkg), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "package-lock.json"), lock, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "asconfig.json"), []byte(`{"extends": "./node_modules/streamrt/asconfig.json", "entries": ["assembly/index.ts"]}`), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "assembly"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "assembly", "index.ts"), []byte(entry), 0o644))
	return dir
}

const okEntry = `import { Record, handleRecord } from "streamrt";
export * from "streamrt/assembly/exports";

handleRecord((r: Record): Error | null => null);
`

func TestLoadBuildsAssemblyScriptProjectOnce(t *testing.T) {
	needNode(t)
	dir, cache := asProject(t, okEntry), t.TempDir()
	if !IsAssemblyScriptProject(dir) || IsRustCrate(dir) {
		t.Fatal("the project is not recognised as AssemblyScript")
	}
	b, err := Load(context.Background(), dir, cache, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x00asm")) || !bytes.Contains(b, []byte("streamrt_process")) {
		t.Fatalf("built %d bytes that are not the project's Wasm module", len(b))
	}
	built, _ := filepath.Glob(filepath.Join(cache, "as-build", "*.wasm"))
	if len(built) != 1 {
		t.Fatalf("cache holds %v, want one build", built)
	}
	// Installing wrote node_modules, which must not change the
	// fingerprint: the second load is served from the cache.
	os.WriteFile(built[0], []byte("\x00asm cached"), 0o644)
	if b, err = Load(context.Background(), dir, cache, quiet); err != nil || string(b) != "\x00asm cached" {
		t.Fatalf("second load rebuilt or failed: %q, %v", b[:min(len(b), 16)], err)
	}
}

// A build error names the file and line, first, then asc's whole report.
func TestLoadReportsAssemblyScriptCompileErrors(t *testing.T) {
	needNode(t)
	dir := asProject(t, okEntry+"\nexport function f(): i32 {\n  return undefinedThing;\n}\n")
	_, err := Load(context.Background(), dir, t.TempDir(), quiet)
	if err == nil {
		t.Fatal("a module that does not compile loaded")
	}
	const want = "AssemblyScript build failed: assembly/index.ts:7:10: TS2304: Cannot find name 'undefinedThing'."
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an error containing %q", err, want)
	}
}

func TestLoadRefusesAssemblyScriptProjectWithoutAsconfig(t *testing.T) {
	needNode(t)
	dir := asProject(t, okEntry)
	must(t, os.Remove(filepath.Join(dir, "asconfig.json")))
	if !IsAssemblyScriptProject(dir) {
		t.Fatal("a package.json depending on assemblyscript is not recognised")
	}
	_, err := Load(context.Background(), dir, t.TempDir(), quiet)
	if err == nil || !strings.Contains(err.Error(), "needs an asconfig.json") {
		t.Fatalf("got %v, want an error asking for asconfig.json", err)
	}
}

func TestAssemblyScriptFingerprint(t *testing.T) {
	root := t.TempDir()
	sdk := filepath.Join(root, "sdk")
	dir := filepath.Join(root, "stage")
	write := func(p, s string) {
		t.Helper()
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(s), 0o644))
	}
	write(filepath.Join(sdk, "package.json"), `{"name": "streamrt"}`)
	write(filepath.Join(sdk, "assembly", "index.ts"), "export const a = 1;\n")
	write(filepath.Join(sdk, "testdata", "guest", "package.json"), `{"name": "guest"}`)
	write(filepath.Join(dir, "package.json"), `{"dependencies": {"streamrt": "file:../sdk"}, "devDependencies": {"assemblyscript": "0.28.20"}}`)
	write(filepath.Join(dir, "asconfig.json"), `{}`)
	write(filepath.Join(dir, "assembly", "index.ts"), "export const b = 1;\n")
	if !IsAssemblyScriptProject(dir) || IsAssemblyScriptProject(root) {
		t.Fatal("IsAssemblyScriptProject is wrong")
	}
	sum := func() string {
		t.Helper()
		s, err := Fingerprint(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	last := sum()
	for _, tc := range []struct {
		what, file, text string
		changes          bool
	}{
		{"the entry file", filepath.Join(dir, "assembly", "index.ts"), "export const b = 2;\n", true},
		{"a new source file", filepath.Join(dir, "assembly", "more.ts"), "export const c = 1;\n", true},
		{"the lock file", filepath.Join(dir, "package-lock.json"), `{"lockfileVersion": 3}`, true},
		{"the asconfig", filepath.Join(dir, "asconfig.json"), `{"targets": {}}`, true},
		{"the SDK", filepath.Join(sdk, "assembly", "index.ts"), "export const a = 2;\n", true},
		{"installed packages", filepath.Join(dir, "node_modules", "x", "index.ts"), "junk", false},
		{"build output", filepath.Join(dir, "build", "release.wasm"), "junk", false},
		{"a hidden directory", filepath.Join(dir, ".cache", "x"), "junk", false},
		{"a project nested in the SDK", filepath.Join(sdk, "testdata", "guest", "index.ts"), "junk", false},
	} {
		write(tc.file, tc.text)
		now := sum()
		if (now != last) != tc.changes {
			t.Errorf("changing %s: fingerprint changed %v, want %v", tc.what, now != last, tc.changes)
		}
		last = now
	}
}

func TestFirstDiagnostic(t *testing.T) {
	out := "INFO AS210: Expression is never 'null'.\n     :\n 3 │ x\n     └─ in assembly/a.ts(3,1)\nERROR TS2304: Cannot find name 'y'.\n     :\n 9 │   return y;\n   │          ~\n   └─ in assembly/index.ts(9,10)\n\nFAILURE 1 compile error(s)\n"
	if got, want := firstDiagnostic(out), "assembly/index.ts:9:10: TS2304: Cannot find name 'y'.; "; got != want {
		t.Errorf("firstDiagnostic = %q, want %q", got, want)
	}
	if got := firstDiagnostic("npm ERR! something\n"); got != "" {
		t.Errorf("firstDiagnostic of no diagnostic = %q", got)
	}
}
