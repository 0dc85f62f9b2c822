package assign_test

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/assign"
	"github.com/twmb/franz-go/pkg/kgo"
)

// consumer is one group member under test: a franz-go client with the
// balancer, and the partitions its rebalance callbacks say it owns.
type consumer struct {
	name string
	addr string
	bal  *assign.Balancer
	cl   *kgo.Client

	mu    sync.Mutex
	owned map[string]map[int32]bool
}

func (c *consumer) assigned(tps map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t, ps := range tps {
		if c.owned[t] == nil {
			c.owned[t] = map[int32]bool{}
		}
		for _, p := range ps {
			c.owned[t][p] = true
		}
	}
}

func (c *consumer) revoked(tps map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t, ps := range tps {
		for _, p := range ps {
			delete(c.owned[t], p)
		}
	}
}

func (c *consumer) partitions(topic string) []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.owned[topic]))
}

// TestGroupWithFranzGo runs three franz-go consumers in one group with the
// balancer, against kfake or the cluster in STREAMRT_TEST_BROKERS.
func TestGroupWithFranzGo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	brokers := testkafka.Brokers(t)
	orders, customers := testkafka.Name(t, "orders"), testkafka.Name(t, "customers")
	group := testkafka.Name(t, "assign")
	const partitions = 6
	testkafka.CreateTopic(t, brokers, orders, partitions)
	testkafka.CreateTopic(t, brokers, customers, partitions)

	start := func(i int) *consumer {
		c := &consumer{
			name:  fmt.Sprintf("c%d", i),
			addr:  fmt.Sprintf("10.0.0.%d:808%d", i+1, i),
			owned: map[string]map[int32]bool{},
		}
		c.bal = assign.New(assign.Config{QueryAddr: c.addr, Groups: [][]string{{orders, customers}}})
		c.cl = testkafka.Client(t, brokers,
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(orders, customers),
			kgo.Balancers(c.bal),
			kgo.HeartbeatInterval(250*time.Millisecond),
			kgo.SessionTimeout(10*time.Second),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, tps map[string][]int32) { c.assigned(tps) }),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, tps map[string][]int32) { c.revoked(tps) }),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, tps map[string][]int32) { c.revoked(tps) }),
		)
		return c
	}

	// settled reports whether the group agrees on one complete assignment:
	// every partition of both topics owned once, partition p of both topics
	// on one member, every snapshot the same map with the right addresses
	// and matching what each client owns.
	settled := func(cs []*consumer) (bool, string) {
		var want []assign.Member
		addrOf := map[string]string{}
		for _, c := range cs {
			id, _ := c.cl.GroupMetadata()
			addrOf[id] = c.addr
		}
		owner := map[int32]string{}
		for _, c := range cs {
			o, cu := c.partitions(orders), c.partitions(customers)
			if !slices.Equal(o, cu) {
				return false, fmt.Sprintf("%s owns %s%v but %s%v", c.name, orders, o, customers, cu)
			}
			for _, p := range o {
				if prev, dup := owner[p]; dup {
					return false, fmt.Sprintf("partition %d owned by %s and %s", p, prev, c.name)
				}
				owner[p] = c.name
			}
		}
		if len(owner) != partitions {
			return false, fmt.Sprintf("only %d of %d partitions owned", len(owner), partitions)
		}
		for i, c := range cs {
			s := c.bal.Snapshot()
			if !s.Valid() || s.Rebalancing() {
				return false, fmt.Sprintf("%s: snapshot valid %v rebalancing %v", c.name, s.Valid(), s.Rebalancing())
			}
			ms := s.Members()
			if i == 0 {
				want = ms
			} else if !reflect.DeepEqual(ms, want) || s.Generation() != cs[0].bal.Snapshot().Generation() {
				return false, fmt.Sprintf("%s's snapshot differs from %s's", c.name, cs[0].name)
			}
			if len(ms) != len(cs) {
				return false, fmt.Sprintf("%s's snapshot has %d members", c.name, len(ms))
			}
			for _, m := range ms {
				if addrOf[m.ID] != m.Addr {
					return false, fmt.Sprintf("%s's snapshot says member %s is at %q, want %q", c.name, m.ID, m.Addr, addrOf[m.ID])
				}
			}
			for _, topic := range []string{orders, customers} {
				for p := range int32(partitions) {
					addr, ok := s.Owner(topic, p)
					if !ok {
						return false, fmt.Sprintf("%s: no owner for %s/%d", c.name, topic, p)
					}
					for _, o := range cs {
						if o.name == owner[p] && o.addr != addr {
							return false, fmt.Sprintf("%s: owner of %s/%d is %q, but %s owns it", c.name, topic, p, addr, o.name)
						}
					}
				}
			}
		}
		return true, ""
	}
	waitSettled := func(cs []*consumer) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			ok, why := settled(cs)
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("group did not settle in 60s: %s", why)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// One member first, so that the others joining exercise the
	// cooperative two-phase hand-over with a real client.
	cs := []*consumer{start(0)}
	waitSettled(cs)
	cs = append(cs, start(1), start(2))
	waitSettled(cs)
	before := map[string][]int32{}
	for _, c := range cs {
		before[c.name] = c.partitions(orders)
		if n := len(before[c.name]); n != 2 {
			t.Errorf("%s owns %d partitions, want 2", c.name, n)
		}
	}
	t.Logf("assignment: %v", before)

	cs[1].cl.Close()
	survivors := []*consumer{cs[0], cs[2]}
	waitSettled(survivors)
	for _, c := range survivors {
		now := c.partitions(orders)
		for _, p := range before[c.name] {
			if !slices.Contains(now, p) {
				t.Errorf("%s lost partition %d when %s left", c.name, p, cs[1].name)
			}
		}
		if len(now) != 3 {
			t.Errorf("%s owns %v after %s left, want 3 partitions", c.name, now, cs[1].name)
		}
	}
	t.Logf("after %s left: %v %v", cs[1].name, survivors[0].partitions(orders), survivors[1].partitions(orders))
}
