package engine

import (
	"testing"
	"time"
)

// A restore's progress line says how long the rest should take at the pace
// so far.
func TestETA(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{0, 1000, time.Second, "unknown"},
		{250, 1000, 10 * time.Second, "30s"},
		{500, 1000, 3 * time.Second, "3s"},
		{999, 1000, time.Minute, "0s"},
		{1000, 1000, time.Minute, "0s"},
		{1200, 1000, time.Minute, "0s"}, // markers past the end listed at assignment
		{1, 3600, time.Second, "59m59s"},
	} {
		if got := eta(c.done, c.total, c.elapsed); got != c.want {
			t.Errorf("eta(%d of %d in %s) = %s, want %s", c.done, c.total, c.elapsed, got, c.want)
		}
	}
}
