package modload

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// needCargo skips a test on a machine without cargo, unless CI=true, where
// the Rust toolchain is required.
func needCargo(t *testing.T) {
	t.Helper()
	if _, err := LookCargo(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// crateDir writes a Rust crate with the given lib.rs and crate type and no
// dependencies.
func crateDir(t *testing.T, crateType, lib string) string {
	t.Helper()
	dir := t.TempDir()
	manifest := "[package]\nname = \"guest\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"" + crateType + "\"]\n"
	must(t, os.WriteFile(filepath.Join(dir, "Cargo.toml"), []byte(manifest), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "src"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "src", "lib.rs"), []byte(lib), 0o644))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

const okCrate = "#[no_mangle]\npub extern \"C\" fn streamrt_abi_version() -> i32 { 1 }\n"

func TestLoadBuildsRustCrateOnce(t *testing.T) {
	needCargo(t)
	dir, cache := crateDir(t, "cdylib", okCrate), t.TempDir()
	b, err := Load(context.Background(), dir, cache, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x00asm")) || !bytes.Contains(b, []byte("streamrt_abi_version")) {
		t.Fatalf("built %d bytes that are not the crate's Wasm module", len(b))
	}
	built, _ := filepath.Glob(filepath.Join(cache, "rust-build", "*.wasm"))
	if len(built) != 1 {
		t.Fatalf("cache holds %v, want one build", built)
	}
	// Building wrote Cargo.lock and target/, which must not change the
	// fingerprint: the second load is served from the cache.
	os.WriteFile(built[0], []byte("\x00asm cached"), 0o644)
	if b, err = Load(context.Background(), dir, cache, quiet); err != nil || string(b) != "\x00asm cached" {
		t.Fatalf("second load rebuilt or failed: %q, %v", b[:min(len(b), 16)], err)
	}
}

func TestLoadReportsRustCompileErrors(t *testing.T) {
	needCargo(t)
	dir := crateDir(t, "cdylib", "pub fn f() { undefined_thing() }\n")
	_, err := Load(context.Background(), dir, t.TempDir(), quiet)
	if err == nil || !strings.Contains(err.Error(), "cargo build for wasm32-unknown-unknown failed") || !strings.Contains(err.Error(), "undefined_thing") {
		t.Fatalf("got %v, want the build failure with the compiler's message", err)
	}
}

func TestLoadRefusesRustCrateWithoutCdylib(t *testing.T) {
	needCargo(t)
	dir := crateDir(t, "rlib", okCrate)
	_, err := Load(context.Background(), dir, t.TempDir(), quiet)
	if err == nil || !strings.Contains(err.Error(), `crate-type = ["cdylib"]`) {
		t.Fatalf("got %v, want an error asking for a cdylib", err)
	}
}

func TestRustFingerprint(t *testing.T) {
	root := t.TempDir()
	dep := filepath.Join(root, "dep")
	dir := filepath.Join(root, "stage")
	write := func(p, s string) {
		t.Helper()
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(s), 0o644))
	}
	write(filepath.Join(dep, "Cargo.toml"), "[package]\nname = \"dep\"\nversion = \"0.1.0\"\n")
	write(filepath.Join(dep, "src", "lib.rs"), "pub fn f() {}\n")
	write(filepath.Join(dir, "Cargo.toml"), "[package]\nname = \"stage\"\nversion = \"0.1.0\"\n\n[dependencies]\ndep = { path = \"../dep\" }\n")
	write(filepath.Join(dir, "src", "lib.rs"), "pub fn g() {}\n")
	write(filepath.Join(dir, "src", "inner", "mod.rs"), "pub fn h() {}\n")
	if !IsRustCrate(dir) || IsRustCrate(root) {
		t.Fatal("IsRustCrate is wrong")
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
		{"the crate's lib.rs", filepath.Join(dir, "src", "lib.rs"), "pub fn g() { }\n", true},
		{"a nested source file", filepath.Join(dir, "src", "inner", "mod.rs"), "pub fn h() { }\n", true},
		{"a path dependency", filepath.Join(dep, "src", "lib.rs"), "pub fn f() { }\n", true},
		{"the manifest", filepath.Join(dir, "Cargo.toml"), "[package]\nname = \"stage\"\nversion = \"0.2.0\"\n\n[dependencies]\ndep = { path = \"../dep\" }\n", true},
		{"build output", filepath.Join(dir, "target", "release", "x.wasm"), "junk", false},
		{"Cargo.lock", filepath.Join(dir, "Cargo.lock"), "# written by cargo\n", false},
		{"a hidden directory", filepath.Join(dir, ".cache", "x"), "junk", false},
	} {
		write(tc.file, tc.text)
		now := sum()
		if (now != last) != tc.changes {
			t.Errorf("changing %s: fingerprint changed %v, want %v", tc.what, now != last, tc.changes)
		}
		last = now
	}
}

func TestRustEnvPutsUsrBinFirst(t *testing.T) {
	env := RustEnv([]string{"HOME=/h", "PATH=/root/.cargo/bin:/bin"})
	want := []string{"HOME=/h", "PATH=/usr/bin" + string(os.PathListSeparator) + "/root/.cargo/bin:/bin"}
	if strings.Join(env, "\n") != strings.Join(want, "\n") {
		t.Fatalf("RustEnv = %q, want %q", env, want)
	}
	if env := RustEnv([]string{"HOME=/h"}); env[len(env)-1] != "PATH=/usr/bin" {
		t.Fatalf("RustEnv without PATH = %q", env)
	}
}
