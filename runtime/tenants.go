package runtime

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	goruntime "runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/control"
	"github.com/streamrt/streamrt/runtime/internal/serve"
)

// A principal is who a request's bearer token says it comes from: the
// platform (one of the servers' admin tokens) or one of a tenant's tokens.
type principal struct {
	tenant  string // "" for the platform
	role    string // roleAdmin, control.RoleDeploy or control.RoleQuery
	tokenID string // never the token itself
}

const roleAdmin = "admin"

func (p principal) admin() bool { return p.role == roleAdmin }

// mayManage says whether p may deploy, change, read or delete app: the
// platform may touch any app; a tenant's deploy token, only the apps in its
// namespace, whether they exist or not, so that a refusal says nothing of
// other tenants' apps.
func (p principal) mayManage(app string) bool {
	return p.admin() || p.role == control.RoleDeploy && strings.HasPrefix(app, p.tenant+".")
}

// tokenPrefix starts every tenant token, so that a log or a leak scanner
// can tell one, and so that only such a token makes a server re-read the
// tenants before it refuses it.
const tokenPrefix = "srt_"

// whoIs finds the principal a bearer token names. A tenant token made
// moments ago on another server may not have reached this one's view of
// the control topics yet: before refusing one, the view is brought up to
// date once.
func (h *host) whoIs(ctx context.Context, token string) (principal, bool) {
	for _, t := range h.cfg.AdminTokens {
		// Constant time, so that response times do not reveal how much of
		// a token matched.
		if subtle.ConstantTimeCompare([]byte(token), []byte(t)) == 1 {
			sum := sha256.Sum256([]byte(token))
			return principal{role: roleAdmin, tokenID: "admin:" + hex.EncodeToString(sum[:4])}, true
		}
	}
	if !strings.HasPrefix(token, tokenPrefix) {
		return principal{}, false
	}
	if p, ok := h.tenantToken(token); ok {
		return p, true
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if h.ctl.Sync(sctx) != nil {
		return principal{}, false
	}
	return h.tenantToken(token)
}

// tenantToken looks token up among the tenants' tokens by its hash,
// comparing every stored hash in constant time.
func (h *host) tenantToken(token string) (principal, bool) {
	sum := sha256.Sum256([]byte(token))
	hash := []byte(hex.EncodeToString(sum[:]))
	var found principal
	ok := false
	for _, t := range h.ctl.Tenants() {
		for _, tk := range t.Tokens {
			if subtle.ConstantTimeCompare(hash, []byte(tk.Hash)) == 1 {
				found, ok = principal{tenant: t.Name, role: tk.Role, tokenID: tk.ID}, true
			}
		}
	}
	return found, ok
}

type principalKey struct{}

// authorize answers 401 to a request without a valid token, and 403 to one
// whose token may not use the endpoint: allow says which principals may.
// The principal is in the request's context for the handler.
func (h *host) authorize(allow func(principal) bool, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, code, why := h.authenticate(r)
		if code == 0 && !allow(p) {
			code, why = http.StatusForbidden, denial(p, r)
		}
		if code != 0 {
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="streamrt-admin"`)
			}
			writeError(w, code, why)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// authenticate finds the request's principal, or the status and reason to
// refuse it with.
func (h *host) authenticate(r *http.Request) (principal, int, string) {
	if len(h.cfg.AdminTokens) == 0 {
		return principal{}, http.StatusForbidden, "the admin API is closed: the server has no admin_tokens"
	}
	token, ok := serve.BearerToken(r)
	if !ok {
		return principal{}, http.StatusUnauthorized, "missing token (Authorization: Bearer <token>, an admin token or a tenant's token)"
	}
	p, ok := h.whoIs(r.Context(), token)
	if !ok {
		return principal{}, http.StatusUnauthorized, "invalid token: neither an admin token nor a tenant's"
	}
	return p, 0, ""
}

// denial says why p may not make request r.
func denial(p principal, r *http.Request) string {
	switch {
	case p.role == control.RoleQuery:
		return fmt.Sprintf("tenant %q's query token %s may only query its apps", p.tenant, p.tokenID)
	case r.PathValue("app") != "":
		return fmt.Sprintf("tenant %q's token %s may not manage app %q: its apps are named %s.NAME", p.tenant, p.tokenID, r.PathValue("app"), p.tenant)
	default:
		return fmt.Sprintf("tenant %q's token %s may not %s %s: it needs a platform admin token", p.tenant, p.tokenID, r.Method, r.URL.Path)
	}
}

// Who may use which part of the admin API.
var (
	platformOnly = principal.admin
	deployers    = func(p principal) bool { return p.admin() || p.role == control.RoleDeploy }
)

// appManagers admits the principals that may manage the app the request
// names.
func appManagers(r *http.Request) func(principal) bool {
	return func(p principal) bool { return p.mayManage(r.PathValue("app")) }
}

func requestPrincipal(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

// authorizeApp is authorize for the endpoints of one app.
func (h *host) authorizeApp(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.authorize(appManagers(r), next).ServeHTTP(w, r)
	})
}

// tenantOf names the tenant that owns app by its name: TENANT.NAME, where
// TENANT is a tenant; "" for an app of the platform's own.
func (h *host) tenantOf(app string) string {
	ns, _, ok := strings.Cut(app, ".")
	if !ok {
		return ""
	}
	if _, exists := h.ctl.Tenant(ns); !exists {
		return ""
	}
	return ns
}

// authorizeQuery guards a tenant's app's query API: every request, whether
// sent by a client or forwarded by another instance with the client's
// token, must carry a token of the app's tenant (or a platform token). A
// platform app is guarded by its own query.tokens instead, but a tenant's
// token is refused there too. It reports whether the request may go on.
func (h *host) authorizeQuery(w http.ResponseWriter, r *http.Request, app string) bool {
	tenant := h.tenantOf(app)
	spec, exists := h.ctl.App(app)
	if exists && spec.Tenant != "" {
		tenant = spec.Tenant
	}
	token, hasToken := serve.BearerToken(r)
	refuse := func(code int, why string) bool {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="streamrt"`)
		}
		writeError(w, code, why)
		return false
	}
	// Without a token, a name in a namespace is refused alike whether its
	// tenant or app exists or not: the answer tells nothing of either.
	if !hasToken && (tenant != "" || strings.Contains(app, ".") && (!exists || spec.Deleted)) {
		return refuse(http.StatusUnauthorized, fmt.Sprintf("app %q: a token is required (Authorization: Bearer <token>)", app))
	}
	if tenant == "" && !(hasToken && strings.HasPrefix(token, tokenPrefix)) {
		return true
	}
	p, ok := h.whoIs(r.Context(), token)
	switch {
	case !ok:
		return refuse(http.StatusUnauthorized, "invalid token")
	case p.admin() || tenant != "" && p.tenant == tenant:
		return true
	default:
		return refuse(http.StatusForbidden, fmt.Sprintf("tenant %q's token %s may not query app %q", p.tenant, p.tokenID, app))
	}
}

