package runtime

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/control"
	"github.com/streamrt/streamrt/runtime/internal/quota"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"
)

// ServerOptions are the settings of a Server that are not part of its
// configuration.
type ServerOptions struct {
	// Logger receives the server's log; nil uses slog.Default().
	Logger *slog.Logger
}

// Server hosts every app deployed through the control topics: it starts an
// app that appears, swaps a module that changes, restarts an app whose
// configuration changes and stops one that is deleted. Each app keeps its
// own consumer group, stores and changelogs, so Kafka spreads each app's
// partitions over the servers running it. Apps' APIs are served under
// /apps/NAME/, the server's admin API under /v1/admin/.
type Server struct {
	cfg  *config.Server
	opts ServerOptions
	log  *slog.Logger
}

// NewServer returns a server for cfg. It gives a copy of cfg its defaults
// and validates it; cfg itself is not changed. It connects to nothing
// until Run.
func NewServer(cfg *config.Server, opts ServerOptions) (*Server, error) {
	if cfg == nil {
		return nil, errors.New("streamrt: nil server config")
	}
	c := *cfg
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Server{cfg: &c, opts: opts, log: opts.Logger}, nil
}

// Run serves until ctx ends: it reads the control topics (creating them
// when missing), runs the apps they hold, and serves their APIs and the
// admin API. When ctx ends it stops every app, each committing what it
// processed.
func (s *Server) Run(ctx context.Context) error {
	cfg := s.cfg
	for _, dir := range []string{cfg.StateDir, cfg.CacheDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("server directory: %w", err)
		}
	}
	cache, err := wasm.NewCache(filepath.Join(cfg.CacheDir, "wasm"))
	if err != nil {
		return err
	}
	cache.Logger = s.log
	defer cache.Close(context.Background())
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
	advertise := advertiseAddr(cfg.Advertise, ln.Addr())
	instance := cfg.InstanceID
	if instance == "" {
		instance = advertise
	}
	log := s.log.With("instance", instance)

	security, err := KafkaOptions(cfg.Kafka)
	if err != nil {
		return err
	}
	topics := controlTopics(cfg.Control)
	ctl, err := control.Open(ctx, topics, cfg.ReplicationFactor, log, append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, security...)...)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer ctl.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	tailCtx, stopTail := context.WithCancel(context.Background())
	defer stopTail()
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctl.Run(tailCtx)
	}()

	h := &host{cfg: cfg, security: security, log: log, cache: cache, ctl: ctl, instance: instance, advertise: advertise, apps: map[string]*hosted{}, failedStarts: map[string]int64{}, routes: map[string]*generation{}, kicks: make(chan chan struct{})}
	h.meters = map[string]*quota.Meter{}
	h.metrics = newServerMetrics(h)
	srv := httpServer(h.mux())
	defer serveHTTP(srv, func() error { return srv.Serve(serveLn) }, log)()
	log.Info("server serving", "http", ln.Addr().String(), "advertised", advertise, "apps_topic", topics.Apps,
		"tls", cfg.HTTPTLS.Enabled(), "client_certificates", cfg.HTTPTLS.RequireClientCert())
	h.reconcile(ctx)
	h.stopAll()
	return nil
}

// host is a server's apps and the reconciler that keeps them as the control
// topics say.
type host struct {
	cfg       *config.Server
	security  []kgo.Opt // TLS and SASL to the brokers
	log       *slog.Logger
	cache     *wasm.Cache
	ctl       *control.Log
	instance  string
	advertise string

	// apps and failedStarts belong to the reconciler's goroutine.
	apps map[string]*hosted
	// failedStarts holds, per app that is not running, the version this
	// instance could not start: it is not tried again until a newer one.
	failedStarts map[string]int64

	// routes is what the HTTP server reads: each running app's API, by
	// name. The reconciler changes it under rmu, never while it compiles.
	rmu    sync.RWMutex
	routes map[string]*generation

	metrics *serverMetrics

	// meters are the tenants' meters of guest time on this server, shared
	// by every app of a tenant; the reconciler keeps their shares and
	// holds as the tenants' quotas say.
	mmu        sync.Mutex
	meters     map[string]*quota.Meter
	stateCheck time.Time // when the state quotas were last checked

	// kicks asks the reconciler for a step now, closing the channel sent
	// once the step is done.
	kicks chan chan struct{}
}

