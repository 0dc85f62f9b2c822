package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/twmb/franz-go/pkg/kadm"
)

// globalGroup is the checkpoint group of global tables' source positions;
// '#' cannot start an app name, so it cannot collide with one.
const globalGroup = "#global"

// startGlobals catches every global table up to the end its topic had when
// called, before any stage processes a record, then keeps tailing the
// topics in the background until ctx ends. Each table is read whole on
// every instance, every partition of its topic into partition 0 of its
// keyspace, from the local checkpoints or the start. done is closed when
// tailing stops.
func (e *Engine) startGlobals(ctx context.Context) (done <-chan struct{}, err error) {
	ch := make(chan struct{})
	var topics []string
	ks := map[string]state.Keyspace{}   // topic → keyspace
	caches := map[string]*globalCache{} // topic → the table's cache
	for _, tt := range e.topo.Tables {
		if !tt.Global {
			continue
		}
		k, err := e.db.Keyspace(tt.Name, 0)
		if err != nil {
			return nil, err
		}
		ks[tt.Topic] = k
		caches[tt.Topic] = e.env.globals[tt.Name]
		topics = append(topics, tt.Topic)
	}
	if len(topics) == 0 {
		close(ch)
		return ch, nil
	}
	ends, err := e.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("global tables: list end offsets: %w", err)
	}
	from := map[string]map[int32]int64{}
	end := map[string]map[int32]int64{}
	var total int64
	var listErr error
	ends.Each(func(lo kadm.ListedOffset) {
		if listErr != nil {
			return
		}
		if lo.Err != nil {
			if listErr = e.env.denied(lo.Err, "loading global tables", "READ", lo.Topic); listErr == nil {
				listErr = fmt.Errorf("global table topic %q partition %d: %w", lo.Topic, lo.Partition, lo.Err)
			}
			return
		}
		next, _, err := e.db.Offset(globalGroup, lo.Topic, lo.Partition)
		if err != nil {
			listErr = err
			return
		}
		if from[lo.Topic] == nil {
			from[lo.Topic], end[lo.Topic] = map[int32]int64{}, map[int32]int64{}
		}
		from[lo.Topic][lo.Partition] = next
		end[lo.Topic][lo.Partition] = lo.Offset
		total += max(0, lo.Offset-next)
	})
	if listErr != nil {
		return nil, listErr
	}
	log := e.log.With("component", "global-tables")
	f, err := e.env.follow(from, log, 0)
	if err != nil {
		return nil, err
	}
	m := &mirror{
		f: f, group: globalGroup,
		keyspace: func(topic string, _ int32) state.Keyspace { return ks[topic] },
		applied:  func(topic string, n int) { e.metrics.TableRecords.WithLabelValues(ks[topic].Store()).Add(float64(n)) },
		changed:  func(topic string, keys [][]byte) { caches[topic].changed(keys) },
	}
	caughtUp := func() bool {
		for topic, parts := range end {
			for p, off := range parts {
				if f.pos[topic][p] < off {
					return false
				}
			}
		}
		return true
	}
	if err := bootstrapGlobals(ctx, m, total, caughtUp); err != nil {
		f.close()
		return nil, err
	}
	go func() {
		defer close(ch)
		defer f.close()
		for ctx.Err() == nil {
			if _, err := m.poll(ctx, time.Second); err != nil && ctx.Err() == nil {
				log.Error("update failed; retrying", "err", err)
				time.Sleep(time.Second)
			}
		}
	}()
	return ch, nil
}

// bootstrapGlobals polls until caughtUp, logging progress every second.
func bootstrapGlobals(ctx context.Context, m *mirror, total int64, caughtUp func() bool) error {
	log := m.f.log
	if total > 0 {
		log.Info("loading global tables", "records", total)
	}
	start, last := time.Now(), time.Now()
	var done int64
	for !caughtUp() {
		n, err := m.poll(ctx, time.Second)
		if err != nil {
			return err
		}
		done += int64(n)
		if time.Since(last) >= time.Second {
			last = time.Now()
			log.Info("loading global tables", "percent", fmt.Sprintf("%.1f", 100*float64(done)/float64(max(total, 1))),
				"eta", eta(done, total, time.Since(start)), "records_per_sec", int64(float64(done)/time.Since(start).Seconds()))
		}
	}
	if total > 0 {
		log.Info("global tables loaded", "records", done, "took", time.Since(start).Round(time.Millisecond),
			"records_per_sec", int64(float64(done)/time.Since(start).Seconds()))
	}
	return nil
}
