package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/streamrt/streamrt/runtime/internal/partition"
	"github.com/streamrt/streamrt/runtime/internal/watch"
)

// Watches (push queries) stream a store's committed changes to a client
// as Server-Sent Events. A watch is made of one stream per partition it
// covers: a key's partition, or every partition for a prefix. A stream is
// local when this instance owns the partition (a subscription to the
// engine's committed changes, after a snapshot read together with the
// changelog position it reflects) and relayed from the owner otherwise.
//
// Positions are changelog positions: "P:N" says that partition P's state
// up to (not including) changelog offset N was sent. The event id is the
// position of every partition of the watch, so a client that reconnects
// with Last-Event-ID resumes each one where it was: a partition whose state
// has not moved since goes on with its changes, one whose state has moved
// sends a fresh snapshot first (events of type "snapshot"), since the
// instance keeps no history of changes.

// watchHeartbeat is how often an idle watch sends a comment, so that
// proxies and clients can tell a quiet watch from a dead connection.
var watchHeartbeat = 15 * time.Second

// watchEvent is one event of a watch; its JSON is the event's data.
type watchEvent struct {
	kind      string // snapshot, synced, change, end
	Store     string `json:"store,omitempty"`
	Partition int32  `json:"partition"`
	// Position is the partition's changelog position once this event is
	// applied.
	Position    int64   `json:"position"`
	Offset      *int64  `json:"offset,omitempty"` // a change's changelog offset
	Key         *string `json:"key,omitempty"`
	KeyBase64   *string `json:"key_base64,omitempty"`
	Found       *bool   `json:"found,omitempty"` // a key watch's snapshot
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
	Deleted     bool    `json:"deleted,omitempty"`
	// Coalesced: earlier changes of the key were replaced by this one
	// because the client read too slowly.
	Coalesced bool   `json:"coalesced,omitempty"`
	Reason    string `json:"reason,omitempty"` // why the watch ended
}

func (e *watchEvent) setKey(k []byte) {
	if s := string(k); utf8.ValidString(s) {
		e.Key = &s
	} else {
		b := base64.StdEncoding.EncodeToString(k)
		e.KeyBase64 = &b
	}
}

func (e *watchEvent) setValue(v []byte) {
	if s := string(v); utf8.ValidString(s) {
		e.Value = &s
	} else {
		b := base64.StdEncoding.EncodeToString(v)
		e.ValueBase64 = &b
	}
}

// watchSpec is what a watch request asks for.
type watchSpec struct {
	st         Store
	key        []byte
	prefix     bool
	partitions []int32
	resume     map[int32]int64 // from Last-Event-ID
}

