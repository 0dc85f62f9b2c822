package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/watch"
)

// A watched route: a request to one of the app's query routes that
// accepts text/event-stream (as a browser's EventSource does) gets the
// handler's answer as an event, and a new event each time the answer
// changes. The host notes what the handler read (keys, and ranges) and
// calls it again when a committed change touches any of it; an answer
// equal to the last one sent is not sent again.

// wantsEvents reports whether r asks for a stream of Server-Sent Events.
func wantsEvents(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// readSet is what one handler call read of the stores: keys, and key
// ranges ([start, end), nil for unbounded). It is filled during the call
// and only read afterwards.
type readSet struct {
	keys   map[string]map[string]struct{} // by store
	ranges map[string][][2][]byte         // by store
}

func newReadSet() *readSet {
	return &readSet{keys: map[string]map[string]struct{}{}, ranges: map[string][][2][]byte{}}
}

func (rs *readSet) get(store string, key []byte) {
	if rs == nil {
		return
	}
	ks := rs.keys[store]
	if ks == nil {
		ks = map[string]struct{}{}
		rs.keys[store] = ks
	}
	ks[string(key)] = struct{}{}
}

func (rs *readSet) scan(store string, start, end []byte) {
	if rs == nil {
		return
	}
	rs.ranges[store] = append(rs.ranges[store], [2][]byte{bytes.Clone(start), bytes.Clone(end)})
}

// covers reports whether c changes something the call read.
func (rs *readSet) covers(c *watch.Change) bool {
	if _, ok := rs.keys[c.Store][string(c.Key)]; ok {
		return true
	}
	for _, r := range rs.ranges[c.Store] {
		if (r[0] == nil || bytes.Compare(c.Key, r[0]) >= 0) && (r[1] == nil || bytes.Compare(c.Key, r[1]) < 0) {
			return true
		}
	}
	return false
}

// answerEvent is the data of a watched route's "answer" event.
type answerEvent struct {
	Status      int     `json:"status"`
	ContentType string  `json:"content_type,omitempty"`
	Body        *string `json:"body,omitempty"`
	BodyBase64  *string `json:"body_base64,omitempty"`
}

// watchRoute answers a watched route on the instance that owns partition
// p of its store.
func (s *Server) watchRoute(w http.ResponseWriter, r *http.Request, rt config.Route, p int32) int {
	if p < 0 {
		return writeError(w, http.StatusBadRequest, fmt.Sprintf("route %s names no store, so nothing tells when its answer changes: it cannot be watched", rt.Path))
	}
	if s.hub == nil {
		return writeError(w, http.StatusServiceUnavailable, "this instance does not publish store changes")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	if err != nil {
		return writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
	}
	client := watchClient(r)
	if why := s.admitWatch(client); why != "" {
		s.metrics.WatchesEnded.WithLabelValues("limit").Inc()
		w.Header().Set("Retry-After", "5")
		return writeError(w, http.StatusServiceUnavailable, why)
	}
	defer s.releaseWatch(client)

	req := &abi.QueryRequest{Partition: p, Method: r.Method, Route: rt.Path, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Body: body}
	for _, name := range rt.Params() {
		req.Params = append(req.Params, abi.Param{Name: name, Value: r.PathValue(name)})
	}
	// Until the first call has said what it reads, any change of the
	// partition calls the handler again: a change committed during that
	// call is not missed.
	var reads atomic.Pointer[readSet]
	sub := s.hub.Subscribe(watch.Filter{Partition: p, Match: func(c *watch.Change) bool {
		rs := reads.Load()
		return rs == nil || rs.covers(c)
	}})
	defer sub.Close()
	ctx := r.Context()
	call := func() (*response, error) {
		rs := newReadSet()
		resp, err := s.handlers.serve(ctx, rt.Stage, req, rs)
		reads.Store(rs)
		return resp, err
	}
	first, err := call()
	if err != nil {
		s.log.Warn("query handler failed", "stage", rt.Stage, "route", rt.Pattern(), "path", r.URL.Path, "err", err)
		return writeError(w, http.StatusInternalServerError, fmt.Sprintf("query handler of stage %q: %v", rt.Stage, err))
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	out := s.newEventWriter(w)
	sendEvent := func(kind string, data any) bool {
		b, _ := json.Marshal(data) // plain fields: cannot fail
		out.begin()
		fmt.Fprintf(out.bw, "event: %s\ndata: %s\n\n", kind, b)
		return out.flush() == nil
	}
	last := first
	if !sendEvent("answer", answerData(first)) {
		return http.StatusOK
	}
	for {
		wait, cancel := context.WithTimeout(ctx, watchHeartbeat)
		changes, err := sub.Next(wait)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			out.begin()
			out.bw.WriteString(": keep-alive\n\n")
			if out.flush() != nil {
				return http.StatusOK
			}
			continue
		case errors.Is(err, watch.ErrEnded):
			sendEvent("end", map[string]string{"reason": strings.TrimPrefix(err.Error(), watch.ErrEnded.Error()+": ")})
			return http.StatusOK
		default:
			return http.StatusOK // the client went away
		}
		rs := reads.Load()
		touched := false
		for i := range changes {
			if rs == nil || rs.covers(&changes[i]) {
				touched = true
				break
			}
		}
		if !touched {
			continue
		}
		resp, err := call()
		if err != nil {
			s.log.Warn("watched query handler failed", "stage", rt.Stage, "route", rt.Pattern(), "path", r.URL.Path, "err", err)
			sendEvent("end", map[string]string{"reason": fmt.Sprintf("query handler of stage %q: %v", rt.Stage, err)})
			return http.StatusOK
		}
		if resp.status == last.status && resp.contentType == last.contentType && bytes.Equal(resp.body, last.body) {
			continue
		}
		last = resp
		if !sendEvent("answer", answerData(resp)) {
			return http.StatusOK
		}
	}
}

func answerData(r *response) answerEvent {
	a := answerEvent{Status: r.status, ContentType: r.contentType}
	if utf8.Valid(r.body) {
		s := string(r.body)
		a.Body = &s
	} else {
		b := base64.StdEncoding.EncodeToString(r.body)
		a.BodyBase64 = &b
	}
	return a
}

// flushingCopy copies an event stream from an owner to the client, each
// piece as it comes.
func flushingCopy(w io.Writer, r io.Reader) (int64, error) {
	rc := http.NewResponseController(w.(http.ResponseWriter))
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := r.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
			if ferr := rc.Flush(); ferr != nil {
				return n, ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
