package serve

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/streamrt/streamrt/runtime/internal/partition"
	"github.com/streamrt/streamrt/runtime/internal/state"
)

// placement is where a request for one key is answered.
type placement struct {
	p     int32
	owner string // forward to this address; empty: answer here
	stale bool   // the local answer may be behind the owner's
}

// unavailable is a 503 answer: the key's partition has no instance that can
// answer now, and the caller should retry.
type unavailable struct {
	reason string
	// rebalancing: the group is moving partitions, which ends by itself.
	rebalancing bool
}

func (u *unavailable) Error() string { return u.reason }

// place decides where the request for key in st is answered: here when this
// instance owns the key's partition and the task is ready, else at the
// owner the group's assignment names. A request that asks for stale=true is
// answered from local state, marked stale, when there is no owner to ask
// and this instance holds a copy of the partition.
//
// While the group rebalances (no assignment yet, or the partition has no
// owner), it waits up to rebalanceWait for one, so that a query around a
// rebalance or a generation's flip is answered rather than refused.
func (s *Server) place(r *http.Request, st Store, key string) (placement, error) {
	deadline := time.Now().Add(rebalanceWait)
	for {
		pl, err := s.placeOnce(r, st, key)
		var u *unavailable
		if err == nil || !errors.As(err, &u) || !u.rebalancing || time.Now().After(deadline) || r.Context().Err() != nil {
			return pl, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rebalanceWait bounds how long a query waits out a rebalance.
const rebalanceWait = 2 * time.Second

func (s *Server) placeOnce(r *http.Request, st Store, key string) (placement, error) {
	if st.Global {
		return placement{p: 0}, nil
	}
	p := partition.For([]byte(key), st.Partitions)
	if s.eng.Owns(st.Topic, p) {
		return placement{p: p}, nil
	}
	addr, err := s.owner(r, st, p)
	if err == nil {
		return placement{p: p, owner: addr}, nil
	}
	if s.staleCopy(r, st, p) {
		return placement{p: p, stale: true}, nil
	}
	return placement{}, err
}

// owner returns the query address of the instance the assignment names as
// the owner of partition p of st, or says why the request cannot be
// forwarded there.
func (s *Server) owner(r *http.Request, st Store, p int32) (string, error) {
	a := s.eng.Assignment()
	self, _ := a.Self()
	id, ok := a.OwnerID(st.Topic, p)
	addr, _ := a.Owner(st.Topic, p)
	switch {
	case !a.Valid():
		return "", &unavailable{reason: "this instance has not received the group's assignment yet", rebalancing: true}
	case !ok:
		return "", &unavailable{reason: fmt.Sprintf("partition %d of store %q has no owner: a rebalance is in progress", p, st.Name), rebalancing: true}
	case id == self.ID:
		return "", &unavailable{reason: fmt.Sprintf("partition %d of store %q is assigned to this instance and still restoring", p, st.Name)}
	case r.Header.Get(HeaderForwarded) != "":
		return "", &unavailable{reason: fmt.Sprintf("forwarded here by %s, but partition %d of store %q is owned by %s: ownership moved while the request was in flight",
			r.Header.Get(HeaderForwarded), p, st.Name, addr)}
	case addr == "":
		return "", &unavailable{reason: fmt.Sprintf("the owner of partition %d of store %q advertises no query address", p, st.Name)}
	}
	return addr, nil
}

// staleCopy reports whether r accepts a stale answer and this instance
// holds a copy of partition p of st to give one from.
func (s *Server) staleCopy(r *http.Request, st Store, p int32) bool {
	return stale(r) && s.hasLocal(st.Name, p)
}

// dispatch answers a request for key in st: locally through answer, or by
// forwarding the whole request to the key's owner. When the owner cannot be
// reached, a stale=true request falls back to a local copy.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, st Store, key string, answer func(p int32) int) int {
	pl, err := s.place(r, st, key)
	if err != nil {
		return s.unavailable(w, err)
	}
	if pl.owner == "" {
		return s.answerHere(w, pl, answer)
	}
	code, err := s.forward(w, r, pl.owner)
	if err == nil {
		return code
	}
	if s.staleCopy(r, st, pl.p) {
		return s.answerHere(w, placement{p: pl.p, stale: true}, answer)
	}
	return s.unavailable(w, &unavailable{reason: fmt.Sprintf("the owner of partition %d of store %q, %s, did not answer: %v", pl.p, st.Name, pl.owner, err)})
}

func (s *Server) answerHere(w http.ResponseWriter, pl placement, answer func(p int32) int) int {
	h := w.Header()
	if int(pl.p) < len(s.partitionHeader) {
		h[HeaderPartition] = s.partitionHeader[pl.p] // shared, never changed
	} else {
		h.Set(HeaderPartition, strconv.Itoa(int(pl.p)))
	}
	h.Set(HeaderServedBy, s.self())
	if pl.stale {
		h.Set(HeaderStale, "true")
		markServed(w, "stale")
	}
	return answer(pl.p)
}

func (s *Server) unavailable(w http.ResponseWriter, err error) int {
	var u *unavailable
	if !errors.As(err, &u) {
		return writeError(w, http.StatusInternalServerError, err.Error())
	}
	w.Header().Set("Retry-After", "1")
	return writeError(w, http.StatusServiceUnavailable, u.reason)
}

// forwardedHeaders are the request headers a forwarded request carries.
var forwardedHeaders = []string{"Authorization", "Content-Type", "Accept", "Last-Event-ID"}

// answerHeaders are the response headers copied back from the owner.
var answerHeaders = []string{"Content-Type", "Retry-After", "WWW-Authenticate", HeaderServedBy, HeaderPartition, HeaderStale}

// forward sends r to the instance at addr and copies its answer to w. It
// writes nothing to w when it fails.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, addr string) (int, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, s.scheme+"://"+addr+s.prefix+r.URL.RequestURI(), r.Body)
	if err != nil {
		return 0, err
	}
	for _, h := range forwardedHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(HeaderForwarded, s.self())
	client := s.client
	if wantsEvents(r) {
		client = s.watchHTTP // a watched route's answer lasts: no timeout
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	for _, h := range answerHeaders {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	markServed(w, "forwarded")
	w.WriteHeader(resp.StatusCode)
	copyAnswer := io.Copy
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		copyAnswer = flushingCopy
	}
	if _, err := copyAnswer(w, resp.Body); err != nil && r.Context().Err() == nil {
		s.log.Warn("forwarded answer cut short", "owner", addr, "path", r.URL.Path, "err", err)
	}
	return resp.StatusCode, nil
}

// self is this instance's advertised query address.
func (s *Server) self() string {
	if s.addr != "" {
		return s.addr
	}
	m, _ := s.eng.Assignment().Self()
	return m.Addr
}

// hasLocal reports whether this instance holds any data of partition p of
// store: a copy that can answer a stale read.
func (s *Server) hasLocal(store string, p int32) bool {
	ks, err := s.db.Keyspace(store, p)
	if err != nil {
		return false
	}
	found := false
	err = s.db.Scan(ks, nil, nil, 1, func(_, _ []byte) error {
		found = true
		return nil
	})
	return err == nil && found
}

// keyspace returns partition p of store, built at start where it can be.
func (s *Server) keyspace(store string, p int32) (state.Keyspace, error) {
	if kss := s.keyspaces[store]; p >= 0 && int(p) < len(kss) {
		return kss[p], nil
	}
	return s.db.Keyspace(store, p)
}

func stale(r *http.Request) bool { return r.URL.Query().Get("stale") == "true" }

// storeKey reads the {store} path parameter and the key: the {key} path
// parameter, or the query's key or key_base64 (standard or URL-safe, with
// or without padding). It answers 404 for an unknown store and 400 for a
// key missing, not base64, or over the maximum.
func (s *Server) storeKey(w http.ResponseWriter, r *http.Request) (Store, string, int, bool) {
	st, code, ok := s.store(w, r.PathValue("store"))
	if !ok {
		return st, "", code, false
	}
	key, why := requestKey(r)
	if why != "" {
		return st, "", writeError(w, http.StatusBadRequest, why), false
	}
	if code, ok := s.checkKey(w, key); !ok {
		return st, "", code, false
	}
	return st, key, 0, true
}

// requestKey finds a request's key, or says why it has none.
func requestKey(r *http.Request) (string, string) {
	if r.Pattern == "" || strings.Contains(r.Pattern, "{key}") {
		return r.PathValue("key"), ""
	}
	q := r.URL.Query()
	if k, ok := q["key"]; ok {
		return k[0], ""
	}
	b64, ok := q["key_base64"]
	if !ok {
		return "", "give the key as ?key=KEY, or ?key_base64=BASE64 for bytes that are not text"
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(b64[0]); err == nil {
			return string(b), ""
		}
	}
	return "", fmt.Sprintf("key_base64: %q is not base64", b64[0])
}

// getKey answers GET /v1/stores/{store}/keys/{key} with the key's value.
func (s *Server) getKey(w http.ResponseWriter, r *http.Request) int {
	st, key, code, ok := s.storeKey(w, r)
	if !ok {
		return code
	}
	name := st.Name
	return s.dispatch(w, r, st, key, func(p int32) int {
		v, found, err := s.get(name, p, key)
		if err != nil {
			return writeError(w, http.StatusInternalServerError, err.Error())
		}
		if !found {
			return writeError(w, http.StatusNotFound, fmt.Sprintf("key %q not found in store %q", key, name))
		}
		ct := st.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		w.Write(v)
		return http.StatusOK
	})
}

func (s *Server) get(store string, p int32, key string) ([]byte, bool, error) {
	ks, err := s.keyspace(store, p)
	if err != nil {
		return nil, false, err
	}
	v, found, err := s.db.Get(ks, []byte(key))
	if err != nil {
		return nil, false, fmt.Errorf("store %q partition %d: %w", store, p, err)
	}
	return v, found, nil
}

// keyMetadata answers GET /v1/metadata/stores/{store}/keys/{key}: the key's
// partition, the instance that owns it and the instances keeping standby
// copies.
func (s *Server) keyMetadata(w http.ResponseWriter, r *http.Request) int {
	st, key, code, ok := s.storeKey(w, r)
	if !ok {
		return code
	}
	a := s.eng.Assignment()
	md := keyMetadata{Store: st.Name, Key: key, Global: st.Global, Standbys: []instanceRef{}, Generation: a.Generation(), Rebalancing: a.Rebalancing()}
	if st.Global {
		// Every instance holds the whole store: each one is active for it.
		for _, m := range a.Members() {
			md.Replicas = append(md.Replicas, ref(m.ID, m.Addr))
		}
		return writeJSON(w, http.StatusOK, md)
	}
	md.Partition = partition.For([]byte(key), st.Partitions)
	for _, m := range a.Members() {
		if slices.Contains(m.Partitions[st.Topic], md.Partition) {
			r := ref(m.ID, m.Addr)
			md.Active = &r
		}
		if slices.Contains(m.Standbys[st.Topic], md.Partition) {
			md.Standbys = append(md.Standbys, ref(m.ID, m.Addr))
		}
	}
	return writeJSON(w, http.StatusOK, md)
}

type keyMetadata struct {
	Store     string `json:"store"`
	Key       string `json:"key"`
	Partition int32  `json:"partition"`
	Global    bool   `json:"global,omitempty"`
	// Active is the instance that owns the partition; null while it has
	// none (a rebalance is in progress).
	Active   *instanceRef  `json:"active"`
	Standbys []instanceRef `json:"standbys"`
	// Replicas are, for a global store, every instance.
	Replicas    []instanceRef `json:"replicas,omitempty"`
	Generation  int32         `json:"generation"`
	Rebalancing bool          `json:"rebalancing"`
}

type instanceRef struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

func ref(id, addr string) instanceRef { return instanceRef{ID: id, Address: addr} }
