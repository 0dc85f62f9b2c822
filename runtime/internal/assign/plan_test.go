package assign

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
)

// topicNames returns n co-partitioned topic names.
func topicNames(n int) []string {
	var ts []string
	for i := range n {
		ts = append(ts, fmt.Sprintf("t%d", i))
	}
	return ts
}

func countsOf(topics []string, partitions int32) map[string]int32 {
	m := map[string]int32{}
	for _, t := range topics {
		m[t] = partitions
	}
	return m
}

func memberIDs(n int) []string {
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("m%d", i))
	}
	return ids
}

// fresh returns members with no current assignment.
func fresh(ids []string, topics []string) []planMember {
	var ms []planMember
	for _, id := range ids {
		ms = append(ms, planMember{id: id, topics: topics, generation: -1})
	}
	return ms
}

// owning returns members that own what plan gave them, at generation gen.
func owning(ids []string, topics []string, plan map[string]map[string][]int32, gen int32) []planMember {
	var ms []planMember
	for _, id := range ids {
		ms = append(ms, planMember{id: id, topics: topics, owned: plan[id], generation: gen})
	}
	return ms
}

// units maps (set of topics in one group, partition) to its member, checking
// that every partition is assigned once and that co-partitioning holds.
func checkPlan(t *testing.T, groups [][]string, counts map[string]int32, plan map[string]map[string][]int32) map[int32]string {
	t.Helper()
	owner := map[string]map[int32]string{}
	for id, tps := range plan {
		for topic, ps := range tps {
			if !slices.IsSorted(ps) {
				t.Errorf("%s: %s partitions not sorted: %v", id, topic, ps)
			}
			if owner[topic] == nil {
				owner[topic] = map[int32]string{}
			}
			for _, p := range ps {
				if prev, dup := owner[topic][p]; dup {
					t.Errorf("%s/%d assigned to %s and %s", topic, p, prev, id)
				}
				owner[topic][p] = id
			}
		}
	}
	for topic, n := range counts {
		for p := range n {
			if _, ok := owner[topic][p]; !ok {
				t.Errorf("%s/%d not assigned", topic, p)
			}
		}
	}
	unitOwner := map[int32]string{}
	for _, g := range groups {
		for p := range counts[g[0]] {
			for _, topic := range g[1:] {
				if owner[topic][p] != owner[g[0]][p] {
					t.Errorf("co-partitioning broken: %s/%d on %s, %s/%d on %s", g[0], p, owner[g[0]][p], topic, p, owner[topic][p])
				}
			}
			unitOwner[p] = owner[g[0]][p]
		}
	}
	return unitOwner
}

func loads(ids []string, unitOwner map[int32]string) map[string]int {
	l := map[string]int{}
	for _, id := range ids {
		l[id] = 0
	}
	for _, id := range unitOwner {
		l[id]++
	}
	return l
}

