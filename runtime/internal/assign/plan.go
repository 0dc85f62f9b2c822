package assign

import (
	"cmp"
	"slices"
	"strings"
)

// copartition is Config.Groups normalised: sets that share a topic are merged,
// because "a with b" and "b with c" means a, b and c are all co-partitioned.
type copartition struct {
	setOf map[string]int // topic → set id; topics in no set are absent
}

func newCopartition(groups [][]string) copartition {
	parent := map[string]string{}
	var find func(string) string
	find = func(t string) string {
		p, ok := parent[t]
		if !ok {
			parent[t] = t
			return t
		}
		if p == t {
			return t
		}
		root := find(p)
		parent[t] = root
		return root
	}
	for _, g := range groups {
		var first string
		for _, t := range g {
			if t == "" {
				continue
			}
			if first == "" {
				first = find(t)
				continue
			}
			if r := find(t); r != first {
				// Keep the smaller name as the root so the result does not
				// depend on the order of Groups.
				if r < first {
					parent[first], first = r, r
				} else {
					parent[r] = first
				}
			}
		}
	}
	c := copartition{setOf: map[string]int{}}
	ids := map[string]int{}
	for _, t := range sortedKeys(parent) {
		r := find(t)
		id, ok := ids[r]
		if !ok {
			id = len(ids)
			ids[r] = id
		}
		c.setOf[t] = id
	}
	return c
}

// planMember is what the leader knows of one member when it balances.
type planMember struct {
	id         string
	instanceID *string
	topics     []string           // subscription
	owned      map[string][]int32 // what the member says it owns now
	generation int32              // the generation its owned partitions are from
	standby    map[string][]int32 // the standby copies it advertises
}

// unit is a task unit: partition p of every topic of one co-partition set
// that has a partition p. It moves between members as a whole.
type unit struct {
	set      int
	p        int32
	topics   []string
	eligible []int  // indexes of the members subscribed to all of topics
	canTake  []bool // by member index
}

// balance assigns every partition of counts (topic → partition count) to
// members and returns member ID → topic → sorted partitions, with an entry,
// possibly empty, for every member.
//
// It is a pure, deterministic function of its inputs, except that members are
// ordered first (static instance ID, then member ID), so the order of in does
// not matter. See the package documentation for the rules.
func (c copartition) balance(in []planMember, counts map[string]int32) map[string]map[string][]int32 {
	members := slices.Clone(in)
	slices.SortStableFunc(members, compareMembers)
	out := make(map[string]map[string][]int32, len(members))
	for _, m := range members {
		out[m.id] = map[string][]int32{}
	}
	if len(members) == 0 {
		return out
	}

	units, nsets := c.units(members, counts)
	owners := currentOwners(members, counts, units)

	b := newBook(len(members), nsets, units)
	var unowned []int
	for u, o := range owners {
		if o >= 0 {
			b.give(u, o, false)
		} else {
			unowned = append(unowned, u)
		}
	}
	// Units with the fewest candidates go first, so that heterogeneous
	// subscriptions do not leave a unit with only full members to go to.
	slices.SortStableFunc(unowned, func(a, b int) int { return cmp.Compare(len(units[a].eligible), len(units[b].eligible)) })
	for _, u := range unowned {
		if len(units[u].eligible) == 0 {
			continue // no member can consume it; cannot happen for subscribed topics
		}
		// Among the least loaded, a member with a standby copy of the unit
		// takes it: it has only the changelog's tail to replay.
		best := -1
		for _, m := range units[u].eligible {
			switch {
			case best < 0:
				best = m
			case b.load[m] != b.load[best]:
				if b.load[m] < b.load[best] {
					best = m
				}
			case warm(members[m], units[u]) != warm(members[best], units[u]):
				if warm(members[m], units[u]) {
					best = m
				}
			case b.lighter(m, best, units[u].set):
				best = m
			}
		}
		b.give(u, best, true)
	}
	b.even()

	for u := range units {
		m := b.holder[u]
		if m < 0 {
			continue
		}
		for _, t := range units[u].topics {
			out[members[m].id][t] = append(out[members[m].id][t], units[u].p)
		}
	}
	return out
}

