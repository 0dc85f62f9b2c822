package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/control"
	"github.com/streamrt/streamrt/runtime/internal/serve"
)

// mux is the server's HTTP surface: the apps' APIs under /apps/NAME/, the
// admin API under /v1/admin/ (behind the admin tokens), and the server's
// own probes.
func (h *host) mux() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", h.ready)
	m.HandleFunc("/apps/{app}/", h.appAPI)
	// Who may call what: the platform's admin tokens anything; a tenant's
	// deploy token its own apps, modules, audit and quotas; a tenant's
	// query token none of the admin API.
	platform := func(pattern string, fn http.HandlerFunc) { m.Handle(pattern, h.authorize(platformOnly, fn)) }
	deployer := func(pattern string, fn http.HandlerFunc) { m.Handle(pattern, h.authorize(deployers, fn)) }
	app := func(pattern string, fn http.HandlerFunc) { m.Handle(pattern, h.authorizeApp(fn)) }
	deployer("HEAD /v1/admin/modules/{hash}", h.hasModule)
	deployer("GET /v1/admin/modules/{hash}", h.hasModule)
	deployer("PUT /v1/admin/modules/{hash}", h.putModule)
	deployer("GET /v1/admin/apps", h.listApps)
	app("GET /v1/admin/apps/{app}", h.getApp)
	app("POST /v1/admin/apps/{app}/versions", h.deploy)
	app("POST /v1/admin/apps/{app}/rollback", h.rollback)
	app("POST /v1/admin/apps/{app}/promote", h.promote)
	app("DELETE /v1/admin/apps/{app}", h.deleteApp)
	deployer("GET /v1/admin/tenants", h.listTenants)
	platform("PUT /v1/admin/tenants/{tenant}", h.putTenant)
	platform("DELETE /v1/admin/tenants/{tenant}", h.deleteTenant)
	platform("POST /v1/admin/tenants/{tenant}/tokens", h.makeToken)
	platform("DELETE /v1/admin/tenants/{tenant}/tokens/{id}", h.revokeToken)
	deployer("GET /v1/admin/audit", h.listAudit)
	// The server's own metrics name every tenant: a scraper presents an
	// admin token (Prometheus: authorization.credentials).
	platform("GET /metrics", h.metricsHandler().ServeHTTP)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := serve.AllowedMethods(m, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: the route answers %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s (apps are under /apps/NAME/)", r.Method, r.URL.Path))
	})
	return m
}

// appAPI hands a request under /apps/NAME/ to that app's API. A request
// forwarded to a generation this instance has retired (NAME@gN) is answered
// by the generation that serves now, whose state is as new or newer.
func (h *host) appAPI(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	if !h.authorizeQuery(w, r, baseApp(name)) {
		return
	}
	// A generation found here may close before it answers, when its routes
	// have just moved: look again, which finds the one that replaced it.
	for range 3 {
		g := h.lookupRoute(name)
		if g == nil {
			break
		}
		g.serving.RLock()
		if !g.closed {
			defer g.serving.RUnlock()
			if _, gen, ok := splitGenKey(name); ok && gen != g.num {
				// Forwarded to a generation retired here: the serving one
				// places partitions its own way, and may forward once more.
				r.Header.Del(serve.HeaderForwarded)
			}
			http.StripPrefix(appPrefix(name), g.app.Handler()).ServeHTTP(w, r)
			return
		}
		g.serving.RUnlock()
	}
	if spec, ok := h.ctl.App(baseApp(name)); ok && !spec.Deleted {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("app %q is not running on this instance yet", name))
		return
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no app %q", name))
}

// lookupRoute finds the generation that answers name: NAME, or NAME@gN,
// which falls back to NAME's serving generation once gN is retired here
// (never to an older one: that would answer from older state).
func (h *host) lookupRoute(name string) *generation {
	h.rmu.RLock()
	defer h.rmu.RUnlock()
	if g := h.routes[name]; g != nil {
		return g
	}
	base, gen, ok := splitGenKey(name)
	if !ok {
		return nil
	}
	if g := h.routes[base]; g != nil && g.num > gen {
		return g
	}
	return nil
}

