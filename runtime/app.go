package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/engine"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/serve"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
	"github.com/streamrt/streamrt/runtime/internal/watch"
)

// app is one app at work: its modules compiled, its state open, its engine
// and its HTTP API. `streamrt run` runs one; a server runs many, each
// under its own path.
type app struct {
	cfg  *config.Config
	topo *config.Topology
	log  *slog.Logger

	db       *state.DB
	metrics  *metrics.Metrics
	eng      *engine.Engine
	api      *serve.Server
	handlers *serve.Handlers

	// Each stage's wazero engines: one under the batch deadline for its
	// tasks, and, for a stage whose module serves routes, one under the
	// query deadline for its handlers.
	mu           sync.Mutex
	stageEngines map[string]*wasm.Engine
	queryEngines map[string]*wasm.Engine

	// What watchDisk last found, used by its goroutine only.
	diskPaused, diskErrLogged bool
	// diskFull is set when a write met a full disk and took the reserve,
	// until the reserve is written again; diskAlarm then wakes watchDisk.
	diskFull  atomic.Bool
	diskAlarm chan struct{}
}

// appSpec is what an app needs beyond its configuration.
type appSpec struct {
	cfg  *config.Config // validated, with its defaults
	topo *config.Topology
	// modules holds each stage's module bytes, by stage name.
	modules map[string][]byte
	// cache is the compilation cache shared by the process's engines.
	cache *wasm.Cache
	log   *slog.Logger
	// advertise is the address other instances reach this app's API at,
	// and prefix the path its API is served under ("" in run mode,
	// "/apps/NAME" in a server).
	advertise, prefix string
	// gate runs when partitions are assigned, before they are planned
	// (engine.SetAssignGate); nil for none.
	gate func(ctx context.Context) error
	// guestTime meters the tasks' batches: their tenant's share of the
	// server (nil: none).
	guestTime engine.GuestTime
	// static makes the instance a static member of the app's group, under
	// the id kept in its state dir (run mode). Servers' apps join as
	// dynamic members for now: with static membership, a server killed
	// during a rebuild's flip and restarted at once was seen leaving part
	// of the new generation's outputs unwritten, and why is not known yet.
	static bool
}

// openApp compiles an app's modules, opens its state and prepares its
// engine and API; it connects to nothing. Close releases what it opened.
func openApp(ctx context.Context, s appSpec) (_ *app, err error) {
	cfg := s.cfg
	a := &app{cfg: cfg, topo: s.topo, log: s.log, stageEngines: map[string]*wasm.Engine{}, queryEngines: map[string]*wasm.Engine{}}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	routed := routedStages(cfg)
	stages := make([]engine.Stage, len(cfg.Stages))
	queryModules := map[string]*wasm.Module{}
	// The modules are openApp's until the engine and the handlers take
	// them: closed here if it fails before.
	var loose []*wasm.Module
	defer func() {
		if err != nil {
			for _, m := range loose {
				m.Close(ctx)
			}
		}
	}()
	for i, sc := range cfg.Stages {
		we, err := wasm.NewEngine(ctx, wasm.Config{Cache: s.cache, MemoryLimit: sc.MemoryLimit, Deadline: sc.BatchDeadline})
		if err != nil {
			return nil, err
		}
		a.stageEngines[sc.Name] = we
		b := s.modules[sc.Name]
		m, err := we.Compile(ctx, sc.Module, b)
		if err != nil {
			return nil, fmt.Errorf("stage %q: %w", sc.Name, err)
		}
		loose = append(loose, m)
		stages[i] = engine.Stage{Config: sc, Module: m}
		a.log.Info("module loaded", "stage", sc.Name, "module", sc.Module, "version", short(m.Version()))
		if !routed[sc.Name] {
			continue
		}
		// Query handlers run in their own engine, under the query
		// deadline rather than the batch deadline; the compilation cache
		// makes the second compile cheap.
		qe, err := wasm.NewEngine(ctx, wasm.Config{Cache: s.cache, MemoryLimit: sc.MemoryLimit, Deadline: cfg.Query.HandlerDeadline})
		if err != nil {
			return nil, err
		}
		a.queryEngines[sc.Name] = qe
		qm, err := compileQueryModule(ctx, qe, sc, b)
		if err != nil {
			return nil, err
		}
		loose = append(loose, qm)
		queryModules[sc.Name] = qm
	}

	a.diskAlarm = make(chan struct{}, 1)
	if a.db, err = openState(cfg, a.log, a.onDiskFull); err != nil {
		return nil, err
	}
	a.metrics = metrics.New()
	if a.eng, err = engine.New(cfg, a.db, a.metrics, a.log, stages); err != nil {
		return nil, err
	}
	// Read after the store is open: its lock keeps a second instance on
	// this state dir from reading the same id.
	if s.static {
		id := cfg.InstanceID
		if id == "" {
			if id, err = stateInstanceID(cfg.StateDir, a.log); err != nil {
				return nil, err
			}
		}
		a.eng.SetInstanceID(id)
	}
	if s.gate != nil {
		a.eng.SetAssignGate(s.gate)
	}
	if s.guestTime != nil {
		a.eng.SetGuestTime(s.guestTime)
	}
	stores := queryStores(s.topo, cfg.Query.ContentTypes)
	if len(queryModules) > 0 {
		a.handlers = serve.NewHandlers(a.db, stores, a.log)
		for stage, qm := range queryModules {
			a.handlers.SetModule(stage, qm)
		}
	}
	// The engine owns the stages' modules from here, and the handlers
	// their query modules: each closes what it owns, once.
	loose = nil
	hub := watch.NewHub(watch.Limits{Buffer: cfg.Query.WatchBuffer, Coalesce: cfg.Query.WatchCoalesceKeys}, watch.Counters{
		Sent:      func(n int) { a.metrics.WatchEvents.Add(float64(n)) },
		Coalesced: func(n int) { a.metrics.WatchDrops.Add(float64(n)) },
		Ended:     func(kind string) { a.metrics.WatchesEnded.WithLabelValues(kind).Inc() },
	})
	a.eng.SetWatch(hub)
	opts := serve.Options{DB: a.db, Engine: a.eng, Metrics: a.metrics, Logger: a.log, Stores: stores, Watch: hub, ReadChangelog: a.eng.ReadChangelog,
		Query: cfg.Query, Topology: s.topo, Advertise: s.advertise, Prefix: s.prefix, Handlers: a.handlers,
		RequireClientCert: cfg.HTTPTLS.RequireClientCert()}
	if cfg.HTTPTLS.Enabled() {
		if opts.ForwardTLS, err = cfg.HTTPTLS.ClientConfig(); err != nil {
			return nil, fmt.Errorf("http_tls.%w", err)
		}
	}
	a.api = serve.New(opts)
	return a, nil
}

