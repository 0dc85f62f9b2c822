package assign

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// simGroup drives Balancers through JoinGroup and SyncGroup rounds the way
// franz-go and the coordinator do, without a broker: every member joins with
// its Balancer's metadata, the first member balances as leader, and every
// member parses its assignment. A member that lost partitions in a round
// rejoins, as a cooperative franz-go member does.
type simGroup struct {
	t       testing.TB
	counts  map[string]int32
	gen     int32
	members []*simMember
	raw     map[string][]byte // last SyncGroup assignment by member
}

type simMember struct {
	id     string
	addr   string
	bal    *Balancer
	topics []string
	owned  map[string][]int32
	gen    int32
}

func newSimGroup(t testing.TB, counts map[string]int32) *simGroup {
	return &simGroup{t: t, counts: counts}
}

func (g *simGroup) join(id string, groups [][]string, topics []string) *simMember {
	m := &simMember{id: id, addr: "addr-" + id, topics: topics, gen: -1}
	m.bal = New(Config{QueryAddr: m.addr, Groups: groups})
	g.members = append(g.members, m)
	return m
}

func (g *simGroup) leave(id string) {
	g.members = slices.DeleteFunc(g.members, func(m *simMember) bool { return m.id == id })
}

// round runs one generation and reports whether any member revoked
// partitions, which makes the group rebalance again.
func (g *simGroup) round() (revoked bool) {
	g.t.Helper()
	var join []kmsg.JoinGroupResponseMember
	for _, m := range g.members {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		jm.ProtocolMetadata = m.bal.JoinGroupMetadata(slices.Sorted(slices.Values(m.topics)), cloneTPs(m.owned), m.gen)
		join = append(join, jm)
	}
	g.gen++
	gmb, topics, err := g.members[0].bal.MemberBalancer(join)
	if err != nil {
		g.t.Fatalf("MemberBalancer: %v", err)
	}
	counts := map[string]int32{}
	for topic := range topics {
		if n, ok := g.counts[topic]; ok {
			counts[topic] = n
		}
	}
	gmb.(kgo.GroupMemberBalancerInfo).SetBalanceInfo(kgo.BalanceInfo{Generation: g.gen})
	into, err := gmb.(kgo.GroupMemberBalancerOrError).BalanceOrError(counts)
	if err != nil {
		g.t.Fatalf("balance: %v", err)
	}
	g.raw = map[string][]byte{}
	for _, a := range into.IntoSyncAssignment() {
		g.raw[a.MemberID] = a.MemberAssignment
	}

	next := map[string]map[string][]int32{}
	for _, m := range g.members {
		assigned, err := m.bal.ParseSyncAssignment(g.raw[m.id])
		if err != nil {
			g.t.Fatalf("%s: ParseSyncAssignment: %v", m.id, err)
		}
		next[m.id] = assigned
		// KIP-429: nothing is assigned to a member while another still
		// owns it.
		for topic, ps := range assigned {
			for _, p := range ps {
				if slices.Contains(m.owned[topic], p) {
					continue
				}
				for _, o := range g.members {
					if o != m && slices.Contains(o.owned[topic], p) {
						g.t.Fatalf("generation %d: %s/%d assigned to %s while %s still owns it", g.gen, topic, p, m.id, o.id)
					}
				}
			}
		}
	}
	for _, m := range g.members {
		for topic, ps := range m.owned {
			for _, p := range ps {
				if !slices.Contains(next[m.id][topic], p) {
					revoked = true
				}
			}
		}
		m.owned, m.gen = next[m.id], g.gen
	}
	return revoked
}

// settle runs rounds until no member revokes anything, and returns how many
// it took.
func (g *simGroup) settle() int {
	g.t.Helper()
	for n := 1; n <= 5; n++ {
		if !g.round() {
			return n
		}
	}
	g.t.Fatal("group did not settle in 5 rounds")
	return 0
}

func (g *simGroup) plan() map[string]map[string][]int32 {
	p := map[string]map[string][]int32{}
	for _, m := range g.members {
		p[m.id] = m.owned
	}
	return p
}

func (g *simGroup) ids() []string {
	var ids []string
	for _, m := range g.members {
		ids = append(ids, m.id)
	}
	return ids
}

