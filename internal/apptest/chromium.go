package apptest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Chromium returns the path of Debian's chromium, for the tests that load
// a page in a real browser. Without it the test is skipped, except in CI
// (CI=true), where .ci/run installs it and its absence is a failure.
func Chromium(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err == nil {
		return bin
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("chromium is not installed, and CI=true: the browser test needs it (.ci/run installs it with apt-get install chromium): %v", err)
	}
	t.Skipf("chromium is not installed (apt-get install chromium); skipping the browser test: %v", err)
	return ""
}

// RunChromium runs bin (from Chromium) headless on url with flags added to
// the ones every test needs (no sandbox, GPU, background networking or
// first-run work, a fresh profile) and returns its standard output. It
// fails the test if Chromium fails or runs over two minutes. A
// --virtual-time-budget does not advance while fetches are pending, so a
// page's first requests complete within it.
func RunChromium(t testing.TB, bin, url string, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update",
		"--no-first-run", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir()}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v %s: %v\n%s", flags, url, err, stderr.String())
	}
	return stdout.String()
}