// openState opens the app's state database, moving a corrupt one aside
// and starting afresh under state_recovery: rebuild. The tasks then restore
// their stores from the changelogs, as they do in a new state directory.
// A reserve file beside it gives Pebble's writes one retry when the disk
// fills up (onFull learns of it).
func openState(cfg *config.Config, log *slog.Logger, onFull func()) (*state.DB, error) {
	dir := filepath.Join(cfg.StateDir, "state")
	opts := state.Options{Logger: log, Recovery: state.Rebuild, OnDiskFull: onFull}
	if space, err := state.FreeSpace(cfg.StateDir); err == nil {
		opts.Reserve = reserveSize(space.Total)
	}
	if cfg.StateRecovery == config.RecoveryRefuse {
		opts.Recovery = state.Refuse
	}
	db, err := state.Open(dir, opts)
	if _, corrupt := errors.AsType[*state.CorruptError](err); corrupt && opts.Recovery == state.Refuse {
		return nil, fmt.Errorf("%w; with state_recovery: refuse the instance does not start on it. The state is a copy of the app's changelogs: move %s aside (or delete it) and start again to restore it from them, or set state_recovery: rebuild to have that done at start", err, dir)
	}
	if err != nil {
		return nil, err
	}
	if _, err := db.EnsureReserve(); err != nil {
		log.Warn("cannot write the state disk's reserve: a full disk would stop the process", "err", err)
	}
	return db, nil
}

// Handler is the app's HTTP API, routed by paths without its prefix.
func (a *app) Handler() http.Handler { return a.api }

// Run creates the app's missing topics and processes records until ctx
// ends; a broker that is down is waited for.
func (a *app) Run(ctx context.Context) error {
	if a.cfg.Kafka.TLS.InsecureSkipVerify {
		a.log.Warn("kafka.tls.insecure_skip_verify is on: any certificate is accepted from the brokers, so anyone on the way can read and change what the app sends and receives; for tests only")
	}
	// Measured once before processing starts, so that an instance started
	// on a full disk waits from its first record.
	a.checkDisk()
	wctx, stopWatching := context.WithCancel(ctx)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		a.watchDisk(wctx)
	}()
	defer func() {
		stopWatching()
		<-watching
	}()
	if err := ensureTopics(ctx, a.cfg, a.topo, a.log, a.eng.BrokerHooks()); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	a.log.Info("processing", "brokers", a.cfg.Brokers, "group", a.cfg.Internal(), "kafka", a.cfg.Kafka.Describe())
	return a.eng.Run(ctx)
}

// Swap compiles a new version of a stage's module and makes the stage's
// tasks, and its query handlers, run it from their next cycle or request.
// A module that does not compile or validate is refused, and the stage
// keeps its version. It reports whether the version was new.
func (a *app) Swap(ctx context.Context, stage string, b []byte) (bool, error) {
	sc, ok := a.cfg.Stage(stage)
	if !ok {
		return false, fmt.Errorf("no stage %q", stage)
	}
	p, err := a.prepare(ctx, map[string]source{stage: {sc.Module, b}}, 0)
	if err != nil || len(p.stages) == 0 {
		return false, err
	}
	return true, a.commit(p)
}

