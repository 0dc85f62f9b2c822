package config

import (
	"fmt"
	"slices"
	"sort"
)

// ChangelogTopic names the compacted topic that backs a store: every
// committed change to the store's partition p is in partition p of it, so a
// store can be rebuilt anywhere from its changelog.
func ChangelogTopic(app, store string) string { return app + "-" + store + "-changelog" }

// TableStagePrefix starts the name of the stage that materialises a
// co-partitioned table no configured stage reads (one that only serves
// queries). '#' cannot start a configured stage name, so the two never
// collide.
const TableStagePrefix = "#table:"

// Topology is an app's processing graph, worked out once from its
// configuration: which stage consumes which topics, its stores and their
// changelogs, the tables and where they are held, and every topic the app
// reads or writes. The engine, topic creation and the query server all
// read it, so they cannot disagree about the app's shape.
//
// A Topology is immutable; it shares nothing with the Config it came from.
type Topology struct {
	App        string
	Partitions int32
	// Stages are the configured stages in order, then one stage per
	// co-partitioned table that no configured stage reads.
	Stages []*StageTopology
	// Tables are the configured tables in order.
	Tables []*TableTopology

	consumer   map[string]*StageTopology // topic → the stage whose tasks consume it
	changelogs map[string]bool
	internal   map[string]bool // repartition topics
}

// StageTopology is one stage of a Topology.
type StageTopology struct {
	Name string
	// Config is the configured stage; for a table's own stage only Name is
	// set, and it runs no module.
	Config Stage
	// Inputs are the topics the stage's guest processes, in configured
	// order (repartition topics included).
	Inputs []string
	// Stores are the stage's stores with their changelogs.
	Stores []StoreTopology
	// Tables are the tables the stage reads, in Config.Tables order.
	Tables []*TableTopology
	// Outputs are the stage's outputs, sorted by name.
	Outputs []OutputTopology
	// Topics are every topic the stage's tasks consume: its inputs, then the
	// topics of the co-partitioned tables it materialises. Partition p of
	// all of them is one task, so they are assigned together.
	Topics []string
}

// TableOnly reports whether the stage only materialises a table: it has no
// module and no inputs of its own.
func (s *StageTopology) TableOnly() bool { return len(s.Inputs) == 0 }

// StoreTopology is a store and its changelog topic.
type StoreTopology struct{ Name, Changelog string }

// OutputTopology is a named output of a stage and its topic.
type OutputTopology struct {
	Name, Topic string
	// Latest: the output keeps the latest record per key within a commit
	// cycle (Stage.Latest).
	Latest bool
	// Internal: the output is a repartition topic feeding another stage.
	Internal bool
}

// TableTopology is a table: a store materialised from a topic.
type TableTopology struct {
	Name, Topic string
	Global      bool
	// Stage names the stage whose tasks materialise a co-partitioned
	// table; empty for a global table, which every instance holds whole.
	Stage string
}

// QueryStore is a store or table as the query API sees it.
type QueryStore struct {
	Name string
	// Topic is a topic of the stage that holds the store: owning its
	// partition p means owning the store's partition p.
	Topic  string
	Global bool // held whole on every instance, under partition 0
	// Changelog is a store's changelog topic; "" for a table.
	Changelog string
}

// TopicUse says how the app uses one topic.
type TopicUse struct {
	Name       string
	Input      bool           // a stage consumes it: partitioned like the app
	Changelog  bool           // a store's changelog: compacted, partitioned like the app
	Output     bool           // a stage writes it (outputs and dead letters)
	Table      *TableTopology // the topic is this table's source
	DeadLetter bool
}

// Topology works out the configuration's topology. It fails only on a
// configuration that Validate refuses.
func (c *Config) Topology() (*Topology, error) {
	var first error
	t := c.topology(func(key, reason string) {
		if first == nil {
			first = fmt.Errorf("%w: %s: %s", ErrInvalid, key, reason)
		}
	})
	return t, first
}

