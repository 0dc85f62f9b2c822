package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/streamrt/streamrt/runtime/internal/state"
	"github.com/twmb/franz-go/pkg/kgo"
)

// follower reads topic partitions directly, outside the consumer group, and
// hands their records to an applier one fetch at a time: the one loop behind
// restores, standby copies and global tables. It reads committed data only
// and keeps transaction markers, so that its positions step over them and
// reach the end of a transactional topic. A follower is used by one
// goroutine.
type follower struct {
	env *env
	cl  *kgo.Client
	log *slog.Logger
	// pos holds, per topic and partition, the offset after the last record
	// handed to an applier (markers included).
	pos map[string]map[int32]int64
}

// follow starts reading the partitions of from, each at its offset.
// partitionBytes caps one fetch per partition; 0 leaves the client's
// default.
func (v *env) follow(from map[string]map[int32]int64, log *slog.Logger, partitionBytes int32) (*follower, error) {
	offsets := map[string]map[int32]kgo.Offset{}
	pos := map[string]map[int32]int64{}
	for topic, parts := range from {
		offsets[topic], pos[topic] = map[int32]kgo.Offset{}, map[int32]int64{}
		for p, next := range parts {
			offsets[topic][p] = kgo.NewOffset().At(next)
			pos[topic][p] = next
		}
	}
	opts := []kgo.Opt{
		kgo.ConsumePartitions(offsets),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64 << 20),
	}
	if partitionBytes > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(partitionBytes))
	}
	cl, err := kgo.NewClient(v.clientOpts(opts...)...)
	if err != nil {
		return nil, err
	}
	return &follower{env: v, cl: cl, log: log, pos: pos}, nil
}

// close stops the follower's client.
func (f *follower) close() { f.cl.Close() }

// poll waits up to wait (or until ctx ends, with wait 0) for one fetch and
// hands its records to apply, partition by partition in offset order,
// transaction markers included (apply steps over them), moving pos past
// each record apply accepts. It returns ctx's error when ctx ends and the
// first error of apply, which stops the poll; fetch errors are logged and
// counted, not returned: the client retries them. An ACL that denies the
// read is returned, and recorded for the engine to stop with. While the
// engine's disk gate holds, it waits first.
func (f *follower) poll(ctx context.Context, wait time.Duration, apply func(r *kgo.Record) error) error {
	// Nothing is fetched, and so nothing written, while the disk is short
	// of space.
	if err := f.env.disk.wait(ctx); err != nil {
		return err
	}
	pctx, cancel := ctx, context.CancelFunc(func() {})
	if wait > 0 {
		pctx, cancel = context.WithTimeout(ctx, wait)
	}
	fs := f.cl.PollFetches(pctx)
	cancel()
	if err := ctx.Err(); err != nil {
		return err
	}
	var denied error
	fs.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		if d := f.env.denied(err, "reading changelogs and tables", "READ", topic); d != nil {
			denied = d
			return
		}
		f.env.metrics.BrokerErrors.Inc()
		f.log.Warn("fetch failed; retrying", "topic", topic, "partition", p, "err", err)
	})
	if denied != nil {
		return denied
	}
	var applyErr error
	fs.EachRecord(func(r *kgo.Record) {
		if applyErr != nil {
			return
		}
		if applyErr = apply(r); applyErr == nil {
			f.pos[r.Topic][r.Partition] = r.Offset + 1
		}
	})
	return applyErr
}

// mirror keeps local stores equal to the topics a follower reads: each
// poll's records and the positions they reach commit in one Pebble batch,
// so that the copy always matches its checkpoint. Standby copies mirror a
// task's changelogs, and global tables their topics.
type mirror struct {
	f     *follower
	group string // the checkpoint group of the positions
	// keyspace is where a record of topic and partition goes.
	keyspace func(topic string, p int32) state.Keyspace
	// applied counts, after each commit, the records applied per topic.
	applied func(topic string, n int)
	// changed, if set, learns after each commit the keys it changed per
	// topic.
	changed func(topic string, keys [][]byte)
}

// poll applies one fetch; see follower.poll. It returns the number of
// records applied.
func (m *mirror) poll(ctx context.Context, wait time.Duration) (int, error) {
	txn := m.f.env.db.NewWriteTxn()
	defer txn.Discard()
	touched := map[string]map[int32]bool{}
	perTopic := map[string]int{}
	var keys map[string][][]byte
	if m.changed != nil {
		keys = map[string][][]byte{}
	}
	err := m.f.poll(ctx, wait, func(r *kgo.Record) error {
		if touched[r.Topic] == nil {
			touched[r.Topic] = map[int32]bool{}
		}
		touched[r.Topic][r.Partition] = true
		if r.Attrs.IsControl() || r.Key == nil {
			return nil
		}
		perTopic[r.Topic]++
		if keys != nil {
			keys[r.Topic] = append(keys[r.Topic], r.Key)
		}
		return applyChange(txn, m.keyspace(r.Topic, r.Partition), r)
	})
	if err != nil {
		return 0, err
	}
	if len(touched) == 0 {
		return 0, nil
	}
	for topic, parts := range touched {
		for p := range parts {
			if err := txn.SetOffset(m.group, topic, p, m.f.pos[topic][p]); err != nil {
				return 0, err
			}
		}
	}
	if err := txn.Commit(); err != nil {
		return 0, err
	}
	for topic, ks := range keys {
		m.changed(topic, ks)
	}
	n := 0
	for topic, k := range perTopic {
		m.applied(topic, k)
		n += k
	}
	return n, nil
}

// applyChange applies one changelog or table record to ks: its value under
// its key, or a delete for a tombstone.
func applyChange(txn *state.Txn, ks state.Keyspace, r *kgo.Record) error {
	if r.Value == nil {
		return txn.Delete(ks, r.Key)
	}
	return txn.Put(ks, r.Key, r.Value)
}