// tenantName is the form of a tenant's name: it starts its apps' names and
// their topics', so it holds no '.'.
var tenantName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,47}$`)

// maxCPUShare bounds a tenant's CPU quota, in cores.
const maxCPUShare = 4096

// tenantRequest is the body of PUT /v1/admin/tenants/{tenant}.
type tenantRequest struct {
	Prefixes []string       `json:"prefixes"`
	Shared   []string       `json:"shared"`
	Quotas   control.Quotas `json:"quotas"`
}

// tenantInfo is a tenant as the admin API shows it: its tokens without
// their hashes, and what its apps use of its quotas.
type tenantInfo struct {
	Name      string         `json:"name"`
	Namespace string         `json:"namespace"`
	Prefixes  []string       `json:"prefixes"`
	Shared    []string       `json:"shared"`
	Quotas    control.Quotas `json:"quotas"`
	Usage     usage          `json:"usage"`
	Tokens    []tokenInfo    `json:"tokens"`
	Apps      []string       `json:"apps"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

type tokenInfo struct {
	ID        string    `json:"id"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// usage is what a tenant's apps hold of its quotas.
type usage struct {
	Apps        int   `json:"apps"`
	Partitions  int   `json:"partitions"`
	MemoryBytes int64 `json:"memory_bytes"`
	// StateBytes is the tenant's local state on the server that answers,
	// and Held why its tasks there process nothing, if they do not.
	StateBytes int64  `json:"state_bytes_here"`
	Held       string `json:"held_here,omitempty"`
}

func (u usage) add(v usage) usage {
	return usage{Apps: u.Apps + v.Apps, Partitions: u.Partitions + v.Partitions, MemoryBytes: u.MemoryBytes + v.MemoryBytes}
}

// appUsage is what one app's version holds of its tenant's quotas. Its
// guest memory is counted as if every partition ran on one server: the
// memory limit of each stage's instance per partition, and of the query
// handler instances a server keeps per stage that serves routes.
func appUsage(cfg *config.Config) usage {
	u := usage{Apps: 1, Partitions: int(cfg.Partitions)}
	routed := map[string]bool{}
	for _, rt := range cfg.Query.Routes {
		routed[rt.Stage] = true
	}
	for _, sc := range cfg.Stages {
		instances := int64(cfg.Partitions)
		if routed[sc.Name] {
			instances += int64(queryInstances())
		}
		u.MemoryBytes += instances * sc.MemoryLimit
	}
	return u
}

// queryInstances is how many query handler instances a server keeps per
// stage at most (see serve.Handlers).
func queryInstances() int { return 2 * goruntime.GOMAXPROCS(0) }

// tenantUsage sums what tenant's apps hold, except the app named skip (the
// one being deployed). It lists the apps it counted.
func (h *host) tenantUsage(tenant, skip string) (usage, []string) {
	var u usage
	var apps []string
	for name, spec := range h.ctl.Apps() {
		if spec.Deleted || spec.Tenant != tenant {
			continue
		}
		apps = append(apps, name)
		if name == skip {
			continue
		}
		cfg, err := parseAppSpec(h.cfg, spec, h.advertise)
		if err != nil {
			// Deployed versions parsed when they were deployed; count at
			// least the app.
			u.Apps++
			continue
		}
		u = u.add(appUsage(cfg))
	}
	sort.Strings(apps)
	return u, apps
}

// checkTenant holds a tenant's app's version to the tenant's grants and
// quotas: every topic it reads is in the tenant's namespace, under one of
// its prefixes or shared with it; every topic it writes is in its
// namespace or under a prefix; and with this version the tenant's apps stay
// within its quotas.
func (h *host) checkTenant(spec control.Spec, cfg *config.Config) error {
	t, ok := h.ctl.Tenant(spec.Tenant)
	if !ok {
		return fmt.Errorf("%w: tenant %q does not exist", errForbidden, spec.Tenant)
	}
	if len(cfg.Query.Tokens) > 0 {
		return fmt.Errorf("%w: query.tokens: app %q of tenant %q is queried with its tenant's query tokens (streamrt tenants token)", config.ErrInvalid, spec.App, t.Name)
	}
	topo, err := cfg.Topology()
	if err != nil {
		return err
	}
	var problems []string
	for _, u := range topo.Topics() {
		if slices.Contains(h.controlTopics(), u.Name) {
			problems = append(problems, fmt.Sprintf("topic %q is a control topic of the servers", u.Name))
			continue
		}
		if u.Changelog || strings.HasPrefix(u.Name, t.Name+".") {
			continue
		}
		writable := slices.ContainsFunc(t.Prefixes, func(p string) bool { return strings.HasPrefix(u.Name, p) })
		switch {
		case u.Output && !writable && slices.Contains(t.Shared, u.Name):
			problems = append(problems, fmt.Sprintf("it writes topic %q, which tenant %q may only read (shared)", u.Name, t.Name))
		case u.Output && !writable:
			problems = append(problems, fmt.Sprintf("it writes topic %q, outside tenant %q's namespace %s and prefixes %s", u.Name, t.Name, t.Name+".", listOr(t.Prefixes)))
		case !writable && !slices.Contains(t.Shared, u.Name):
			problems = append(problems, fmt.Sprintf("it reads topic %q, outside tenant %q's namespace %s, prefixes %s and shared topics %s", u.Name, t.Name, t.Name+".", listOr(t.Prefixes), listOr(t.Shared)))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: app %q: %s", errForbidden, spec.App, strings.Join(problems, "; "))
	}
	used, _ := h.tenantUsage(t.Name, spec.App)
	with := used.add(appUsage(cfg))
	q := t.Quotas
	var over []string
	if q.Apps > 0 && with.Apps > q.Apps {
		over = append(over, fmt.Sprintf("apps: %d with this one, quota %d", with.Apps, q.Apps))
	}
	if q.Partitions > 0 && with.Partitions > q.Partitions {
		over = append(over, fmt.Sprintf("partitions: %d with this app's %d, quota %d", with.Partitions, cfg.Partitions, q.Partitions))
	}
	if q.MemoryBytes > 0 && with.MemoryBytes > q.MemoryBytes {
		over = append(over, fmt.Sprintf("guest memory per server: %s with this app's %s, quota %s", config.FormatByteSize(with.MemoryBytes), config.FormatByteSize(with.MemoryBytes-used.MemoryBytes), config.FormatByteSize(q.MemoryBytes)))
	}
	if len(over) > 0 {
		h.log.Warn("deploy refused: tenant quota exceeded", "tenant", t.Name, "app", spec.App, "over", strings.Join(over, "; "))
		h.metrics.quotaRefusals.WithLabelValues(t.Name).Inc()
		return fmt.Errorf("%w: tenant %q quota exceeded: %s", errForbidden, t.Name, strings.Join(over, "; "))
	}
	return nil
}

// errForbidden marks what a deploy is refused for by its tenant's grants
// or quotas: answered 403.
var errForbidden = fmt.Errorf("forbidden")

func listOr(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}

// validTenant checks a tenant's name and grants; it returns what is wrong.
func (h *host) validTenant(name string, req tenantRequest) []string {
	var problems []string
	if !tenantName.MatchString(name) {
		problems = append(problems, fmt.Sprintf("name %q: 1 to 48 lower-case letters, digits, '_' or '-', starting with a letter or digit", name))
	}
	for i, p := range req.Prefixes {
		if why := config.ValidTopicPrefix(p); why != "" {
			problems = append(problems, fmt.Sprintf("prefixes[%d]: %s", i, why))
		}
		// A prefix reaching into another tenant's namespace would let this
		// one write that one's internal topics.
		for other := range h.ctl.Tenants() {
			ns := other + "."
			if other != name && (strings.HasPrefix(p, ns) || strings.HasPrefix(ns, p)) {
				problems = append(problems, fmt.Sprintf("prefixes[%d]: %q overlaps tenant %q's namespace %s", i, p, other, ns))
			}
		}
	}
	for i, s := range req.Shared {
		if why := config.ValidTopicName(s); why != "" {
			problems = append(problems, fmt.Sprintf("shared[%d]: %s", i, why))
		}
	}
	// This tenant's namespace must not fall under another's prefix, which
	// would let that one write this one's internal topics.
	for other, t := range h.ctl.Tenants() {
		for _, p := range t.Prefixes {
			if ns := name + "."; other != name && (strings.HasPrefix(ns, p) || strings.HasPrefix(p, ns)) {
				problems = append(problems, fmt.Sprintf("namespace %s overlaps tenant %q's prefix %q", ns, other, p))
			}
		}
	}
	// The control topics are the platform's alone.
	for _, ct := range h.controlTopics() {
		for i, p := range req.Prefixes {
			if strings.HasPrefix(ct, p) {
				problems = append(problems, fmt.Sprintf("prefixes[%d]: %q covers the control topic %q", i, p, ct))
			}
		}
		for i, s := range req.Shared {
			if s == ct {
				problems = append(problems, fmt.Sprintf("shared[%d]: %q is a control topic", i, s))
			}
		}
	}
	q := req.Quotas
	if q.Apps < 0 || q.Partitions < 0 || q.MemoryBytes < 0 || q.CPU < 0 || q.StateBytes < 0 {
		problems = append(problems, "quotas: must not be negative (0 is no bound)")
	}
	if q.CPU > maxCPUShare {
		problems = append(problems, fmt.Sprintf("quotas.cpu: at most %d cores, got %g", maxCPUShare, q.CPU))
	}
	// An app of the platform's already named in the namespace would fall
	// to the tenant.
	for app, spec := range h.ctl.Apps() {
		if !spec.Deleted && spec.Tenant == "" && strings.HasPrefix(app, name+".") {
			problems = append(problems, fmt.Sprintf("the platform's app %q is named in the namespace %s.", app, name))
		}
	}
	return problems
}

// controlTopics names the server's control topics.
func (h *host) controlTopics() []string {
	c := h.cfg.Control
	return []string{c.AppsTopic, c.ModulesTopic, c.StatusTopic, c.TenantsTopic, c.AuditTopic}
}

// putTenant creates or updates a tenant: its grants and quotas. Its tokens
// are made and revoked on their own.
func (h *host) putTenant(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("tenant")
	var req tenantRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the body must be JSON {prefixes, shared, quotas: {apps, partitions, memory_bytes, cpu, state_bytes}}: %v", err))
		return
	}
	if err := h.ctl.Sync(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if problems := h.validTenant(name, req); len(problems) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("tenant %q: %s", name, strings.Join(problems, "; ")))
		return
	}
	now := time.Now().UTC()
	t, exists := h.ctl.Tenant(name)
	if !exists {
		t = control.Tenant{Name: name, CreatedAt: now}
	}
	t.Prefixes, t.Shared, t.Quotas, t.UpdatedAt = req.Prefixes, req.Shared, req.Quotas, now
	if err := h.ctl.PutTenant(r.Context(), t); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	action, code := "tenant-update", http.StatusOK
	if !exists {
		action, code = "tenant-create", http.StatusCreated
	}
	h.audit(r, control.Event{Action: action, Tenant: name,
		Detail: fmt.Sprintf("prefixes %s; shared %s; quotas apps %d, partitions %d, memory %d bytes, cpu %g, state %d bytes",
			listOr(t.Prefixes), listOr(t.Shared), t.Quotas.Apps, t.Quotas.Partitions, t.Quotas.MemoryBytes, t.Quotas.CPU, t.Quotas.StateBytes)})
	writeJSON(w, code, h.tenantInfo(t))
}

// deleteTenant deletes a tenant that has no apps left: its apps' data is
// the tenant's to delete first, and deleting the tenant under running
// apps would leave them unowned.
func (h *host) deleteTenant(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("tenant")
	if err := h.ctl.Sync(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if _, ok := h.ctl.Tenant(name); !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no tenant %q", name))
		return
	}
	if _, apps := h.tenantUsage(name, ""); len(apps) > 0 {
		writeError(w, http.StatusConflict, fmt.Sprintf("tenant %q still has apps %s: delete them first (streamrt delete --purge APP)", name, strings.Join(apps, ", ")))
		return
	}
	if err := h.ctl.DeleteTenant(r.Context(), name); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	h.audit(r, control.Event{Action: "tenant-delete", Tenant: name})
	writeJSON(w, http.StatusOK, map[string]any{"tenant": name, "deleted": true})
}

// tenantInfo shows t with its usage.
func (h *host) tenantInfo(t control.Tenant) tenantInfo {
	u, apps := h.tenantUsage(t.Name, "")
	u.StateBytes = h.stateBytes(t.Name)
	h.mmu.Lock()
	if m := h.meters[t.Name]; m != nil {
		u.Held = m.Held()
	}
	h.mmu.Unlock()
	ti := tenantInfo{Name: t.Name, Namespace: t.Name + ".", Prefixes: t.Prefixes, Shared: t.Shared, Quotas: t.Quotas, Usage: u,
		Tokens: []tokenInfo{}, Apps: apps, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
	if ti.Apps == nil {
		ti.Apps = []string{}
	}
	for _, tk := range t.Tokens {
		ti.Tokens = append(ti.Tokens, tokenInfo{ID: tk.ID, Role: tk.Role, CreatedAt: tk.CreatedAt})
	}
	return ti
}

// listTenants lists every tenant to the platform, and its own to a
// tenant's deploy token.
func (h *host) listTenants(w http.ResponseWriter, r *http.Request) {
	p := requestPrincipal(r)
	out := []tenantInfo{}
	for _, t := range h.ctl.Tenants() {
		if p.admin() || p.tenant == t.Name {
			out = append(out, h.tenantInfo(t))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"tenants": out})
}

// makeToken makes a token of a tenant and answers it: the only time it is
// shown, since only its hash is kept.
func (h *host) makeToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("tenant")
	var req struct {
		Role string `json:"role"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || (req.Role != control.RoleQuery && req.Role != control.RoleDeploy) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf(`the body must be JSON {"role": %q or %q}`, control.RoleQuery, control.RoleDeploy))
		return
	}
	if err := h.ctl.Sync(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	t, ok := h.ctl.Tenant(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no tenant %q", name))
		return
	}
	secret := make([]byte, 32)
	id := make([]byte, 4)
	rand.Read(secret)
	rand.Read(id)
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(token))
	tk := control.Token{ID: "tok-" + hex.EncodeToString(id), Role: req.Role, Hash: hex.EncodeToString(sum[:]), CreatedAt: time.Now().UTC()}
	t.Tokens = append(t.Tokens, tk)
	if err := h.ctl.PutTenant(r.Context(), t); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	h.audit(r, control.Event{Action: "token-create", Tenant: name, Detail: fmt.Sprintf("%s token %s", tk.Role, tk.ID)})
	writeJSON(w, http.StatusCreated, map[string]string{"tenant": name, "id": tk.ID, "role": tk.Role, "token": token})
}

