package engine

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// process queues recs for the task and runs them all, as the loop does
// over as many rounds as it takes.
func (t *task) process(recs []*kgo.Record) error {
	t.queue.push(recs)
	return t.run(time.Now().Add(time.Hour))
}
