// Package runtime is the streamrt host: it runs an app — stages of
// WebAssembly logic over Kafka topics, folding them into partitioned state in
// Pebble — and serves that state over HTTP. Configure it with package config,
// then New and Run. Everything else lives in internal packages: the engine
// (consume, batch, commit), state, the wasm host, module loading and the HTTP
// server.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/engine"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/modload"
	"github.com/streamrt/streamrt/runtime/internal/serve"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
)

// Options are the settings of a Runtime that are not part of an app's
// configuration.
type Options struct {
	// Logger receives the runtime's log; nil uses slog.Default().
	Logger *slog.Logger
	// Watch rebuilds or reloads a stage's module when its source changes and
	// swaps it in between batches.
	Watch bool
}

// Runtime runs one app.
type Runtime struct {
	cfg  *config.Config
	topo *config.Topology
	opts Options
	log  *slog.Logger
}

// New returns a runtime for cfg. It gives a copy of cfg its defaults
// (config.EnsureDefaults) and validates it, returning every problem as
// config.Load would; cfg itself is not changed. It connects to nothing
// until Run.
func New(cfg *config.Config, opts Options) (*Runtime, error) {
	if cfg == nil {
		return nil, errors.New("streamrt: nil config")
	}
	c := *cfg
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	topo, err := c.Topology()
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Runtime{cfg: &c, topo: topo, opts: opts, log: opts.Logger.With("app", c.App)}, nil
}

// Run loads and validates the app's modules, opens its state, waits for the
// brokers, creates missing topics, serves HTTP and processes records until
// ctx ends. A bad module, an unusable state directory, an HTTP address that
// cannot be bound or input topics with the wrong partition count stop it
// with an error; a broker that is down is waited for.
func (r *Runtime) Run(ctx context.Context) error {
	cfg := r.cfg
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	cacheDir := cfg.CacheDir
	cache, err := wasm.NewCache(filepath.Join(cacheDir, "wasm"))
	if err != nil {
		return err
	}
	defer cache.Close(context.Background())

	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("http: listen on %s: %w", cfg.HTTP, err)
	}
	defer ln.Close()
	advertised := *cfg
	advertised.Advertise = advertiseAddr(cfg.Advertise, ln.Addr())
	cfg = &advertised

	routed := routedStages(cfg)
	stages := make([]engine.Stage, len(cfg.Stages))
	var engines []*wasm.Engine
	defer func() {
		for _, we := range engines {
			we.Close(context.Background())
		}
	}()
	newEngine := func(sc config.Stage, deadline time.Duration) (*wasm.Engine, error) {
		we, err := wasm.NewEngine(ctx, wasm.Config{Cache: cache, MemoryLimit: sc.MemoryLimit, Deadline: deadline})
		if err == nil {
			engines = append(engines, we)
		}
		return we, err
	}
	stageEngines := make([]*wasm.Engine, len(cfg.Stages))
	queryEngines := make([]*wasm.Engine, len(cfg.Stages)) // nil for stages that serve no route
	queryModules := map[string]*wasm.Module{}
	for i, sc := range cfg.Stages {
		if stageEngines[i], err = newEngine(sc, sc.BatchDeadline); err != nil {
			return err
		}
		b, err := modload.Load(ctx, sc.Module, cacheDir, r.log)
		if err != nil {
			return fmt.Errorf("stage %q: %w", sc.Name, err)
		}
		m, err := stageEngines[i].Compile(ctx, sc.Module, b)
		if err != nil {
			return fmt.Errorf("stage %q: %w", sc.Name, err)
		}
		stages[i] = engine.Stage{Config: sc, Module: m}
		r.log.Info("module loaded", "stage", sc.Name, "module", sc.Module, "version", m.Version()[:12])
		if !routed[sc.Name] {
			continue
		}
		// Query handlers run in their own engine, under the query
		// deadline rather than the batch deadline; the compilation cache
		// makes the second compile cheap.
		if queryEngines[i], err = newEngine(sc, cfg.Query.HandlerDeadline); err != nil {
			return err
		}
		qm, err := r.compileQueryModule(ctx, queryEngines[i], sc, b)
		if err != nil {
			return err
		}
		queryModules[sc.Name] = qm
	}

	db, err := state.Open(filepath.Join(cfg.StateDir, "state"), state.Options{Logger: r.log})
	if err != nil {
		return err
	}
	defer db.Close()

	m := metrics.New()
	eng, err := engine.New(cfg, db, m, r.log, stages)
	if err != nil {
		return err
	}

	stores := queryStores(r.topo)
	var handlers *serve.Handlers
	if len(queryModules) > 0 {
		handlers = serve.NewHandlers(db, stores, r.log)
		defer handlers.Close(context.Background())
		for stage, qm := range queryModules {
			handlers.SetModule(stage, qm)
		}
	}
	api := serve.New(serve.Options{DB: db, Engine: eng, Metrics: m, Logger: r.log, Stores: stores, Query: cfg.Query, Advertise: cfg.Advertise, Handlers: handlers})
	defer api.Close()
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("http server stopped", "err", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		wg.Wait()
	}()
	r.log.Info("serving queries", "http", ln.Addr().String(), "advertised", cfg.Advertise)

	if err := ensureTopics(ctx, cfg, r.topo, r.log); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	if r.opts.Watch {
		for i, sc := range cfg.Stages {
			we, qe := stageEngines[i], queryEngines[i]
			wg.Add(1)
			go func() {
				defer wg.Done()
				modload.Watch(ctx, sc.Module, cacheDir, 500*time.Millisecond, r.log, func(b []byte) {
					m, err := we.Compile(ctx, sc.Module, b)
					if err != nil {
						r.log.Error("changed module refused; still running the previous version", "stage", sc.Name, "err", err)
						return
					}
					if old := eng.Module(sc.Name); old != nil && old.Version() == m.Version() {
						return
					}
					if qe != nil {
						qm, err := r.compileQueryModule(ctx, qe, sc, b)
						if err != nil {
							r.log.Error("changed module refused; still running the previous version", "stage", sc.Name, "err", err)
							return
						}
						handlers.SetModule(sc.Name, qm)
					}
					eng.Swap(sc.Name, m)
					r.log.Info("module swapped in; tasks switch at their next batch", "stage", sc.Name, "version", m.Version()[:12])
				})
			}()
		}
	}
	r.log.Info("processing", "brokers", cfg.Brokers, "group", cfg.App)
	return eng.Run(ctx)
}

