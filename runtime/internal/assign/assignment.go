package assign

import (
	"maps"
	"slices"
)

// Member is one group member in an Assignment.
type Member struct {
	// ID is the member's group member ID.
	ID string
	// Addr is the HTTP query address (host:port) the member advertises; empty
	// if it advertises none.
	Addr string
	// Partitions are the member's active partitions by topic, each list
	// sorted.
	Partitions map[string][]int32
	// Standbys are the partitions the member keeps warm for failover, by
	// topic, each list sorted: never one of its active partitions. Empty
	// unless the balancer's Config.Standbys is positive.
	Standbys map[string][]int32
}

type topicPartition struct {
	topic     string
	partition int32
}

// assignment is the decoded, immutable map that one sync delivered.
type assignment struct {
	generation int32
	self       int
	members    []Member // sorted by ID
	owners     map[topicPartition]int
}

// Assignment is the whole group's assignment as this member last received it:
// every member, its query address and its partitions, for one generation.
//
// An Assignment is an immutable value, safe to use from any goroutine. The
// zero Assignment, what Balancer.Snapshot returns before the first sync, has
// no members and generation -1.
type Assignment struct {
	a           *assignment
	rebalancing bool
}

// Generation returns the group generation the assignment belongs to, or -1
// if there is none yet.
func (s Assignment) Generation() int32 {
	if s.a == nil {
		return -1
	}
	return s.a.generation
}

// Valid reports whether the assignment came from a sync: false for the zero
// Assignment.
func (s Assignment) Valid() bool { return s.a != nil }

// Rebalancing reports whether this member has rejoined the group since the
// assignment was delivered. The assignment is then still what the group last
// agreed on, and under cooperative rebalancing members keep serving what they
// own, but ownership may change at the next sync.
func (s Assignment) Rebalancing() bool { return s.rebalancing }

// Members returns every member, sorted by ID, including those assigned
// nothing. The result is a deep copy that the caller may modify.
func (s Assignment) Members() []Member {
	if s.a == nil {
		return nil
	}
	out := make([]Member, len(s.a.members))
	for i, m := range s.a.members {
		out[i] = m.clone()
	}
	return out
}

// Self returns this member's entry: what it was assigned, under the ID the
// group knows it by. ok is false for the zero Assignment.
func (s Assignment) Self() (m Member, ok bool) {
	if s.a == nil {
		return Member{}, false
	}
	return s.a.members[s.a.self].clone(), true
}

// Owner returns the query address of the member that partition of topic is
// assigned to. ok is false when no member owns it: the topic is not consumed
// by the group, the partition is moving between members (see the package
// documentation on cooperative rebalancing), or there is no assignment yet.
// addr is empty when the owner advertises no query address.
func (s Assignment) Owner(topic string, partition int32) (addr string, ok bool) {
	if s.a == nil {
		return "", false
	}
	i, ok := s.a.owners[topicPartition{topic, partition}]
	if !ok {
		return "", false
	}
	return s.a.members[i].Addr, true
}

// OwnerID returns the member ID of the owner of partition of topic, with ok as
// for Owner.
func (s Assignment) OwnerID(topic string, partition int32) (id string, ok bool) {
	if s.a == nil {
		return "", false
	}
	i, ok := s.a.owners[topicPartition{topic, partition}]
	if !ok {
		return "", false
	}
	return s.a.members[i].ID, true
}

func (m Member) clone() Member {
	return Member{ID: m.ID, Addr: m.Addr, Partitions: cloneTPs(m.Partitions), Standbys: cloneTPs(m.Standbys)}
}

func cloneTPs(tps map[string][]int32) map[string][]int32 {
	if tps == nil {
		return nil
	}
	out := make(map[string][]int32, len(tps))
	for t, ps := range tps {
		out[t] = slices.Clone(ps)
	}
	return out
}

// equalTPs reports whether two topic→partitions maps list the same
// partitions, ignoring topics with none.
func equalTPs(a, b map[string][]int32) bool {
	return maps.EqualFunc(nonEmpty(a), nonEmpty(b), slices.Equal)
}

func nonEmpty(tps map[string][]int32) map[string][]int32 {
	out := make(map[string][]int32, len(tps))
	for t, ps := range tps {
		if len(ps) > 0 {
			out[t] = ps
		}
	}
	return out
}
