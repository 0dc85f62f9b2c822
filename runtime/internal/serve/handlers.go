package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"sync"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
)

// MaxRequestBody caps the body of a request to a guest route.
const MaxRequestBody = 1 << 20

// Handlers runs the guest query handlers of an app's stages. Each stage
// has a pool of instances of its module, compiled under the query
// handler deadline, since instances are single-threaded and requests are
// not; an instance that traps or overruns the deadline is discarded.
type Handlers struct {
	db    *state.DB
	log   *slog.Logger
	names []string        // every store and table, sorted: handle i is names[i]
	glob  map[string]bool // global tables

	mu    sync.Mutex
	pools map[string]*pool // by stage
}

// NewHandlers returns handlers that read stores from db.
func NewHandlers(db *state.DB, stores []Store, log *slog.Logger) *Handlers {
	h := &Handlers{db: db, log: log, glob: map[string]bool{}, pools: map[string]*pool{}}
	for _, st := range stores {
		h.names = append(h.names, st.Name)
		h.glob[st.Name] = st.Global
	}
	slices.Sort(h.names)
	return h
}

// SetModule makes m serve stage's routes from the next request on: at
// start and after a module swap. The handlers own m from then on. The
// previous version finishes the requests it is serving, and is closed
// after the last of them.
func (h *Handlers) SetModule(stage string, m *wasm.Module) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pools[stage]
	if p == nil {
		// Instances bound memory: a few per core are enough to keep the
		// cores busy with short handlers.
		p = &pool{slots: make(chan struct{}, 2*runtime.GOMAXPROCS(0)), users: map[*wasm.Module]int{}}
		h.pools[stage] = p
	}
	p.set(context.Background(), m)
}

// Close releases every module and idle instance; a module serving a
// request is closed when the request ends. Requests after Close fail.
func (h *Handlers) Close(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.pools {
		p.set(ctx, nil)
	}
}

// pool holds a stage's query module and its idle instances. It counts the
// requests using each version, rather than leaving versions to be found
// unused later, because a request holds its instance outside any lock the
// pool could look under.
type pool struct {
	slots  chan struct{} // one per instance in use
	mu     sync.Mutex
	module *wasm.Module
	idle   []*wasm.Instance // of module
	// users counts, by version, the requests using an instance of it or
	// making one; a version is closed once it is not module and its count
	// is zero.
	users map[*wasm.Module]int
}

// set makes m the version new requests use, and closes the previous one's
// idle instances, and the version itself unless a request still uses it.
func (p *pool) set(ctx context.Context, m *wasm.Module) {
	p.mu.Lock()
	old, idle := p.module, p.idle
	p.module, p.idle = m, nil
	unused := old != m && p.users[old] == 0
	p.mu.Unlock()
	for _, in := range idle {
		in.Close(ctx)
	}
	if old != nil && unused {
		old.Close(ctx)
	}
}

// get returns an instance of the pool's version for one request, which
// gives it back with put.
func (p *pool) get(ctx context.Context) (*wasm.Instance, error) {
	p.mu.Lock()
	m := p.module
	if m == nil {
		p.mu.Unlock()
		return nil, errors.New("no module loaded")
	}
	p.users[m]++
	if n := len(p.idle); n > 0 {
		in := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return in, nil
	}
	p.mu.Unlock()
	in, err := m.Instantiate(ctx)
	if err != nil {
		p.release(m, nil)
		return nil, err
	}
	return in, nil
}

// put takes back an instance a request is done with.
func (p *pool) put(in *wasm.Instance) { p.release(in.Module(), in) }

// release ends a request's use of version m and, if it has one, of its
// instance in: the instance is kept for the next request while it works
// and m is still the pool's version, and closed otherwise; m is closed
// with the last request using it once it was replaced.
func (p *pool) release(m *wasm.Module, in *wasm.Instance) {
	p.mu.Lock()
	if in != nil && in.Broken() == nil && m == p.module {
		p.idle = append(p.idle, in)
		in = nil
	}
	p.users[m]--
	unused := p.users[m] == 0 && m != p.module
	if p.users[m] == 0 {
		delete(p.users, m)
	}
	p.mu.Unlock()
	if in != nil {
		in.Close(context.Background())
	}
	if unused {
		m.Close(context.Background())
	}
}