// watchStore answers GET /v1/stores/{store}/watch (?key=, ?key_base64=,
// ?prefix=, ?prefix_base64=, ?partition=) and
// GET /v1/stores/{store}/keys/{key}/watch.
func (s *Server) watchStore(w http.ResponseWriter, r *http.Request) int {
	spec, code, ok := s.watchRequest(w, r)
	if !ok {
		return code
	}
	client := watchClient(r)
	if why := s.admitWatch(client); why != "" {
		s.metrics.WatchesEnded.WithLabelValues("limit").Inc()
		w.Header().Set("Retry-After", "5")
		return writeError(w, http.StatusServiceUnavailable, why)
	}
	defer s.releaseWatch(client)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// Each stream is placed before the answer starts, so that a watch
	// that cannot start is refused with a status, not an event.
	var starts []func(context.Context, chan<- watchEvent)
	for _, p := range spec.partitions {
		start, err := s.watchPartition(r, spec, p)
		if err != nil {
			return s.unavailable(w, err)
		}
		starts = append(starts, start)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // a proxy must pass each event on as it comes
	h.Set(HeaderServedBy, s.self())
	w.WriteHeader(http.StatusOK)
	out := s.newEventWriter(w)
	if out.flush() != nil {
		return http.StatusOK
	}

	events := make(chan watchEvent, 64)
	for _, start := range starts {
		go start(ctx, events)
	}
	positions := map[int32]int64{}
	for p, n := range spec.resume {
		if slices.Contains(spec.partitions, p) {
			positions[p] = n
		}
	}
	// write writes ev and reports whether the watch goes on.
	write := func(ev watchEvent) bool {
		if ev.kind != "end" {
			positions[ev.Partition] = ev.Position
		}
		writeEvent(out.bw, ev, positions)
		return ev.kind != "end"
	}
	beat := time.NewTicker(watchHeartbeat)
	defer beat.Stop()
	for {
		out.begin()
		goOn := true
		select {
		case <-ctx.Done():
			return http.StatusOK
		case <-s.watchStop:
			goOn = write(watchEvent{kind: "end", Store: spec.st.Name, Reason: "the instance is stopping"})
		case <-beat.C:
			out.bw.WriteString(": keep-alive\n\n")
		case ev := <-events:
			// Send what has queued since in the same write.
			for more := write(ev); more && goOn; {
				select {
				case ev := <-events:
					goOn = write(ev)
				default:
					more = false
				}
			}
			goOn = goOn && ev.kind != "end"
		}
		if out.flush() != nil || !goOn {
			return http.StatusOK // the client went away, or the watch ended
		}
	}
}

// watchWriteTimeout bounds each write of a watch: a client that has
// stopped reading is disconnected once its socket's buffers are full and
// this passes, rather than holding its handler and its buffers forever.
var watchWriteTimeout = 10 * time.Second

// eventWriter writes a watch's events, each batch within
// watchWriteTimeout.
type eventWriter struct {
	s  *Server
	bw *bufio.Writer
	rc *http.ResponseController
}

func (s *Server) newEventWriter(w http.ResponseWriter) *eventWriter {
	return &eventWriter{s: s, bw: bufio.NewWriter(w), rc: http.NewResponseController(w)}
}

// begin starts a batch of writes: they must be done by the deadline.
func (e *eventWriter) begin() {
	_ = e.rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout)) // unsupported only off HTTP/1 and 2
}

// flush sends the batch, and counts a write that timed out as a watch
// ended for a slow client.
func (e *eventWriter) flush() error {
	err := e.bw.Flush()
	if err == nil {
		err = e.rc.Flush()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		e.s.metrics.WatchesEnded.WithLabelValues("slow").Inc()
		e.s.log.Warn("a watching client stopped reading; its watch is disconnected", "timeout", watchWriteTimeout)
	}
	return err
}

// writeEvent writes ev as a Server-Sent Event whose id is the watch's
// positions.
func writeEvent(w *bufio.Writer, ev watchEvent, positions map[int32]int64) {
	data, _ := json.Marshal(&ev) // plain fields: cannot fail
	if ev.kind != "end" {
		w.WriteString("id: ")
		w.WriteString(formatPositions(positions))
		w.WriteByte('\n')
	}
	w.WriteString("event: ")
	w.WriteString(ev.kind)
	w.WriteString("\ndata: ")
	w.Write(data)
	w.WriteString("\n\n")
}

// formatPositions is a watch's event id: P:N for each partition, in order.
func formatPositions(positions map[int32]int64) string {
	ps := make([]int32, 0, len(positions))
	for p := range positions {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(p)))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(positions[p], 10))
	}
	return b.String()
}

// parsePositions reads a Last-Event-ID written by formatPositions.
func parsePositions(id string, partitions int32) (map[int32]int64, error) {
	out := map[int32]int64{}
	if id == "" {
		return out, nil
	}
	for _, item := range strings.Split(id, ",") {
		ps, ns, ok := strings.Cut(item, ":")
		p, perr := strconv.ParseInt(ps, 10, 32)
		n, nerr := strconv.ParseInt(ns, 10, 64)
		if !ok || perr != nil || nerr != nil || p < 0 || int32(p) >= partitions || n < 0 {
			return nil, fmt.Errorf("Last-Event-ID: %q is not a watch position (PARTITION:OFFSET, comma-separated)", item)
		}
		out[int32(p)] = n
	}
	return out, nil
}