// hosted is one app on this server: the generation serving it and, during
// a rebuild, the one replaying its inputs beside it.
type hosted struct {
	*generation // the generation serving: its version in force
	log         *slog.Logger

	// build is the generation being rebuilt, nil when none is; flipping
	// is set once the serving generation was stopped for the flip.
	build    *generation
	flipping bool

	// A swap under way: the version prepared, and its compiled modules.
	next     *control.Spec
	prepared *prepared
	// refused is the latest version this instance could not run, and why.
	refused int64
	reason  string
	// state is the state last reported.
	state string
}

// generation is one generation of an app running on this server.
type generation struct {
	spec control.Spec // the version it runs; the reconciler's alone
	// num is the generation's number, which never changes: what the HTTP
	// side reads.
	num int
	app *app

	cancel context.CancelFunc
	done   chan struct{}
	err    error // what Run returned, once done is closed

	// fence holds a rebuilding generation behind the serving one, and
	// stopFence ends its reading of the groups' offsets.
	fence     *fence
	stopFence context.CancelFunc

	// serving is held for reading by every request the generation's API
	// answers, and for writing while it closes, so that a request which
	// found the generation just before its routes moved never reaches a
	// closed store: it sees closed and is routed again.
	serving sync.RWMutex
	closed  bool
}

// moduleWait bounds how long a server waits for a module's chunks to be
// read after the spec that names it.
const moduleWait = 30 * time.Second

// reconcile steps the apps toward the control topics at every change of
// them, at every kick, and every second while a swap waits for the other
// instances.
func (h *host) reconcile(ctx context.Context) {
	var kicked []chan struct{}
	for {
		changed := h.ctl.Changed()
		h.step(ctx)
		for _, done := range kicked {
			close(done)
		}
		kicked = kicked[:0]
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case done := <-h.kicks:
			kicked = append(kicked, done)
		case <-time.After(time.Second):
		}
	}
}

