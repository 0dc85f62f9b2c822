package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
)

var faultyGuest, _ = filepath.Abs(filepath.Join("..", "..", "runtime", "internal", "wasm", "testdata", "guests", "faulty"))

// status prints a running app's stage and module, its instance and tasks
// with their lag, the last dead letter with its error, and the routes; it
// fails with exit 1 and a clear message when no instance answers.
func TestStatus(t *testing.T) {
	brokers := testkafka.Brokers(t)
	app := testkafka.Name(t, "status")
	in := app + "-in"
	testkafka.CreateTopic(t, brokers, in, 2)
	dir := t.TempDir()
	httpAddr := apptest.FreeAddr(t)
	file := filepath.Join(dir, "app.yaml")
	yaml := fmt.Sprintf(`app: %s
brokers: [%s]
partitions: 2
commit_interval: 50ms
cache_dir: %s
query:
  routes:
    - {path: /members, builtin: instances}
stages:
  - name: main
    module: %s
    inputs: [%s]
    stores: [seen]
    outputs: {out: %s-out}
    error_policy: dead_letter
`, app, strings.Join(brokers, ", "), apptest.CacheDir(), faultyGuest, in, app)
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	background(t, httpAddr, "run", "-c", file, "--http", httpAddr, "--state-dir", filepath.Join(dir, "state"))
	testkafka.Produce(t, brokers, in, "good", "ok", "bad-key", "fail")

	var out string
	apptest.WaitCheck(t, 30*time.Second, "status to show the dead letter", func() error {
		code, stdout, errOut := cli(t, context.Background(), "", "status", "-a", httpAddr)
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		out = stdout
		if !strings.Contains(out, "LAST DEAD LETTERS") || !strings.Contains(out, `"bad-key"`) {
			return fmt.Errorf("no dead letter yet:\n%s", out)
		}
		return nil
	})
	t.Logf("streamrt status:\n%s", out)
	for _, want := range []string{
		"app " + app + ", asked ", ": ready, lag 0",
		"STAGE", "main", in, "out→" + app + "-out", "seen",
		"INSTANCE", "(asked)", "ok",
		"TASK", "main/0", "main/1", "running",
		"bad record", // the faulty guest's error, from the dead letter's headers
		"ROUTES", "GET", "/members", "builtin instances",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not show %q:\n%s", want, out)
		}
	}

	// --watch prints it again until interrupted.
	wctx, wcancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer wcancel()
	code, stdout, _ := cli(t, wctx, "", "status", "-a", httpAddr, "--watch", "--every", "400ms")
	if n := strings.Count(stdout, "STAGE  "); code != 0 || n < 2 {
		t.Errorf("status --watch for 1.5 s every 400 ms: exit %d, %d prints; want 0 and at least 2:\n%s", code, n, stdout)
	}

	// No instance at the address: exit 1 and say so.
	down := apptest.FreeAddr(t)
	var errOut string
	code, _, errOut = cli(t, context.Background(), "", "status", "-a", down, "--timeout", "2s")
	if code != 1 || !strings.Contains(errOut, "streamrt status: cannot reach http://"+down) {
		t.Errorf("status of a down instance: exit %d, stderr %q; want 1 and a message naming it", code, errOut)
	}
	// An unknown app on a server: the server's answer.
	code, _, errOut = cli(t, context.Background(), "", "status", "-a", httpAddr, "--app", "nope")
	if code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("status of an unknown app: exit %d, stderr %q; want 1 with the 404", code, errOut)
	}
}
