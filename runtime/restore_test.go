package runtime_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// restoredRecords reads streamrt_restored_records_total for a store.
func restoredRecords(t *testing.T, a *app, store string) int {
	t.Helper()
	_, body := a.get("/metrics")
	m := regexp.MustCompile(`streamrt_restored_records_total\{store="` + regexp.QuoteMeta(store) + `"\} (\d+)`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// servedBy gets path from a and returns the status code and the instance
// that answered (X-Streamrt-Served-By): a, or the owner a forwarded to.
func servedBy(a *app, path string) (int, string) {
	resp, err := http.Get("http://" + a.http + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Streamrt-Served-By")
}

// counts checks that every key counts want. The state of a cycle commits
// just after its outputs are acknowledged, so a caller that saw the outputs
// may ask a moment before it: each key gets a few seconds to reach want,
// and must not pass it.
func counts(t *testing.T, a *app, keys []string, want int) {
	t.Helper()
	for _, k := range keys {
		var code int
		var body string
		apptest.WaitFor(t, 10*time.Second, fmt.Sprintf("count of %s to be %d", k, want), func() bool {
			code, body = a.get("/v1/stores/counts/keys/" + k)
			n, err := strconv.Atoi(body)
			if code == 200 && err == nil && n > want {
				t.Fatalf("count of %s: %d, over %d", k, n, want)
			}
			return code == 200 && body == strconv.Itoa(want)
		})
	}
}

func clicks(keys []string, rounds int) []string {
	var kvs []string
	for i := 0; i < rounds; i++ {
		for _, k := range keys {
			kvs = append(kvs, k, "x")
		}
	}
	return kvs
}

// A restarted instance with an intact state directory replays nothing; one
// whose state directory was deleted restores its stores from the changelog
// and serves the same values, and counting goes on from them.
func TestRestoreFromChangelog(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}, stateDir: stateDir}
	keys := make([]string, 25)
	for i := range keys {
		keys[i] = fmt.Sprintf("page-%d", i)
	}

	a := startApp(t, spec)
	a.waitReady()
	produce(t, brokers, in, clicks(keys, 8)...)
	if got := testkafka.ReadAll(t, brokers, out, 200, 60*time.Second); len(got) != 200 {
		t.Fatalf("%d outputs, want 200", len(got))
	}
	counts(t, a, keys, 8)
	if n := restoredRecords(t, a, "counts"); n != 0 {
		t.Fatalf("a fresh app restored %d records", n)
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}

	b := startApp(t, spec)
	b.waitReady()
	counts(t, b, keys, 8)
	if n := restoredRecords(t, b, "counts"); n != 0 {
		t.Fatalf("a restart with intact state replayed %d changelog records, want 0", n)
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}

	if err := os.RemoveAll(stateDir); err != nil {
		t.Fatal(err)
	}
	c := startApp(t, spec)
	c.waitReady()
	counts(t, c, keys, 8)
	n := restoredRecords(t, c, "counts")
	if n < len(keys) {
		t.Fatalf("restored %d changelog records after losing the state directory, want at least %d", n, len(keys))
	}
	if !strings.Contains(c.log.String(), "restored store") {
		t.Error("no restore progress in the log")
	}
	produce(t, brokers, in, clicks(keys, 2)...)
	waitFor(t, 60*time.Second, "every count at 10", func() bool {
		for _, k := range keys {
			if _, body := c.get("/v1/stores/counts/keys/" + k); body != "10" {
				return false
			}
		}
		return true
	})
	// Nothing was counted twice: the outputs of the last round end at 10.
	if got := testkafka.ReadAll(t, brokers, out, 251, 3*time.Second); len(got) != 250 {
		t.Fatalf("%d outputs in all, want 250", len(got))
	}
}

// A task that moves to an instance joining the group is restored there from
// the changelog before it processes or answers anything, and the instance
// it left drops its copy.
func TestMovedTaskIsRestoredOnItsNewOwner(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}}
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	a := startApp(t, spec)
	a.waitReady()
	produce(t, brokers, in, clicks(keys, 5)...)
	if got := testkafka.ReadAll(t, brokers, out, 200, 60*time.Second); len(got) != 200 {
		t.Fatalf("%d outputs, want 200", len(got))
	}

	spec.stateDir = filepath.Join(t.TempDir(), "b")
	b := startApp(t, spec)
	waitFor(t, 60*time.Second, "the partitions to split between both instances, restored", func() bool {
		if code, _ := b.get("/readyz"); code != 200 {
			return false
		}
		owners := map[*app]bool{}
		for _, k := range keys {
			n := 0
			for _, x := range []*app{a, b} {
				// Both answer, one by forwarding to the other: count the
				// instance that answers from its own state.
				if code, by := servedBy(x, "/v1/stores/counts/keys/"+k); code == 200 && by == x.http {
					n++
					owners[x] = true
				}
			}
			if n != 1 {
				return false
			}
		}
		return len(owners) == 2
	})
	if restoredRecords(t, b, "counts") == 0 {
		t.Fatal("the new owner served keys without restoring anything")
	}
	produce(t, brokers, in, clicks(keys, 5)...)
	waitFor(t, 60*time.Second, "every key counted to 10 on its owner", func() bool {
		for _, k := range keys {
			ok := false
			for _, x := range []*app{a, b} {
				if code, body := x.get("/v1/stores/counts/keys/" + k); code == 200 && body == "10" {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return true
	})
}