func checkEven(t *testing.T, l map[string]int) {
	t.Helper()
	lo, hi := -1, -1
	for _, n := range l {
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	if hi-lo > 1 {
		t.Errorf("loads differ by more than one: %v", l)
	}
}

func moved(before, after map[int32]string) int {
	n := 0
	for p, id := range before {
		if after[p] != id {
			n++
		}
	}
	return n
}

func TestBalanceCopartitionedEvenAndSticky(t *testing.T) {
	for members := 1; members <= 5; members++ {
		for _, partitions := range []int32{4, 12} {
			for ntopics := 1; ntopics <= 3; ntopics++ {
				t.Run(fmt.Sprintf("members=%d/partitions=%d/topics=%d", members, partitions, ntopics), func(t *testing.T) {
					topics := topicNames(ntopics)
					groups := [][]string{topics}
					c := newCopartition(groups)
					counts := countsOf(topics, partitions)
					ids := memberIDs(members)

					plan := c.balance(fresh(ids, topics), counts)
					units := checkPlan(t, groups, counts, plan)
					checkEven(t, loads(ids, units))

					again := c.balance(owning(ids, topics, plan, 1), counts)
					if !reflect.DeepEqual(plan, again) {
						t.Errorf("rebalancing an unchanged group moved partitions:\n%v\n%v", plan, again)
					}

					// A member joins: only about 1/(n+1) of the units move,
					// all of them to the newcomer.
					grown := append(slices.Clone(ids), "m9")
					plan2 := c.balance(owning(grown, topics, plan, 1), counts)
					units2 := checkPlan(t, groups, counts, plan2)
					checkEven(t, loads(grown, units2))
					limit := (int(partitions) + len(grown) - 1) / len(grown)
					if n := moved(units, units2); n > limit {
						t.Errorf("adding a member moved %d units, want at most %d", n, limit)
					}
					for p, id := range units2 {
						if id != units[p] && id != "m9" {
							t.Errorf("unit %d moved from %s to %s, not to the new member", p, units[p], id)
						}
					}

					// A member leaves: only its units move.
					if members == 1 {
						return
					}
					gone := ids[members/2]
					shrunk := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == gone })
					plan3 := c.balance(owning(shrunk, topics, plan, 1), counts)
					units3 := checkPlan(t, groups, counts, plan3)
					checkEven(t, loads(shrunk, units3))
					for p, id := range units {
						if id != gone && units3[p] != id {
							t.Errorf("unit %d moved from surviving member %s to %s", p, id, units3[p])
						}
					}
				})
			}
		}
	}
}

func TestBalanceDeterministic(t *testing.T) {
	topics := []string{"a", "b", "c"}
	groups := [][]string{{"a", "b"}}
	counts := map[string]int32{"a": 12, "b": 12, "c": 5}
	ids := memberIDs(4)
	c := newCopartition(groups)
	want := c.balance(fresh(ids, topics), counts)
	for range 20 {
		ms := fresh(ids, topics)
		slices.Reverse(ms)
		if got := newCopartition([][]string{{"b", "a"}}).balance(ms, counts); !reflect.DeepEqual(got, want) {
			t.Fatalf("different result for the same input:\n%v\n%v", got, want)
		}
	}
	// Partly owned input, too.
	owned := owning(ids[:2], topics, want, 3)
	owned = append(owned, fresh(ids[2:], topics)...)
	a := c.balance(owned, counts)
	slices.Reverse(owned)
	if b := c.balance(owned, counts); !reflect.DeepEqual(a, b) {
		t.Fatalf("member order changed the result:\n%v\n%v", a, b)
	}
}

func TestBalanceUngroupedTopicsAlone(t *testing.T) {
	topics := []string{"in", "table", "other"}
	groups := [][]string{{"in", "table"}}
	counts := map[string]int32{"in": 6, "table": 6, "other": 6}
	ids := memberIDs(3)
	plan := newCopartition(groups).balance(fresh(ids, topics), counts)
	checkPlan(t, groups, counts, plan)
	// 12 units: 6 of {in,table}, 6 of {other}; each member gets 4, and each
	// set spreads two a member.
	for _, id := range ids {
		if n, m := len(plan[id]["in"]), len(plan[id]["other"]); n != 2 || m != 2 {
			t.Errorf("%s: %d units of in+table and %d of other, want 2 and 2: %v", id, n, m, plan[id])
		}
	}
}

func TestBalanceMergesOverlappingGroups(t *testing.T) {
	c := newCopartition([][]string{{"a", "b"}, {"c", ""}, {"b", "c"}, {"x"}})
	if c.setOf["a"] != c.setOf["b"] || c.setOf["b"] != c.setOf["c"] {
		t.Fatalf("a, b, c not merged: %v", c.setOf)
	}
	if c.setOf["x"] == c.setOf["a"] {
		t.Fatalf("x merged with a: %v", c.setOf)
	}
	counts := map[string]int32{"a": 4, "b": 4, "c": 4, "x": 4}
	plan := c.balance(fresh(memberIDs(2), sortedKeys(counts)), counts)
	checkPlan(t, [][]string{{"a", "b", "c"}}, counts, plan)
}