// compileQueryModule compiles a stage's module for its query handlers,
// refusing one that serves routes but exports no handler.
func (r *Runtime) compileQueryModule(ctx context.Context, qe *wasm.Engine, sc config.Stage, b []byte) (*wasm.Module, error) {
	qm, err := qe.Compile(ctx, sc.Module, b)
	if err != nil {
		return nil, fmt.Errorf("stage %q: %w", sc.Name, err)
	}
	if !qm.ServesQueries() {
		return nil, fmt.Errorf("stage %q: module %s serves routes under query.routes but exports no %s (register a query handler with the SDK)", sc.Name, sc.Module, abi.ExportQuery)
	}
	return qm, nil
}

// routedStages are the stages whose modules serve query routes.
func routedStages(cfg *config.Config) map[string]bool {
	out := map[string]bool{}
	for _, rt := range cfg.Query.Routes {
		if rt.Stage != "" {
			out[rt.Stage] = true
		}
	}
	return out
}

// advertiseAddr is the query address to advertise to the group: the
// configured one, else the bound address with an unspecified host
// (0.0.0.0, ::) replaced by the machine's host name, which other instances
// can reach where a wildcard means nothing.
func advertiseAddr(configured string, bound net.Addr) string {
	if configured != "" {
		return configured
	}
	host, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return bound.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil {
			host = name
		}
	}
	return net.JoinHostPort(host, port)
}

// queryStores lists the stores the HTTP API serves: every stage store and
// every table.
func queryStores(topo *config.Topology) []serve.Store {
	var out []serve.Store
	for _, qs := range topo.QueryStores() {
		out = append(out, serve.Store{Name: qs.Name, Partitions: topo.Partitions, Topic: qs.Topic, Global: qs.Global})
	}
	return out
}

// ErrNoCargo is wrapped by LoadModule's error, and Run's, for a module that
// is a Rust crate on a machine without cargo.
var ErrNoCargo = modload.ErrNoCargo

// LoadModule returns the Wasm bytes of a stage's module as the
// configuration names it (stages[].module): a .wasm file as it is, or a Go
// guest package or Rust crate directory built for Wasm with the machine's
// toolchain. Builds are cached under cacheDir by the content hash of their
// sources, as Run caches them.
func LoadModule(ctx context.Context, path, cacheDir string, log *slog.Logger) ([]byte, error) {
	if log == nil {
		log = slog.Default()
	}
	return modload.Load(ctx, path, cacheDir, log)
}