// watchRequest reads a watch request, or answers why it cannot be one.
func (s *Server) watchRequest(w http.ResponseWriter, r *http.Request) (watchSpec, int, bool) {
	st, code, ok := s.store(w, r.PathValue("store"))
	if !ok {
		return watchSpec{}, code, false
	}
	if st.Global || st.Changelog == "" {
		return watchSpec{}, writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is a table: only stores can be watched for now", st.Name)), false
	}
	spec := watchSpec{st: st}
	q := r.URL.Query()
	_, byKey := q["key"]
	_, byKey64 := q["key_base64"]
	if strings.Contains(r.Pattern, "{key}") || byKey || byKey64 {
		key, why := requestKey(r)
		if why != "" {
			return spec, writeError(w, http.StatusBadRequest, why), false
		}
		if code, ok := s.checkKey(w, key); !ok {
			return spec, code, false
		}
		spec.key = []byte(key)
		spec.partitions = []int32{partition.For(spec.key, st.Partitions)}
	} else {
		spec.prefix = true
		if b64, ok := q["prefix_base64"]; ok {
			b, err := base64.StdEncoding.DecodeString(b64[0])
			if err != nil {
				return spec, writeError(w, http.StatusBadRequest, fmt.Sprintf("prefix_base64: %q is not base64", b64[0])), false
			}
			spec.key = b
		} else {
			spec.key = []byte(q.Get("prefix"))
		}
		for p := range st.Partitions {
			spec.partitions = append(spec.partitions, p)
		}
	}
	if ps, ok := q["partition"]; ok {
		p, err := strconv.ParseInt(ps[0], 10, 32)
		if err != nil || p < 0 || int32(p) >= st.Partitions {
			return spec, writeError(w, http.StatusBadRequest, fmt.Sprintf("partition: %q is not a partition of store %q (0 to %d)", ps[0], st.Name, st.Partitions-1)), false
		}
		if !slices.Contains(spec.partitions, int32(p)) {
			return spec, writeError(w, http.StatusBadRequest, fmt.Sprintf("partition: key %q is in partition %d, not %d", spec.key, spec.partitions[0], p)), false
		}
		spec.partitions = []int32{int32(p)}
	}
	resume, err := parsePositions(r.Header.Get("Last-Event-ID"), st.Partitions)
	if err != nil {
		return spec, writeError(w, http.StatusBadRequest, err.Error()), false
	}
	spec.resume = resume
	return spec, 0, true
}

// watchClient names the client a watch counts against: its bearer token
// (hashed by nobody: it stays in memory only, as the tokens do), or its
// address when it sends none. A relayed watch counts against the
// instance that relays it.
func watchClient(r *http.Request) string {
	if t, ok := BearerToken(r); ok {
		return "token:" + t
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "addr:" + host
}

// admitWatch counts a new watch of client, or says why it is refused.
func (s *Server) admitWatch(client string) string {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.watchesOpen >= s.query.MaxWatches {
		return fmt.Sprintf("this instance has %d watches open, its limit (query.max_watches)", s.watchesOpen)
	}
	if s.watchesBy[client] >= s.query.MaxWatchesPerClient {
		return fmt.Sprintf("this client has %d watches open, the limit per client (query.max_watches_per_client)", s.watchesBy[client])
	}
	s.watchesOpen++
	s.watchesBy[client]++
	s.metrics.Watches.Inc()
	return ""
}

func (s *Server) releaseWatch(client string) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	s.watchesOpen--
	if s.watchesBy[client]--; s.watchesBy[client] <= 0 {
		delete(s.watchesBy, client)
	}
	s.metrics.Watches.Dec()
}

