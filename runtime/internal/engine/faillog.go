package engine

import (
	"log/slog"
	"sync"
	"time"
)

// failureLogEvery is the interval over which a stage's failed records of
// one kind are logged once: a stream of bad records writes the first of
// each interval in full and then a count, while the metrics and the
// dead-letter topic keep every one.
const failureLogEvery = 10 * time.Second

// failureLog logs a stage's failed records by interval. It is safe for
// the stage's tasks, which run in parallel.
type failureLog struct {
	mu      sync.Mutex
	windows map[failureKey]*failureWindow
	// every is the interval; 0 is failureLogEvery, and below 0 logs every
	// failure in full (for the conformance transcript, which checks each).
	every time.Duration
}

func (f *failureLog) interval() time.Duration {
	if f.every == 0 {
		return failureLogEvery
	}
	return f.every
}

type failureKey struct{ kind, policy string }

type failureWindow struct {
	start time.Time
	more  int // failures after the first, not logged one by one
}

// log logs a failure in full when it is the first of its kind in the
// interval, and otherwise counts it for the interval's summary.
func (f *failureLog) log(log *slog.Logger, kind, policy, msg string, attrs ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := failureKey{kind, policy}
	if w := f.windows[key]; w != nil && time.Since(w.start) < f.interval() {
		w.more++
		return
	}
	if f.windows == nil {
		f.windows = map[failureKey]*failureWindow{}
	}
	f.windows[key] = &failureWindow{start: time.Now()}
	if f.interval() > 0 {
		attrs = append(attrs, "first_of_interval", f.interval().String())
	}
	log.Warn(msg, attrs...)
}

// flush logs, for each interval that has ended, how many more records
// failed in it than the one it logged.
func (f *failureLog) flush(log *slog.Logger, stage string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for key, w := range f.windows {
		if time.Since(w.start) < f.interval() {
			continue
		}
		if w.more > 0 {
			log.Warn("more records failed", "stage", stage, "kind", key.kind, "policy", key.policy, "count", w.more,
				"interval", f.interval().String(), "see", "streamrt_guest_errors_total and the dead-letter topic")
		}
		delete(f.windows, key)
	}
}
