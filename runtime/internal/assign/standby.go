package assign

import (
	"cmp"
	"slices"
)

// standbys places up to n standby replicas of every unit, each on a member
// other than the unit's active owner, and returns member ID → topic → sorted
// partitions, with an entry, possibly empty, for every member.
//
// active is this generation's assignment (after the cooperative adjustment:
// a moving unit has no owner in it) and planned the balance it is heading
// for. A moving unit's planned owner is its first standby, so that it keeps
// or starts a warm copy until the follow-up rebalance makes it active.
// Otherwise members are chosen, unit by unit, by fewest standbys so far,
// counting a member that already holds the unit's state (a standby it
// advertises, or the unit owned at its last generation) as one fewer, so
// that standbys stay where their copies are unless that unbalances the
// spread by two or more; ties go to the first member in order. A unit has
// fewer than n standbys when fewer members can take it.
func (c copartition) standbys(in []planMember, counts map[string]int32, active, planned map[string]map[string][]int32, n int) map[string]map[string][]int32 {
	members := slices.Clone(in)
	slices.SortStableFunc(members, compareMembers)
	out := make(map[string]map[string][]int32, len(members))
	for _, m := range members {
		out[m.id] = map[string][]int32{}
	}
	if n <= 0 || len(members) < 2 {
		return out
	}
	holders := func(a map[string]map[string][]int32) map[topicPartition]int {
		h := map[topicPartition]int{}
		for i, m := range members {
			for t, ps := range a[m.id] {
				for _, p := range ps {
					h[topicPartition{t, p}] = i
				}
			}
		}
		return h
	}
	owner, next := holders(active), holders(planned)
	has := func(tps map[string][]int32, u unit) bool {
		for _, t := range u.topics {
			if slices.Contains(tps[t], u.p) {
				return true
			}
		}
		return false
	}

	units, _ := c.units(members, counts)
	load := make([]int, len(members))
	var chosen, cand []int
	for _, u := range units {
		first := topicPartition{u.topics[0], u.p}
		o, owned := owner[first]
		if !owned {
			o = -1
		}
		chosen = chosen[:0]
		if to, ok := next[first]; ok && to != o && !owned {
			chosen = append(chosen, to)
		}
		cand = cand[:0]
		for _, m := range u.eligible {
			if m != o && !slices.Contains(chosen, m) {
				cand = append(cand, m)
			}
		}
		score := func(m int) int {
			s := 2 * load[m]
			if has(members[m].standby, u) || has(members[m].owned, u) {
				s -= 3 // warm: worth up to one more standby than a cold member
			}
			return s
		}
		slices.SortStableFunc(cand, func(a, b int) int {
			if c := cmp.Compare(score(a), score(b)); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		for _, m := range cand {
			if len(chosen) >= n {
				break
			}
			chosen = append(chosen, m)
		}
		for _, m := range chosen {
			load[m]++
			for _, t := range u.topics {
				out[members[m].id][t] = append(out[members[m].id][t], u.p)
			}
		}
	}
	for _, tps := range out {
		for _, ps := range tps {
			slices.Sort(ps)
		}
	}
	return out
}
