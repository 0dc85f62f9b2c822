package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
)

// Every module version an app compiles has one owner that closes it: the
// versions swapped in (stage and query modules) and those they replace, a
// canary's, the query module a canary does not use, and a prepared swap
// never committed. The app needs no broker for any of it.
func TestAppClosesEveryModuleVersion(t *testing.T) {
	ctx := context.Background()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`app: closes
brokers: [127.0.0.1:9]
partitions: 4
state_dir: %s
cache_dir: %s
stages:
  - name: main
    module: %s
    inputs: [in]
    outputs: {out: out}
query:
  routes:
    - {path: /version, stage: main}
`, t.TempDir(), guesttest.CacheDir(), guesttest.Dir("tagv1"))), "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := cfg.Topology()
	if err != nil {
		t.Fatal(err)
	}
	cache, err := wasm.NewCache(filepath.Join(guesttest.CacheDir(), "wasm"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close(ctx) })
	v1, v2 := guesttest.Build(t, "tagv1"), guesttest.Build(t, "tagv2")
	a, err := openApp(ctx, appSpec{cfg: cfg, topo: topo, modules: map[string][]byte{"main": v1}, cache: cache, log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	all := []*wasm.Module{a.eng.Module("main")}
	prepare := func(b []byte, canary int32) *prepared {
		t.Helper()
		p, err := a.prepare(ctx, map[string]source{"main": {"main.wasm", b}}, canary)
		if err != nil {
			t.Fatal(err)
		}
		if p.stages["main"] == nil || p.queries["main"] == nil {
			t.Fatalf("prepared %v, %v: want a stage and a query module", p.stages, p.queries)
		}
		all = append(all, p.stages["main"], p.queries["main"])
		return p
	}
	commit := func(p *prepared) {
		t.Helper()
		if err := a.commit(p); err != nil {
			t.Fatal(err)
		}
	}

	commit(prepare(v2, 0))
	commit(prepare(v1, 0))
	p := prepare(v2, 2)
	canaryQuery := p.queries["main"]
	commit(p)
	if !canaryQuery.Closed() {
		t.Fatal("the query module of a canary, which the handlers do not use, is open")
	}
	// A second canary replaces the first; then a swap that another
	// instance refuses is discarded.
	commit(prepare(v2, 2))
	prepare(v2, 0).discard(ctx)
	for _, m := range all[len(all)-2:] {
		if !m.Closed() {
			t.Fatalf("module %s of a discarded swap is open", m.Name())
		}
	}
	if a.eng.Module("main").Closed() {
		t.Fatal("the stage's module is closed while the app is open")
	}

	a.Close()
	for i, m := range all {
		if !m.Closed() {
			t.Errorf("module %d (%s, version %s) is open after Close", i, m.Name(), short(m.Version()))
		}
	}
}