// revokeToken removes one of a tenant's tokens: from the next request on,
// on every server once it has read the change.
func (h *host) revokeToken(w http.ResponseWriter, r *http.Request) {
	name, id := r.PathValue("tenant"), r.PathValue("id")
	if err := h.ctl.Sync(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	t, ok := h.ctl.Tenant(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no tenant %q", name))
		return
	}
	i := slices.IndexFunc(t.Tokens, func(tk control.Token) bool { return tk.ID == id })
	if i < 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("tenant %q has no token %q", name, id))
		return
	}
	t.Tokens = slices.Delete(t.Tokens, i, i+1)
	if err := h.ctl.PutTenant(r.Context(), t); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	h.audit(r, control.Event{Action: "token-revoke", Tenant: name, Detail: "token " + id})
	writeJSON(w, http.StatusOK, map[string]any{"tenant": name, "id": id, "revoked": true})
}

// audit records a change made by the request's principal. The change is
// made already: a failure to record it is logged, not answered.
func (h *host) audit(r *http.Request, e control.Event) {
	e.TokenID = requestPrincipal(r).tokenID
	if err := h.ctl.Record(r.Context(), e); err != nil {
		h.log.Error("audit event not recorded", "action", e.Action, "tenant", e.Tenant, "app", e.App, "err", err)
	}
}

