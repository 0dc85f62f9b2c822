package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// DefaultRangeLimit is the page size of a range query without a limit,
// when query.max_range_limit allows it.
const DefaultRangeLimit = 100

// entry is one key/value pair of a range answer. Keys and values are JSON
// strings when they are valid UTF-8 and base64 (key_base64, value_base64)
// otherwise, so that any bytes survive the trip.
type entry struct {
	key, value []byte
}

type entryJSON struct {
	Key         *string `json:"key,omitempty"`
	KeyBase64   *string `json:"key_base64,omitempty"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
}

func (e entry) MarshalJSON() ([]byte, error) {
	var j entryJSON
	j.Key, j.KeyBase64 = textOrBase64(e.key)
	j.Value, j.ValueBase64 = textOrBase64(e.value)
	return json.Marshal(j)
}

func (e *entry) UnmarshalJSON(b []byte) error {
	var j entryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var err1, err2 error
	e.key, err1 = fromTextOrBase64(j.Key, j.KeyBase64)
	e.value, err2 = fromTextOrBase64(j.Value, j.ValueBase64)
	return errors.Join(err1, err2)
}

func textOrBase64(b []byte) (text, b64 *string) {
	s := string(b)
	if utf8.Valid(b) {
		return &s, nil
	}
	s = base64.StdEncoding.EncodeToString(b)
	return nil, &s
}

func fromTextOrBase64(text, b64 *string) ([]byte, error) {
	switch {
	case text != nil:
		return []byte(*text), nil
	case b64 != nil:
		return base64.StdEncoding.DecodeString(*b64)
	}
	return []byte{}, nil
}

// rangeAnswer is the JSON answer of a range or prefix query.
type rangeAnswer struct {
	Entries []entry `json:"entries"`
	// Next continues the query: pass it as after= for the next page.
	// Absent on the last page.
	Next string `json:"next,omitempty"`
	// More is set on a partial answer from one instance to another: its
	// partitions hold entries past the last one returned.
	More bool `json:"more,omitempty"`
	// Stale lists the partitions answered from state that may be behind
	// their owner's (only with stale=true).
	Stale []int32 `json:"stale_partitions,omitempty"`
}

// rangeQuery is a parsed range or prefix query.
type rangeQuery struct {
	start, end []byte // [start, end); nil is unbounded
	limit      int
	partitions []int32 // nil: all
}

// parseRange reads from, to, prefix, after, limit and partitions.
func (s *Server) parseRange(q url.Values, st Store) (rangeQuery, error) {
	var rq rangeQuery
	from, hasFrom := param(q, "from")
	to, hasTo := param(q, "to")
	prefix, hasPrefix := param(q, "prefix")
	if !hasFrom && !hasTo && !hasPrefix {
		return rq, errors.New("a range query needs from, to or prefix (use prefix= with an empty value for the whole store)")
	}
	for _, k := range []string{from, to, prefix} {
		if len(k) > s.query.MaxKeyBytes {
			return rq, fmt.Errorf("bound of %d bytes is longer than the maximum key of %d (query.max_key_bytes)", len(k), s.query.MaxKeyBytes)
		}
	}
	if hasFrom {
		rq.start = []byte(from)
	}
	if hasTo {
		rq.end = []byte(to)
	}
	if hasPrefix {
		if rq.start == nil || bytes.Compare(rq.start, []byte(prefix)) < 0 {
			rq.start = []byte(prefix)
		}
		if pe := prefixEnd([]byte(prefix)); pe != nil && (rq.end == nil || bytes.Compare(pe, rq.end) < 0) {
			rq.end = pe
		}
	}
	if after := q.Get("after"); after != "" {
		last, err := base64.RawURLEncoding.DecodeString(after)
		if err != nil {
			return rq, fmt.Errorf("after %q is not a continuation token from an earlier answer", after)
		}
		// The next page starts just past the last key returned.
		next := append(last, 0)
		if rq.start == nil || bytes.Compare(rq.start, next) < 0 {
			rq.start = next
		}
	}
	rq.limit = min(DefaultRangeLimit, s.query.MaxRangeLimit)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return rq, fmt.Errorf("limit must be a positive integer, got %q", v)
		}
		if n > s.query.MaxRangeLimit {
			return rq, fmt.Errorf("limit %d is over the maximum of %d (query.max_range_limit)", n, s.query.MaxRangeLimit)
		}
		rq.limit = n
	}
	if v := q.Get("partitions"); v != "" {
		for _, f := range strings.Split(v, ",") {
			p, err := strconv.ParseInt(f, 10, 32)
			if err != nil || p < 0 || int32(p) >= st.Partitions {
				return rq, fmt.Errorf("partitions: %q is not a partition of store %q (0 to %d)", f, st.Name, st.Partitions-1)
			}
			rq.partitions = append(rq.partitions, int32(p))
		}
	}
	return rq, nil
}

func param(q url.Values, k string) (string, bool) {
	v, ok := q[k]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// prefixEnd is the first key after every key with prefix p, or nil when
// there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// getRange answers GET /v1/stores/{store}: the entries in a key range or
// with a prefix, in key order, a page of at most limit entries at a time.
// Each partition is read where it lives: local partitions here, the others
// with one request per owning instance, in parallel; the answers are merged
// in key order.
func (s *Server) getRange(w http.ResponseWriter, r *http.Request) int {
	st, code, ok := s.store(w, r.PathValue("store"))
	if !ok {
		return code
	}
	rq, err := s.parseRange(r.URL.Query(), st)
	if err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	parts := rq.partitions
	if st.Global {
		parts = []int32{0}
	} else if parts == nil {
		for p := range st.Partitions {
			parts = append(parts, p)
		}
	}

	var local, stale []int32
	remote := map[string][]int32{} // owner address -> its partitions
	for _, p := range parts {
		if st.Global || s.eng.Owns(st.Topic, p) {
			local = append(local, p)
			continue
		}
		addr, err := s.owner(r, st, p)
		if err != nil {
			if !s.staleCopy(r, st, p) {
				return s.unavailable(w, err)
			}
			stale = append(stale, p)
			continue
		}
		remote[addr] = append(remote[addr], p)
	}

	var (
		mu      sync.Mutex
		answers []rangeAnswer
		failed  error
		wg      sync.WaitGroup
	)
	for addr, ps := range remote {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := s.remoteRange(r, addr, ps)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = errors.Join(failed, err)
				return
			}
			answers = append(answers, a)
		}()
	}
	here, err := s.localRange(st, append(local, stale...), rq)
	wg.Wait()
	if err != nil {
		return writeError(w, http.StatusInternalServerError, err.Error())
	}
	if failed != nil {
		return s.unavailable(w, &unavailable{reason: fmt.Sprintf("store %q: %v", st.Name, failed)})
	}
	answers = append(answers, here)

	out := rangeAnswer{Entries: []entry{}, Stale: stale}
	for _, a := range answers {
		out.Entries = append(out.Entries, a.Entries...)
		out.More = out.More || a.More
		out.Stale = append(out.Stale, a.Stale...)
	}
	slices.SortFunc(out.Entries, func(a, b entry) int { return bytes.Compare(a.key, b.key) })
	if len(out.Entries) > rq.limit {
		out.Entries, out.More = out.Entries[:rq.limit], true
	}
	if out.More && len(out.Entries) > 0 {
		out.Next = base64.RawURLEncoding.EncodeToString(out.Entries[len(out.Entries)-1].key)
	}
	if r.Header.Get(HeaderForwarded) == "" {
		out.More = false // a caller's page says so with Next
	}
	slices.Sort(out.Stale)
	if len(out.Stale) > 0 {
		w.Header().Set(HeaderStale, "true")
		markServed(w, "stale")
	}
	w.Header().Set(HeaderServedBy, s.self())
	return writeJSON(w, http.StatusOK, out)
}

// localRange reads up to rq.limit entries of each of parts here, merged in
// key order and cut to rq.limit, with More set when more remain.
func (s *Server) localRange(st Store, parts []int32, rq rangeQuery) (rangeAnswer, error) {
	var a rangeAnswer
	for _, p := range parts {
		ks, err := s.db.Keyspace(st.Name, p)
		if err != nil {
			return a, err
		}
		n := 0
		err = s.db.Scan(ks, rq.start, rq.end, rq.limit+1, func(k, v []byte) error {
			if n++; n > rq.limit {
				a.More = true
				return nil
			}
			a.Entries = append(a.Entries, entry{bytes.Clone(k), bytes.Clone(v)})
			return nil
		})
		if err != nil {
			return a, fmt.Errorf("store %q partition %d: %w", st.Name, p, err)
		}
	}
	slices.SortFunc(a.Entries, func(x, y entry) int { return bytes.Compare(x.key, y.key) })
	if len(a.Entries) > rq.limit {
		a.Entries, a.More = a.Entries[:rq.limit], true
	}
	return a, nil
}

// remoteRange asks the instance at addr for the same range over its
// partitions ps.
func (s *Server) remoteRange(r *http.Request, addr string, ps []int32) (rangeAnswer, error) {
	q := r.URL.Query()
	q.Set("partitions", joinPartitions(ps))
	u := url.URL{Scheme: s.scheme, Host: addr, Path: s.prefix + r.URL.Path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return rangeAnswer{}, err
	}
	if v := r.Header.Get("Authorization"); v != "" {
		req.Header.Set("Authorization", v)
	}
	req.Header.Set(HeaderForwarded, s.self())
	resp, err := s.client.Do(req)
	if err != nil {
		return rangeAnswer{}, fmt.Errorf("partitions %s at %s: %w", joinPartitions(ps), addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return rangeAnswer{}, fmt.Errorf("partitions %s at %s: %s: %s", joinPartitions(ps), addr, resp.Status, e.Error)
	}
	var a rangeAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return rangeAnswer{}, fmt.Errorf("partitions %s at %s: bad answer: %w", joinPartitions(ps), addr, err)
	}
	return a, nil
}

func joinPartitions(ps []int32) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}