// topology works out the topology, reporting each conflict with its key.
func (c *Config) topology(report func(key, reason string)) *Topology {
	t := &Topology{App: c.App, Partitions: c.Partitions, consumer: map[string]*StageTopology{}, changelogs: map[string]bool{}, internal: map[string]bool{}}
	tables := map[string]*TableTopology{}
	for _, tc := range c.Tables {
		tt := &TableTopology{Name: tc.Name, Topic: tc.Topic, Global: tc.Global}
		t.Tables = append(t.Tables, tt)
		tables[tc.Name] = tt
	}
	for i := range c.Stages {
		sc := c.Stages[i]
		path := fmt.Sprintf("stages[%d]", i)
		s := &StageTopology{Name: sc.Name, Config: sc, Inputs: slices.Clone(sc.Inputs)}
		s.Config.Inputs = slices.Clone(sc.Inputs)
		for _, store := range sc.Stores {
			topic := ChangelogTopic(c.Internal(), store)
			s.Stores = append(s.Stores, StoreTopology{Name: store, Changelog: topic})
			t.changelogs[topic] = true
		}
		for j, in := range sc.Inputs {
			if other, dup := t.consumer[in]; dup && other != s {
				report(fmt.Sprintf("%s.inputs[%d]", path, j), fmt.Sprintf("topic %q is an input of both stage %q and stage %q; a topic feeds one stage", in, other.Name, s.Name))
				continue
			}
			t.consumer[in] = s
		}
		s.Topics = slices.Clone(s.Inputs)
		for j, name := range sc.Tables {
			tt := tables[name]
			if tt == nil {
				continue // Validate names the undeclared table
			}
			s.Tables = append(s.Tables, tt)
			if tt.Global {
				continue
			}
			if tt.Stage != "" && tt.Stage != s.Name {
				continue // Validate reports the second reader
			}
			if other, dup := t.consumer[tt.Topic]; dup && other != s {
				report(fmt.Sprintf("%s.tables[%d]", path, j), fmt.Sprintf("topic %q of table %q, read by stage %q, is an input of stage %q", tt.Topic, tt.Name, s.Name, other.Name))
				continue
			}
			tt.Stage = s.Name
			t.consumer[tt.Topic] = s
			if !slices.Contains(s.Topics, tt.Topic) {
				s.Topics = append(s.Topics, tt.Topic)
			}
		}
		names := make([]string, 0, len(sc.Outputs))
		for name := range sc.Outputs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			_, internal := sc.Repartition[name]
			s.Outputs = append(s.Outputs, OutputTopology{Name: name, Topic: sc.Outputs[name], Latest: sc.Latest[name], Internal: internal})
			if internal {
				t.internal[sc.Outputs[name]] = true
			}
		}
		t.Stages = append(t.Stages, s)
	}
	// A co-partitioned table that no stage reads (one that only serves
	// queries) gets a stage of its own, with no module, to materialise it.
	for i, tt := range t.Tables {
		if tt.Global || tt.Stage != "" {
			continue
		}
		if other, dup := t.consumer[tt.Topic]; dup {
			report(fmt.Sprintf("tables[%d].topic", i), fmt.Sprintf("topic %q of table %q is an input of stage %q; make the stage read the table, or make the table global", tt.Topic, tt.Name, other.Name))
			continue
		}
		s := &StageTopology{Name: TableStagePrefix + tt.Name, Tables: []*TableTopology{tt}, Topics: []string{tt.Topic}}
		s.Config.Name = s.Name
		tt.Stage = s.Name
		t.consumer[tt.Topic] = s
		t.Stages = append(t.Stages, s)
	}
	return t
}

// Consumer returns the stage whose tasks consume topic, or nil.
func (t *Topology) Consumer(topic string) *StageTopology { return t.consumer[topic] }

// Stage returns the stage named name, or nil.
func (t *Topology) Stage(name string) *StageTopology {
	for _, s := range t.Stages {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Consumed lists, sorted, every topic the app's consumer group consumes:
// the stages' inputs and the co-partitioned tables' topics.
func (t *Topology) Consumed() []string {
	out := make([]string, 0, len(t.consumer))
	for topic := range t.consumer {
		out = append(out, topic)
	}
	sort.Strings(out)
	return out
}

// IsInternal reports whether topic is one of the app's repartition
// topics, which only its own stages read.
func (t *Topology) IsInternal(topic string) bool { return t.internal[topic] }

// IsChangelog reports whether topic is the changelog of one of the app's
// stores.
func (t *Topology) IsChangelog(topic string) bool { return t.changelogs[topic] }

// Copartitioned lists each stage's Topics: the sets of topics whose
// partition p goes to one instance.
func (t *Topology) Copartitioned() [][]string {
	out := make([][]string, len(t.Stages))
	for i, s := range t.Stages {
		out[i] = slices.Clone(s.Topics)
	}
	return out
}

// QueryStores lists every store and table the query API serves, sorted by
// name.
func (t *Topology) QueryStores() []QueryStore {
	var out []QueryStore
	for _, s := range t.Stages {
		for _, st := range s.Stores {
			out = append(out, QueryStore{Name: st.Name, Topic: s.Topics[0], Changelog: st.Changelog})
		}
	}
	for _, tt := range t.Tables {
		out = append(out, QueryStore{Name: tt.Name, Topic: tt.Topic, Global: tt.Global})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topics lists every topic the app reads or writes, sorted by name, with
// how it uses each.
func (t *Topology) Topics() []TopicUse {
	uses := map[string]*TopicUse{}
	use := func(name string) *TopicUse {
		u := uses[name]
		if u == nil {
			u = &TopicUse{Name: name}
			uses[name] = u
		}
		return u
	}
	for _, s := range t.Stages {
		for _, in := range s.Inputs {
			use(in).Input = true
		}
		for _, st := range s.Stores {
			use(st.Changelog).Changelog = true
		}
		for _, o := range s.Outputs {
			use(o.Topic).Output = true
		}
		if s.Config.ErrorPolicy == PolicyDeadLetter {
			u := use(s.Config.DeadLetterTopic)
			u.Output, u.DeadLetter = true, true
		}
	}
	for _, tt := range t.Tables {
		use(tt.Topic).Table = tt
	}
	out := make([]TopicUse, 0, len(uses))
	for _, u := range uses {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