// warm reports whether m advertises a standby copy of any of u's partitions.
func warm(m planMember, u unit) bool {
	for _, t := range u.topics {
		if slices.Contains(m.standby[t], u.p) {
			return true
		}
	}
	return false
}

func compareMembers(a, b planMember) int {
	switch {
	case a.instanceID != nil && b.instanceID == nil:
		return -1
	case a.instanceID == nil && b.instanceID != nil:
		return 1
	case a.instanceID != nil:
		if c := cmp.Compare(*a.instanceID, *b.instanceID); c != 0 {
			return c
		}
	}
	return cmp.Compare(a.id, b.id)
}

// units lists the task units of the topics in counts, ordered by set (sets
// ordered by their first topic's name) and then partition, and returns them
// with the number of sets.
func (c copartition) units(members []planMember, counts map[string]int32) ([]unit, int) {
	var sets [][]string
	index := map[int]int{} // copartition set id → index in sets
	for _, t := range sortedKeys(counts) {
		if counts[t] <= 0 {
			continue
		}
		id, grouped := c.setOf[t]
		if !grouped {
			sets = append(sets, []string{t})
			continue
		}
		i, ok := index[id]
		if !ok {
			i = len(sets)
			index[id] = i
			sets = append(sets, nil)
		}
		sets[i] = append(sets[i], t)
	}

	subscribed := make([]map[string]bool, len(members))
	for i, m := range members {
		subscribed[i] = make(map[string]bool, len(m.topics))
		for _, t := range m.topics {
			subscribed[i][t] = true
		}
	}
	type candidates struct {
		list []int
		can  []bool
	}
	cache := map[string]candidates{}
	eligible := func(topics []string) candidates {
		key := strings.Join(topics, "\x00")
		if c, ok := cache[key]; ok {
			return c
		}
		c := candidates{can: make([]bool, len(members))}
		for i := range members {
			all := true
			for _, t := range topics {
				all = all && subscribed[i][t]
			}
			if all {
				c.list = append(c.list, i)
				c.can[i] = true
			}
		}
		cache[key] = c
		return c
	}

	var units []unit
	for s, topics := range sets {
		var n int32
		for _, t := range topics {
			n = max(n, counts[t])
		}
		for p := range n {
			var ts []string
			for _, t := range topics {
				if p < counts[t] {
					ts = append(ts, t)
				}
			}
			if c := eligible(ts); len(c.list) > 0 || len(ts) == 1 {
				units = append(units, unit{set: s, p: p, topics: ts, eligible: c.list, canTake: c.can})
				continue
			}
			// No member consumes every topic of the set: co-partitioning
			// cannot hold, so each topic's partition goes its own way to a
			// member that consumes it.
			for _, t := range ts {
				c := eligible([]string{t})
				units = append(units, unit{set: s, p: p, topics: []string{t}, eligible: c.list, canTake: c.can})
			}
		}
	}
	return units, len(sets)
}

// currentOwners returns, for each unit, the index of the eligible member that
// owns most of its partitions now, or -1. A partition claimed by several
// members counts only for the claims from the highest generation (KIP-792: an
// older claim is stale). Ties go to the higher generation, then to the first
// member in order.
func currentOwners(members []planMember, counts map[string]int32, units []unit) []int {
	type claim struct {
		gen int32
		who []int
	}
	claims := map[topicPartition]*claim{}
	for i, m := range members {
		for t, ps := range m.owned {
			n := counts[t]
			for _, p := range ps {
				if p < 0 || p >= n {
					continue
				}
				tp := topicPartition{t, p}
				c := claims[tp]
				switch {
				case c == nil:
					claims[tp] = &claim{gen: m.generation, who: []int{i}}
				case m.generation > c.gen:
					c.gen, c.who = m.generation, []int{i}
				case m.generation == c.gen && c.who[len(c.who)-1] != i:
					c.who = append(c.who, i)
				}
			}
		}
	}

	owners := make([]int, len(units))
	tally := make([]int, len(members))
	for u := range units {
		owners[u] = -1
		var seen []int
		for _, t := range units[u].topics {
			c := claims[topicPartition{t, units[u].p}]
			if c == nil {
				continue
			}
			for _, m := range c.who {
				if !units[u].canTake[m] {
					continue
				}
				if tally[m] == 0 {
					seen = append(seen, m)
				}
				tally[m]++
			}
		}
		best := -1
		for _, m := range seen {
			switch {
			case best < 0,
				tally[m] > tally[best],
				tally[m] == tally[best] && members[m].generation > members[best].generation,
				tally[m] == tally[best] && members[m].generation == members[best].generation && m < best:
				best = m
			}
		}
		for _, m := range seen {
			tally[m] = 0
		}
		owners[u] = best
	}
	return owners
}

