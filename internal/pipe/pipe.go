// Package pipe is the plain franz-go consume→produce loop that streamrt's
// benchmarks measure the runtime against: a consumer group reading committed
// data and producing each record unchanged to an output topic, and every
// commit interval waiting for the acknowledgements and then committing the
// group's offsets. It is what the engine does minus the guest and the state.
//
// runtime's BenchmarkEndToEnd runs it in-process; bench/pipe runs it as a
// program of its own for the side-by-side benchmark in bench/.
package pipe

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config says what a pipe copies and how often it commits.
type Config struct {
	Brokers        []string
	Group          string // the consumer group; it starts at the input's start
	Input, Output  string
	CommitInterval time.Duration
}

// pollMax bounds the records one poll hands the loop, as the engine's poll does.
const pollMax = 10_000

// Run copies Input to Output until ctx ends, then returns nil, or until a
// produce, flush or commit fails, and returns that error. Records keep their
// key, value, headers and timestamp. Offsets are committed only after every
// record before them has been acknowledged, so a pipe stopped at any point
// has lost nothing (it may repeat what it produced after its last commit).
func Run(ctx context.Context, cfg Config) error {
	if len(cfg.Brokers) == 0 || cfg.Group == "" || cfg.Input == "" || cfg.Output == "" || cfg.CommitInterval <= 0 {
		return fmt.Errorf("streamrt: pipe: brokers, group, input, output and a positive commit interval are required, got %+v", cfg)
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Input),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
	)
	if err != nil {
		return fmt.Errorf("streamrt: pipe %s: %w", cfg.Group, err)
	}
	defer cl.Close()

	pctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		if err == nil || pctx.Err() != nil {
			return
		}
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		stop()
	}
	last := time.Now()
	for pctx.Err() == nil {
		wctx, cancel := context.WithTimeout(pctx, cfg.CommitInterval)
		fs := cl.PollRecords(wctx, pollMax)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			cl.Produce(pctx, &kgo.Record{Topic: cfg.Output, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp},
				func(_ *kgo.Record, err error) { fail(err) })
		})
		if time.Since(last) >= cfg.CommitInterval {
			fail(cl.Flush(pctx))
			fail(cl.CommitUncommittedOffsets(pctx))
			last = time.Now()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return fmt.Errorf("streamrt: pipe %s: %w", cfg.Group, firstErr)
	}
	return nil
}