// response is a guest's answer.
type response struct {
	status      int
	contentType string
	body        []byte
}

// serve runs stage's query handler on req, noting in reads (when not nil)
// what it read.
func (h *Handlers) serve(ctx context.Context, stage string, req *abi.QueryRequest, reads *readSet) (*response, error) {
	h.mu.Lock()
	p := h.pools[stage]
	h.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("stage %q has no module loaded", stage)
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.slots }()
	in, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	defer p.put(in)
	if !in.Module().ServesQueries() {
		return nil, fmt.Errorf("module %s of stage %q exports no %s: build it with a query handler", in.Module().Name(), stage, abi.ExportQuery)
	}
	qh := &queryHost{h: h, stage: stage, partition: req.Partition, reads: reads}
	defer qh.end()
	if err := in.Query(ctx, qh, abi.AppendQueryRequest(nil, req)); err != nil {
		if qh.resp == nil || ctx.Err() != nil {
			return nil, err
		}
		// The guest answered, then trapped: a Rust guest cannot unwind a
		// panic, so its SDK answers 500 with the panic's message before
		// aborting. The answer stands; the broken instance is dropped.
		h.log.Warn("query handler trapped after answering", "stage", stage, "path", req.Path, "err", err)
	}
	if qh.resp == nil {
		return nil, fmt.Errorf("query handler of stage %q returned without responding", stage)
	}
	return qh.resp, nil
}

// queryHost serves a guest's host calls during one query (wasm.Host and
// wasm.Responder): every store and table of the app, read-only, at the
// request's partition.
type queryHost struct {
	h         *Handlers
	stage     string
	partition int32
	txn       *state.Txn
	iters     state.Cursors
	getBuf    []byte
	resp      *response
	reads     *readSet // what the handler read, for a watched route; nil when not watched
}

func (q *queryHost) end() {
	q.iters.CloseAll()
	if q.txn != nil {
		q.txn.Discard()
	}
}

func (q *queryHost) OpenStore(name string) (int32, abi.Code) {
	i, ok := slices.BinarySearch(q.h.names, name)
	if !ok {
		return 0, abi.ErrUnknownStore
	}
	return int32(i), abi.OK
}

// keyspace resolves a store handle at the request's partition: a global
// table's only partition, 0, or the partition the request was routed to.
func (q *queryHost) keyspace(store int32) (state.Keyspace, abi.Code) {
	if store < 0 || int(store) >= len(q.h.names) {
		return state.Keyspace{}, abi.ErrUnknownStore
	}
	name := q.h.names[store]
	p := q.partition
	if q.h.glob[name] {
		p = 0
	} else if p < 0 {
		// The route names no store to route by, so no partition is here.
		return state.Keyspace{}, abi.ErrNotAllowed
	}
	ks, err := q.h.db.Keyspace(name, p)
	if err != nil {
		return state.Keyspace{}, abi.ErrInvalid
	}
	if q.txn == nil {
		q.txn = q.h.db.NewTxn()
	}
	return ks, abi.OK
}

func (q *queryHost) Get(store int32, key []byte) ([]byte, abi.Code) {
	ks, c := q.keyspace(store)
	if c != abi.OK {
		return nil, c
	}
	q.reads.get(ks.Store(), key)
	v, found, err := q.txn.Get(ks, key, q.getBuf)
	q.getBuf = v
	if err != nil {
		q.h.log.Error("query store get failed", "stage", q.stage, "store", ks.Store(), "err", err)
		return nil, abi.ErrInternal
	}
	if !found {
		return nil, abi.ErrNotFound
	}
	return v, abi.OK
}