// gate is every app's assignment gate: it reads the control topics to
// their end and waits for a reconciler step over what it read, so that a
// swap another instance has made (its barrier complete in the status
// topic) is made here too before newly assigned partitions run.
func (h *host) gate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := h.ctl.Sync(ctx); err != nil {
		return err
	}
	done := make(chan struct{})
	select {
	case h.kicks <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// step brings every app one step closer to its version in force.
func (h *host) step(ctx context.Context) {
	h.enforceQuotas(ctx)
	want := h.ctl.Apps()
	for name, hs := range h.apps {
		if spec, ok := want[name]; !ok || spec.Deleted {
			h.stopApp(hs, "deleted")
			if ok && spec.Purge {
				h.purgeLocal(name)
			}
			h.putStatus(ctx, control.Status{App: name}, true)
		}
	}
	for name, spec := range want {
		if spec.Deleted {
			continue
		}
		hs := h.apps[name]
		if hs != nil && hs.build != nil && spec.Generation < hs.build.spec.Generation && !hs.flipping {
			// A rollback cancelled the rebuild.
			b := hs.build
			hs.build = nil
			stopGen(b, hs.log, "rebuild cancelled")
			h.closeGen(name, b)
			if err := os.RemoveAll(filepath.Join(h.cfg.StateDir, "apps", name, fmt.Sprintf("g%d", b.spec.Generation))); err != nil {
				hs.log.Warn("removing the cancelled generation's state failed", "err", err)
			}
			if h.designated(hs) {
				go h.dropGeneration(b.spec, hs.log)
			}
		}
		if hs != nil && hs.build == nil && hs.fence != nil {
			h.finishFlip(ctx, hs)
		}
		switch {
		case hs == nil:
			if spec.Version != h.refusedOf(name) {
				h.start(ctx, spec)
			}
		case isClosed(hs.done) && !hs.flipping:
			// The app stopped on its own: report it; a new version
			// starts it again.
			if hs.refused != hs.spec.Version {
				hs.refused, hs.reason = hs.spec.Version, fmt.Sprintf("stopped: %v", hs.err)
				h.report(ctx, hs, control.StateFailed)
			}
			if spec.Version > hs.spec.Version {
				h.stopApp(hs, "restarting for version "+fmt.Sprint(spec.Version))
				h.start(ctx, spec)
			}
		case spec.Serving > hs.spec.Generation:
			h.flip(ctx, hs, spec)
		case spec.Generation > hs.spec.Generation:
			h.rebuild(ctx, hs, spec)
		case spec.Version > hs.spec.Version && spec.Version != hs.refused:
			if modulesOnly(hs.spec, spec) {
				h.swap(ctx, hs, spec)
				break
			}
			// A new configuration restarts the app: a version that cannot
			// start is refused before the running one stops.
			if err := h.check(ctx, spec); err != nil {
				hs.refused, hs.reason = spec.Version, err.Error()
				hs.log.Error("version refused; still running the previous one", "version", spec.Version, "running", hs.spec.Version, "err", err)
				h.report(ctx, hs, control.StateRunning)
				break
			}
			h.stopApp(hs, "restarting for version "+fmt.Sprint(spec.Version))
			h.start(ctx, spec)
		}
	}
}

// refusedOf is the version of app this instance last failed to start.
func (h *host) refusedOf(app string) int64 { return h.failedStarts[app] }

// start opens and runs an app's version. An app that cannot start is
// reported with why, and tried again only for a newer version. During a
// rebuild it starts the generation serving, and the one being rebuilt.
func (h *host) start(ctx context.Context, spec control.Spec) {
	log := h.log.With("app", spec.App)
	h.removeOtherGenerations(spec)
	serving := spec
	switch {
	case spec.Serving < spec.Generation:
		serving = h.latestOf(spec.App, spec.Serving)
	case spec.FlippedFrom != nil && *spec.FlippedFrom != spec.Generation:
		h.startFlipped(ctx, spec, log)
		return
	default:
		serving = h.joinSwap(spec)
	}
	g, err := h.startGen(ctx, serving, nil, log)
	if err != nil {
		h.failedStarts[spec.App] = spec.Version
		log.Error("app not started", "version", spec.Version, "err", err)
		h.putStatus(ctx, control.Status{App: spec.App, State: control.StateFailed, Failed: spec.Version, Reason: err.Error()}, false)
		return
	}
	delete(h.failedStarts, spec.App)
	hs := &hosted{generation: g, log: log}
	h.apps[spec.App] = hs
	h.route(spec.App, "", g)
	log.Info("app started", "version", serving.Version, "generation", serving.Generation)
	h.report(ctx, hs, control.StateRunning)
	if spec.Generation > serving.Generation {
		h.rebuild(ctx, hs, spec)
	}
}

// clientOpts are the options of the server's own Kafka clients.
func (h *host) clientOpts() []kgo.Opt {
	return append([]kgo.Opt{kgo.SeedBrokers(h.cfg.Brokers...)}, h.security...)
}

// joinSwap returns the version an instance starting an app runs first:
// spec, unless spec is a swap that no instance has made yet. Then it is the
// version the others run, and the instance joins the swap's barrier like
// them, so that no partition it takes over is processed by a version the
// others have not swapped in.
func (h *host) joinSwap(spec control.Spec) control.Spec {
	var running int64
	for id, st := range h.ctl.Statuses(spec.App) {
		if id == h.instance || st.Version == 0 {
			continue
		}
		if st.Version >= spec.Version {
			return spec
		}
		running = max(running, st.Version)
	}
	for _, v := range h.ctl.Versions(spec.App) {
		if v.Version == running && !v.Deleted && v.Generation == spec.Generation && modulesOnly(v, spec) {
			return v
		}
	}
	return spec
}

// startFlipped starts an app whose last flip may not have finished
// everywhere: this instance restarted during it. The generation serving
// runs behind a fence against the one it replaced, as it did on the other
// instances, so that it drops the outputs of the offsets the old
// generation processed. Once the old group is empty and the new one has
// passed its offsets everywhere, the fence has nothing left to hold (which
// is at once when the old group is gone).
func (h *host) startFlipped(ctx context.Context, spec control.Spec, log *slog.Logger) {
	g, err := h.startFenced(ctx, spec, *spec.FlippedFrom, log)
	if err != nil {
		h.failedStarts[spec.App] = spec.Version
		log.Error("app not started", "version", spec.Version, "err", err)
		h.putStatus(ctx, control.Status{App: spec.App, State: control.StateFailed, Failed: spec.Version, Reason: err.Error()}, false)
		return
	}
	g.fence.flip()
	delete(h.failedStarts, spec.App)
	hs := &hosted{generation: g, log: log}
	h.apps[spec.App] = hs
	h.route(spec.App, "", g)
	log.Info("app started, finishing the flip from generation "+strconv.Itoa(*spec.FlippedFrom), "version", spec.Version, "generation", spec.Generation)
	h.finishFlip(ctx, hs)
}

// finishFlip ends the fence of an app started by startFlipped once it has
// nothing left to hold, and then deletes what is left of the generation it
// replaced.
func (h *host) finishFlip(ctx context.Context, hs *hosted) {
	_, _, _, caughtUp := hs.fence.progress()
	if !hs.fence.finalKnown() || !caughtUp {
		h.report(ctx, hs, control.StateRebuilding)
		return
	}
	hs.stopFence()
	hs.fence, hs.stopFence = nil, nil
	hs.log.Info("the flip is finished", "generation", hs.spec.Generation)
	h.report(ctx, hs, control.StateRunning)
	if from := hs.spec.FlippedFrom; from != nil && h.designated(hs) {
		if old := h.latestOf(hs.spec.App, *from); old.Version != 0 {
			go h.dropGeneration(old, hs.log)
		}
	}
}

// removeOtherGenerations removes the local state of an app's generations
// that spec neither serves nor rebuilds: left by a flip or a cancelled
// rebuild this instance did not see to its end.
func (h *host) removeOtherGenerations(spec control.Spec) {
	dir := filepath.Join(h.cfg.StateDir, "apps", spec.App)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "g"))
		if err != nil || !strings.HasPrefix(e.Name(), "g") || n == spec.Serving || n == spec.Generation {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			h.log.Warn("removing an old generation's state failed", "app", spec.App, "dir", e.Name(), "err", err)
		} else {
			h.log.Info("removed an old generation's state", "app", spec.App, "dir", e.Name())
		}
	}
}

