package config

import (
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// ReservedPaths are the path patterns the host serves itself; app routes
// may not shadow them.
var ReservedPaths = []string{"/v1/", "/healthz", "/readyz", "/metrics"}

// routeMethods are the methods a route may declare.
var routeMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}

// pathParam matches one {name} or {name...} segment of a path pattern, or
// one {name} or {name|lower} of a key template.
var pathParam = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?(\|lower)?\}`)

// Params returns the names of the path parameters in the route's path, in
// order.
func (r Route) Params() []string {
	var out []string
	for _, m := range pathParam.FindAllStringSubmatch(r.Path, -1) {
		out = append(out, m[1])
	}
	return out
}

// KeyParams returns the names of the path parameters the route's key
// template uses.
func (r Route) KeyParams() []string {
	var out []string
	for _, m := range pathParam.FindAllStringSubmatch(r.Key, -1) {
		out = append(out, m[1])
	}
	return out
}

// RoutingKey fills the route's key template from a request's path
// parameters; {name|lower} lower-cases the parameter, for stores keyed by
// a normalised form of what users type.
func (r Route) RoutingKey(param func(name string) string) string {
	return pathParam.ReplaceAllStringFunc(r.Key, func(m string) string {
		sm := pathParam.FindStringSubmatch(m)
		if sm[3] != "" {
			return strings.ToLower(param(sm[1]))
		}
		return param(sm[1])
	})
}

// Pattern is the route's net/http ServeMux pattern.
func (r Route) Pattern() string { return r.Method + " " + r.Path }

func (c *Config) validateQuery(p *problems, storeAt map[string]string) {
	q := &c.Query
	if n := q.MaxKeyBytes; n < 1 || n > MaxQueryKeyBytes {
		p.add("query.max_key_bytes", fmt.Sprintf("must be between 1 and %d, got %d", MaxQueryKeyBytes, n))
	}
	if n := q.MaxRangeLimit; n < 1 || n > MaxRangeLimit {
		p.add("query.max_range_limit", fmt.Sprintf("must be between 1 and %d, got %d", MaxRangeLimit, n))
	}
	if q.HandlerDeadline <= 0 {
		p.add("query.handler_deadline", fmt.Sprintf("must be positive, got %s", q.HandlerDeadline))
	}
	if q.ForwardTimeout <= 0 {
		p.add("query.forward_timeout", fmt.Sprintf("must be positive, got %s", q.ForwardTimeout))
	}
	for _, lim := range []struct {
		key string
		n   int
	}{{"query.max_watches", q.MaxWatches}, {"query.max_watches_per_client", q.MaxWatchesPerClient}, {"query.watch_buffer", q.WatchBuffer}, {"query.watch_coalesce_keys", q.WatchCoalesceKeys}} {
		if lim.n < 1 {
			p.add(lim.key, fmt.Sprintf("must be at least 1, got %d", lim.n))
		}
	}
	for i, t := range q.Tokens {
		if t == "" || strings.ContainsAny(t, " \t\r\n") {
			p.add(fmt.Sprintf("query.tokens[%d]", i), "a token must be non-empty and contain no white space")
		}
	}
	for _, store := range sortedKeys(q.ContentTypes) {
		key := "query.content_types." + store
		if storeAt[store] == "" {
			p.add(key, fmt.Sprintf("no store or table %q in the app", store))
		} else if _, _, err := mime.ParseMediaType(q.ContentTypes[store]); err != nil {
			p.add(key, fmt.Sprintf("%q is not a media type such as application/json: %v", q.ContentTypes[store], err))
		}
	}
	if c.Advertise != "" {
		if why := hostPort(c.Advertise); why != "" {
			p.add("advertise", why)
		}
	}

	// One ServeMux with the host's own patterns and every route finds
	// malformed patterns and conflicts exactly as the server would.
	mux := http.NewServeMux()
	for i := range q.Routes {
		r := &q.Routes[i]
		path := fmt.Sprintf("query.routes[%d]", i)
		if !slices.Contains(routeMethods, r.Method) {
			p.add(path+".method", fmt.Sprintf("must be one of %s, got %q", strings.Join(routeMethods, ", "), r.Method))
			continue
		}
		if !strings.HasPrefix(r.Path, "/") {
			p.add(path+".path", fmt.Sprintf("must start with /, got %q", r.Path))
			continue
		}
		if reserved := slices.IndexFunc(ReservedPaths, func(rp string) bool {
			return r.Path == strings.TrimSuffix(rp, "/") || strings.HasPrefix(r.Path, rp)
		}); reserved >= 0 {
			p.add(path+".path", fmt.Sprintf("%q is reserved for the host's own API (%s)", r.Path, ReservedPaths[reserved]))
		} else if why := register(mux, r.Pattern()); why != "" {
			p.add(path+".path", why)
		}
		switch {
		case r.Stage == "" && r.Builtin == "":
			p.add(path, "needs a stage (whose module serves it) or a builtin")
		case r.Stage != "" && r.Builtin != "":
			p.add(path, fmt.Sprintf("has both stage %q and builtin %q; give one", r.Stage, r.Builtin))
		case r.Builtin != "" && r.Builtin != BuiltinInstances:
			p.add(path+".builtin", fmt.Sprintf("must be %q, got %q", BuiltinInstances, r.Builtin))
		case r.Builtin != "" && (r.Store != "" || r.Key != ""):
			p.add(path, "a builtin route takes no store or key")
		case r.Stage != "":
			if _, ok := c.Stage(r.Stage); !ok {
				p.add(path+".stage", fmt.Sprintf("no stage %q", r.Stage))
			}
		}
		switch {
		case r.Store == "" && r.Key != "":
			p.add(path+".store", fmt.Sprintf("required with key %q: the store the key routes by", r.Key))
		case r.Store != "" && r.Key == "":
			p.add(path+".key", fmt.Sprintf("required with store %q: the key, such as \"{id}\", that picks the partition", r.Store))
		case r.Store != "" && storeAt[r.Store] == "":
			p.add(path+".store", fmt.Sprintf("no store or table %q", r.Store))
		}
		params := r.Params()
		for _, k := range r.KeyParams() {
			if !slices.Contains(params, k) {
				p.add(path+".key", fmt.Sprintf("uses {%s}, which is not a parameter of path %q", k, r.Path))
			}
		}
		if strings.Count(r.Key, "{") != len(r.KeyParams()) {
			p.add(path+".key", fmt.Sprintf("malformed template %q: parameters are {name}", r.Key))
		}
	}
}

var registeredAt = regexp.MustCompile(` \(registered at [^)]*\)`)

// register adds pattern to mux and says why the mux refuses it.
func register(mux *http.ServeMux, pattern string) (why string) {
	defer func() {
		if e := recover(); e != nil {
			why = registeredAt.ReplaceAllString(fmt.Sprint(e), "")
			why = strings.ReplaceAll(strings.TrimSpace(why), ":\n", ": ")
		}
	}()
	mux.HandleFunc(pattern, func(http.ResponseWriter, *http.Request) {})
	return ""
}