// Put and Delete refuse every write, after checking the handle as the
// batch host does: a bad handle is ERR_UNKNOWN_STORE in both.
func (q *queryHost) Put(store, _ int32, _, _ []byte) abi.Code { return q.readOnly(store) }
func (q *queryHost) Delete(store, _ int32, _ []byte) abi.Code { return q.readOnly(store) }

func (q *queryHost) readOnly(store int32) abi.Code {
	if store < 0 || int(store) >= len(q.h.names) {
		return abi.ErrUnknownStore
	}
	return abi.ErrReadOnly
}

func (q *queryHost) Range(store int32, start, end []byte) (int32, abi.Code) {
	ks, c := q.keyspace(store)
	if c != abi.OK {
		return 0, c
	}
	q.reads.scan(ks.Store(), start, end)
	it, err := q.txn.NewIter(ks, start, end)
	if err != nil {
		q.h.log.Error("query store range failed", "stage", q.stage, "store", ks.Store(), "err", err)
		return 0, abi.ErrInternal
	}
	return q.iters.Open(it), abi.OK
}

func (q *queryHost) RangeNext(iter int32, buf []byte) (int, int, abi.Code) {
	return q.iters.Next(iter, buf)
}

func (q *queryHost) RangeClose(iter int32) abi.Code { return q.iters.Close(iter) }

func (q *queryHost) OpenOutput(string) (int32, abi.Code) { return 0, abi.ErrNotAllowed }

func (q *queryHost) Emit(int32, int32, []byte, []byte, []byte, int64) abi.Code {
	return abi.ErrNotAllowed
}

func (q *queryHost) Log(level int32, msg []byte) {
	q.h.log.Log(context.Background(), wasm.LogLevel(level), string(bytes.ToValidUTF8(msg, []byte("?"))), "stage", q.stage, "in", "query handler")
}

func (q *queryHost) RecordError(int32, []byte) abi.Code { return abi.ErrNotAllowed }

func (q *queryHost) Respond(status int32, contentType, body []byte) abi.Code {
	if q.resp != nil {
		return abi.ErrNotAllowed
	}
	if status < abi.MinStatus || status > abi.MaxStatus {
		return abi.ErrInvalid
	}
	q.resp = &response{status: int(status), contentType: string(contentType), body: bytes.Clone(body)}
	return abi.OK
}

// appRoute serves one of the app's routes: routed to the owner of its key
// when it names a store, then answered by its stage's guest handler.
func (s *Server) appRoute(w http.ResponseWriter, r *http.Request, rt config.Route) int {
	answer := func(p int32) int { return s.callGuest(w, r, rt, p) }
	if wantsEvents(r) {
		answer = func(p int32) int { return s.watchRoute(w, r, rt, p) }
	}
	if rt.Store == "" {
		w.Header().Set(HeaderServedBy, s.self())
		return answer(-1)
	}
	st, code, ok := s.store(w, rt.Store)
	if !ok {
		return code
	}
	key := rt.RoutingKey(r.PathValue)
	if code, ok := s.checkKey(w, key); !ok {
		return code
	}
	return s.dispatch(w, r, st, key, answer)
}

func (s *Server) callGuest(w http.ResponseWriter, r *http.Request, rt config.Route, p int32) int {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", MaxRequestBody))
		}
		return writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
	}
	req := &abi.QueryRequest{Partition: p, Method: r.Method, Route: rt.Path, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Body: body}
	for _, name := range rt.Params() {
		req.Params = append(req.Params, abi.Param{Name: name, Value: r.PathValue(name)})
	}
	resp, err := s.handlers.serve(r.Context(), rt.Stage, req, nil)
	if err != nil {
		s.log.Warn("query handler failed", "stage", rt.Stage, "route", rt.Pattern(), "path", r.URL.Path, "err", err)
		return writeError(w, http.StatusInternalServerError, fmt.Sprintf("query handler of stage %q: %v", rt.Stage, err))
	}
	if resp.contentType != "" {
		w.Header().Set("Content-Type", resp.contentType)
	}
	w.WriteHeader(resp.status)
	w.Write(resp.body)
	return resp.status
}
