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
}