// listAudit answers the audit events kept, oldest first: all of them to the
// platform, a tenant's own to its deploy token; ?tenant= and ?app= narrow
// them, ?limit= keeps the newest.
func (h *host) listAudit(w http.ResponseWriter, r *http.Request) {
	p := requestPrincipal(r)
	q := r.URL.Query()
	tenant, app := q.Get("tenant"), q.Get("app")
	if !p.admin() {
		if tenant != "" && tenant != p.tenant {
			writeError(w, http.StatusForbidden, fmt.Sprintf("tenant %q's token %s may only read its own audit events", p.tenant, p.tokenID))
			return
		}
		tenant = p.tenant
	}
	limit := 1000
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: a positive number, got %q", s))
			return
		}
		limit = n
	}
	if err := h.ctl.Sync(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	events := h.ctl.Events(func(e control.Event) bool {
		return (tenant == "" || e.Tenant == tenant) && (app == "" || e.App == app)
	})
	if len(events) > limit {
		events = events[len(events)-limit:]
	}
	if events == nil {
		events = []control.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events})
}

// tenantCollector reports each tenant's quotas and what its apps use of
// them, worked out at every scrape from the control topics.
type tenantCollector struct {
	h                     *host
	apps, partitions, mem *prometheus.Desc
	state, held           *prometheus.Desc
	spent, waited         *prometheus.Desc
	quota                 *prometheus.Desc
}