// latestOf is the newest kept version of app's generation gen.
func (h *host) latestOf(app string, gen int) control.Spec {
	var out control.Spec
	for _, v := range h.ctl.Versions(app) {
		if v.Generation == gen && !v.Deleted && v.Version > out.Version {
			out = v
		}
	}
	return out
}

// startGen opens and runs one generation of an app, held behind f when it
// is being rebuilt. A canary version starts as the cluster runs it: the
// version before it on most partitions, itself on the canary's.
func (h *host) startGen(ctx context.Context, spec control.Spec, f *fence, log *slog.Logger) (*generation, error) {
	base := spec
	if spec.Canary > 0 {
		for _, v := range h.ctl.Versions(spec.App) {
			if v.Version < spec.Version && v.Canary == 0 && !v.Deleted && v.Generation == spec.Generation && modulesOnly(v, spec) {
				base = v
			}
		}
	}
	a, err := h.open(ctx, base, log)
	if err == nil && base.Version != spec.Version {
		var p *prepared
		if p, err = h.prepareApp(ctx, a, spec); err == nil {
			err = a.commit(p)
		}
		if err != nil {
			a.Close()
		}
	}
	if err != nil {
		return nil, err
	}
	if f != nil {
		a.eng.SetFence(f)
	}
	actx, cancel := context.WithCancel(context.Background())
	g := &generation{spec: spec, num: spec.Generation, app: a, cancel: cancel, done: make(chan struct{}), fence: f}
	go func() {
		defer close(g.done)
		g.err = a.Run(actx)
	}()
	return g, nil
}

// open prepares an app's version on this server: its configuration with
// the server's brokers, address and a state directory of its own, and its
// modules from the modules topic.
func (h *host) open(ctx context.Context, spec control.Spec, log *slog.Logger) (*app, error) {
	cfg, err := h.appConfig(spec)
	if err != nil {
		return nil, err
	}
	topo, err := cfg.Topology()
	if err != nil {
		return nil, err
	}
	modules, err := h.modules(ctx, cfg)
	if err != nil {
		return nil, err
	}
	as := appSpec{cfg: cfg, topo: topo, modules: modules, cache: h.cache, log: log, advertise: h.advertise, prefix: appPrefix(genKey(spec.App, spec.Generation)), gate: h.gate}
	if spec.Tenant != "" {
		as.guestTime = h.meter(spec.Tenant)
	}
	return openApp(ctx, as)
}

// appConfig parses a spec's configuration as this server runs it.
func (h *host) appConfig(spec control.Spec) (*config.Config, error) {
	return parseAppSpec(h.cfg, spec, h.advertise)
}

