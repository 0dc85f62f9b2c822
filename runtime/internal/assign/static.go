package assign

import (
	"fmt"
	"slices"
	"strings"
)

// Static builds an Assignment from a member list, as if a sync had
// delivered it to the member with ID self: for tools and tests that serve
// queries over a fixed placement without a consumer group. It refuses a
// partition assigned to two members and a self that is not listed.
func Static(generation int32, self string, members []Member) (Assignment, error) {
	a := &assignment{generation: generation, self: -1, owners: map[topicPartition]int{}}
	for _, m := range members {
		a.members = append(a.members, m.clone())
	}
	slices.SortFunc(a.members, func(x, y Member) int { return strings.Compare(x.ID, y.ID) })
	for i, m := range a.members {
		if m.ID == self {
			a.self = i
		}
		for topic, ps := range m.Partitions {
			for _, p := range ps {
				tp := topicPartition{topic, p}
				if other, dup := a.owners[tp]; dup {
					return Assignment{}, fmt.Errorf("assign: partition %d of %s is assigned to %s and %s", p, topic, a.members[other].ID, m.ID)
				}
				a.owners[tp] = i
			}
		}
	}
	if a.self < 0 {
		return Assignment{}, fmt.Errorf("assign: member %q is not in the assignment", self)
	}
	return Assignment{a: a}, nil
}