// baseApp strips the generation from NAME@gN.
func baseApp(name string) string {
	if base, _, ok := splitGenKey(name); ok {
		return base
	}
	return name
}

// splitGenKey parses NAME@gN, the inverse of genKey.
func splitGenKey(key string) (app string, gen int, ok bool) {
	i := strings.LastIndex(key, "@g")
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(key[i+2:])
	if err != nil {
		return "", 0, false
	}
	return key[:i], n, true
}

// ready answers that the server serves; with an admin token, also what it
// runs of each app (the apps' names are not for every prober to read).
func (h *host) ready(w http.ResponseWriter, r *http.Request) {
	type appState struct {
		Version int64  `json:"version"`
		State   string `json:"state"`
		Reason  string `json:"reason,omitempty"`
	}
	answer := map[string]any{"ready": true, "instance": h.instance}
	if p, code, _ := h.authenticate(r); code != 0 || !p.admin() {
		writeJSON(w, http.StatusOK, answer)
		return
	}
	apps := map[string]appState{}
	for name, st := range h.ownStatuses() {
		apps[name] = appState{Version: st.Version, State: st.State, Reason: st.Reason}
	}
	answer["apps"] = apps
	writeJSON(w, http.StatusOK, answer)
}

// ownStatuses is this instance's status of each app, as last written.
func (h *host) ownStatuses() map[string]control.Status {
	out := map[string]control.Status{}
	for name := range h.ctl.Apps() {
		if st, ok := h.ctl.Statuses(name)[h.instance]; ok {
			out[name] = st
		}
	}
	return out
}

func (h *host) hasModule(w http.ResponseWriter, r *http.Request) {
	hash := r.PathValue("hash")
	if !h.ctl.HasModule(hash) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no module %s", hash))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"module": hash})
}

// putModule stores an uploaded module, which must hash to its name and be
// WebAssembly.
func (h *host) putModule(w http.ResponseWriter, r *http.Request) {
	hash := r.PathValue("hash")
	b, err := io.ReadAll(io.LimitReader(r.Body, control.MaxModuleBytes+1))
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("reading the module: %v", err))
		return
	case len(b) > control.MaxModuleBytes:
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a module is at most %d bytes", control.MaxModuleBytes))
		return
	case control.Hash(b) != hash:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the body hashes to %s, not %s", control.Hash(b), hash))
		return
	case len(b) < 8 || string(b[:4]) != "\x00asm":
		writeError(w, http.StatusBadRequest, "not a WebAssembly module (no \\0asm header)")
		return
	}
	if _, err := h.ctl.PutModule(r.Context(), b); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"module": hash})
}

// deployRequest is the body of POST /v1/admin/apps/{app}/versions.
type deployRequest struct {
	// Config is the app's YAML, its modules named by content address.
	Config     string `json:"config"`
	Canary     int    `json:"canary,omitempty"`
	Rebuild    bool   `json:"rebuild,omitempty"`
	DeployedBy string `json:"deployed_by,omitempty"`
}

// deploy validates a new version of an app and writes it; every instance
// then converges on it. It answers the version number.
func (h *host) deploy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	var req deployRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the body must be JSON {config, canary, rebuild, deployed_by}: %v", err))
		return
	}
	if err := h.ctl.Sync(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	prev, exists := h.ctl.App(name)
	if exists && !prev.Deleted && prev.Generation > prev.Serving {
		writeError(w, http.StatusConflict, fmt.Sprintf("app %q is rebuilding generation %d: wait for its flip, or roll back to cancel it", name, prev.Generation))
		return
	}
	spec := control.Spec{App: name, Version: prev.Version + 1, Tenant: h.tenantOf(name), Config: req.Config, Generation: prev.Serving, Serving: prev.Serving, Canary: req.Canary,
		FlippedFrom: prev.FlippedFrom, DeployedBy: req.DeployedBy, DeployedAt: time.Now().UTC()}
	if req.Rebuild && exists && !prev.Deleted {
		spec.Generation = h.nextGeneration(name, prev)
	}
	code, err := h.checkSpec(&spec)
	if err != nil {
		writeError(w, code, err.Error())
		return
	}
	if err := h.ctl.PutSpec(r.Context(), spec, h.cfg.VersionsKept); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	detail := fmt.Sprintf("generation %d", spec.Generation)
	if spec.Canary > 0 {
		detail += fmt.Sprintf(", canary on %d partitions", spec.Canary)
	}
	h.audit(r, control.Event{Action: "deploy", Tenant: spec.Tenant, App: name, Version: spec.Version, From: prev.Version, Detail: detail})
	writeJSON(w, http.StatusCreated, map[string]any{"app": name, "version": spec.Version, "generation": spec.Generation})
}