// parseAppSpec parses a deployed configuration as a server runs it: with
// the server's brokers and address, its cache, and a state directory per
// app and generation. The environment does not reach it.
func parseAppSpec(sc *config.Server, spec control.Spec, advertise string) (*config.Config, error) {
	// A deployed configuration names its modules by content address;
	// say so before config.Parse looks for files on this machine.
	var doc struct {
		Stages []struct {
			Module any `yaml:"module"`
		} `yaml:"stages"`
		HTTPTLS any `yaml:"http_tls"`
	}
	if yaml.Unmarshal([]byte(spec.Config), &doc) == nil {
		if doc.HTTPTLS != nil {
			return nil, fmt.Errorf("%w: http_tls: a deployed app is served by the server's listener; set http_tls in the server's configuration", config.ErrInvalid)
		}
		for i, st := range doc.Stages {
			if m, ok := st.Module.(string); ok && !strings.HasPrefix(m, config.ModulePrefix) {
				return nil, fmt.Errorf("%w: stages[%d].module: a deployed app names its modules by content address (%sHEX), got %q", config.ErrInvalid, i, config.ModulePrefix, m)
			}
		}
	}
	overrides := map[string]string{
		"brokers":    strings.Join(sc.Brokers, ","),
		"http":       sc.HTTP,
		"advertise":  advertise,
		"state_dir":  filepath.Join(sc.StateDir, "apps", spec.App, fmt.Sprintf("g%d", spec.Generation)),
		"generation": strconv.Itoa(spec.Generation),
		"cache_dir":  sc.CacheDir,
		// Outputs say which version produced them: swaps happen live.
		"module_header": "true",
	}
	cfg, err := config.Parse([]byte(spec.Config), "", nil, overrides)
	if err != nil {
		return nil, err
	}
	if cfg.App != spec.App {
		return nil, fmt.Errorf("%w: app: the configuration names app %q, deployed as %q", config.ErrInvalid, cfg.App, spec.App)
	}
	// The server's cluster, and how it connects to it, are every app's.
	cfg.Kafka = sc.Kafka
	// The server's listener is the apps': they forward over its TLS.
	cfg.HTTPTLS = sc.HTTPTLS
	for i, st := range cfg.Stages {
		if _, ok := config.ModuleHash(st.Module); !ok {
			return nil, fmt.Errorf("%w: stages[%d].module: a deployed app names its modules by content address (%sHEX), got %q", config.ErrInvalid, i, config.ModulePrefix, st.Module)
		}
	}
	return cfg, nil
}

func controlTopics(c config.Control) control.Topics {
	return control.Topics{Apps: c.AppsTopic, Modules: c.ModulesTopic, Status: c.StatusTopic, Tenants: c.TenantsTopic, Audit: c.AuditTopic}
}

func appPrefix(app string) string { return "/apps/" + app }

// stopGen ends a generation's run, waiting for its last commit; its API
// serves on until closeGen.
func stopGen(g *generation, log *slog.Logger, why string) {
	g.cancel()
	if g.stopFence != nil {
		g.stopFence()
	}
	select {
	case <-g.done:
		log.Info("generation stopped", "generation", g.spec.Generation, "why", why)
	case <-time.After(2 * time.Minute):
		log.Error("generation did not stop within 2 minutes", "generation", g.spec.Generation, "why", why)
	}
}

// closeGen releases a stopped generation and its own route, once the
// requests it is answering have ended. A generation whose run has not
// ended (stopGen gave up waiting) is released when it does: closing its
// store under a running engine would fail it in the middle of a commit.
func (h *host) closeGen(app string, g *generation) {
	select {
	case <-g.done:
	default:
		h.log.Warn("generation still running; it is released when it stops", "app", app, "generation", g.spec.Generation)
		go func() {
			<-g.done
			h.closeGen(app, g)
		}()
		return
	}
	h.rmu.Lock()
	if h.routes[genKey(app, g.spec.Generation)] == g {
		delete(h.routes, genKey(app, g.spec.Generation))
	}
	h.rmu.Unlock()
	g.serving.Lock()
	g.closed = true
	g.serving.Unlock()
	g.app.Close()
}

