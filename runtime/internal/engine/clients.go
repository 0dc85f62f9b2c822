package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
)

// clientOpts are the options of every Kafka client the engine creates (the
// group's, the admin one, restores, standby copies, global tables): the seed
// brokers, TLS and SASL (package kafka builds them from the kafka section),
// the log, and the hooks that follow the brokers' health, followed by extra.
func (v *env) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(v.brokers...),
		kgo.WithLogger(kgoLogger{v.log}),
		kgo.WithHooks(v.health),
	}
	opts = append(opts, v.security...)
	return append(opts, extra...)
}

// transactionalID is stable across restarts of one instance (it follows
// the state directory), so that a restarted instance fences its previous
// incarnation, and distinct between instances.
func (e *Engine) transactionalID() string {
	sum := sha256.Sum256([]byte(e.cfg.StateDir))
	return e.cfg.Internal() + "-" + hex.EncodeToString(sum[:8])
}

// partitioner sends changelog records to the partition their task sets and
// everything else by Kafka's default rule (murmur2 of the key).
type partitioner struct {
	manual func(topic string) bool
	byKey  kgo.Partitioner
}

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if p.manual(topic) {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return p.byKey.ForTopic(topic)
}

// kgoLogger routes the Kafka client's warnings and errors into the runtime's
// log; its info and debug lines are too chatty for an operator.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelWarn
	if level == kgo.LogLevelError {
		lvl = slog.LevelError
	}
	k.l.Log(context.Background(), lvl, "kafka: "+msg, keyvals...)
}
