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

	"github.com/streamrt/streamrt/internal/modload"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/engine"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
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
	opts Options
	log  *slog.Logger
}

// New returns a runtime for cfg, which must come from config.Load or have
// passed Validate. It connects to nothing until Run.
func New(cfg *config.Config, opts Options) (*Runtime, error) {
	if cfg == nil {
		return nil, errors.New("streamrt: nil config")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Runtime{cfg: cfg, opts: opts, log: opts.Logger.With("app", cfg.App)}, nil
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

	stages := make([]engine.Stage, len(cfg.Stages))
	wasmEngines := make([]*wasm.Engine, len(cfg.Stages))
	defer func() {
		for _, we := range wasmEngines {
			if we != nil {
				we.Close(context.Background())
			}
		}
	}()
	for i, sc := range cfg.Stages {
		we, err := wasm.NewEngine(ctx, wasm.Config{Cache: cache, MemoryLimit: sc.MemoryLimit, Deadline: sc.BatchDeadline})
		if err != nil {
			return err
		}
		wasmEngines[i] = we
		m, err := r.loadModule(ctx, we, sc, cacheDir)
		if err != nil {
			return fmt.Errorf("stage %q: %w", sc.Name, err)
		}
		stages[i] = engine.Stage{Config: sc, Module: m}
		r.log.Info("module loaded", "stage", sc.Name, "module", sc.Module, "version", m.Version()[:12])
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

	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("http: listen on %s: %w", cfg.HTTP, err)
	}
	srv := &http.Server{
		Handler:           serve.New(db, eng, m, queryStores(cfg), cfg.Query.MaxKeyBytes),
		ReadHeaderTimeout: 10 * time.Second,
	}
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
	r.log.Info("serving queries", "http", ln.Addr().String())

	if err := ensureTopics(ctx, cfg, r.log); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	if r.opts.Watch {
		for i, sc := range cfg.Stages {
			we := wasmEngines[i]
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
					eng.Swap(sc.Name, m)
					r.log.Info("module swapped in; tasks switch at their next batch", "stage", sc.Name, "version", m.Version()[:12])
				})
			}()
		}
	}
	r.log.Info("processing", "brokers", cfg.Brokers, "group", cfg.App)
	return eng.Run(ctx)
}

func (r *Runtime) loadModule(ctx context.Context, we *wasm.Engine, sc config.Stage, cacheDir string) (*wasm.Module, error) {
	b, err := modload.Load(ctx, sc.Module, cacheDir, r.log)
	if err != nil {
		return nil, err
	}
	return we.Compile(ctx, sc.Module, b)
}

// queryStores lists the stores the HTTP API serves: every stage store and
// every table.
func queryStores(cfg *config.Config) []serve.Store {
	var out []serve.Store
	for _, s := range cfg.Stages {
		for _, name := range s.Stores {
			out = append(out, serve.Store{Name: name, Partitions: cfg.Partitions, Topic: s.Inputs[0]})
		}
	}
	for _, t := range cfg.Tables {
		out = append(out, serve.Store{Name: t.Name, Partitions: cfg.Partitions, Topic: t.Topic, Global: t.Global})
	}
	return out
}