// stopApp stops every generation of a hosted app and forgets it.
func (h *host) stopApp(hs *hosted, why string) {
	name := hs.spec.App
	h.rmu.Lock()
	for key := range h.routes {
		if key == name || strings.HasPrefix(key, name+"@") {
			delete(h.routes, key)
		}
	}
	h.rmu.Unlock()
	for _, g := range []*generation{hs.build, hs.generation} {
		if g != nil {
			stopGen(g, hs.log, why)
			h.closeGen(name, g)
		}
	}
	hs.dropPrepared(context.Background())
	delete(h.apps, name)
	hs.log.Info("app stopped", "why", why)
}

// route makes g's API reachable at /apps/NAME@gN/, where instances forward
// requests of that generation, and, unless only, at /apps/NAME/: the
// generation that serves.
func (h *host) route(app string, only string, g *generation) {
	h.rmu.Lock()
	defer h.rmu.Unlock()
	h.routes[genKey(app, g.spec.Generation)] = g
	if only == "" {
		h.routes[app] = g
	}
}

// flipRoutes makes g the generation that serves app, and the one that
// answers requests forwarded to retired, in one step: no request finds
// neither.
func (h *host) flipRoutes(app string, retired int, g *generation) {
	h.rmu.Lock()
	defer h.rmu.Unlock()
	h.routes[genKey(app, g.spec.Generation)] = g
	h.routes[app] = g
	h.routes[genKey(app, retired)] = g
}

// genKey names one generation of an app in paths: NAME@gN.
func genKey(app string, gen int) string { return fmt.Sprintf("%s@g%d", app, gen) }

// stopAll stops every app: the server is ending.
func (h *host) stopAll() {
	for _, hs := range h.apps {
		h.stopApp(hs, "server stopping")
	}
}

// purgeLocal removes an app's local state, every generation of it.
func (h *host) purgeLocal(app string) {
	dir := filepath.Join(h.cfg.StateDir, "apps", app)
	if err := os.RemoveAll(dir); err != nil {
		h.log.Error("purging the local state of a deleted app failed", "app", app, "dir", dir, "err", err)
	}
}

// swap moves a running app to a version whose modules alone changed, in
// two phases across the instances running it: each instance compiles and
// validates the new modules and says so in the status topic; once every
// member of the app's group has, each swaps them in at its tasks' next
// cycle. An instance that cannot load the version says why, and no
// instance swaps: the app keeps its version everywhere.
func (h *host) swap(ctx context.Context, hs *hosted, spec control.Spec) {
	if hs.next == nil || hs.next.Version != spec.Version {
		hs.dropPrepared(ctx)
		p, err := h.prepare(ctx, hs, spec)
		if err != nil {
			hs.refused, hs.reason = spec.Version, err.Error()
			hs.log.Error("version refused; still running the previous one", "version", spec.Version, "running", hs.spec.Version, "err", err)
			h.report(ctx, hs, control.StateRunning)
			return
		}
		hs.next, hs.prepared = &spec, p
		h.report(ctx, hs, control.StateSwapping)
	}
	ready, refusedBy := h.barrier(hs, spec.Version)
	switch {
	case refusedBy != "":
		hs.dropPrepared(ctx)
		hs.refused, hs.reason = spec.Version, refusedBy
		hs.log.Error("version refused by another instance; still running the previous one", "version", spec.Version, "running", hs.spec.Version, "why", refusedBy)
		h.report(ctx, hs, control.StateRunning)
	case ready:
		if err := hs.app.commit(hs.prepared); err != nil {
			// commit used the prepared modules up: prepare again.
			hs.next, hs.prepared = nil, nil
			hs.log.Error("swap failed", "version", spec.Version, "err", err)
			return
		}
		hs.spec, hs.next, hs.prepared = spec, nil, nil
		hs.log.Info("version swapped in", "version", spec.Version)
		h.report(ctx, hs, control.StateRunning)
	}
}

// dropPrepared forgets a swap under way, closing the modules it prepared.
func (hs *hosted) dropPrepared(ctx context.Context) {
	hs.prepared.discard(ctx)
	hs.next, hs.prepared = nil, nil
}

// modules reads each stage's module from the modules topic, by stage.
func (h *host) modules(ctx context.Context, cfg *config.Config) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, sc := range cfg.Stages {
		hash, _ := config.ModuleHash(sc.Module)
		b, err := h.ctl.Module(ctx, hash, moduleWait)
		if err != nil {
			return nil, fmt.Errorf("stage %q: %w", sc.Name, err)
		}
		out[sc.Name] = b
	}
	return out, nil
}

