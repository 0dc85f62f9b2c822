package runtime_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Under exactly_once, outputs, changelog records and input offsets commit in
// one transaction per cycle: a read_committed reader sees every count once,
// and a restart repeats nothing. (A restore from the changelog after losing
// the state directory is TestExactlyOnceRestoreSkipsAbortedTransactions'.)
func TestExactlyOnceCounts(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}, stateDir: stateDir, eos: true}
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	a := startApp(t, spec)
	a.waitReady()
	produce(t, brokers, in, clicks(keys, 10)...)
	got := readCommitted(t, brokers, out, 200)
	if len(got) != 200 {
		t.Fatalf("%d committed outputs, want 200", len(got))
	}
	counts(t, a, keys, 10)
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	b := startApp(t, spec)
	b.waitReady()
	produce(t, brokers, in, clicks(keys, 5)...)
	if got := readCommitted(t, brokers, out, 301); len(got) != 300 {
		t.Fatalf("%d committed outputs after a restart, want exactly 300", len(got))
	}
	counts(t, b, keys, 15)
}

func readCommitted(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := testkafka.Client(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var out []*kgo.Record
	deadline := time.Now().Add(60 * time.Second)
	idle := time.Now()
	// Idle time counts once records flow: the first may take a while.
	for len(out) < n && time.Now().Before(deadline) && (len(out) == 0 || time.Since(idle) < 5*time.Second) {
		fs := cl.PollRecords(ctxTimeout(t, time.Second), 1000)
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r); idle = time.Now() })
	}
	return out
}
