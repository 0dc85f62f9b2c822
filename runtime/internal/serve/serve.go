// Package serve is the runtime's HTTP surface on each instance: key lookups
// in stores, liveness and readiness probes, and Prometheus metrics.
//
// A store's partition p lives on the instance that owns partition p of its
// stage's inputs. A lookup computes the key's partition with Kafka's default
// partitioner and answers from local state when this instance owns it; it
// answers 503 with Retry-After otherwise.
package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/streamrt/streamrt/runtime/internal/engine"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/partition"
	"github.com/streamrt/streamrt/runtime/internal/state"
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
}

// Engine is what the server asks of the processing engine.
type Engine interface {
	Owns(topic string, p int32) bool
	Status() engine.Status
}

// Server serves the HTTP API.
type Server struct {
	db          *state.DB
	eng         Engine
	metrics     *metrics.Metrics
	stores      map[string]Store
	maxKeyBytes int
	mux         *http.ServeMux
}

// New returns a server over db's stores.
func New(db *state.DB, eng Engine, m *metrics.Metrics, stores []Store, maxKeyBytes int) *Server {
	s := &Server{db: db, eng: eng, metrics: m, stores: map[string]Store{}, maxKeyBytes: maxKeyBytes, mux: http.NewServeMux()}
	for _, st := range stores {
		s.stores[st.Name] = st
	}
	s.mux.HandleFunc("GET /v1/stores/{store}/keys/{key}", s.getKey)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) getKey(w http.ResponseWriter, r *http.Request) {
	code := s.lookup(w, r)
	s.metrics.Queries.WithLabelValues("key", strconv.Itoa(code)).Inc()
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) int {
	name, key := r.PathValue("store"), r.PathValue("key")
	st, ok := s.stores[name]
	if !ok {
		return writeError(w, http.StatusNotFound, fmt.Sprintf("unknown store %q", name))
	}
	if len(key) > s.maxKeyBytes {
		return writeError(w, http.StatusBadRequest, fmt.Sprintf("key of %d bytes is longer than the maximum of %d (query.max_key_bytes)", len(key), s.maxKeyBytes))
	}
	p := partition.For([]byte(key), st.Partitions)
	if st.Global {
		p = 0
	} else if !s.eng.Owns(st.Topic, p) {
		w.Header().Set("Retry-After", "1")
		return writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("partition %d of store %q is not assigned to this instance (yet)", p, name))
	}
	ks, err := s.db.Keyspace(name, p)
	if err != nil {
		return writeError(w, http.StatusInternalServerError, err.Error())
	}
	v, found, err := s.db.Get(ks, []byte(key))
	if err != nil {
		return writeError(w, http.StatusInternalServerError, fmt.Sprintf("store %q partition %d: %v", name, p, err))
	}
	if !found {
		return writeError(w, http.StatusNotFound, fmt.Sprintf("key %q not found in store %q", key, name))
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Streamrt-Partition", strconv.Itoa(int(p)))
	w.WriteHeader(http.StatusOK)
	w.Write(v)
	return http.StatusOK
}

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	st := s.eng.Status()
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, st)
}

func writeError(w http.ResponseWriter, code int, msg string) int {
	writeJSON(w, code, map[string]string{"error": msg})
	return code
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
