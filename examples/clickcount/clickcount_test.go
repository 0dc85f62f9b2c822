// The quick start of README.md, run as written through the streamrt binary:
// start the app, produce two clicks, query the count.
package clickcount_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
)

// streamrt runs the CLI with stdin and returns its exit code and output.
func streamrt(t *testing.T, bin, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("streamrt %v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

func TestQuickStart(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "streamrt")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/streamrt")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build streamrt: %v\n%s", err, out)
	}

	httpAddr := apptest.FreeAddr(t)
	var brokers string
	args := []string{"run", "-c", "streamrt.yaml", "--http", httpAddr, "--state-dir", filepath.Join(tmp, "state")}
	if testkafka.Real() {
		brokers = os.Getenv(testkafka.EnvBrokers)
		args = append(args, "--brokers", brokers)
	} else {
		brokers = apptest.FreeAddr(t)
		args = append(args, "--embedded-broker="+brokers)
	}
	// On a shared real cluster the topics outlive the test: count pages of
	// this run only.
	page := fmt.Sprintf("home-%d", time.Now().UnixNano())

	run := exec.Command(bin, args...)
	// Share built and compiled guests with the other tests of this machine.
	run.Env = append(os.Environ(), "STREAMRT_CACHE_DIR="+apptest.CacheDir())
	// On a secured cluster, the app takes its TLS and SASL settings from
	// STREAMRT_KAFKA__ variables, and produce and consume from the file
	// that holds them.
	kafka := []string{"-b", brokers}
	if testkafka.Security(t) != nil {
		run.Env = append(run.Env, testkafka.Env(t)...)
		kafka = append(kafka, "-c", os.Getenv(testkafka.EnvSecurity))
	}
	var logs apptest.Buffer
	run.Stdout, run.Stderr = &logs, &logs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	defer func() {
		run.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("streamrt run did not exit cleanly on SIGTERM: %v\n%s", err, logs.String())
			}
		case <-time.After(30 * time.Second):
			run.Process.Kill()
			t.Errorf("streamrt run did not stop within 30s of SIGTERM\n%s", logs.String())
		}
	}()

	apptest.WaitCheck(t, apptest.ReadyTimeout, "the app to be ready", func() error {
		select {
		case err := <-exited:
			t.Fatalf("streamrt run exited early: %v\n%s", err, logs.String())
		default:
		}
		if got := apptest.Get(httpAddr, "/readyz"); got.Code != http.StatusOK {
			return fmt.Errorf("/readyz answers %d %s; the log so far:\n%s", got.Code, got.Body, logs.String())
		}
		return nil
	})
	if !testkafka.Real() && !strings.Contains(logs.String(), "in memory only") {
		t.Errorf("the embedded broker did not say that it keeps data in memory only:\n%s", logs.String())
	}

	if code, _, stderr := streamrt(t, bin, page+"\tx\n"+page+"\tx\n", append([]string{"produce", "-t", "clicks"}, kafka...)...); code != 0 {
		t.Fatalf("produce exited %d: %s", code, stderr)
	}
	var got string
	for i := 0; i < 150 && got != "2\n"; i++ {
		_, got, _ = streamrt(t, bin, "", "query", "-a", "http://"+httpAddr, "click-counts", page)
		time.Sleep(100 * time.Millisecond)
	}
	if got != "2\n" {
		t.Fatalf("query click-counts %s printed %q, want \"2\\n\"\n%s", page, got, logs.String())
	}

	code, _, stderr := streamrt(t, bin, "", "query", "-a", "http://"+httpAddr, "click-counts", "no-such-page")
	if code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("query of a missing key: exit %d, stderr %q; want exit 1 and a message", code, stderr)
	}

	// A click without a page goes to the dead-letter topic; the count of
	// the page goes on. The topic outlives the test on a shared cluster, so
	// the dead letter carries the run's page in its value.
	pageless := "no page here, run " + page
	if code, _, stderr := streamrt(t, bin, pageless+"\n"+page+"\tx\n", append([]string{"produce", "-t", "clicks"}, kafka...)...); code != 0 {
		t.Fatalf("produce exited %d: %s", code, stderr)
	}
	var dlq string
	for i := 0; i < 10 && !strings.Contains(dlq, "\t"+pageless+"\n"); i++ {
		// Without -n, consume prints every record until 3s pass with none.
		code, out, stderr := streamrt(t, bin, "", append([]string{"consume", "-t", "clickcount-count-dlq", "--from-beginning", "--timeout", "3s"}, kafka...)...)
		if code != 0 {
			t.Fatalf("consume of the dead-letter topic exited %d: %s", code, stderr)
		}
		dlq = out
	}
	if !strings.Contains(dlq, "\t"+pageless+"\n") {
		t.Errorf("the dead-letter topic lacks the click without a page %q; it holds:\n%s", pageless, dlq)
	}
	for i := 0; i < 150 && got != "3\n"; i++ {
		_, got, _ = streamrt(t, bin, "", "query", "-a", "http://"+httpAddr, "click-counts", page)
		time.Sleep(100 * time.Millisecond)
	}
	if got != "3\n" {
		t.Errorf("count after a dead-lettered click: %q, want 3", got)
	}
}
