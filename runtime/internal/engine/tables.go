package engine

import (
	"cmp"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
)

// tableSpec is a table: a store the host materialises from its topic.
//
// A co-partitioned table is materialised inside the task of the one stage
// that reads it (or of a stage of its own when no stage reads it), so that
// its updates and the stage's input records are applied in one order (see
// mergeByTimestamp). A global table is materialised whole on every instance
// by the engine's global table reader, under partition 0 of its keyspace.
type tableSpec struct {
	name, topic string
	global      bool
}

// globalGroup is the checkpoint group of global tables' source positions;
// '#' cannot start an app name, so it cannot collide with one.
const globalGroup = "#global"

// tableStagePrefix names the stage that materialises a co-partitioned table
// no stage reads; '#' cannot start a configured stage name.
const tableStagePrefix = "#table:"

// mergeByTimestamp orders a task's fetched records, which arrive grouped by
// partition, into one sequence: each partition's records stay in offset
// order, and across partitions the record with the lowest timestamp goes
// first (ties: the order of topics in rank). This is the task's processing
// order "as far as the fetched data allows": a record fetched in a later
// poll is processed later even if its timestamp is lower.
func mergeByTimestamp(recs []*kgo.Record, rank func(topic string) int) []*kgo.Record {
	var runs [][]*kgo.Record
	for i := 0; i < len(recs); {
		j := i + 1
		for j < len(recs) && recs[j].Topic == recs[i].Topic {
			j++
		}
		runs = append(runs, recs[i:j])
		i = j
	}
	if len(runs) < 2 {
		return recs
	}
	out := make([]*kgo.Record, 0, len(recs))
	for {
		best := -1
		for i, r := range runs {
			if len(r) == 0 {
				continue
			}
			if best < 0 {
				best = i
				continue
			}
			a, b := r[0], runs[best][0]
			if c := a.Timestamp.Compare(b.Timestamp); c < 0 || (c == 0 && cmp.Less(rank(a.Topic), rank(b.Topic))) {
				best = i
			}
		}
		if best < 0 {
			return out
		}
		out = append(out, runs[best][0])
		runs[best] = runs[best][1:]
	}
}

// topicRank orders a stage's topics for ties: inputs in configured order,
// then its tables.
func (s *stage) topicRank(topic string) int {
	if i, ok := s.topicIndex[topic]; ok {
		return int(i)
	}
	return len(s.topicIndex) + slices.IndexFunc(s.tables, func(t *tableSpec) bool { return t.topic == topic })
}

// partitionedTable returns the co-partitioned table the stage materialises
// from topic, or nil.
func (s *stage) partitionedTable(topic string) (int, *tableSpec) {
	for i, t := range s.tables {
		if !t.global && t.topic == topic {
			return i, t
		}
	}
	return -1, nil
}
