// Package watch hands committed store changes to the clients watching
// them: the engine publishes each commit's changelog records once they are
// durable, and every subscription whose filter matches gets a copy.
//
// A subscriber that reads more slowly than its store changes is held to a
// bounded memory: its queue takes up to Limits.Buffer changes, then the
// changes coalesce to the latest per key (what a client watching a view
// needs), and past Limits.Coalesce distinct keys the subscription ends
// with a reason. Publishing never waits for a subscriber.
package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Change is one committed change of a store: a record of its changelog.
type Change struct {
	Store     string
	Partition int32
	// Offset is the changelog record's: with Partition, the change's
	// position, which a client resumes from.
	Offset int64
	Key    []byte
	Value  []byte // nil for a delete
	// Deleted marks a delete (a changelog tombstone).
	Deleted bool
	// Coalesced marks a change that replaced earlier ones of its key the
	// subscriber had not read yet.
	Coalesced bool
}

// Filter selects the changes of a subscription: one store (or every one,
// ""), one partition or every one (Partition < 0), and one key or the keys
// under a prefix, or those Match selects.
type Filter struct {
	Store     string
	Partition int32
	Key       []byte
	Prefix    bool // Key is a prefix; an empty one matches every key
	// Match, when set, selects instead of Key and Prefix. It runs as
	// changes are published: it must be quick and must not block.
	Match func(*Change) bool
}

func (f *Filter) match(c *Change) bool {
	if (f.Store != "" && c.Store != f.Store) || (f.Partition >= 0 && c.Partition != f.Partition) {
		return false
	}
	if f.Match != nil {
		return f.Match(c)
	}
	if f.Prefix {
		return bytes.HasPrefix(c.Key, f.Key)
	}
	return bytes.Equal(c.Key, f.Key)
}

// Limits bound what a subscription may hold. How many may be open is the
// API's to limit, per client and per instance.
type Limits struct {
	// Buffer is the most changes a subscription queues before it
	// coalesces them per key.
	Buffer int
	// Coalesce is the most distinct keys a coalescing subscription holds
	// before it ends.
	Coalesce int
}

// DefaultLimits are sane for a server answering a few hundred dashboards.
var DefaultLimits = Limits{Buffer: 1024, Coalesce: 10_000}

// Counters are what a hub counts, for the metrics.
type Counters struct {
	Sent      func(n int)       // changes handed to subscribers
	Coalesced func(n int)       // changes replaced before they were read
	Ended     func(kind string) // subscriptions the hub ended: "slow", "moved" or "stopped"
}

// Hub fans committed changes out to subscriptions. The zero value is not
// usable; call NewHub. A nil *Hub has no subscribers.
type Hub struct {
	limits Limits
	count  Counters
	open   atomic.Int32
	mu     sync.Mutex
	subs   map[*Sub]struct{}
}

// NewHub returns a hub with limits (zero fields take DefaultLimits') that
// reports to count (nil funcs are skipped).
func NewHub(limits Limits, count Counters) *Hub {
	if limits.Buffer <= 0 {
		limits.Buffer = DefaultLimits.Buffer
	}
	if limits.Coalesce <= 0 {
		limits.Coalesce = DefaultLimits.Coalesce
	}
	nop := func(int) {}
	if count.Sent == nil {
		count.Sent = nop
	}
	if count.Coalesced == nil {
		count.Coalesced = nop
	}
	if count.Ended == nil {
		count.Ended = func(string) {}
	}
	return &Hub{limits: limits, count: count, subs: map[*Sub]struct{}{}}
}

// Active reports whether any subscription is open: the engine copies a
// commit's changes only then, so that watching costs nothing unwatched.
func (h *Hub) Active() bool { return h != nil && h.open.Load() > 0 }

// Open is the number of subscriptions open.
func (h *Hub) Open() int {
	if h == nil {
		return 0
	}
	return int(h.open.Load())
}

// Subscribe opens a subscription to the changes f selects, published from
// now on. Close it when done.
func (h *Hub) Subscribe(f Filter) *Sub {
	h.mu.Lock()
	defer h.mu.Unlock()
	f.Key = bytes.Clone(f.Key)
	s := &Sub{hub: h, f: f, wake: make(chan struct{}, 1), done: make(chan struct{})}
	h.subs[s] = struct{}{}
	h.open.Store(int32(len(h.subs)))
	return s
}

