package engine

import (
	"context"
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
	name string
	cfg  config.Stage
	// failures logs the stage's failed records by interval.
	failures failureLog
	inputs   []string                // the topics its guest processes
	stores   []config.StoreTopology  // its stores, with their changelogs
	tables   []*config.TableTopology // the tables it reads, in cfg.Tables order
	outputs  []config.OutputTopology // by name
	module   atomic.Pointer[wasm.Module]
	canary   atomic.Pointer[canary] // a version running on the first partitions only
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
// The engine owns m from then on, and closes the versions it replaces once
// no task runs them (releaseModules); on error, the caller keeps m.
func (e *Engine) Swap(stageName string, m *wasm.Module) error {
	s := e.stage(stageName)
	if s == nil {
		return fmt.Errorf("no stage %q", stageName)
	}
	e.retire(s.module.Swap(m))
	e.endCanary(s)
	e.metrics.ModuleSwaps.WithLabelValues(s.name).Inc()
	return nil
}

// Canary makes stage run m on its first n partitions from their tasks'
// next cycle on, and its module elsewhere; n 0 ends the canary, leaving
// every partition on the stage's module. The engine owns m, as in Swap.
func (e *Engine) Canary(stageName string, m *wasm.Module, n int32) error {
	s := e.stage(stageName)
	if s == nil {
		return fmt.Errorf("no stage %q", stageName)
	}
	if n <= 0 || m == nil {
		e.endCanary(s)
		e.retire(m)
		return nil
	}
	if old := s.canary.Swap(&canary{module: m, partitions: n}); old != nil {
		e.retire(old.module)
	}
	e.metrics.ModuleSwaps.WithLabelValues(s.name).Inc()
	return nil
}

func (e *Engine) endCanary(s *stage) {
	if c := s.canary.Swap(nil); c != nil {
		e.retire(c.module)
	}
}

// canary is a module version that runs on a stage's first partitions only.
type canary struct {
	module     *wasm.Module
	partitions int32
}

// retire hands m, a version that no stage or canary runs any more, to
// releaseModules, which closes it once no task runs it either.
func (e *Engine) retire(m *wasm.Module) {
	if m == nil {
		return
	}
	e.retiredMu.Lock()
	defer e.retiredMu.Unlock()
	e.retired = append(e.retired, m)
}

// releaseModules closes the retired versions that no task can run any
// more, and first the guest instances of versions their tasks are done
// with: a task with a cycle pending runs the version the cycle started on
// until it commits or replays, and one between cycles will run what its
// stage runs now. Callers hold e.mu, so no task is processing.
//
// The engine looks over its tasks here rather than counting references:
// a task takes a version only under e.mu, at the start of a cycle, so one
// look under e.mu sees every holder, and the hot path counts nothing.
func (e *Engine) releaseModules(ctx context.Context) {
	e.retiredMu.Lock()
	retired := e.retired
	e.retired = nil
	e.retiredMu.Unlock()
	if len(retired) == 0 {
		return
	}
	inUse := map[*wasm.Module]bool{}
	for _, s := range e.stages {
		inUse[s.module.Load()] = true
		if c := s.canary.Load(); c != nil {
			inUse[c.module] = true
		}
	}
	for _, t := range e.tasks {
		runs := t.module
		if !t.pending() {
			runs = t.stage.moduleFor(t.partition)
		}
		if t.inst != nil && t.inst.Module() != runs {
			t.closeInstance()
		}
		inUse[runs] = true
	}
	var kept []*wasm.Module
	for _, m := range retired {
		if inUse[m] {
			kept = append(kept, m)
			continue
		}
		m.Close(ctx)
		e.log.Info("module version released", "module", m.Name(), "version", short(m.Version()))
	}
	if len(kept) > 0 {
		e.retiredMu.Lock()
		e.retired = append(e.retired, kept...)
		e.retiredMu.Unlock()
	}
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

// Module returns the module a stage currently runs. The engine owns it:
// its name and version stay readable after a swap, but only the engine
// instantiates or closes it.
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
