package runtime_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/partition"
)

// changelogTxn is a transaction of a producer of the test's own on a
// store's changelog: records that no stage wrote, each on its key's
// partition, as a crashed or fenced instance leaves them.
type changelogTxn struct {
	t  *testing.T
	cl *kgo.Client
}

func beginChangelogTxn(t *testing.T, brokers []string) *changelogTxn {
	t.Helper()
	cl := testkafka.Client(t, brokers, kgo.TransactionalID(testkafka.Name(t, "intruder")), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	return &changelogTxn{t: t, cl: cl}
}

// put produces key=value to the changelog's partition of key, within the
// transaction.
func (x *changelogTxn) put(changelog, key, value string) {
	x.t.Helper()
	r := &kgo.Record{Topic: changelog, Key: []byte(key), Value: []byte(value), Partition: partition.For([]byte(key), 4)}
	if err := x.cl.ProduceSync(ctxTimeout(x.t, 30*time.Second), r).FirstErr(); err != nil {
		x.t.Fatalf("produce %s=%s to %s: %v", key, value, changelog, err)
	}
}

func (x *changelogTxn) abort() {
	x.t.Helper()
	if err := x.cl.EndTransaction(ctxTimeout(x.t, 30*time.Second), kgo.TryAbort); err != nil {
		x.t.Fatalf("abort: %v", err)
	}
}

// Under exactly_once a store's changelog is transactional, and a restore
// reads it read_committed: the records of aborted transactions are
// skipped, whether the restore replays a tail onto intact state or the
// whole changelog after the state directory was deleted, and a restore
// waits for a transaction still open on the changelog, with /readyz,
// streamrt_restoring_tasks and key lookups saying so, until it ends.
func TestExactlyOnceRestoreSkipsAbortedTransactions(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	changelog := appName + "-counts-changelog"
	stateDir := filepath.Join(t.TempDir(), "state")
	spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}, stateDir: stateDir, eos: true}
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	// ghosts has a key on each partition that no input ever counts.
	var ghosts []string
	for i, seen := 0, map[int32]bool{}; len(seen) < 4; i++ {
		g := fmt.Sprintf("ghost-%d", i)
		if p := partition.For([]byte(g), 4); !seen[p] {
			seen[p] = true
			ghosts = append(ghosts, g)
		}
	}
	// intrude writes a bogus count for every key and ghost in a
	// transaction, which the caller ends.
	intrude := func(bogus string) *changelogTxn {
		x := beginChangelogTxn(t, brokers)
		for _, k := range append(keys[:len(keys):len(keys)], ghosts...) {
			x.put(changelog, k, bogus)
		}
		return x
	}
	noGhosts := func(a *app) {
		t.Helper()
		for _, g := range ghosts {
			if code, body := a.get("/v1/stores/counts/keys/" + g); code != http.StatusNotFound {
				t.Errorf("key %s, written only by aborted transactions: %d %q, want 404", g, code, body)
			}
		}
	}

	a := startApp(t, spec)
	a.waitReady()
	produce(t, brokers, in, clicks(keys, 4)...)
	if got := readCommitted(t, brokers, out, 80); len(got) != 80 {
		t.Fatalf("%d committed outputs, want 80", len(got))
	}
	counts(t, a, keys, 4)
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}

	// An aborted transaction after the local checkpoint: the restart on
	// intact state replays the changelog's tail, and skips it.
	intrude("999").abort()
	b := startApp(t, spec)
	b.waitReady()
	counts(t, b, keys, 4)
	noGhosts(b)
	produce(t, brokers, in, clicks(keys, 1)...)
	counts(t, b, keys, 5)
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}

	// The state directory is lost while a transaction is open on the
	// changelog: the restore replays the whole changelog, committed
	// records before and after the aborted transaction, and waits at the
	// open one until it ends.
	open := intrude("777")
	if err := os.RemoveAll(stateDir); err != nil {
		t.Fatal(err)
	}
	c := startApp(t, spec)
	apptest.WaitCheck(t, 60*time.Second, "/readyz to report the four tasks restoring", func() error {
		code, body := c.get("/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "4 task(s) restoring their stores") {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})
	if n := apptest.Metric(c.http, "streamrt_restoring_tasks"); n != 4 {
		t.Errorf("streamrt_restoring_tasks is %v while four tasks wait for an open transaction, want 4", n)
	}
	if code, body := c.get("/v1/stores/counts/keys/" + keys[0]); code != http.StatusServiceUnavailable || !strings.Contains(body, "restoring") {
		t.Errorf("lookup while its partition restores: %d %q, want 503 saying it is restoring", code, body)
	}
	open.abort()
	c.waitReady()
	if n := apptest.Metric(c.http, "streamrt_restoring_tasks"); n != 0 {
		t.Errorf("streamrt_restoring_tasks is %v once restored, want 0", n)
	}
	counts(t, c, keys, 5)
	noGhosts(c)
	// Only committed changes were replayed: as many as a read_committed
	// reader finds in the changelog, none of the aborted transactions'.
	if n, want := restoredRecords(t, c, "counts"), len(readCommitted(t, brokers, changelog, 1<<20)); n != want {
		t.Errorf("restored %d changelog records, want the %d committed ones", n, want)
	}

	// Counting goes on from the restored values, each click once.
	produce(t, brokers, in, clicks(keys, 1)...)
	if got := readCommitted(t, brokers, out, 121); len(got) != 120 {
		t.Fatalf("%d committed outputs in all, want exactly 120", len(got))
	}
	counts(t, c, keys, 6)
}
