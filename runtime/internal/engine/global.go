package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// globals materialises the app's global tables on this instance: every
// partition of each table's topic, read directly (no group), from the local
// checkpoints or the start, into partition 0 of the table's keyspace.
type globals struct {
	e   *Engine
	cl  *kgo.Client
	ks  map[string]state.Keyspace  // topic → keyspace
	pos map[string]map[int32]int64 // topic → partition → next offset
	end map[string]map[int32]int64 // bootstrap target
	txn *state.Txn
}

// startGlobals catches every global table up to the end its topic had when
// called, before any stage processes a record, then keeps tailing the
// topics in the background until ctx ends. done is closed when tailing
// stops.
func (e *Engine) startGlobals(ctx context.Context) (done <-chan struct{}, err error) {
	ch := make(chan struct{})
	if len(e.globals) == 0 {
		close(ch)
		return ch, nil
	}
	g := &globals{e: e, ks: map[string]state.Keyspace{}, pos: map[string]map[int32]int64{}, end: map[string]map[int32]int64{}}
	var topics []string
	for _, ts := range e.globals {
		ks, err := e.db.Keyspace(ts.name, 0)
		if err != nil {
			return nil, err
		}
		g.ks[ts.topic] = ks
		topics = append(topics, ts.topic)
	}
	ends, err := e.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("global tables: list end offsets: %w", err)
	}
	from := map[string]map[int32]kgo.Offset{}
	var total int64
	var listErr error
	ends.Each(func(lo kadm.ListedOffset) {
		if listErr != nil {
			return
		}
		if lo.Err != nil {
			listErr = fmt.Errorf("global table topic %q partition %d: %w", lo.Topic, lo.Partition, lo.Err)
			return
		}
		next, found, err := e.db.Offset(globalGroup, lo.Topic, lo.Partition)
		if err != nil {
			listErr = err
			return
		}
		if !found {
			next = 0
		}
		if from[lo.Topic] == nil {
			from[lo.Topic], g.pos[lo.Topic], g.end[lo.Topic] = map[int32]kgo.Offset{}, map[int32]int64{}, map[int32]int64{}
		}
		from[lo.Topic][lo.Partition] = kgo.NewOffset().At(next)
		g.pos[lo.Topic][lo.Partition] = next
		g.end[lo.Topic][lo.Partition] = lo.Offset
		total += max(0, lo.Offset-next)
	})
	if listErr != nil {
		return nil, listErr
	}
	g.cl, err = kgo.NewClient(
		kgo.SeedBrokers(e.cfg.Brokers...),
		kgo.ConsumePartitions(from),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64<<20),
		kgo.WithLogger(kgoLogger{e.log}),
		kgo.WithHooks(e.health),
	)
	if err != nil {
		return nil, err
	}
	if err := g.bootstrap(ctx, total); err != nil {
		g.cl.Close()
		return nil, err
	}
	go func() {
		defer close(ch)
		defer g.cl.Close()
		g.tail(ctx)
	}()
	return ch, nil
}

func (g *globals) caughtUp() bool {
	for topic, parts := range g.end {
		for p, end := range parts {
			if g.pos[topic][p] < end {
				return false
			}
		}
	}
	return true
}

func (g *globals) bootstrap(ctx context.Context, total int64) error {
	log := g.e.log.With("component", "global-tables")
	if total > 0 {
		log.Info("loading global tables", "records", total)
	}
	start, last := time.Now(), time.Now()
	var done int64
	for !g.caughtUp() {
		n, err := g.poll(ctx, time.Second)
		if err != nil {
			return err
		}
		done += int64(n)
		if time.Since(last) >= time.Second {
			last = time.Now()
			log.Info("loading global tables", "percent", fmt.Sprintf("%.1f", 100*float64(done)/float64(max(total, 1))),
				"records_per_sec", int64(float64(done)/time.Since(start).Seconds()))
		}
	}
	if total > 0 {
		log.Info("global tables loaded", "records", done, "took", time.Since(start).Round(time.Millisecond),
			"records_per_sec", int64(float64(done)/time.Since(start).Seconds()))
	}
	return nil
}

func (g *globals) tail(ctx context.Context) {
	for ctx.Err() == nil {
		if _, err := g.poll(ctx, time.Second); err != nil && ctx.Err() == nil {
			g.e.log.Error("global tables: update failed; retrying", "err", err)
			time.Sleep(time.Second)
		}
	}
}

// poll applies one fetch's records and commits them with their positions.
func (g *globals) poll(ctx context.Context, wait time.Duration) (int, error) {
	pctx, cancel := context.WithTimeout(ctx, wait)
	fs := g.cl.PollFetches(pctx)
	cancel()
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	fs.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) {
			g.e.metrics.BrokerErrors.Inc()
			g.e.log.Warn("global tables: fetch failed; retrying", "topic", topic, "partition", p, "err", err)
		}
	})
	txn := g.e.db.NewWriteTxn()
	defer txn.Discard()
	n := 0
	perTopic := map[string]int{}
	var applyErr error
	touched := map[string]map[int32]bool{}
	fs.EachRecord(func(r *kgo.Record) {
		if applyErr != nil {
			return
		}
		g.pos[r.Topic][r.Partition] = r.Offset + 1
		if touched[r.Topic] == nil {
			touched[r.Topic] = map[int32]bool{}
		}
		touched[r.Topic][r.Partition] = true
		if r.Attrs.IsControl() || r.Key == nil {
			return
		}
		ks := g.ks[r.Topic]
		if r.Value == nil {
			applyErr = txn.Delete(ks, r.Key)
		} else {
			applyErr = txn.Put(ks, r.Key, r.Value)
		}
		n++
		perTopic[r.Topic]++
	})
	if applyErr != nil {
		return 0, applyErr
	}
	if len(touched) == 0 {
		return 0, nil
	}
	for topic, parts := range touched {
		for p := range parts {
			if err := txn.SetOffset(globalGroup, topic, p, g.pos[topic][p]); err != nil {
				return 0, err
			}
		}
		g.e.metrics.TableRecords.WithLabelValues(g.ks[topic].Store()).Add(float64(perTopic[topic]))
	}
	return n, txn.Commit()
}