// checkSpec validates a version as a server would run it, fills its
// Modules, and checks that every module is in the modules topic. It
// returns the HTTP status for what is wrong.
func (h *host) checkSpec(spec *control.Spec) (int, error) {
	cfg, err := parseAppSpec(h.cfg, *spec, h.advertise)
	if err != nil {
		return http.StatusBadRequest, err
	}
	if spec.Tenant != "" {
		if err := h.checkTenant(*spec, cfg); errors.Is(err, errForbidden) {
			return http.StatusForbidden, err
		} else if err != nil {
			return http.StatusBadRequest, err
		}
	}
	if spec.Canary < 0 || spec.Canary > int(cfg.Partitions) {
		return http.StatusBadRequest, fmt.Errorf("canary: must be from 0 to the app's %d partitions, got %d", cfg.Partitions, spec.Canary)
	}
	spec.Modules = map[string]string{}
	var missing []string
	for _, sc := range cfg.Stages {
		hash, _ := config.ModuleHash(sc.Module)
		spec.Modules[sc.Name] = hash
		if err := h.ctl.ModuleError(hash); err != nil {
			missing = append(missing, fmt.Sprintf("stage %q: %v", sc.Name, err))
		}
	}
	if len(missing) > 0 {
		return http.StatusConflict, fmt.Errorf("%w: upload them first (PUT /v1/admin/modules/HASH): %s", control.ErrMissingModule, strings.Join(missing, "; "))
	}
	return 0, nil
}

// rollback makes an earlier version of an app the version in force again,
// as a new version: the previous one, or ?to=VERSION.
func (h *host) rollback(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	if err := h.ctl.Sync(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	cur, ok := h.ctl.App(name)
	if !ok || cur.Deleted {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no app %q", name))
		return
	}
	versions := h.ctl.Versions(name)
	var target *control.Spec
	if cur.Generation > cur.Serving {
		// A rollback during a rebuild cancels it: back to the version the
		// serving generation runs.
		if r.URL.Query().Get("to") != "" {
			writeError(w, http.StatusConflict, fmt.Sprintf("app %q is rebuilding generation %d: a rollback cancels the rebuild, without --to", name, cur.Generation))
			return
		}
		back := h.latestOf(name, cur.Serving)
		if back.Version == 0 {
			writeError(w, http.StatusConflict, fmt.Sprintf("app %q keeps no version of its serving generation %d", name, cur.Serving))
			return
		}
		target = &back
	} else if to := r.URL.Query().Get("to"); to != "" {
		v, err := strconv.ParseInt(to, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("to: a version number, got %q", to))
			return
		}
		for i := range versions {
			if versions[i].Version == v {
				target = &versions[i]
			}
		}
		if target == nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("app %q has no version %d (kept: %s)", name, v, versionList(versions)))
			return
		}
	} else {
		// The version the instances still run when the one in force was
		// refused or has not been taken up; otherwise the version before
		// the one in force that ran something else.
		var running int64
		for _, st := range h.ctl.Statuses(name) {
			if st.Version == cur.Version {
				running = 0
				break
			}
			if st.State != control.StateFailed && st.Version < cur.Version {
				running = max(running, st.Version)
			}
		}
		for _, match := range []func(control.Spec) bool{
			func(v control.Spec) bool { return v.Version == running },
			func(v control.Spec) bool { return v.Config != cur.Config },
		} {
			for i := len(versions) - 1; i >= 0 && target == nil; i-- {
				if v := versions[i]; !v.Deleted && v.Version < cur.Version && match(v) {
					target = &versions[i]
				}
			}
		}
		if target == nil {
			writeError(w, http.StatusConflict, fmt.Sprintf("app %q has no earlier version to roll back to (kept: %s)", name, versionList(versions)))
			return
		}
	}
	spec := *target
	spec.Version, spec.Generation, spec.Serving, spec.Canary, spec.FlippedFrom = cur.Version+1, cur.Serving, cur.Serving, 0, cur.FlippedFrom
	spec.DeployedAt, spec.DeployedBy = time.Now().UTC(), r.URL.Query().Get("by")
	spec.Note = fmt.Sprintf("rollback from version %d to version %d", cur.Version, target.Version)
	switch {
	case cur.Generation > cur.Serving:
		spec.Note += ", cancelling the rebuild of generation " + strconv.Itoa(cur.Generation)
	case target.Generation != cur.Serving:
		// Earlier state is gone with its generation: rebuild it.
		spec.Generation = h.nextGeneration(name, cur)
		spec.Note += ", rebuilt"
	}
	if code, err := h.checkSpec(&spec); err != nil {
		writeError(w, code, err.Error())
		return
	}
	if err := h.ctl.PutSpec(r.Context(), spec, h.cfg.VersionsKept); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	h.audit(r, control.Event{Action: "rollback", Tenant: spec.Tenant, App: name, Version: spec.Version, From: cur.Version, Detail: spec.Note})
	writeJSON(w, http.StatusCreated, map[string]any{"app": name, "version": spec.Version, "note": spec.Note})
}