func TestBalanceDifferentSubscriptions(t *testing.T) {
	groups := [][]string{{"a", "b"}}
	counts := map[string]int32{"a": 4, "b": 4, "c": 4}
	tests := []struct {
		name    string
		members []planMember
	}{
		{"one member lacks b", []planMember{
			{id: "m0", topics: []string{"a", "b", "c"}},
			{id: "m1", topics: []string{"a", "c"}},
			{id: "m2", topics: []string{"a", "b", "c"}},
		}},
		{"nobody has both", []planMember{
			{id: "m0", topics: []string{"a"}},
			{id: "m1", topics: []string{"b", "c"}},
		}},
		{"disjoint", []planMember{
			{id: "m0", topics: []string{"c"}},
			{id: "m1", topics: []string{"a", "b"}},
		}},
		{"owned topic no longer subscribed", []planMember{
			{id: "m0", topics: []string{"c"}, owned: map[string][]int32{"a": {0, 1, 2, 3}, "b": {0, 1}}, generation: 4},
			{id: "m1", topics: []string{"a", "b", "c"}, generation: 4},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := newCopartition(groups).balance(tt.members, counts)
			subs := map[string][]string{}
			for _, m := range tt.members {
				subs[m.id] = m.topics
			}
			for id, tps := range plan {
				for topic := range tps {
					if !slices.Contains(subs[id], topic) {
						t.Errorf("%s assigned %s it does not subscribe to", id, topic)
					}
				}
			}
			if tt.name != "nobody has both" {
				checkPlan(t, groups, counts, plan)
			}
		})
	}
}

func TestBalanceUnequalPartitionCounts(t *testing.T) {
	groups := [][]string{{"a", "b"}}
	counts := map[string]int32{"a": 6, "b": 4}
	plan := newCopartition(groups).balance(fresh(memberIDs(2), []string{"a", "b"}), counts)
	owner := map[string]map[int32]string{}
	for id, tps := range plan {
		for topic, ps := range tps {
			for _, p := range ps {
				if owner[topic] == nil {
					owner[topic] = map[int32]string{}
				}
				owner[topic][p] = id
			}
		}
	}
	for p := range int32(6) {
		if owner["a"][p] == "" {
			t.Errorf("a/%d unassigned", p)
		}
		if p < 4 && owner["b"][p] != owner["a"][p] {
			t.Errorf("b/%d on %s, a/%d on %s", p, owner["b"][p], p, owner["a"][p])
		}
	}
}

func TestBalanceStaleClaimLoses(t *testing.T) {
	// m0 rejoins after missing generations, still claiming partition 0 that
	// m1 has owned since; m1's newer claim wins.
	counts := map[string]int32{"a": 2}
	members := []planMember{
		{id: "m0", topics: []string{"a"}, owned: map[string][]int32{"a": {0}}, generation: 2},
		{id: "m1", topics: []string{"a"}, owned: map[string][]int32{"a": {0, 1}}, generation: 5},
		{id: "m2", topics: []string{"a"}, generation: -1},
	}
	plan := newCopartition(nil).balance(members, counts)
	if !slices.Contains(plan["m1"]["a"], 0) {
		t.Fatalf("stale claim won: %v", plan)
	}
}

func TestBalanceSplitUnitReunites(t *testing.T) {
	// Co-partitioned partitions owned by different members (the grouping
	// was just configured) end up together, with the member owning most.
	counts := map[string]int32{"a": 2, "b": 2, "c": 2}
	topics := []string{"a", "b", "c"}
	members := []planMember{
		{id: "m0", topics: topics, owned: map[string][]int32{"a": {0}, "b": {0}, "c": {1}}, generation: 1},
		{id: "m1", topics: topics, owned: map[string][]int32{"a": {1}, "b": {1}, "c": {0}}, generation: 1},
	}
	plan := newCopartition([][]string{topics}).balance(members, counts)
	want := map[string]map[string][]int32{
		"m0": {"a": {0}, "b": {0}, "c": {0}},
		"m1": {"a": {1}, "b": {1}, "c": {1}},
	}
	if !maps.EqualFunc(plan, want, func(x, y map[string][]int32) bool { return reflect.DeepEqual(x, y) }) {
		t.Fatalf("got %v, want %v", plan, want)
	}
}