// Publish hands committed changes to the subscriptions they match. The
// changes' keys and values are copied: the caller may reuse them.
func (h *Hub) Publish(changes []Change) {
	if !h.Active() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		for i := range changes {
			if c := &changes[i]; s.f.match(c) {
				s.add(*c)
			}
		}
	}
}

// Moved ends every subscription to store that covers partition, with
// reason: the partition moved away from this instance, so its changes will
// be committed elsewhere and the client must watch again there.
func (h *Hub) Moved(store string, partition int32, reason string) {
	if !h.Active() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if (s.f.Store == store || s.f.Store == "") && (s.f.Partition < 0 || s.f.Partition == partition) {
			s.end("moved", reason)
		}
	}
}

func (h *Hub) remove(s *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
	h.open.Store(int32(len(h.subs)))
}

// Sub is one subscription. Next is for one goroutine at a time.
type Sub struct {
	hub  *Hub
	f    Filter
	wake chan struct{} // has a token when there is something to read
	done chan struct{} // closed by Close

	mu      sync.Mutex
	queue   []Change
	latest  map[string]int // key → index in queue, while coalescing
	ended   string         // why the hub ended it; "" while open
	closing sync.Once
}

// ErrEnded is wrapped by Next's error when the hub ended the subscription.
var ErrEnded = errors.New("watch ended")

// add queues c, coalescing once the queue is full. Called with the hub's
// lock held.
func (s *Sub) add(c Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended != "" {
		return
	}
	c.Key, c.Value = bytes.Clone(c.Key), bytes.Clone(c.Value)
	lim := s.hub.limits
	if s.latest == nil && len(s.queue) >= lim.Buffer {
		// Full: from now on keep only the latest change per key.
		s.latest = make(map[string]int, len(s.queue))
		kept := s.queue[:0]
		for _, q := range s.queue {
			if i, ok := s.latest[string(q.Key)]; ok {
				q.Coalesced = true
				kept[i] = q
				s.hub.count.Coalesced(1)
				continue
			}
			s.latest[string(q.Key)] = len(kept)
			kept = append(kept, q)
		}
		s.queue = kept
	}
	if s.latest != nil {
		if i, ok := s.latest[string(c.Key)]; ok {
			c.Coalesced = true
			s.queue[i] = c
			s.hub.count.Coalesced(1)
		} else if len(s.latest) >= lim.Coalesce {
			s.endLocked("slow", fmt.Sprintf("the client read too slowly: more than %d keys changed while %d changes waited for it", lim.Coalesce, len(s.queue)))
			return
		} else {
			s.latest[string(c.Key)] = len(s.queue)
			s.queue = append(s.queue, c)
		}
	} else {
		s.queue = append(s.queue, c)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Sub) end(kind, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(kind, reason)
}

func (s *Sub) endLocked(kind, reason string) {
	if s.ended != "" {
		return
	}
	s.ended = reason
	s.hub.count.Ended(kind)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Next waits for changes and returns those queued, oldest first (a
// coalesced change takes the place of its key's first). It returns an
// error wrapping ErrEnded, with the reason, once the hub has ended the
// subscription and its queue is drained, or ctx's error.
func (s *Sub) Next(ctx context.Context) ([]Change, error) {
	for {
		s.mu.Lock()
		if q := s.queue; len(q) > 0 {
			s.queue, s.latest = nil, nil
			s.mu.Unlock()
			s.hub.count.Sent(len(q))
			return q, nil
		}
		ended := s.ended
		s.mu.Unlock()
		if ended != "" {
			return nil, fmt.Errorf("%w: %s", ErrEnded, ended)
		}
		select {
		case <-s.wake:
		case <-s.done:
			return nil, fmt.Errorf("%w: closed", ErrEnded)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close ends the subscription and releases it. Closing again does nothing.
func (s *Sub) Close() {
	s.closing.Do(func() {
		close(s.done)
		s.hub.remove(s)
	})
}

// Shutdown ends every subscription with reason: the app is stopping.
func (h *Hub) Shutdown(reason string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.end("stopped", reason)
	}
}
