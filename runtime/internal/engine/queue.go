package engine

import "github.com/twmb/franz-go/pkg/kgo"

// queue holds a task's fetched records until they are processed, one
// first-in first-out list per topic, and hands them out in the task's
// processing order: each topic's records in offset order, and across
// topics the lowest timestamp first (ties: the stage's topic order, rank).
// This is the order docs/ARCHITECTURE.md calls "as far as the fetched data
// allows": a record fetched later is processed later even if its timestamp
// is lower. A task's goroutine uses its queue; the loop fills it between
// rounds.
type queue struct {
	rank   func(topic string) int
	topics []topicQueue // few: a stage's inputs and tables
	n      int
}

type topicQueue struct {
	topic string
	recs  []*kgo.Record
}

// push appends records, each topic's in offset order, as a fetch gives
// them (a run of one partition at a time).
func (q *queue) push(recs []*kgo.Record) {
	for len(recs) > 0 {
		n := 1
		for n < len(recs) && recs[n].Topic == recs[0].Topic {
			n++
		}
		q.pushRun(recs[:n])
		recs = recs[n:]
	}
}

func (q *queue) pushRun(recs []*kgo.Record) {
	topic := recs[0].Topic
	q.n += len(recs)
	for i := range q.topics {
		if q.topics[i].topic == topic {
			q.topics[i].recs = append(q.topics[i].recs, recs...)
			return
		}
	}
	q.topics = append(q.topics, topicQueue{topic: topic, recs: append([]*kgo.Record(nil), recs...)})
}

func (q *queue) len() int { return q.n }

// next is the index of the topic whose head goes first, or -1.
func (q *queue) next() int {
	best := -1
	for i := range q.topics {
		if len(q.topics[i].recs) == 0 {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		a, b := q.topics[i].recs[0], q.topics[best].recs[0]
		if c := a.Timestamp.Compare(b.Timestamp); c < 0 || c == 0 && q.rank(a.Topic) < q.rank(b.Topic) {
			best = i
		}
	}
	return best
}

// peek returns the record that goes next; the queue must not be empty.
func (q *queue) peek() *kgo.Record { return q.topics[q.next()].recs[0] }

// pop removes and returns the record that goes next; the queue must not be
// empty.
func (q *queue) pop() *kgo.Record {
	tq := &q.topics[q.next()]
	r := tq.recs[0]
	tq.recs[0] = nil
	tq.recs = tq.recs[1:]
	if len(tq.recs) == 0 {
		tq.recs = tq.recs[:0:0] // let the backing array go
	}
	q.n--
	return r
}

// heads returns, per topic with queued records, the offset of the first.
func (q *queue) heads() map[string]int64 {
	out := map[string]int64{}
	for _, tq := range q.topics {
		if len(tq.recs) > 0 {
			out[tq.topic] = tq.recs[0].Offset
		}
	}
	return out
}

// clear drops every queued record.
func (q *queue) clear() {
	for i := range q.topics {
		clear(q.topics[i].recs)
		q.topics[i].recs = nil
	}
	q.n = 0
}
