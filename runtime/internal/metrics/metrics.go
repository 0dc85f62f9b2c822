// Package metrics defines the runtime's Prometheus metrics. Each runtime has
// its own registry, so several runtimes in one process (as in tests) do not
// collide.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the runtime's collectors.
type Metrics struct {
	Registry *prometheus.Registry

	RecordsIn        *prometheus.CounterVec   // stage
	RecordsOut       *prometheus.CounterVec   // stage, topic
	BatchSeconds     *prometheus.HistogramVec // stage
	GuestErrors      *prometheus.CounterVec   // stage, kind, policy
	InstanceRestarts *prometheus.CounterVec   // stage
	ModuleSwaps      *prometheus.CounterVec   // stage
	// InstancesReleased counts guest instances closed for idleness.
	InstancesReleased *prometheus.CounterVec // stage
	TasksStopped      *prometheus.CounterVec // stage
	Lag               *prometheus.GaugeVec   // stage, topic, partition
	Commits           prometheus.Counter
	CommitSeconds     prometheus.Histogram
	BrokerErrors      prometheus.Counter
	BrokerUp          prometheus.Gauge
	Queries           *prometheus.CounterVec   // route, code
	QuerySeconds      *prometheus.HistogramVec // route, served (local, forwarded)
	RestoredRecords   *prometheus.CounterVec   // store
	RestoringTasks    prometheus.Gauge
	StandbyRecords    *prometheus.CounterVec // store
	StandbyTasks      prometheus.Gauge
	TableRecords      *prometheus.CounterVec // table
	RebuildReplayed   prometheus.Gauge
	RebuildLag        prometheus.Gauge
	// The state directory's disk, measured every second or so.
	StateFreeBytes    prometheus.Gauge
	StateMinFreeBytes prometheus.Gauge
	StateBytes        prometheus.Gauge
	StoreBytes        *prometheus.GaugeVec // store
	StatePaused       prometheus.Gauge
	// Watches (push queries).
	Watches      prometheus.Gauge
	WatchEvents  prometheus.Counter
	WatchDrops   prometheus.Counter
	WatchesEnded *prometheus.CounterVec // reason
}

// New creates and registers the collectors, with Go runtime and process
// collectors beside them.
func New() *Metrics {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &Metrics{Registry: r}
	m.RecordsIn = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrt_records_in_total", Help: "Input records processed by a stage."}, []string{"stage"})
	m.RecordsOut = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrt_records_out_total", Help: "Records produced by a stage, dead letters included, per topic."}, []string{"stage", "topic"})
	m.BatchSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "streamrt_batch_seconds", Help: "Time to run one batch through a stage's guest.", Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 12)}, []string{"stage"})
	m.GuestErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrt_guest_errors_total", Help: "Records a stage's guest failed on, by kind (record, trap, deadline, oversize, batch) and the policy applied."}, []string{"stage", "kind", "policy"})
	m.InstanceRestarts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrt_instance_restarts_total", Help: "Guest instances replaced after a trap or deadline."}, []string{"stage"})
	m.InstancesReleased = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrt_instances_released_total", Help: "Guest instances released after idle_release without a record."}, []string{"stage"})
	m.ModuleSwaps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrt_module_swaps_total", Help: "Module versions swapped in while running."}, []string{"stage"})
	m.TasksStopped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrt_tasks_stopped_total", Help: "Tasks stopped by the fail error policy."}, []string{"stage"})
	m.Lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "streamrt_task_lag_records", Help: "Records between a task's position and its input partition's high watermark, as of the last fetch."}, []string{"stage", "topic", "partition"})
	m.Commits = prometheus.NewCounter(prometheus.CounterOpts{Name: "streamrt_commits_total", Help: "Commit cycles completed."})
	m.CommitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "streamrt_commit_seconds", Help: "Time of a commit cycle: flush outputs, commit state, commit offsets.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 10)})
	m.BrokerErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "streamrt_broker_errors_total", Help: "Fetch and connection errors from the Kafka cluster."})
	m.BrokerUp = prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamrt_broker_up", Help: "1 while every broker the runtime's Kafka clients last tried answers, 0 while one is unreachable (see /readyz for which)."})
	m.Queries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrt_queries_total", Help: "HTTP queries by route and status code."}, []string{"route", "code"})
	m.QuerySeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "streamrt_query_seconds", Help: "Time to answer a query, by route and by where it was served (local, forwarded to the owner, stale)."}, []string{"route", "served"})
	m.RestoredRecords = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrt_restored_records_total", Help: "Changelog records replayed into local stores."}, []string{"store"})
	m.RestoringTasks = prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamrt_restoring_tasks", Help: "Tasks restoring their stores from changelogs."})
	m.StandbyRecords = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrt_standby_records_total", Help: "Changelog records applied to the warm copies of standby tasks."}, []string{"store"})
	m.StandbyTasks = prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamrt_standby_tasks", Help: "Tasks this instance keeps a warm copy of as a standby replica."})
	m.TableRecords = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrt_table_records_total", Help: "Records materialised into tables, global tables included."}, []string{"table"})
	m.RebuildReplayed = prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamrt_rebuild_replayed_records", Help: "Input records the generation being rebuilt has committed, over every partition (server mode)."})
	m.RebuildLag = prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamrt_rebuild_lag_records", Help: "Records the generation being rebuilt is behind the one serving (server mode)."})
	m.StateFreeBytes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamrt_state_free_bytes", Help: "Free bytes on the filesystem of the state directory."})
	m.StateMinFreeBytes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamrt_state_min_free_bytes", Help: "The free-space watermark of the state directory (state_min_free): below it, processing pauses."})
	m.StateBytes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamrt_state_bytes", Help: "Bytes of the files under the state directory."})
	m.StoreBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "streamrt_store_bytes", Help: "Estimated bytes of a store's flushed tables, over its partitions on this instance."}, []string{"store"})
	m.StatePaused = prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamrt_state_disk_paused", Help: "1 while processing is paused because the state directory's free space is below state_min_free."})
	m.Watches = prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamrt_watches", Help: "Watches (push queries) open on this instance, relayed ones included."})
	m.WatchEvents = prometheus.NewCounter(prometheus.CounterOpts{Name: "streamrt_watch_events_total", Help: "Store changes sent to watching clients."})
	m.WatchDrops = prometheus.NewCounter(prometheus.CounterOpts{Name: "streamrt_watch_coalesced_total", Help: "Store changes a slow watching client never saw: replaced by a later change of the same key before it read them."})
	m.WatchesEnded = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamrt_watches_ended_total", Help: "Watches this instance ended, by reason: slow (the client read too slowly), moved (the partition moved away), limit (refused: too many open)."}, []string{"reason"})
	for _, c := range []prometheus.Collector{m.Watches, m.WatchEvents, m.WatchDrops, m.WatchesEnded, m.StateFreeBytes, m.StateMinFreeBytes, m.StateBytes, m.StoreBytes, m.StatePaused, m.RebuildReplayed, m.RebuildLag, m.TableRecords, m.RestoredRecords, m.RestoringTasks, m.StandbyRecords, m.StandbyTasks, m.RecordsIn, m.RecordsOut, m.BatchSeconds, m.GuestErrors, m.InstanceRestarts, m.InstancesReleased, m.ModuleSwaps, m.TasksStopped, m.Lag, m.Commits, m.CommitSeconds, m.BrokerErrors, m.BrokerUp, m.Queries, m.QuerySeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}
