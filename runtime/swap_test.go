package runtime_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A module changed on disk while records flow is swapped in between
// batches: every record is processed exactly once, by one version or the
// other, and on each partition the old version's outputs all come first.
// The stage's query handler follows the swap: a route answered by the old
// version is answered by the new one once the swap is logged.
func TestWatchSwapsModuleWithoutLossOrRepeat(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	v1, v2 := guesttest.Build(t, "tagv1"), guesttest.Build(t, "tagv2")
	module := filepath.Join(t.TempDir(), "stage.wasm")
	if err := os.WriteFile(module, v1, 0o644); err != nil {
		t.Fatal(err)
	}
	a := startApp(t, appSpec{brokers: brokers, app: appName, in: in, out: out, module: module, watch: true,
		extra: "query:\n  routes:\n    - {path: /version, stage: main}\n"})
	a.waitReady()
	if code, body := a.get("/version"); code != 200 || body != "v1" {
		t.Fatalf("/version before the swap: %d %q, want v1", code, body)
	}

	cl := testkafka.Client(t, brokers)
	n := 0
	produceSome := func(count int) {
		t.Helper()
		var recs []*kgo.Record
		for i := 0; i < count; i++ {
			recs = append(recs, &kgo.Record{Topic: in, Key: []byte(fmt.Sprintf("k%d", n%20)), Value: []byte(strconv.Itoa(n))})
			n++
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produceSome(500)

	tmp := module + ".tmp"
	if err := os.WriteFile(tmp, v2, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, module); err != nil {
		t.Fatal(err)
	}
	// Keep records flowing until the new version is in and has processed
	// some (tasks switch at their next cycle, after the one in flight
	// commits), then some more.
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(a.log.String(), "module swapped in") {
		if time.Now().After(deadline) {
			t.Fatal("the changed module was not swapped in within 3 minutes")
		}
		produceSome(20)
		time.Sleep(20 * time.Millisecond)
	}
	// The query handlers are swapped before the swap is logged.
	if code, body := a.get("/version"); code != 200 || body != "v2" {
		t.Errorf("/version once the swap is logged: %d %q, want v2", code, body)
	}
	outs := testkafka.Client(t, brokers, kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	for v2 := false; !v2; {
		if time.Now().After(deadline) {
			t.Fatal("no output of the new version within 3 minutes")
		}
		produceSome(20)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		outs.PollFetches(ctx).EachRecord(func(r *kgo.Record) { v2 = v2 || strings.HasPrefix(string(r.Value), "v2:") })
		cancel()
	}
	produceSome(500)

	got := testkafka.ReadAll(t, brokers, out, n, 2*time.Minute)
	time.Sleep(500 * time.Millisecond)
	got = testkafka.ReadAll(t, brokers, out, n+1, 3*time.Second) // a repeat would be one more
	if len(got) != n {
		t.Fatalf("%d outputs for %d inputs", len(got), n)
	}
	seen := make([]int, n)
	lastTag := map[int32]string{}
	versions := map[string]int{}
	for _, r := range got {
		tag, val, ok := strings.Cut(string(r.Value), ":")
		i, err := strconv.Atoi(val)
		if !ok || err != nil || i < 0 || i >= n {
			t.Fatalf("unexpected output %q", r.Value)
		}
		seen[i]++
		versions[tag]++
		if lastTag[r.Partition] == "v2" && tag == "v1" {
			t.Fatalf("partition %d: a v1 output after a v2 one (record %d)", r.Partition, i)
		}
		lastTag[r.Partition] = tag
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("record %d processed %d times", i, c)
		}
	}
	if versions["v1"] == 0 || versions["v2"] == 0 {
		t.Fatalf("outputs per version %v: want both", versions)
	}
	t.Logf("%d records: %v", n, versions)
	if _, body := a.get("/metrics"); !strings.Contains(body, `streamrt_module_swaps_total{stage="main"} 1`) {
		t.Errorf("/metrics does not count one swap")
	}
}
