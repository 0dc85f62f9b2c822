// Package serve is the runtime's HTTP surface on each instance: key, range
// and prefix queries over stores, the app's own routes served by guest query
// handlers, instance metadata, the app's status and its dashboard, liveness
// and readiness probes, and Prometheus metrics.
//
// A store's partition p lives on the instance that owns partition p of its
// stage's inputs. Any instance answers any query: it computes the key's
// partition with Kafka's default partitioner, answers from local state when
// it owns that partition, and otherwise forwards the request to the owner
// named in the group's assignment (see route.go).
package serve

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/assign"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/probe"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/ui"
	"github.com/streamrt/streamrt/runtime/internal/watch"
)

// Store describes one queryable store.
type Store struct {
	Name       string
	Partitions int32
	// Topic is an input topic of the store's stage; owning its partition p
	// means owning the store's partition p.
	Topic string
	// Global stores (global tables) are whole on every instance, under
	// partition 0.
	Global bool
	// ContentType is the media type of the store's values, sent with key
	// lookups; "" for application/octet-stream.
	ContentType string
	// Changelog is the store's changelog topic, whose positions its
	// watches report; "" for a table, which cannot be watched yet.
	Changelog string
}

// Engine is what the server reads of the app's processing. Its answers
// are snapshots the processing publishes: they must never wait for a batch
// or a commit.
type Engine interface {
	// Owns reports whether this instance owns partition p of topic and its
	// task is ready to be read.
	Owns(topic string, p int32) bool
	// Readiness is the answer of /readyz.
	Readiness() probe.Readiness
	// Assignment is the group's task→instance map as last learned.
	Assignment() assign.Assignment
}

// Options configure a Server.
type Options struct {
	DB      *state.DB
	Engine  Engine
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	Stores  []Store
	Query   config.Query
	// Topology is the app's, which /v1/status shows; nil shows none.
	Topology *config.Topology
	// Advertise is this instance's query address, as the group knows it.
	Advertise string
	// Prefix is the path the API is served under, such as /apps/NAME when
	// a server hosts many apps; "" at the root. The server's routes are
	// given paths without it, and requests it forwards carry it.
	Prefix string
	// Watch publishes the engine's committed store changes, which watches
	// stream; nil refuses watches of partitions this instance owns.
	Watch *watch.Hub
	// ReadChangelog reads a store changelog's committed records in
	// [from, to): what a resuming watch missed. Nil sends such a watch a
	// snapshot instead.
	ReadChangelog func(ctx context.Context, topic string, partition int32, from, to int64, fn func(offset int64, key, value []byte) error) error
	// Handlers serves the guest query handlers of Query.Routes; nil when the
	// app declares none.
	Handlers *Handlers
	// ForwardTLS, when set, makes the server forward to other instances
	// over HTTPS with it (the instances serve HTTPS).
	ForwardTLS *tls.Config
	// RequireClientCert makes the query API and the app's routes answer
	// 401 to a request without a verified client certificate; probes and
	// metrics stay open.
	RequireClientCert bool
}

// Server serves the HTTP API.
type Server struct {
	db      *state.DB
	eng     Engine
	metrics *metrics.Metrics
	log     *slog.Logger
	stores  map[string]Store
	// storeList holds the stores sorted by name, for listings.
	storeList []Store
	query     config.Query
	topo      *config.Topology
	handlers  *Handlers
	// keyspaces holds each store's keyspaces by partition, and
	// partitionHeader the X-Streamrt-Partition values: both are built once
	// rather than on every lookup.
	keyspaces       map[string][]state.Keyspace
	partitionHeader [][]string
	addr            string // advertised query address
	prefix          string // the path the API is served under
	scheme          string // of the other instances' APIs: http or https
	needCert        bool   // the API requires a verified client certificate
	client          *http.Client
	mux             *http.ServeMux

	// Watches: the engine's committed changes, the client that relays
	// watches (no timeout: a watch lasts), and the open watches' count.
	hub           *watch.Hub
	readChangelog func(ctx context.Context, topic string, partition int32, from, to int64, fn func(offset int64, key, value []byte) error) error
	watchHTTP     *http.Client
	watchMu       sync.Mutex
	watchesOpen   int
	watchesBy     map[string]int // by client
	watchStop     chan struct{}
	watchStopOnce sync.Once
}