// check reports why a version could not start: its configuration does not
// parse, or a stage's module is missing or fails to compile, validate or
// initialise.
func (h *host) check(ctx context.Context, spec control.Spec) error {
	cfg, err := h.appConfig(spec)
	if err != nil {
		return err
	}
	modules, err := h.modules(ctx, cfg)
	if err != nil {
		return err
	}
	for _, sc := range cfg.Stages {
		we, err := wasm.NewEngine(ctx, wasm.Config{Cache: h.cache, MemoryLimit: sc.MemoryLimit, Deadline: sc.BatchDeadline})
		if err != nil {
			return fmt.Errorf("stage %q: %w", sc.Name, err)
		}
		m, err := we.Compile(ctx, sc.Module, modules[sc.Name])
		if err == nil {
			m.Close(ctx) // the engine's Close leaves the cache's code
		}
		we.Close(ctx)
		if err != nil {
			return fmt.Errorf("stage %q: %w", sc.Name, err)
		}
	}
	return nil
}

// prepare compiles a version's modules for a running app.
func (h *host) prepare(ctx context.Context, hs *hosted, spec control.Spec) (*prepared, error) {
	return h.prepareApp(ctx, hs.app, spec)
}

func (h *host) prepareApp(ctx context.Context, a *app, spec control.Spec) (*prepared, error) {
	cfg, err := h.appConfig(spec)
	if err != nil {
		return nil, err
	}
	raw, err := h.modules(ctx, cfg)
	if err != nil {
		return nil, err
	}
	modules := map[string]source{}
	for _, sc := range cfg.Stages {
		modules[sc.Name] = source{sc.Module, raw[sc.Name]}
	}
	return a.prepare(ctx, modules, int32(spec.Canary))
}

// barrier reports whether every member of the app's group has prepared
// version v, or names an instance that refused it, and why.
func (h *host) barrier(hs *hosted, v int64) (ready bool, refusedBy string) {
	a := hs.app.eng.Assignment()
	if !a.Valid() {
		return false, ""
	}
	byAddr := map[string]control.Status{}
	for _, st := range h.ctl.Statuses(hs.spec.App) {
		byAddr[st.Address] = st
	}
	ready = true
	for _, m := range a.Members() {
		st, ok := byAddr[m.Addr]
		switch {
		case ok && st.Failed == v:
			return false, fmt.Sprintf("instance %s: %s", st.Instance, st.Reason)
		case !ok || (st.Prepared < v && st.Version < v):
			ready = false
		}
	}
	return ready, ""
}

// report writes this instance's status of a hosted app.
func (h *host) report(ctx context.Context, hs *hosted, state string) {
	hs.state = state
	st := control.Status{App: hs.spec.App, Version: hs.spec.Version, State: state, Serving: hs.spec.Generation}
	b, flipping := hs.build, hs.flipping
	if b == nil && hs.fence != nil {
		b, flipping = hs.generation, true // finishing a flip after a restart
	}
	if b != nil && b.fence != nil {
		replayed, lag, eta, _ := b.fence.progress()
		st.Rebuild = &control.Rebuild{Generation: b.spec.Generation, Replayed: replayed, Lag: lag, ETASeconds: eta, Flipping: flipping,
			Ready: buildReady(hs)}
		hs.app.metrics.RebuildReplayed.Set(float64(replayed))
		hs.app.metrics.RebuildLag.Set(float64(lag))
	}
	if hs.next != nil {
		st.Prepared = hs.next.Version
	}
	if hs.refused != 0 {
		st.Failed, st.Reason = hs.refused, hs.reason
	}
	if hs.spec.Tenant != "" {
		st.Held = h.meter(hs.spec.Tenant).Held()
	}
	h.putStatus(ctx, st, false)
}

func (h *host) putStatus(ctx context.Context, st control.Status, remove bool) {
	st.Instance, st.Address = h.instance, h.advertise
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := h.ctl.PutStatus(wctx, st, remove); err != nil {
		h.log.Warn("status not written", "app", st.App, "err", err)
	}
}

// modulesOnly reports whether two versions of an app differ in their
// modules alone, which a swap handles without a restart.
func modulesOnly(a, b control.Spec) bool {
	strip := func(s control.Spec) string {
		out := s.Config
		for _, hash := range s.Modules {
			out = strings.ReplaceAll(out, hash, "")
		}
		return out
	}
	return strip(a) == strip(b)
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
