package watch

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func change(store string, p int32, off int64, key, value string) Change {
	return Change{Store: store, Partition: p, Offset: off, Key: []byte(key), Value: []byte(value)}
}

func next(t *testing.T, s *Sub) []Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cs, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return cs
}

func TestSubscriptionsGetTheChangesTheirFilterSelects(t *testing.T) {
	h := NewHub(Limits{}, Counters{})
	if h.Active() {
		t.Fatal("a hub without subscriptions is active")
	}
	key := h.Subscribe(Filter{Store: "counts", Partition: 1, Key: []byte("page-1")})
	prefix := h.Subscribe(Filter{Store: "counts", Partition: -1, Key: []byte("page-"), Prefix: true})
	defer key.Close()
	defer prefix.Close()
	if !h.Active() || h.Open() != 2 {
		t.Fatalf("Active %v, Open %d with two subscriptions", h.Active(), h.Open())
	}
	buf := []byte("page-1")
	h.Publish([]Change{
		{Store: "counts", Partition: 1, Offset: 7, Key: buf, Value: []byte("3")},
		change("counts", 1, 8, "page-10", "1"),
		change("counts", 0, 4, "page-2", "5"),
		change("other", 1, 9, "page-1", "x"),
		change("counts", 1, 10, "home", "2"),
	})
	copy(buf, "XXXXXX") // the hub copied the key
	got := next(t, key)
	if len(got) != 1 || string(got[0].Key) != "page-1" || string(got[0].Value) != "3" || got[0].Offset != 7 {
		t.Fatalf("key subscription got %+v, want page-1=3 at offset 7 only", got)
	}
	got = next(t, prefix)
	var keys []string
	for _, c := range got {
		keys = append(keys, string(c.Key))
	}
	if strings.Join(keys, ",") != "page-1,page-10,page-2" {
		t.Fatalf("prefix subscription got keys %v, want page-1, page-10, page-2 in order", keys)
	}
}

func TestASlowSubscriberCoalescesThenEnds(t *testing.T) {
	var sent, coalesced int
	var ended []string
	h := NewHub(Limits{Buffer: 4, Coalesce: 6}, Counters{
		Sent:      func(n int) { sent += n },
		Coalesced: func(n int) { coalesced += n },
		Ended:     func(kind string) { ended = append(ended, kind) },
	})
	s := h.Subscribe(Filter{Store: "counts", Partition: -1, Prefix: true})
	defer s.Close()
	// Ten changes of two keys: past the buffer of 4 they coalesce to the
	// latest per key.
	for i := range 10 {
		h.Publish([]Change{change("counts", 0, int64(i), "k"+strconv.Itoa(i%2), strconv.Itoa(i))})
	}
	got := next(t, s)
	if len(got) != 2 {
		t.Fatalf("got %d changes, want the latest of each of 2 keys: %+v", len(got), got)
	}
	if string(got[0].Key) != "k0" || string(got[0].Value) != "8" || !got[0].Coalesced ||
		string(got[1].Key) != "k1" || string(got[1].Value) != "9" || !got[1].Coalesced {
		t.Fatalf("got %+v, want k0=8 and k1=9, both marked coalesced", got)
	}
	if sent != 2 || coalesced != 8 {
		t.Fatalf("counted %d sent and %d coalesced, want 2 and 8", sent, coalesced)
	}
	// More distinct keys than Coalesce while it does not read: it ends,
	// and says why once what it holds is read.
	for i := range 20 {
		h.Publish([]Change{change("counts", 0, int64(100+i), "key-"+strconv.Itoa(i), "v")})
	}
	got = next(t, s)
	if len(got) != 6 {
		t.Fatalf("got %d changes before the end, want the 6 the subscription held", len(got))
	}
	_, err := s.Next(context.Background())
	if !errors.Is(err, ErrEnded) || !strings.Contains(err.Error(), "read too slowly") {
		t.Fatalf("Next after the limit: %v, want ErrEnded saying the client read too slowly", err)
	}
	if len(ended) != 1 || ended[0] != "slow" {
		t.Fatalf("ended %v, want one \"slow\"", ended)
	}
	h.Publish([]Change{change("counts", 0, 200, "k0", "late")})
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrEnded) {
		t.Fatalf("an ended subscription got more: %v", err)
	}
}

func TestMovedAndShutdownEndSubscriptionsWithTheReason(t *testing.T) {
	h := NewHub(Limits{}, Counters{})
	p0 := h.Subscribe(Filter{Store: "counts", Partition: 0, Key: []byte("a")})
	p1 := h.Subscribe(Filter{Store: "counts", Partition: 1, Key: []byte("b")})
	all := h.Subscribe(Filter{Store: "counts", Partition: -1, Prefix: true})
	h.Moved("counts", 0, "partition 0 moved")
	for _, s := range []*Sub{p0, all} {
		if _, err := s.Next(context.Background()); !errors.Is(err, ErrEnded) || !strings.Contains(err.Error(), "partition 0 moved") {
			t.Fatalf("Next after Moved: %v", err)
		}
	}
	h.Publish([]Change{change("counts", 1, 3, "b", "1")})
	if got := next(t, p1); len(got) != 1 {
		t.Fatalf("the other partition's subscription got %v", got)
	}
	h.Shutdown("stopping")
	if _, err := p1.Next(context.Background()); !errors.Is(err, ErrEnded) || !strings.Contains(err.Error(), "stopping") {
		t.Fatalf("Next after Shutdown: %v", err)
	}
	for _, s := range []*Sub{p0, p1, all} {
		s.Close()
		s.Close()
	}
	if h.Active() {
		t.Fatal("the hub is active with every subscription closed")
	}
	var nilHub *Hub
	if nilHub.Active() || nilHub.Open() != 0 {
		t.Fatal("a nil hub has subscribers")
	}
	nilHub.Publish([]Change{change("counts", 0, 1, "a", "b")})
}

func TestNextWaitsAndHonoursItsContext(t *testing.T) {
	h := NewHub(Limits{}, Counters{})
	s := h.Subscribe(Filter{Store: "counts", Partition: -1, Prefix: true})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next with nothing published: %v, want the context's deadline", err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		h.Publish([]Change{change("counts", 2, 5, "x", "y")})
	}()
	if got := next(t, s); len(got) != 1 || got[0].Partition != 2 {
		t.Fatalf("got %+v", got)
	}
}
