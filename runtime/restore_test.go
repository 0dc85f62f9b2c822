package runtime_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/partition"
	"github.com/streamrt/streamrt/runtime/internal/state"
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
// it left drops its copy. A transaction left open on the changelog holds
// the new owner's restores at its first record until it is aborted, so
// that the test can ask both instances while the moved tasks restore.
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
	counts(t, a, keys, 5)
	open := beginChangelogTxn(t, brokers)
	for _, k := range keys {
		open.put(appName+"-counts-changelog", k, "999")
	}

	spec.stateDir = filepath.Join(t.TempDir(), "b")
	b := startApp(t, spec)
	// owners maps each key to the instance the group's map names.
	owners := func() map[string]*app {
		got := map[string]*app{}
		for _, k := range keys {
			md := apptest.Get(a.http, "/v1/metadata/stores/counts/keys/"+k)
			var meta struct{ Active *struct{ Address string } }
			if json.Unmarshal([]byte(md.Body), &meta) != nil || meta.Active == nil {
				return nil
			}
			for _, x := range []*app{a, b} {
				if meta.Active.Address == x.http {
					got[k] = x
				}
			}
		}
		return got
	}
	var moved []string
	waitFor(t, 60*time.Second, "the partitions to split between both instances, b's restoring", func() bool {
		code, body := b.get("/readyz")
		own := owners()
		moved = moved[:0]
		for k, x := range own {
			if x == b {
				moved = append(moved, k)
			}
		}
		return code == http.StatusServiceUnavailable && strings.Contains(body, "restoring") && len(own) == len(keys) && len(moved) > 0 && len(moved) < len(keys)
	})
	// While b restores, neither instance answers for the moved keys: a
	// no longer owns them, and b has not restored them.
	for _, k := range moved {
		for _, x := range []*app{a, b} {
			if code, body := x.get("/v1/stores/counts/keys/" + k); code != http.StatusServiceUnavailable {
				t.Errorf("%s asked of %s while its new owner restores: %d %q, want 503", k, x.http, code, body)
			}
		}
	}
	open.abort()
	b.waitReady()
	// Each key is answered, from either instance, by its owner's state:
	// the restored count, not the aborted one.
	for _, k := range keys {
		owner := a
		if slices.Contains(moved, k) {
			owner = b
		}
		for _, x := range []*app{a, b} {
			if got := apptest.Get(x.http, "/v1/stores/counts/keys/"+k); got.Code != 200 || got.Body != "5" || got.ServedBy != owner.http {
				t.Errorf("%s asked of %s once restored: %d %q served by %s, want 200 \"5\" from %s", k, x.http, got.Code, got.Body, got.ServedBy, owner.http)
			}
		}
	}
	if n := restoredRecords(t, b, "counts"); n < len(moved) {
		t.Fatalf("the new owner restored %d changelog records for its %d keys", n, len(moved))
	}
	produce(t, brokers, in, clicks(keys, 5)...)
	waitFor(t, 60*time.Second, "every key counted to 10 on its owner", func() bool {
		for _, k := range keys {
			if _, body := a.get("/v1/stores/counts/keys/" + k); body != "10" {
				return false
			}
		}
		return true
	})

	// The old owner's state directory holds the partitions it kept, and
	// nothing of those it gave away.
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(filepath.Join(a.stateDir, "state"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, k := range keys {
		ks, err := db.Keyspace("counts", partition.For([]byte(k), 4))
		if err != nil {
			t.Fatal(err)
		}
		_, found, err := db.Get(ks, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		if kept := !slices.Contains(moved, k); found != kept {
			t.Errorf("%s in the old owner's state: %v, want %v (moved to the new owner: %v)", k, found, kept, !kept)
		}
	}
}
