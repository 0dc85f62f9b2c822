package probe

import "time"

// Task is one task this instance runs, as /v1/status shows it.
type Task struct {
	Stage     string `json:"stage"`
	Partition int32  `json:"partition"`
	// Topics are the topics the task consumes: partition Partition of each.
	Topics []string `json:"topics"`
	// State is running, restoring (its stores, from their changelogs),
	// catching_up (its tables), stopped (by the fail error policy), or
	// standby: a copy of another instance's task, with no lag, rate or
	// module.
	State string `json:"state"`
	// Reason says why a stopped task stopped.
	Reason string `json:"reason,omitempty"`
	// RestorePercent is how much of the store being restored is done, and
	// RestoreETASeconds how long the rest should take at the pace so far
	// (-1 before there is a pace); both only while restoring.
	RestorePercent    float64 `json:"restore_percent,omitempty"`
	RestoreETASeconds float64 `json:"restore_eta_seconds,omitempty"`
	// Lag is how many records of its topics the task has not processed,
	// as of the engine's last round.
	Lag int64 `json:"lag"`
	// RecordsPerSecond is the task's processing rate over the last few
	// seconds, and Processed the records it processed since it started
	// here.
	RecordsPerSecond float64 `json:"records_per_second"`
	Processed        int64   `json:"processed"`
	// ModuleVersion is the sha256 of the module the task's partition runs.
	ModuleVersion string `json:"module_version,omitempty"`
}

// Task states.
const (
	TaskRunning    = "running"
	TaskRestoring  = "restoring"
	TaskCatchingUp = "catching_up"
	TaskStopped    = "stopped"
	TaskStandby    = "standby" // a copy of another instance's task's stores
)

// DeadLetter is a record a task sent to its stage's dead-letter topic.
type DeadLetter struct {
	Time  time.Time `json:"time"`
	Stage string    `json:"stage"`
	// Topic is the dead-letter topic; Source* locate the record that
	// failed.
	Topic           string `json:"topic"`
	SourceTopic     string `json:"source_topic"`
	SourcePartition int32  `json:"source_partition"`
	SourceOffset    int64  `json:"source_offset"`
	// Key is the record's key as text when it is UTF-8, else KeyBase64
	// has it; neither for a record without a key. A key over 1 KiB is cut
	// there, and KeyTruncated set.
	Key          *string `json:"key,omitempty"`
	KeyBase64    *string `json:"key_base64,omitempty"`
	KeyTruncated bool    `json:"key_truncated,omitempty"`
	// Headers are the streamrt.* headers the dead letter carries:
	// streamrt.error, streamrt.error.kind, streamrt.stage, ...; each value
	// cut at 1 KiB.
	Headers map[string]string `json:"headers"`
}

// Module is the module version a stage runs.
type Module struct {
	// Version is the sha256 of the module's bytes, in hex.
	Version string `json:"version"`
	// CanaryVersion runs on partitions 0 to CanaryPartitions-1 instead,
	// during a canary.
	CanaryVersion    string `json:"canary_version,omitempty"`
	CanaryPartitions int32  `json:"canary_partitions,omitempty"`
}
