package engine

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/logtest"
)

// A stream of failed records logs the first of each kind per interval in
// full, then one count for the rest; failures of another kind are logged
// on their own; a new interval logs its first failure in full again.
func TestFailedRecordsAreLoggedByInterval(t *testing.T) {
	logs := &logtest.Capture{}
	log := slog.New(logs)
	f := failureLog{every: 200 * time.Millisecond}
	var wg sync.WaitGroup
	for range 4 { // the stage's tasks fail in parallel
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				f.log(log, "record", "skip", "record failed; skipped", "offset", i)
			}
		}()
	}
	wg.Wait()
	f.log(log, "trap", "skip", "record failed; skipped", "offset", 7)
	f.flush(log, "main") // the interval has not ended: nothing yet
	if n := logs.Len(); n != 2 {
		t.Fatalf("%d log records for 1,001 failures of two kinds, want 2: %v", n, logs.Since(0))
	}
	time.Sleep(250 * time.Millisecond)
	f.flush(log, "main")
	got := logs.Since(2)
	if len(got) != 1 || got[0].Message != "more records failed" || got[0].Attrs["count"] != "999" || got[0].Attrs["kind"] != "record" {
		t.Fatalf("after the interval: %v, want one summary of 999 more record failures", got)
	}
	f.log(log, "record", "skip", "record failed; skipped", "offset", 1000)
	if last := logs.Since(3); len(last) != 1 || last[0].Attrs["offset"] != "1000" {
		t.Fatalf("a failure in the next interval: %v, want it logged in full", last)
	}
}
