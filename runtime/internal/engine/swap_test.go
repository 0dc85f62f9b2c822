package engine

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
)

// Swaps and canaries while records flow, and while none do: each version
// a stage or its canary stops running is closed once no task runs it or
// holds an instance of it, the versions running stay open, a version
// rolled back to is compiled again after its first copy was closed, and
// every record is processed exactly once throughout. Close releases the
// rest.
func TestSwapsReleaseReplacedModules(t *testing.T) {
	ctx := context.Background()
	const partitions = 4
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "in", "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`app: swaps
brokers: [%s]
partitions: %d
commit_interval: 20ms
stages:
  - name: main
    module: %s
    inputs: [in]
    outputs: {out: out}
`, strings.Join(brokers, ","), partitions, guesttest.Dir("tagv1"))), "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := cfg.Stages[0]

	cache, err := wasm.NewCache(filepath.Join(guesttest.CacheDir(), "wasm"))
	if err != nil {
		t.Fatal(err)
	}
	we, err := wasm.NewEngine(ctx, wasm.Config{Cache: cache, MemoryLimit: sc.MemoryLimit, Deadline: sc.BatchDeadline})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { we.Close(ctx) })
	bins := map[string][]byte{"v1": guesttest.Build(t, "tagv1"), "v2": guesttest.Build(t, "tagv2")}
	var compiled []*wasm.Module
	compile := func(v string) *wasm.Module {
		t.Helper()
		m, err := we.Compile(ctx, v, bins[v])
		if err != nil {
			t.Fatal(err)
		}
		compiled = append(compiled, m)
		return m
	}

	db, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e, err := New(cfg, db, metrics.New(), slog.New(slog.DiscardHandler), []Stage{{Config: sc, Module: compile("v1")}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	n := 0
	produce := func(count int) {
		t.Helper()
		var recs []*kgo.Record
		for range count {
			recs = append(recs, &kgo.Record{Topic: "in", Key: []byte(fmt.Sprintf("k%d", n%20)), Value: []byte(strconv.Itoa(n))})
			n++
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// settled reports whether every compiled version but the running ones
	// is closed and, when records flow, every task runs what its
	// partition should.
	settled := func(flowing bool, running ...*wasm.Module) (bool, string) {
		for _, m := range compiled {
			if m.Closed() == slices.Contains(running, m) {
				return false, fmt.Sprintf("version %d (%s) closed: %v", slices.Index(compiled, m), m.Name(), m.Closed())
			}
		}
		if !flowing {
			return true, ""
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(e.tasks) < partitions {
			return false, fmt.Sprintf("%d tasks", len(e.tasks))
		}
		for _, tk := range e.tasks {
			if tk.inst == nil || tk.inst.Module() != tk.stage.moduleFor(tk.partition) {
				return false, fmt.Sprintf("partition %d not on its version yet", tk.partition)
			}
		}
		return true, ""
	}

	v := e.Module("main")
	var c *wasm.Module
	steps := []struct {
		name    string
		flowing bool
		do      func()
	}{
		{"started", true, func() {}},
		{"swap to v2", true, func() { v = compile("v2"); e.Swap("main", v) }},
		{"roll back to v1", true, func() { v = compile("v1"); e.Swap("main", v) }},
		{"swap to v2 with no records", false, func() { v = compile("v2"); e.Swap("main", v) }},
		{"canary v1", true, func() { c = compile("v1"); e.Canary("main", c, 2) }},
		{"replace the canary", true, func() { c = compile("v1"); e.Canary("main", c, 2) }},
		{"end the canary", true, func() { c = nil; e.Canary("main", nil, 0) }},
		{"canary v1 again", true, func() { c = compile("v1"); e.Canary("main", c, 2) }},
		{"swap to v1, ending the canary", true, func() { v, c = compile("v1"), nil; e.Swap("main", v) }},
	}
	for _, st := range steps {
		st.do()
		running := []*wasm.Module{v}
		if c != nil {
			running = append(running, c)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			ok, why := settled(st.flowing, running...)
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not settled within a minute: %s", st.name, why)
			}
			if st.flowing {
				produce(20)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	produce(200)

	out, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	seen := make([]int, n)
	got := 0
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for got < n && rctx.Err() == nil {
		out.PollFetches(rctx).EachRecord(func(r *kgo.Record) {
			tag, val, _ := strings.Cut(string(r.Value), ":")
			i, err := strconv.Atoi(val)
			if (tag != "v1" && tag != "v2") || err != nil || i < 0 || i >= n {
				t.Fatalf("unexpected output %q", r.Value)
			}
			seen[i]++
			got++
		})
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	done <- nil // for the cleanup
	rctx, cancel = context.WithTimeout(ctx, time.Second)
	defer cancel()
	out.PollFetches(rctx).EachRecord(func(*kgo.Record) { got++ }) // a repeat would be one more
	if got != n {
		t.Fatalf("%d outputs for %d records", got, n)
	}
	for i, k := range seen {
		if k != 1 {
			t.Fatalf("record %d processed %d times", i, k)
		}
	}

	if ok, why := settled(false, v); !ok {
		t.Fatalf("once Run returned: %s", why)
	}
	e.Close(ctx)
	for i, m := range compiled {
		if !m.Closed() {
			t.Fatalf("version %d (%s) open after Close", i, m.Name())
		}
	}
	t.Logf("%d records, %d versions compiled", n, len(compiled))
}
