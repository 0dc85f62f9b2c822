// Package probe holds what an instance says of itself: its readiness, the
// answer of /readyz, and its tasks and dead letters, which /v1/status
// shows. The engine publishes them and the HTTP server reads them, so
// neither depends on the other.
package probe

// Readiness is an instance's readiness, as /readyz shows it.
type Readiness struct {
	Ready bool `json:"ready"`
	// Reasons say why the instance is not ready; none when it is.
	Reasons []string `json:"reasons,omitempty"`
	// Stopped lists the tasks the fail error policy stopped, with why.
	Stopped []string `json:"stopped_tasks,omitempty"`
	// Restoring lists the tasks that cannot answer yet: restoring their
	// stores or catching up their tables.
	Restoring []string `json:"restoring_tasks,omitempty"`
	// Lag is how many records of the inputs this instance's tasks have not
	// processed yet: ready means assigned and answering, caught up means
	// also a lag of (nearly) none.
	Lag int64 `json:"lag"`
	// Disk is the state directory's disk as last measured; nil before the
	// first measure.
	Disk *Disk `json:"disk,omitempty"`
}

// Disk is what an instance's state takes of its disk, and what is left.
type Disk struct {
	Dir        string `json:"dir"`         // the state directory
	FreeBytes  uint64 `json:"free_bytes"`  // free on its filesystem
	TotalBytes uint64 `json:"total_bytes"` // the filesystem's size
	// MinFreeBytes is the watermark: below it, processing pauses.
	MinFreeBytes uint64 `json:"min_free_bytes"`
	// StateBytes is the size of the files under the state directory.
	StateBytes int64 `json:"state_bytes"`
	// StoreBytes estimates, per store, the bytes its flushed tables hold.
	StoreBytes map[string]uint64 `json:"store_bytes,omitempty"`
	// Paused says why processing waits for space; "" while it does not.
	Paused string `json:"paused,omitempty"`
}