func newTenantCollector(h *host) *tenantCollector {
	l := []string{"tenant"}
	return &tenantCollector{h: h,
		apps:       prometheus.NewDesc("streamrt_tenant_apps", "Apps the tenant has deployed.", l, nil),
		partitions: prometheus.NewDesc("streamrt_tenant_partitions", "Partitions of the tenant's apps, summed.", l, nil),
		mem:        prometheus.NewDesc("streamrt_tenant_guest_memory_bytes", "Guest memory the tenant's apps may hold on one server: the sum of their instances' memory limits, as if every partition ran there.", l, nil),
		state:      prometheus.NewDesc("streamrt_tenant_state_bytes", "The tenant's apps' local state on this server.", l, nil),
		held:       prometheus.NewDesc("streamrt_tenant_held", "1 while the tenant's tasks on this server are stopped by a quota (state quota exceeded).", l, nil),
		spent:      prometheus.NewDesc("streamrt_tenant_batch_seconds_total", "Time the tenant's batches took on this server (guest code and its host calls).", l, nil),
		waited:     prometheus.NewDesc("streamrt_tenant_wait_seconds_total", "Time the tenant's tasks on this server waited for their CPU share or a hold.", l, nil),
		quota:      prometheus.NewDesc("streamrt_tenant_quota", "The tenant's quota of a resource (apps, partitions, memory_bytes, cpu, state_bytes); absent when unbounded.", []string{"tenant", "resource"}, nil),
	}
}

