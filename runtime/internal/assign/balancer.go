package assign

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Protocol is the group protocol name the balancer joins with. Every member
// of an app's group must offer it.
const Protocol = "streamrt-cooperative-sticky"

// Config configures a Balancer.
type Config struct {
	// QueryAddr is the host:port this instance serves interactive queries
	// on, as other instances should dial it. It is advertised to the group
	// and may be empty for an instance that serves no queries.
	QueryAddr string

	// Groups are sets of co-partitioned topics: a stage's input topics and
	// the tables it joins. Partition p of every topic in one set goes to the
	// same member. Sets that share a topic are merged; empty names are
	// ignored. A subscribed topic in no set is balanced on its own.
	Groups [][]string

	// Standbys is the number of standby replicas wanted per task unit: the
	// leader gives each unit's partitions to that many members other than
	// its owner, as Member.Standbys, for them to keep a warm copy of its
	// state. The leader's own setting decides for the group.
	Standbys int
}

// Balancer is streamrt's consumer-group balancer: a cooperative, sticky
// kgo.GroupBalancer that keeps co-partitioned partitions together and gives
// every member the group's whole assignment with each member's query
// address. See the package documentation.
//
// A Balancer serves one client: its Snapshot is that client's view of the
// group. Its methods are safe for concurrent use.
type Balancer struct {
	addr     string
	copart   copartition
	standbys int

	mu      sync.Mutex
	snap    Assignment
	changed chan struct{} // closed and replaced when snap changes
}

var _ kgo.GroupBalancer = (*Balancer)(nil)

// New returns a balancer for one client. It copies what it needs from cfg.
func New(cfg Config) *Balancer {
	return &Balancer{
		addr:     cfg.QueryAddr,
		copart:   newCopartition(cfg.Groups),
		standbys: cfg.Standbys,
		changed:  make(chan struct{}),
	}
}

// Snapshot returns the group's assignment as of this member's last sync.
func (b *Balancer) Snapshot() Assignment {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.snap
}

// Watch returns the current snapshot and a channel that is closed when a
// newer one replaces it: after a sync, and when this member starts to rejoin
// (Assignment.Rebalancing). Call Watch again after the channel closes.
func (b *Balancer) Watch() (Assignment, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.snap, b.changed
}

func (b *Balancer) publish(update func(Assignment) (Assignment, bool)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	next, ok := update(b.snap)
	if !ok {
		return
	}
	b.snap = next
	close(b.changed)
	b.changed = make(chan struct{})
}

// ProtocolName implements kgo.GroupBalancer.
func (*Balancer) ProtocolName() string { return Protocol }

// IsCooperative implements kgo.GroupBalancer: the balancer follows KIP-429's
// incremental protocol.
func (*Balancer) IsCooperative() bool { return true }

// JoinGroupMetadata implements kgo.GroupBalancer. It advertises the
// subscription, the partitions this member owns and the generation they are
// from (as the cooperative-sticky protocol does, in the standard consumer
// metadata fields), and streamrt's member metadata in UserData. It also marks
// the snapshot as rebalancing.
func (b *Balancer) JoinGroupMetadata(topics []string, current map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = topics
	meta.Generation = generation
	for _, t := range sortedKeys(current) {
		if len(current[t]) == 0 {
			continue
		}
		owned := kmsg.NewConsumerMemberMetadataOwnedPartition()
		owned.Topic = t
		owned.Partitions = slices.Sorted(slices.Values(current[t]))
		meta.OwnedPartitions = append(meta.OwnedPartitions, owned)
	}
	// The standbys of the last assignment are the warm copies this member
	// keeps, which the leader prefers to leave where they are.
	var warm map[string][]int32
	if self, ok := b.Snapshot().Self(); ok {
		warm = self.Standbys
	}
	meta.UserData = appendMemberMeta(nil, memberMeta{addr: b.addr, standby: nonEmpty(warm)})

	b.publish(func(s Assignment) (Assignment, bool) {
		if s.rebalancing {
			return s, false
		}
		s.rebalancing = true
		return s, true
	})
	return meta.AppendTo(nil)
}