// checkSnapshots checks that every member's snapshot is the same map, with
// the right addresses, and agrees with what each member owns.
func (g *simGroup) checkSnapshots() {
	g.t.Helper()
	var want []Member
	for _, m := range g.members {
		want = append(want, Member{ID: m.id, Addr: m.addr, Partitions: nonEmpty(m.owned)})
	}
	slices.SortFunc(want, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	for _, m := range g.members {
		s := m.bal.Snapshot()
		if s.Generation() != g.gen || s.Rebalancing() {
			g.t.Errorf("%s: snapshot generation %d rebalancing %v, want %d, false", m.id, s.Generation(), s.Rebalancing(), g.gen)
		}
		got := s.Members()
		for i := range got {
			got[i].Partitions = nonEmpty(got[i].Partitions)
		}
		if !reflect.DeepEqual(got, want) {
			g.t.Errorf("%s: snapshot members\n%+v\nwant\n%+v", m.id, got, want)
		}
		if self, _ := s.Self(); self.ID != m.id {
			g.t.Errorf("%s: Self is %q", m.id, self.ID)
		}
		for _, o := range g.members {
			for topic, ps := range o.owned {
				for _, p := range ps {
					if addr, ok := s.Owner(topic, p); !ok || addr != o.addr {
						g.t.Errorf("%s: Owner(%s, %d) = %q, %v; want %q", m.id, topic, p, addr, ok, o.addr)
					}
				}
			}
		}
	}
}

func TestCooperativeRebalances(t *testing.T) {
	groups := [][]string{{"orders", "customers"}}
	tests := []struct {
		name   string
		topics []string
		counts map[string]int32
	}{
		{"two co-partitioned topics, 6 partitions", []string{"customers", "orders"}, map[string]int32{"orders": 6, "customers": 6}},
		{"two co-partitioned and one alone, 12 partitions", []string{"customers", "orders", "clicks"}, map[string]int32{"orders": 12, "customers": 12, "clicks": 12}},
		{"one topic, 4 partitions", []string{"orders"}, map[string]int32{"orders": 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var units int
			for _, s := range [][]string{{"orders", "customers"}, {"clicks"}} {
				if n := tt.counts[s[0]]; slices.Contains(tt.topics, s[0]) {
					units += int(n)
				}
			}
			g := newSimGroup(t, tt.counts)
			check := func() map[string]int {
				t.Helper()
				g.checkSnapshots()
				checkPlan(t, [][]string{{"orders", "customers"}}[:min(1, len(tt.topics)-1)], tt.counts, g.plan())
				l := map[string]int{}
				for id, tps := range g.plan() {
					for _, ps := range tps {
						l[id] += len(ps)
					}
					l[id] -= len(tps["customers"]) // a unit of orders+customers counts once
				}
				checkEven(t, l)
				return l
			}

			// Members join one at a time; each join settles in the two
			// rounds of KIP-429 and moves at most ceil(units/n) units.
			for i := range 5 {
				before := g.plan()
				g.join(fmt.Sprintf("m%d", i), groups, tt.topics)
				rounds := g.settle()
				if i > 0 && rounds > 2 {
					t.Errorf("join of m%d took %d rounds", i, rounds)
				}
				check()
				limit := (units + i) / (i + 1)
				if n := movedUnits(before, g.plan()); n > limit {
					t.Errorf("join of m%d moved %d units, want at most %d", i, n, limit)
				}
			}

			// Members leave: only the leaver's partitions move, in one round
			// (nothing is revoked from the survivors).
			for _, gone := range []string{"m2", "m0", "m4", "m1"} {
				before := g.plan()
				g.leave(gone)
				if rounds := g.settle(); rounds != 1 {
					t.Errorf("leave of %s took %d rounds", gone, rounds)
				}
				check()
				for id, tps := range before {
					if id == gone {
						continue
					}
					for topic, ps := range tps {
						for _, p := range ps {
							if !slices.Contains(g.plan()[id][topic], p) {
								t.Errorf("leave of %s moved %s/%d away from %s", gone, topic, p, id)
							}
						}
					}
				}
			}
		})
	}
}

// movedUnits counts the partitions of before that are elsewhere in after,
// counting a customers partition with its orders partition.
func movedUnits(before, after map[string]map[string][]int32) int {
	n := 0
	for id, tps := range before {
		for topic, ps := range tps {
			if topic == "customers" {
				continue
			}
			for _, p := range ps {
				if !slices.Contains(after[id][topic], p) {
					n++
				}
			}
		}
	}
	return n
}

func TestSameInputSameAssignment(t *testing.T) {
	counts := map[string]int32{"a": 12, "b": 12}
	run := func() map[string][]byte {
		g := newSimGroup(t, counts)
		for i := range 3 {
			g.join(fmt.Sprintf("m%d", i), [][]string{{"a", "b"}}, []string{"a", "b"})
		}
		g.settle()
		g.join("m3", [][]string{{"a", "b"}}, []string{"a", "b"})
		g.settle()
		return g.raw
	}
	want := run()
	for range 5 {
		if got := run(); !reflect.DeepEqual(got, want) {
			t.Fatal("the same history produced different SyncGroup assignments")
		}
	}
}

func TestVersionMismatchFailsClearly(t *testing.T) {
	t.Run("member metadata", func(t *testing.T) {
		b := New(Config{QueryAddr: "me:1"})
		newer := kmsg.NewConsumerMemberMetadata()
		newer.Version = 3
		newer.Topics = []string{"a"}
		newer.UserData = []byte{metadataVersion + 1, 0, 0, 42}
		var join []kmsg.JoinGroupResponseMember
		for id, meta := range map[string][]byte{
			"old": b.JoinGroupMetadata([]string{"a"}, nil, -1),
			"new": newer.AppendTo(nil),
		} {
			jm := kmsg.NewJoinGroupResponseMember()
			jm.MemberID, jm.ProtocolMetadata = id, meta
			join = append(join, jm)
		}
		_, _, err := b.MemberBalancer(join)
		var ve *VersionError
		if !errors.As(err, &ve) || ve.Version != metadataVersion+1 || !strings.Contains(err.Error(), `"new"`) {
			t.Fatalf("MemberBalancer error %v: want a VersionError naming member new", err)
		}
	})
	t.Run("assignment", func(t *testing.T) {
		ka := kmsg.NewConsumerMemberAssignment()
		ka.UserData = append([]byte{assignmentVersion + 1}, appendAssignment(nil, 1, 0, []Member{{ID: "m"}})[1:]...)
		_, err := New(Config{}).ParseSyncAssignment(ka.AppendTo(nil))
		if !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("ParseSyncAssignment error %v: want ErrUnsupportedVersion", err)
		}
	})
	t.Run("assignment without streamrt data", func(t *testing.T) {
		ka := kmsg.NewConsumerMemberAssignment()
		ka.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: "a", Partitions: []int32{0}}}
		if _, err := New(Config{}).ParseSyncAssignment(ka.AppendTo(nil)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseSyncAssignment error %v: want ErrMalformed", err)
		}
	})
	t.Run("assignment disagreeing with its map", func(t *testing.T) {
		ka := kmsg.NewConsumerMemberAssignment()
		ka.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: "a", Partitions: []int32{1}}}
		ka.UserData = appendAssignment(nil, 1, 0, []Member{{ID: "m", Partitions: map[string][]int32{"a": {0}}}})
		if _, err := New(Config{}).ParseSyncAssignment(ka.AppendTo(nil)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseSyncAssignment error %v: want ErrMalformed", err)
		}
	})
}

