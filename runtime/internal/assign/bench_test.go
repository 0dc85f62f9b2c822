package assign

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkLeaderBalance measures the leader's side of one rebalance of a
// large group: 60 members, one of them just joined, over three co-partitioned
// topics and two lone ones of 256 partitions each (768 units), from decoding
// the members' metadata to encoding every member's assignment.
func BenchmarkLeaderBalance(b *testing.B) {
	topics := []string{"a", "b", "c", "d", "e"}
	counts := map[string]int32{}
	for _, t := range topics {
		counts[t] = 256
	}
	groups := [][]string{{"a", "b", "c"}}
	g := newSimGroup(b, counts)
	for i := range 59 {
		g.join(fmt.Sprintf("member-%02d", i), groups, topics)
	}
	g.settle()
	g.join("member-59", groups, topics)
	var join []kmsg.JoinGroupResponseMember
	for _, m := range g.members {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		jm.ProtocolMetadata = m.bal.JoinGroupMetadata(topics, m.owned, m.gen)
		join = append(join, jm)
	}
	leader := g.members[0].bal

	var bytes int
	b.ReportAllocs()
	for b.Loop() {
		gmb, _, err := leader.MemberBalancer(join)
		if err != nil {
			b.Fatal(err)
		}
		into, err := gmb.(kgo.GroupMemberBalancerOrError).BalanceOrError(counts)
		if err != nil {
			b.Fatal(err)
		}
		bytes = 0
		for _, a := range into.IntoSyncAssignment() {
			bytes += len(a.MemberAssignment)
		}
	}
	b.ReportMetric(float64(bytes), "sync-bytes")
}
