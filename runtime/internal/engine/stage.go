package engine

import (
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
)

// Stage is what the engine needs to run one configured stage.
type Stage struct {
	Config config.Stage
	Module *wasm.Module
}

// stage is a stage of the app's topology as the engine runs it. A table's
// own stage (one that only materialises a co-partitioned table) has no
// module, no inputs and no stores.
type stage struct {
	name    string
	cfg     config.Stage
	inputs  []string                // the topics its guest processes
	stores  []config.StoreTopology  // its stores, with their changelogs
	tables  []*config.TableTopology // the tables it reads, in cfg.Tables order
	outputs []config.OutputTopology // by name
	module  atomic.Pointer[wasm.Module]
	canary  atomic.Pointer[canary] // a version running on the first partitions only
	// topicIndex numbers the inputs as the batch encoding's topic table
	// does.
	topicIndex map[string]uint16
	// maxBatchBytes caps a batch at a quarter of guest memory, leaving the
	// guest room to decode it and work.
	maxBatchBytes int

	// The stage's metrics, resolved once: a lookup by label values costs
	// a hash per call, and these are counted on the hot path.
	recordsIn    prometheus.Counter
	batchSeconds prometheus.Observer
	recordsOut   map[string]prometheus.Counter // by topic: outputs, dead letters, changelogs
	tableRecords []prometheus.Counter          // by index in tables
	metrics      *metrics.Metrics
}

func newStage(st *config.StageTopology, m *wasm.Module, ms *metrics.Metrics) *stage {
	s := &stage{
		name: st.Name, cfg: st.Config, inputs: st.Inputs, stores: st.Stores, tables: st.Tables, outputs: st.Outputs,
		topicIndex:    map[string]uint16{},
		maxBatchBytes: int(st.Config.MemoryLimit / 4),
		recordsIn:     ms.RecordsIn.WithLabelValues(st.Name),
		batchSeconds:  ms.BatchSeconds.WithLabelValues(st.Name),
		recordsOut:    map[string]prometheus.Counter{},
		metrics:       ms,
	}
	for i, in := range st.Inputs {
		s.topicIndex[in] = uint16(i)
	}
	var topics []string
	for _, o := range st.Outputs {
		topics = append(topics, o.Topic)
	}
	for _, store := range st.Stores {
		topics = append(topics, store.Changelog)
	}
	if st.Config.DeadLetterTopic != "" {
		topics = append(topics, st.Config.DeadLetterTopic)
	}
	for _, topic := range topics {
		s.recordsOut[topic] = ms.RecordsOut.WithLabelValues(st.Name, topic)
	}
	for _, tt := range st.Tables {
		s.tableRecords = append(s.tableRecords, ms.TableRecords.WithLabelValues(tt.Name))
	}
	if m != nil {
		s.module.Store(m)
	}
	return s
}

// counted returns the counter of the records the stage writes to topic.
// Every topic a stage writes is resolved in advance; the lookup by labels
// only guards against one that was not.
func (s *stage) counted(topic string) prometheus.Counter {
	if c, ok := s.recordsOut[topic]; ok {
		return c
	}
	return s.metrics.RecordsOut.WithLabelValues(s.name, topic)
}

// Swap makes stage run module on every partition from its tasks' next
// cycle on, ending any canary. A cycle runs on the version it started with
// and commits or replays whole, so no record is lost or processed twice.
func (e *Engine) Swap(stageName string, m *wasm.Module) error {
	s := e.stage(stageName)
	if s == nil {
		return fmt.Errorf("no stage %q", stageName)
	}
	s.module.Store(m)
	s.canary.Store(nil)
	e.metrics.ModuleSwaps.WithLabelValues(s.name).Inc()
	return nil
}

// Canary makes stage run m on its first n partitions from their tasks'
// next cycle on, and its module elsewhere; n 0 ends the canary, leaving
// every partition on the stage's module.
func (e *Engine) Canary(stageName string, m *wasm.Module, n int32) error {
	s := e.stage(stageName)
	if s == nil {
		return fmt.Errorf("no stage %q", stageName)
	}
	if n <= 0 || m == nil {
		s.canary.Store(nil)
		return nil
	}
	s.canary.Store(&canary{module: m, partitions: n})
	e.metrics.ModuleSwaps.WithLabelValues(s.name).Inc()
	return nil
}

// canary is a module version that runs on a stage's first partitions only.
type canary struct {
	module     *wasm.Module
	partitions int32
}

// moduleFor returns the module partition p of s runs.
func (s *stage) moduleFor(p int32) *wasm.Module {
	if c := s.canary.Load(); c != nil && p < c.partitions {
		return c.module
	}
	return s.module.Load()
}

func (e *Engine) stage(name string) *stage {
	for _, s := range e.stages {
		if s.name == name {
			return s
		}
	}
	return nil
}

// Module returns the module a stage currently runs.
func (e *Engine) Module(stageName string) *wasm.Module {
	for _, s := range e.stages {
		if s.name == stageName {
			return s.module.Load()
		}
	}
	return nil
}

// topicRank orders a stage's topics for ties: inputs in configured order,
// then its tables.
func (s *stage) topicRank(topic string) int {
	if i, ok := s.topicIndex[topic]; ok {
		return int(i)
	}
	return len(s.topicIndex) + slices.IndexFunc(s.tables, func(t *config.TableTopology) bool { return t.Topic == topic })
}

// partitionedTable returns the co-partitioned table the stage materialises
// from topic, with its index among the stage's tables, or nil.
func (s *stage) partitionedTable(topic string) (int, *config.TableTopology) {
	for i, t := range s.tables {
		if !t.Global && t.Topic == topic {
			return i, t
		}
	}
	return -1, nil
}