func (c *tenantCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.apps
	ch <- c.partitions
	ch <- c.mem
	ch <- c.state
	ch <- c.held
	ch <- c.spent
	ch <- c.waited
	ch <- c.quota
}

func (c *tenantCollector) Collect(ch chan<- prometheus.Metric) {
	for name, t := range c.h.ctl.Tenants() {
		u, _ := c.h.tenantUsage(name, "")
		ch <- prometheus.MustNewConstMetric(c.apps, prometheus.GaugeValue, float64(u.Apps), name)
		ch <- prometheus.MustNewConstMetric(c.partitions, prometheus.GaugeValue, float64(u.Partitions), name)
		ch <- prometheus.MustNewConstMetric(c.mem, prometheus.GaugeValue, float64(u.MemoryBytes), name)
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, float64(c.h.stateBytes(name)), name)
		c.h.mmu.Lock()
		m := c.h.meters[name]
		c.h.mmu.Unlock()
		if m != nil {
			spent, waited := m.Totals()
			held := 0.0
			if m.Held() != "" {
				held = 1
			}
			ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, held, name)
			ch <- prometheus.MustNewConstMetric(c.spent, prometheus.CounterValue, spent.Seconds(), name)
			ch <- prometheus.MustNewConstMetric(c.waited, prometheus.CounterValue, waited.Seconds(), name)
		}
		for resource, q := range map[string]float64{"apps": float64(t.Quotas.Apps), "partitions": float64(t.Quotas.Partitions),
			"memory_bytes": float64(t.Quotas.MemoryBytes), "cpu": t.Quotas.CPU, "state_bytes": float64(t.Quotas.StateBytes)} {
			if q > 0 {
				ch <- prometheus.MustNewConstMetric(c.quota, prometheus.GaugeValue, q, name, resource)
			}
		}
	}
}

// serverMetrics are the server's own metrics, beside each app's under
// /apps/NAME/metrics: the tenants' usage and quotas, and deploys refused
// for a quota.
type serverMetrics struct {
	registry      *prometheus.Registry
	quotaRefusals *prometheus.CounterVec // tenant
}

func newServerMetrics(h *host) *serverMetrics {
	m := &serverMetrics{registry: prometheus.NewRegistry(),
		quotaRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrt_tenant_quota_refusals_total", Help: "Deploys refused because they would take the tenant over a quota."}, []string{"tenant"}),
	}
	m.registry.MustRegister(m.quotaRefusals, newTenantCollector(h))
	return m
}

func (h *host) metricsHandler() http.Handler {
	return promhttp.HandlerFor(h.metrics.registry, promhttp.HandlerOpts{})
}
