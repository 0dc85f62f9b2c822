// Package runtime is the streamrt host: it runs an app — stages of
// WebAssembly logic over Kafka topics, folding them into partitioned state in
// Pebble — and serves that state over HTTP. Configure it with package config,
// then New and Run. Everything else lives in internal packages: the engine
// (consume, batch, commit), state, the wasm host, module loading and the HTTP
// server.
package runtime

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/modload"
	"github.com/streamrt/streamrt/runtime/internal/serve"
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

// Limits of the HTTP server of an app or a server: a client gets this long
// to send its headers, which may be this large, and an idle keep-alive
// connection is closed after this long, so that slow or idle clients cannot
// hold connections and memory without end. Variables only so that a test
// can wait for them in less than minutes.
var (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// httpServer is the HTTP server of an app or a server, serving h within
// the limits above.
func httpServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
}

// Run loads and validates the app's modules, opens its state, waits for the
// brokers, creates missing topics, serves HTTP and processes records until
// ctx ends. A bad module, an unusable state directory, an HTTP address that
// cannot be bound or input topics with the wrong partition count stop it
// with an error; a broker that is down is waited for.
func (r *Runtime) Run(ctx context.Context) error {
	cfg := r.cfg
	cache, err := wasm.NewCache(filepath.Join(cfg.CacheDir, "wasm"))
	if err != nil {
		return err
	}
	cache.Logger = r.log
	defer cache.Close(context.Background())
	modules := map[string][]byte{}
	for _, sc := range cfg.Stages {
		if modules[sc.Name], err = modload.Load(ctx, sc.Module, cfg.CacheDir, r.log); err != nil {
			return fmt.Errorf("stage %q: %w", sc.Name, err)
		}
	}

	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("http: listen on %s: %w", cfg.HTTP, err)
	}
	defer ln.Close()
	serveLn := ln
	if cfg.HTTPTLS.Enabled() {
		tc, err := cfg.HTTPTLS.ServerConfig()
		if err != nil {
			return fmt.Errorf("http_tls.%w", err)
		}
		serveLn = tls.NewListener(ln, tc)
	}
	advertised := *cfg
	advertised.Advertise = advertiseAddr(cfg.Advertise, ln.Addr())
	cfg = &advertised

	a, err := openApp(ctx, appSpec{cfg: cfg, topo: r.topo, modules: modules, cache: cache, log: r.log, advertise: cfg.Advertise, static: true})
	if err != nil {
		return err
	}
	defer a.Close()
	srv := httpServer(a.Handler())
	srv.RegisterOnShutdown(a.api.ShutdownWatches) // or Shutdown waits on them
	defer serveHTTP(srv, func() error { return srv.Serve(serveLn) }, r.log)()
	r.log.Info("serving queries", "http", ln.Addr().String(), "advertised", cfg.Advertise, "tls", cfg.HTTPTLS.Enabled(),
		"client_certificates", cfg.HTTPTLS.RequireClientCert())

	var wg sync.WaitGroup
	defer wg.Wait()
	if r.opts.Watch {
		for _, sc := range cfg.Stages {
			wg.Add(1)
			go func() {
				defer wg.Done()
				modload.Watch(ctx, sc.Module, cfg.CacheDir, 500*time.Millisecond, r.log, func(b []byte) {
					if _, err := a.Swap(ctx, sc.Name, b); err != nil {
						r.log.Error("changed module refused; still running the previous version", "stage", sc.Name, "err", err)
					}
				})
			}()
		}
	}
	return a.Run(ctx)
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
func queryStores(topo *config.Topology, contentTypes map[string]string) []serve.Store {
	var out []serve.Store
	for _, qs := range topo.QueryStores() {
		out = append(out, serve.Store{Name: qs.Name, Partitions: topo.Partitions, Topic: qs.Topic, Global: qs.Global, Changelog: qs.Changelog, ContentType: contentTypes[qs.Name]})
	}
	return out
}

// ErrNoCargo is wrapped by LoadModule's error, and Run's, for a module that
// is a Rust crate on a machine without cargo.
var ErrNoCargo = modload.ErrNoCargo

// ErrNoNode is wrapped by LoadModule's error, and Run's, for a module that
// is an AssemblyScript project on a machine without node and npm.
var ErrNoNode = modload.ErrNoNode

// LoadModule returns the Wasm bytes of a stage's module as the
// configuration names it (stages[].module): a .wasm file as it is, or a Go
// guest package or Rust crate directory built for Wasm with the machine's
// toolchain, or an AssemblyScript project directory built with the compiler
// its lock file pins. Builds are cached under cacheDir by the content hash of their
// sources, as Run caches them.
func LoadModule(ctx context.Context, path, cacheDir string, log *slog.Logger) ([]byte, error) {
	if log == nil {
		log = slog.Default()
	}
	return modload.Load(ctx, path, cacheDir, log)
}