func TestJoinGroupMetadataDeterministic(t *testing.T) {
	b := New(Config{QueryAddr: "h:1"})
	owned := map[string][]int32{"b": {3, 1}, "a": {2, 0}}
	first := b.JoinGroupMetadata([]string{"a", "b"}, owned, 4)
	for range 10 {
		if again := b.JoinGroupMetadata([]string{"a", "b"}, maps.Clone(owned), 4); !reflect.DeepEqual(first, again) {
			t.Fatal("JoinGroupMetadata output differs for the same input")
		}
	}
	var meta kmsg.ConsumerMemberMetadata
	if err := meta.ReadFrom(first); err != nil {
		t.Fatal(err)
	}
	if meta.Generation != 4 || len(meta.OwnedPartitions) != 2 || !slices.Equal(meta.OwnedPartitions[1].Partitions, []int32{1, 3}) {
		t.Fatalf("metadata %+v", meta)
	}
	if mm, err := decodeMemberMeta(meta.UserData); err != nil || mm.addr != "h:1" {
		t.Fatalf("user data %+v, %v", mm, err)
	}
}

// TestWatchHammer reads snapshots from many goroutines while the group
// rebalances, for the race detector, and checks that every sync and rejoin
// wakes watchers and that no reader sees a torn snapshot.
func TestWatchHammer(t *testing.T) {
	counts := map[string]int32{"a": 8, "b": 8}
	g := newSimGroup(t, counts)
	watched := g.join("m0", [][]string{{"a", "b"}}, []string{"a", "b"})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int32]bool{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				s, ch := watched.bal.Watch()
				if s.Valid() {
					for _, m := range s.Members() {
						for _, p := range m.Partitions["a"] {
							if addr, ok := s.Owner("a", p); !ok || addr != m.Addr {
								t.Errorf("torn snapshot: Owner(a, %d) = %q, %v", p, addr, ok)
							}
						}
					}
					mu.Lock()
					seen[s.Generation()] = true
					mu.Unlock()
				}
				select {
				case <-ch:
				case <-stop:
					return
				}
			}
		}()
	}
	for i := 1; i < 20; i++ {
		_, ch := watched.bal.Watch()
		if i%4 == 0 {
			g.leave(fmt.Sprintf("m%d", i-2))
		} else {
			g.join(fmt.Sprintf("m%d", i), [][]string{{"a", "b"}}, []string{"a", "b"})
		}
		g.settle()
		select {
		case <-ch:
		default:
			t.Fatal("Watch channel not closed by a rebalance")
		}
	}
	close(stop)
	wg.Wait()
	if len(seen) == 0 {
		t.Fatal("watchers saw no snapshot")
	}
}

// syncAssignments returns SyncGroup assignments from a few simulated
// rebalances, as fuzz seeds.
func syncAssignments(tb testing.TB) [][]byte {
	g := newSimGroup(tb, map[string]int32{"a": 6, "b": 6, "c": 3})
	var out [][]byte
	for i := range 3 {
		g.join(fmt.Sprintf("m%d", i), [][]string{{"a", "b"}}, []string{"a", "b", "c"})
		g.round()
		for _, id := range sortedKeys(g.raw) {
			out = append(out, g.raw[id])
		}
	}
	return out
}