// book tracks which member holds which unit while balancing.
type book struct {
	units   []unit
	holder  []int   // by unit; -1 while unassigned
	moved   []bool  // by unit: the holder does not own it now
	held    [][]int // by member: units held
	load    []int   // by member: len(held)
	setLoad [][]int // by member, by set: units of the set held
}

func newBook(nmembers, nsets int, units []unit) *book {
	b := &book{
		units:   units,
		holder:  make([]int, len(units)),
		moved:   make([]bool, len(units)),
		held:    make([][]int, nmembers),
		load:    make([]int, nmembers),
		setLoad: make([][]int, nmembers),
	}
	for i := range b.holder {
		b.holder[i] = -1
	}
	for m := range b.setLoad {
		b.setLoad[m] = make([]int, nsets)
	}
	return b
}

func (b *book) give(u, m int, moved bool) {
	b.holder[u] = m
	b.moved[u] = moved
	b.held[m] = append(b.held[m], u)
	b.load[m]++
	b.setLoad[m][b.units[u].set]++
}

func (b *book) take(u int) {
	m := b.holder[u]
	b.held[m] = slices.DeleteFunc(b.held[m], func(v int) bool { return v == u })
	b.load[m]--
	b.setLoad[m][b.units[u].set]--
	b.holder[u] = -1
}

// lighter reports whether member m should receive a unit of set before
// member than: fewer units, then fewer of that set (to spread each stage's
// tasks), then the first in order.
func (b *book) lighter(m, than, set int) bool {
	if b.load[m] != b.load[than] {
		return b.load[m] < b.load[than]
	}
	if b.setLoad[m][set] != b.setLoad[than][set] {
		return b.setLoad[m][set] < b.setLoad[than][set]
	}
	return m < than
}

// even moves units from the most to the least loaded members, one at a time,
// while some member holds at least two more units than another that could
// take one of them. With equal subscriptions this ends with loads differing
// by at most one, and only the most loaded members give units up. Every move
// lowers the sum of squared loads, so the loop ends.
func (b *book) even() {
	n := len(b.load)
	desc := make([]int, n)
	asc := make([]int, n)
	for {
		for i := range n {
			desc[i], asc[i] = i, i
		}
		slices.SortStableFunc(desc, func(x, y int) int { return cmp.Compare(b.load[y], b.load[x]) })
		slices.SortStableFunc(asc, func(x, y int) int { return cmp.Compare(b.load[x], b.load[y]) })
		u, to := b.nextMove(desc, asc)
		if u < 0 {
			return
		}
		b.take(u)
		b.give(u, to, true)
	}
}

func (b *book) nextMove(desc, asc []int) (u, to int) {
	for _, from := range desc {
		if b.load[from]-b.load[asc[0]] < 2 {
			break
		}
		for _, to := range asc {
			if b.load[from]-b.load[to] < 2 {
				break
			}
			if u := b.pick(from, to); u >= 0 {
				return u, to
			}
		}
	}
	return -1, -1
}

// pick chooses the unit from gives to: one it does not own yet if any (it
// was placed there by this balance, so moving it costs nothing), then one of
// the set it is most over to on, then the last in order.
func (b *book) pick(from, to int) int {
	best := -1
	score := func(u int) (bool, int) {
		s := b.units[u].set
		return b.moved[u], b.setLoad[from][s] - b.setLoad[to][s]
	}
	for _, u := range b.held[from] {
		if !b.units[u].canTake[to] {
			continue
		}
		if best < 0 {
			best = u
			continue
		}
		mu, su := score(u)
		mb, sb := score(best)
		switch {
		case mu != mb:
			if mu {
				best = u
			}
		case su != sb:
			if su > sb {
				best = u
			}
		case u > best:
			best = u
		}
	}
	return best
}