// prepared holds new module versions compiled and validated, not yet
// swapped in: the first phase of a swap. It owns them until commit, which
// hands them over; one never committed is discarded.
type prepared struct {
	stages  map[string]*wasm.Module // by stage; only those whose version changes
	queries map[string]*wasm.Module // for stages that serve routes
	// canary, when positive, runs the new versions on that many
	// partitions only; zero runs them everywhere and ends any canary.
	canary int32
}

// discard closes the modules of a prepared swap that was not committed;
// a nil p has none.
func (p *prepared) discard(ctx context.Context) {
	if p == nil {
		return
	}
	for stage, m := range p.stages {
		m.Close(ctx)
		delete(p.stages, stage)
	}
	for stage, m := range p.queries {
		m.Close(ctx)
		delete(p.queries, stage)
	}
}

// source is a module's bytes and the name errors give it: its file, or
// its content address.
type source struct {
	name  string
	bytes []byte
}

// prepare compiles and validates new module bytes for stages, leaving out
// the stages whose version would not change. A module that does not compile
// or validate fails it, naming the stage and the module.
func (a *app) prepare(ctx context.Context, modules map[string]source, canary int32) (_ *prepared, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := &prepared{stages: map[string]*wasm.Module{}, queries: map[string]*wasm.Module{}, canary: canary}
	defer func() {
		if err != nil {
			p.discard(ctx)
		}
	}()
	for stage, src := range modules {
		sc, ok := a.cfg.Stage(stage)
		if !ok {
			return nil, fmt.Errorf("no stage %q", stage)
		}
		b := src.bytes
		if old := a.eng.Module(stage); old != nil && old.Version() == wasm.Version(b) {
			continue
		}
		m, err := a.stageEngines[stage].Compile(ctx, src.name, b)
		if err != nil {
			return nil, fmt.Errorf("stage %q: %w", stage, err)
		}
		p.stages[stage] = m
		if qe := a.queryEngines[stage]; qe != nil {
			qsc := *sc
			qsc.Module = src.name
			if p.queries[stage], err = compileQueryModule(ctx, qe, qsc, b); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// commit swaps prepared versions in: the stages' tasks switch at the start
// of their next cycle, their query handlers at their next request. A
// canary swaps them in on its partitions only, and leaves the query
// handlers on the version the other partitions run; otherwise every
// canary of the app ends. It uses p up: the modules it does not hand to
// the engine or the handlers (a canary's query modules; all that is left
// when it fails) it closes. The versions they replace are theirs to close.
func (a *app) commit(p *prepared) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	defer p.discard(context.Background())
	for _, sc := range a.cfg.Stages {
		m := p.stages[sc.Name]
		switch {
		case p.canary > 0 && m != nil:
			if err := a.eng.Canary(sc.Name, m, p.canary); err != nil {
				return err
			}
			delete(p.stages, sc.Name)
			a.log.Info("canary module swapped in; its partitions switch at their next cycle", "stage", sc.Name, "version", short(m.Version()), "partitions", p.canary)
		case p.canary > 0:
		case m != nil:
			if qm := p.queries[sc.Name]; qm != nil {
				a.handlers.SetModule(sc.Name, qm)
				delete(p.queries, sc.Name)
			}
			if err := a.eng.Swap(sc.Name, m); err != nil {
				return err
			}
			delete(p.stages, sc.Name)
			a.log.Info("module swapped in; tasks switch at their next cycle", "stage", sc.Name, "version", short(m.Version()))
		default:
			a.eng.Canary(sc.Name, nil, 0)
		}
	}
	return nil
}

// Close releases the app's state, modules, engines and API. The app must
// not be running.
func (a *app) Close() {
	ctx := context.Background()
	if a.api != nil {
		a.api.Close()
	}
	if a.handlers != nil {
		a.handlers.Close(ctx)
	}
	if a.db != nil {
		a.db.Close()
	}
	// Closing a wazero engine does not release its modules' code, which
	// the compilation cache shares across engines: their owners do.
	if a.eng != nil {
		a.eng.Close(ctx)
	}
	for _, we := range a.stageEngines {
		we.Close(ctx)
	}
	for _, we := range a.queryEngines {
		we.Close(ctx)
	}
}

// compileQueryModule compiles a stage's module for its query handlers,
// refusing one that serves routes but exports no handler.
func compileQueryModule(ctx context.Context, qe *wasm.Engine, sc config.Stage, b []byte) (*wasm.Module, error) {
	qm, err := qe.Compile(ctx, sc.Module, b)
	if err != nil {
		return nil, fmt.Errorf("stage %q: %w", sc.Name, err)
	}
	if !qm.ServesQueries() {
		return nil, fmt.Errorf("stage %q: module %s serves routes under query.routes but exports no %s (register a query handler with the SDK)", sc.Name, sc.Module, abi.ExportQuery)
	}
	return qm, nil
}

// serveHTTP runs serve, srv's Serve or ServeTLS, in the background, and
// returns the function that shuts srv down, waiting up to five seconds for
// requests in flight.
func serveHTTP(srv *http.Server, serve func() error, log *slog.Logger) (shutdown func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-done
	}
}

func short(version string) string {
	if len(version) > 12 {
		return version[:12]
	}
	return version
}