// Headers the server sets on answers, and reads on forwarded requests.
const (
	// HeaderForwarded marks a request one instance forwarded to another,
	// with the sender's address. An instance never forwards such a request
	// again: if it is not the owner either, ownership moved while the
	// request was in flight and it answers 503.
	HeaderForwarded = "X-Streamrt-Forwarded-By"
	// HeaderServedBy names the instance (its advertised address) whose
	// state answered.
	HeaderServedBy = "X-Streamrt-Served-By"
	// HeaderPartition is the store partition that answered.
	HeaderPartition = "X-Streamrt-Partition"
	// HeaderStale is "true" on an answer from state that may be behind the
	// owner's: a standby's, a restoring task's or a previous owner's. Only
	// requests with stale=true get one.
	HeaderStale = "X-Streamrt-Stale"
)

// New returns a server for opts.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{
		db: opts.DB, eng: opts.Engine, metrics: opts.Metrics, log: opts.Logger,
		stores: map[string]Store{}, query: opts.Query, topo: opts.Topology, handlers: opts.Handlers, addr: opts.Advertise, prefix: opts.Prefix,
		scheme: "http", needCert: opts.RequireClientCert,
		mux: http.NewServeMux(),
		client: &http.Client{
			Timeout: opts.Query.ForwardTimeout,
			// Bounded, so that a burst queues for connections to the
			// owner instead of opening thousands of them.
			Transport: &http.Transport{
				MaxIdleConnsPerHost: 64,
				MaxConnsPerHost:     128,
				IdleConnTimeout:     90 * time.Second,
				TLSClientConfig:     opts.ForwardTLS,
			},
		},
	}
	if opts.ForwardTLS != nil {
		s.scheme = "https"
	}
	s.hub, s.readChangelog, s.watchesBy, s.watchStop = opts.Watch, opts.ReadChangelog, map[string]int{}, make(chan struct{})
	s.watchHTTP = &http.Client{Transport: s.client.Transport}
	s.keyspaces = map[string][]state.Keyspace{}
	for _, st := range opts.Stores {
		s.stores[st.Name] = st
		for p := range st.Partitions {
			ks, err := opts.DB.Keyspace(st.Name, p)
			if err != nil {
				break // an unusable store name: its lookups say why
			}
			s.keyspaces[st.Name] = append(s.keyspaces[st.Name], ks)
			for int(p) >= len(s.partitionHeader) {
				s.partitionHeader = append(s.partitionHeader, []string{strconv.Itoa(len(s.partitionHeader))})
			}
		}
	}
	s.storeList = slices.SortedFunc(maps.Values(s.stores), func(a, b Store) int { return strings.Compare(a.Name, b.Name) })
	api := func(route string, h func(http.ResponseWriter, *http.Request) int) http.Handler {
		return s.observe(route, s.authorize(h))
	}
	s.mux.Handle("GET /v1/stores/{store}/keys/{key}", api("key", s.getKey))
	// Keys a path segment cannot carry (empty, ".", "..", bytes that are
	// not text) are given as ?key= or ?key_base64=.
	s.mux.Handle("GET /v1/stores/{store}/key", api("key", s.getKey))
	s.mux.Handle("GET /v1/stores/{store}", api("range", s.getRange))
	s.mux.Handle("GET /v1/stores/{store}/keys/{key}/watch", api("watch", s.watchStore))
	s.mux.Handle("GET /v1/stores/{store}/watch", api("watch", s.watchStore))
	s.mux.Handle("GET /v1/metadata/stores/{store}/keys/{key}", api("metadata", s.keyMetadata))
	s.mux.Handle("GET /v1/metadata/stores/{store}/key", api("metadata", s.keyMetadata))
	s.mux.Handle("GET /v1/instances", api("instances", s.getInstances))
	s.mux.Handle("GET /v1/status", api("status", s.getStatus))
	for _, rt := range opts.Query.Routes {
		name := rt.Path
		if rt.Builtin == config.BuiltinInstances {
			s.mux.Handle(rt.Pattern(), api(name, s.builtinInstances))
			continue
		}
		s.mux.Handle(rt.Pattern(), api(name, func(w http.ResponseWriter, r *http.Request) int {
			return s.appRoute(w, r, rt)
		}))
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	// The dashboard's files hold no data: it reads /v1/status, which asks
	// for a token, so the page itself stays open and can ask for one.
	page := ui.Handler()
	for _, pattern := range []string{"GET /ui", "GET /ui/{$}", "GET /ui/{file}"} {
		s.mux.Handle(pattern, page)
	}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Metrics.Registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := AllowedMethods(s.mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: the route answers %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	})
	return s
}

// AllowedMethods lists the methods for which mux has a route of r's path
// other than its catch-all "/": a request that only the catch-all matched
// with them is answered 405 with Allow, not 404.
func AllowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	return allow
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close ends the watches and releases idle forwarding connections.
func (s *Server) Close() {
	s.ShutdownWatches()
	s.client.CloseIdleConnections()
}