// watchPartition places partition p of a watch: a local stream when this
// instance owns it, a relay from its owner otherwise. The stream it
// returns sends the partition's events and, when it ends, an "end" event.
func (s *Server) watchPartition(r *http.Request, spec watchSpec, p int32) (func(context.Context, chan<- watchEvent), error) {
	from, resumed := spec.resume[p]
	if !resumed {
		from = -1
	}
	deadline := time.Now().Add(rebalanceWait)
	for {
		if s.eng.Owns(spec.st.Topic, p) {
			if s.hub == nil {
				return nil, &unavailable{reason: "this instance does not publish store changes"}
			}
			// Subscribe before the snapshot: a change committed in
			// between is then both in the snapshot and in the
			// subscription, and the snapshot's position drops it.
			sub := s.hub.Subscribe(watch.Filter{Store: spec.st.Name, Partition: p, Key: spec.key, Prefix: spec.prefix})
			return func(ctx context.Context, out chan<- watchEvent) {
				defer sub.Close()
				s.streamLocal(ctx, spec, p, from, sub, out)
			}, nil
		}
		owner, err := s.owner(r, spec.st, p)
		if err == nil {
			return func(ctx context.Context, out chan<- watchEvent) {
				s.relayWatch(ctx, r, spec, p, from, owner, out)
			}, nil
		}
		var u *unavailable
		if !errors.As(err, &u) || !u.rebalancing || time.Now().After(deadline) || r.Context().Err() != nil {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// send hands ev to the watch's writer, or reports false once the watch is
// over.
func send(ctx context.Context, out chan<- watchEvent, ev watchEvent) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// streamLocal sends partition p's snapshot (unless the client resumes at
// the state's position) and then its committed changes, until ctx ends or
// the subscription does.
func (s *Server) streamLocal(ctx context.Context, spec watchSpec, p int32, from int64, sub *watch.Sub, out chan<- watchEvent) {
	end := func(reason string) {
		send(ctx, out, watchEvent{kind: "end", Store: spec.st.Name, Partition: p, Reason: reason})
	}
	next, err := s.snapshot(ctx, spec, p, from, out)
	if err != nil {
		end(err.Error())
		return
	}
	for {
		changes, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				end(strings.TrimPrefix(err.Error(), watch.ErrEnded.Error()+": "))
			}
			return
		}
		for _, c := range changes {
			if c.Offset < next {
				continue // the snapshot has it, or the client had it
			}
			off := c.Offset
			ev := watchEvent{kind: "change", Store: spec.st.Name, Partition: p, Position: off + 1, Offset: &off, Deleted: c.Deleted, Coalesced: c.Coalesced}
			ev.setKey(c.Key)
			if !c.Deleted {
				ev.setValue(c.Value)
			}
			if !send(ctx, out, ev) {
				return
			}
		}
	}
}

// snapshot sends partition p's current state, read with the changelog
// position it reflects, unless the client resumes at that position; it
// returns the position from which changes are to be sent.
func (s *Server) snapshot(ctx context.Context, spec watchSpec, p int32, from int64, out chan<- watchEvent) (int64, error) {
	snap, err := s.db.NewSnapshot()
	if err != nil {
		return 0, fmt.Errorf("store %q partition %d: %w", spec.st.Name, p, err)
	}
	defer snap.Close()
	next, _, err := snap.Offset("", spec.st.Changelog, p)
	if err != nil {
		return 0, fmt.Errorf("store %q partition %d: %w", spec.st.Name, p, err)
	}
	if from >= next {
		// The client has this state already, or a later one this
		// instance has not caught up to: changes from there on.
		return from, nil
	}
	if from >= 0 && s.readChangelog != nil && next-from <= maxReplay {
		// The changelog holds what the client missed: send that rather
		// than a snapshot, so that it sees every change.
		if err := s.replay(ctx, spec, p, from, next, out); err == nil {
			return next, nil
		} else if ctx.Err() != nil {
			return 0, err
		} else {
			s.log.Warn("a watch resumes with a snapshot: reading what it missed from the changelog failed", "store", spec.st.Name, "partition", p, "from", from, "to", next, "err", err)
		}
	}
	ks, err := s.keyspace(spec.st.Name, p)
	if err != nil {
		return 0, err
	}
	name := spec.st.Name
	if !spec.prefix {
		v, found, err := snap.Get(ks, spec.key)
		if err != nil {
			return 0, err
		}
		ev := watchEvent{kind: "snapshot", Store: name, Partition: p, Position: next, Found: &found}
		ev.setKey(spec.key)
		if found {
			ev.setValue(v)
		}
		send(ctx, out, ev)
		return next, nil
	}
	err = snap.Scan(ks, spec.key, prefixEnd(spec.key), 0, func(k, v []byte) error {
		found := true
		ev := watchEvent{kind: "snapshot", Store: name, Partition: p, Position: next, Found: &found}
		ev.setKey(k)
		ev.setValue(v)
		if !send(ctx, out, ev) {
			return ctx.Err()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// A prefix's snapshot may hold no key at all: this says it is whole.
	send(ctx, out, watchEvent{kind: "synced", Store: name, Partition: p, Position: next})
	return next, nil
}

// maxReplay is the most changelog records a resuming watch reads back;
// further behind, it gets a snapshot.
const maxReplay = 100_000

// replayTimeout bounds reading a resuming watch's changes back.
var replayTimeout = 30 * time.Second

// replay sends the changes of partition p's changelog in [from, to) that
// the watch selects.
func (s *Server) replay(ctx context.Context, spec watchSpec, p int32, from, to int64, out chan<- watchEvent) error {
	rctx, cancel := context.WithTimeout(ctx, replayTimeout)
	defer cancel()
	return s.readChangelog(rctx, spec.st.Changelog, p, from, to, func(off int64, key, value []byte) error {
		if spec.prefix && !bytes.HasPrefix(key, spec.key) || !spec.prefix && !bytes.Equal(key, spec.key) {
			return nil
		}
		o := off
		ev := watchEvent{kind: "change", Store: spec.st.Name, Partition: p, Position: off + 1, Offset: &o, Deleted: value == nil}
		ev.setKey(key)
		if value != nil {
			ev.setValue(value)
		}
		if !send(ctx, out, ev) {
			return ctx.Err()
		}
		return nil
	})
}

// relayWatch watches partition p at its owner and passes the events on.
// When the owner's stream ends (the partition moved, the owner stopped),
// so does this one, with the reason: the client reconnects with its
// positions and is placed anew.
func (s *Server) relayWatch(ctx context.Context, r *http.Request, spec watchSpec, p int32, from int64, owner string, out chan<- watchEvent) {
	end := func(reason string) {
		send(ctx, out, watchEvent{kind: "end", Store: spec.st.Name, Partition: p, Reason: reason})
	}
	q := url.Values{"partition": {strconv.Itoa(int(p))}}
	param := "key_base64"
	if spec.prefix {
		param = "prefix_base64"
	}
	q.Set(param, base64.StdEncoding.EncodeToString(spec.key))
	target := s.scheme + "://" + owner + s.prefix + "/v1/stores/" + url.PathEscape(spec.st.Name) + "/watch?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		end(err.Error())
		return
	}
	if v := r.Header.Get("Authorization"); v != "" {
		req.Header.Set("Authorization", v)
	}
	if from >= 0 {
		req.Header.Set("Last-Event-ID", fmt.Sprintf("%d:%d", p, from))
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set(HeaderForwarded, s.self())
	resp, err := s.watchHTTP.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			end(fmt.Sprintf("the owner of partition %d, %s, did not answer: %v", p, owner, err))
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct{ Error string }
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		end(fmt.Sprintf("the owner of partition %d, %s, answered %d: %s", p, owner, resp.StatusCode, e.Error))
		return
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var kind string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			kind = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			var ev watchEvent
			if err := json.Unmarshal([]byte(line[len("data: "):]), &ev); err != nil {
				end(fmt.Sprintf("the owner of partition %d, %s, sent an event that does not parse: %v", p, owner, err))
				return
			}
			ev.kind = kind
			if !send(ctx, out, ev) || kind == "end" {
				return
			}
		}
	}
	if ctx.Err() == nil {
		reason := fmt.Sprintf("the owner of partition %d, %s, closed the watch", p, owner)
		if err := sc.Err(); err != nil {
			reason += ": " + err.Error()
		}
		end(reason)
	}
}

// ShutdownWatches ends every watch with a reason, so that the HTTP
// server's shutdown does not wait on them: clients reconnect elsewhere.
func (s *Server) ShutdownWatches() {
	s.watchStopOnce.Do(func() { close(s.watchStop) })
	s.hub.Shutdown("the instance is stopping")
}
