package runtime_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/guesttest"
	"github.com/streamrt/streamrt/internal/testkafka"
)

// Two instances of one app, side by side with their own HTTP address and
// state directory, split the partitions through the consumer group: every
// key is counted once, by the instance that owns its partition, which
// answers for it while the other answers 503.
func TestTwoInstancesShareTheWork(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}}
	a := startApp(t, spec)
	a.waitReady()
	spec.stateDir = filepath.Join(t.TempDir(), "b")
	b := startApp(t, spec)
	b.waitReady()

	// Wait until the group has settled with partitions on both instances.
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	owner := func(k string) (*app, int) {
		n, who := 0, (*app)(nil)
		for _, x := range []*app{a, b} {
			if code, _ := x.get("/v1/stores/counts/keys/" + k); code != 503 {
				n++
				who = x
			}
		}
		return who, n
	}
	waitFor(t, 60*time.Second, "both instances to own partitions", func() bool {
		owners := map[*app]bool{}
		for _, k := range keys {
			who, n := owner(k)
			if n != 1 {
				return false
			}
			owners[who] = true
		}
		return len(owners) == 2
	})

	var kvs []string
	for i := 0; i < 400; i++ {
		kvs = append(kvs, keys[i%len(keys)], "x")
	}
	produce(t, brokers, in, kvs...)
	if got := testkafka.ReadAll(t, brokers, out, 400, 60*time.Second); len(got) != 400 {
		t.Fatalf("%d outputs, want 400", len(got))
	}
	for _, k := range keys {
		who, n := owner(k)
		if n != 1 {
			t.Fatalf("key %s is answered by %d instances, want 1", k, n)
		}
		if code, body := who.get("/v1/stores/counts/keys/" + k); code != 200 || body != "10" {
			t.Errorf("count of %s: %d %q, want 200 \"10\"", k, code, body)
		}
	}
}