// observe counts each answer by route and status code, and times it by
// where it was served. The metrics of the usual codes are resolved once,
// since a lookup by label values hashes them on every request.
func (s *Server) observe(route string, h func(http.ResponseWriter, *http.Request) int) http.Handler {
	codes := map[int]prometheus.Counter{}
	for _, code := range []int{200, 400, 401, 404, 500, 503} {
		codes[code] = s.metrics.Queries.WithLabelValues(route, strconv.Itoa(code))
	}
	served := map[string]prometheus.Observer{}
	for _, where := range []string{"local", "forwarded", "stale"} {
		served[where] = s.metrics.QuerySeconds.WithLabelValues(route, where)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ow := &observed{ResponseWriter: w, served: "local"}
		code := h(ow, r)
		if c, ok := codes[code]; ok {
			c.Inc()
		} else {
			s.metrics.Queries.WithLabelValues(route, strconv.Itoa(code)).Inc()
		}
		served[ow.served].Observe(time.Since(start).Seconds())
	})
}

// observed carries where an answer was served from to observe.
type observed struct {
	http.ResponseWriter
	served string
}

// Unwrap lets http.ResponseController reach the writer's Flush, which a
// watch needs after each event.
func (o *observed) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// markServed records where w's answer comes from: "forwarded" or "stale".
func markServed(w http.ResponseWriter, served string) {
	if ow, ok := w.(*observed); ok {
		ow.served = served
	}
}

// authorize refuses a request without one of the configured bearer tokens.
func (s *Server) authorize(h func(http.ResponseWriter, *http.Request) int) func(http.ResponseWriter, *http.Request) int {
	if s.needCert {
		h = requireCert(h)
	}
	if len(s.query.Tokens) == 0 {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) int {
		token, ok := BearerToken(r)
		valid := false
		for _, t := range s.query.Tokens {
			// Constant time, so that response times do not reveal how much
			// of a token matched.
			if ok && subtle.ConstantTimeCompare([]byte(token), []byte(t)) == 1 {
				valid = true
			}
		}
		if !valid {
			w.Header().Set("WWW-Authenticate", `Bearer realm="streamrt"`)
			why := "missing bearer token (Authorization: Bearer <token>)"
			if ok {
				why = "invalid bearer token"
			}
			return writeError(w, http.StatusUnauthorized, why)
		}
		return h(w, r)
	}
}

// BearerToken returns the token of r's Authorization header. The scheme's
// name is matched without regard to case, as HTTP has it.
func BearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// requireCert answers 401 to a request without a client certificate that
// the TLS handshake verified against http_tls.client_ca_file.
func requireCert(h func(http.ResponseWriter, *http.Request) int) func(http.ResponseWriter, *http.Request) int {
	return func(w http.ResponseWriter, r *http.Request) int {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			return writeError(w, http.StatusUnauthorized, "a client certificate signed by a CA of http_tls.client_ca_file is required")
		}
		return h(w, r)
	}
}

// ready answers /readyz: 200 once the instance has its assignment and can
// answer. With ?max_lag=N it also requires the tasks to be at most N
// records behind their inputs, and with ?caught_up=true none behind.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	st := s.eng.Readiness()
	maxLag := int64(-1)
	q := r.URL.Query()
	if q.Get("caught_up") == "true" {
		maxLag = 0
	}
	if v := q.Get("max_lag"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("max_lag: a number of records, 0 or more, got %q", v))
			return
		}
		maxLag = n
	}
	if maxLag >= 0 && st.Lag > maxLag {
		st.Ready = false
		st.Reasons = append(st.Reasons, fmt.Sprintf("%d records behind the inputs, more than the %d asked for", st.Lag, maxLag))
	}
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, st)
}

// store returns the named store, or answers 404.
func (s *Server) store(w http.ResponseWriter, name string) (Store, int, bool) {
	st, ok := s.stores[name]
	if !ok {
		return st, writeError(w, http.StatusNotFound, fmt.Sprintf("unknown store %q", name)), false
	}
	return st, 0, true
}

// checkKey answers 400 for a key over the configured maximum.
func (s *Server) checkKey(w http.ResponseWriter, key string) (int, bool) {
	if len(key) > s.query.MaxKeyBytes {
		return writeError(w, http.StatusBadRequest, fmt.Sprintf("key of %d bytes is longer than the maximum of %d (query.max_key_bytes)", len(key), s.query.MaxKeyBytes)), false
	}
	return 0, true
}

func writeError(w http.ResponseWriter, code int, msg string) int {
	writeJSON(w, code, map[string]string{"error": msg})
	return code
}

func writeJSON(w http.ResponseWriter, code int, v any) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
	return code
}