// ParseSyncAssignment implements kgo.GroupBalancer: it returns this member's
// partitions and publishes the group's assignment as the new Snapshot.
func (b *Balancer) ParseSyncAssignment(raw []byte) (map[string][]int32, error) {
	var ka kmsg.ConsumerMemberAssignment
	if err := ka.ReadFrom(raw); err != nil {
		return nil, fmt.Errorf("%w: consumer assignment: %v", ErrMalformed, err)
	}
	a, err := decodeAssignment(ka.UserData)
	if err != nil {
		return nil, err
	}
	assigned := make(map[string][]int32, len(ka.Topics))
	for _, t := range ka.Topics {
		assigned[t.Topic] = append(assigned[t.Topic], t.Partitions...)
	}
	for _, ps := range assigned {
		slices.Sort(ps)
	}
	if self := a.members[a.self]; !equalTPs(assigned, self.Partitions) {
		return nil, malformed(kindAssignment, "member %q: assigned partitions %v disagree with the group map's %v", self.ID, assigned, self.Partitions)
	}
	b.publish(func(Assignment) (Assignment, bool) { return Assignment{a: a}, true })
	return assigned, nil
}

// MemberBalancer implements kgo.GroupBalancer. It fails, naming the member,
// when a member's metadata cannot be decoded, for instance because that
// member runs a newer encoding version than this leader.
func (b *Balancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	l := &leader{b: b, meta: make(map[string]memberMeta, len(members))}
	cb, err := kgo.NewConsumerBalancer(l, members)
	if err != nil {
		return nil, nil, err
	}
	cb.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		mm, derr := decodeMemberMeta(meta.UserData)
		if derr != nil && err == nil {
			err = fmt.Errorf("group member %q: %w", m.MemberID, derr)
		}
		l.meta[m.MemberID] = mm
	})
	if err != nil {
		return nil, nil, err
	}
	return cb, cb.MemberTopics(), nil
}

// leader balances one generation, on the member the coordinator elected.
type leader struct {
	b    *Balancer
	meta map[string]memberMeta // by member ID
}

// Balance implements kgo.ConsumerBalancerBalance.
func (l *leader) Balance(cb *kgo.ConsumerBalancer, counts map[string]int32) kgo.IntoSyncAssignment {
	var members []planMember
	cb.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		owned := make(map[string][]int32, len(meta.OwnedPartitions))
		for _, o := range meta.OwnedPartitions {
			owned[o.Topic] = append(owned[o.Topic], o.Partitions...)
		}
		members = append(members, planMember{
			id:         m.MemberID,
			instanceID: m.InstanceID,
			topics:     meta.Topics,
			owned:      owned,
			generation: meta.Generation,
			standby:    l.meta[m.MemberID].standby,
		})
	})

	plan := cb.NewPlan()
	ids := plan.AsMemberIDMap()
	planned := l.b.copart.balance(members, counts)
	for id, tps := range planned {
		ids[id] = cloneTPs(tps)
	}
	// KIP-429: a partition that moves from one member to another is left out
	// of this generation; its old owner revokes it and rejoins, and the
	// follow-up rebalance assigns it to the new owner.
	plan.AdjustCooperative(cb)
	standbys := l.b.copart.standbys(members, counts, ids, planned, l.b.standbys)

	all := make([]Member, 0, len(ids))
	for id, tps := range ids {
		all = append(all, Member{ID: id, Addr: l.meta[id].addr, Partitions: nonEmpty(tps), Standbys: nonEmpty(standbys[id])})
	}
	slices.SortFunc(all, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })

	gen := cb.Info().Generation
	body := assignmentBody(all)
	out := make(syncPlan, len(all))
	for i, m := range all {
		ka := kmsg.NewConsumerMemberAssignment()
		for _, t := range sortedKeys(m.Partitions) {
			at := kmsg.NewConsumerMemberAssignmentTopic()
			at.Topic = t
			at.Partitions = m.Partitions[t]
			ka.Topics = append(ka.Topics, at)
		}
		ka.UserData = append(appendAssignmentHeader(make([]byte, 0, 16+len(body)), gen, i), body...)
		out[i] = kmsg.NewSyncGroupRequestGroupAssignment()
		out[i].MemberID = m.ID
		out[i].MemberAssignment = ka.AppendTo(nil)
	}
	return out
}

// syncPlan is the leader's SyncGroup assignments, sorted by member ID.
type syncPlan []kmsg.SyncGroupRequestGroupAssignment

func (p syncPlan) IntoSyncAssignment() []kmsg.SyncGroupRequestGroupAssignment { return p }