// promote ends a canary: the version in force runs on every partition.
func (h *host) promote(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	if err := h.ctl.Sync(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	cur, ok := h.ctl.App(name)
	if !ok || cur.Deleted {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no app %q", name))
		return
	}
	if cur.Canary == 0 || cur.Generation > cur.Serving {
		writeError(w, http.StatusConflict, fmt.Sprintf("app %q version %d is not a canary", name, cur.Version))
		return
	}
	spec := cur
	spec.Version, spec.Canary, spec.DeployedAt = cur.Version+1, 0, time.Now().UTC()
	spec.Note = fmt.Sprintf("promote canary version %d", cur.Version)
	if err := h.ctl.PutSpec(r.Context(), spec, h.cfg.VersionsKept); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	h.audit(r, control.Event{Action: "promote", Tenant: spec.Tenant, App: name, Version: spec.Version, From: cur.Version, Detail: spec.Note})
	writeJSON(w, http.StatusCreated, map[string]any{"app": name, "version": spec.Version, "note": spec.Note})
}

// deleteApp deletes an app: every instance stops it. With ?purge=true its
// internal topics and consumer group are deleted once the group is empty,
// and every instance removes its local state.
func (h *host) deleteApp(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	purge := r.URL.Query().Get("purge") == "true"
	if err := h.ctl.Sync(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	cur, ok := h.ctl.App(name)
	if !ok || cur.Deleted {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no app %q", name))
		return
	}
	spec := control.Spec{App: name, Version: cur.Version + 1, Tenant: cur.Tenant, Generation: cur.Generation, Serving: cur.Generation, Deleted: true, Purge: purge, DeployedAt: time.Now().UTC(), Config: cur.Config}
	if err := h.ctl.PutSpec(r.Context(), spec, h.cfg.VersionsKept); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	h.audit(r, control.Event{Action: "delete", Tenant: cur.Tenant, App: name, Version: spec.Version, From: cur.Version, Detail: map[bool]string{true: "purge"}[purge]})
	answer := map[string]any{"app": name, "deleted": true}
	if purge {
		// Every generation the app has: the one serving, and one being
		// rebuilt beside it.
		gens := []control.Spec{cur}
		if cur.Serving != cur.Generation {
			serving := h.latestOf(name, cur.Serving)
			if serving.Version == 0 {
				serving = cur
				serving.Generation = cur.Serving
			}
			gens = append(gens, serving)
		}
		var purged []string
		for _, g := range gens {
			deleted, err := h.purgeKafka(r.Context(), g)
			purged = append(purged, deleted...)
			if err != nil {
				answer["purged"], answer["purge_error"] = purged, err.Error()
				writeJSON(w, http.StatusAccepted, answer)
				return
			}
		}
		answer["purged"] = purged
	}
	writeJSON(w, http.StatusOK, answer)
}

// purgeKafka deletes an app's consumer group and internal topics (its
// changelogs and repartition topics) once every instance has left the
// group. It returns what it deleted.
func (h *host) purgeKafka(ctx context.Context, spec control.Spec) ([]string, error) {
	cfg, err := parseAppSpec(h.cfg, spec, h.advertise)
	if err != nil {
		return nil, err
	}
	topo, err := cfg.Topology()
	if err != nil {
		return nil, err
	}
	adm, closeAdm, err := h.newAdmin()
	if err != nil {
		return nil, err
	}
	defer closeAdm()
	return deleteGeneration(ctx, adm, cfg, topo)
}

// appInfo is an app as GET /v1/admin/apps lists it.
type appInfo struct {
	App        string           `json:"app"`
	Tenant     string           `json:"tenant,omitempty"`
	Version    int64            `json:"version"`
	Generation int              `json:"generation"`
	Serving    int              `json:"serving"`
	Canary     int              `json:"canary,omitempty"`
	DeployedBy string           `json:"deployed_by,omitempty"`
	DeployedAt time.Time        `json:"deployed_at"`
	Note       string           `json:"note,omitempty"`
	Instances  []control.Status `json:"instances"`
	Versions   []versionInfo    `json:"versions,omitempty"`
}

type versionInfo struct {
	Version    int64             `json:"version"`
	Generation int               `json:"generation"`
	Modules    map[string]string `json:"modules"`
	DeployedBy string            `json:"deployed_by,omitempty"`
	DeployedAt time.Time         `json:"deployed_at"`
	Note       string            `json:"note,omitempty"`
	Deleted    bool              `json:"deleted,omitempty"`
}

func (h *host) info(spec control.Spec, withVersions bool) appInfo {
	ai := appInfo{App: spec.App, Tenant: spec.Tenant, Version: spec.Version, Generation: spec.Generation, Serving: spec.Serving, Canary: spec.Canary, DeployedBy: spec.DeployedBy, DeployedAt: spec.DeployedAt, Note: spec.Note, Instances: []control.Status{}}
	for _, st := range h.ctl.Statuses(spec.App) {
		ai.Instances = append(ai.Instances, st)
	}
	sort.Slice(ai.Instances, func(i, j int) bool { return ai.Instances[i].Instance < ai.Instances[j].Instance })
	if withVersions {
		for _, v := range h.ctl.Versions(spec.App) {
			ai.Versions = append(ai.Versions, versionInfo{Version: v.Version, Generation: v.Generation, Modules: v.Modules, DeployedBy: v.DeployedBy, DeployedAt: v.DeployedAt, Note: v.Note, Deleted: v.Deleted})
		}
	}
	return ai
}

// listApps lists every app to the platform, and a tenant's own to its
// deploy token.
func (h *host) listApps(w http.ResponseWriter, r *http.Request) {
	p := requestPrincipal(r)
	out := []appInfo{}
	for _, spec := range h.ctl.Apps() {
		if !spec.Deleted && p.mayManage(spec.App) {
			out = append(out, h.info(spec, false))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	writeJSON(w, http.StatusOK, map[string]any{"apps": out})
}

func (h *host) getApp(w http.ResponseWriter, r *http.Request) {
	spec, ok := h.ctl.App(r.PathValue("app"))
	if !ok || spec.Deleted {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no app %q", r.PathValue("app")))
		return
	}
	writeJSON(w, http.StatusOK, h.info(spec, true))
}

// nextGeneration is a generation number app has never used: a cancelled
// rebuild's group and topics may outlive it for a while.
func (h *host) nextGeneration(app string, cur control.Spec) int {
	next := cur.Generation + 1
	for _, v := range h.ctl.Versions(app) {
		next = max(next, v.Generation+1)
	}
	return next
}

func versionList(vs []control.Spec) string {
	var s []string
	for _, v := range vs {
		s = append(s, strconv.FormatInt(v.Version, 10))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
