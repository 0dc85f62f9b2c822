// Package broker runs the embedded Kafka-protocol broker behind
// `streamrt run --embedded-broker`: franz-go's kfake, one node, in memory.
//
// It is for the quick start and fast tests only. Everything it stores is lost
// when it closes, it has no authentication, and it advertises the address it
// listens on, so clients must be able to reach that address as given. It
// starts with no topics: the runtime creates those it needs, and `streamrt
// run` those of the app's tables that no stage reads or writes.
package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultAddr is where the embedded broker listens unless told otherwise.
const DefaultAddr = "127.0.0.1:9092"

// Broker is a running embedded broker. Its methods are safe for concurrent use.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
	logger  *slog.Logger
	once    sync.Once
}

// Start listens on addr (DefaultAddr if empty; port 0 picks a free port) and
// serves the Kafka protocol there until Close. Any host is accepted, but the
// broker is meant for development: it logs a warning that its data is kept in
// memory only. A nil logger discards the broker's logs.
func Start(addr string, logger *slog.Logger) (*Broker, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "embedded-broker")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streamrt: embedded broker: listen on %s: %w", addr, err)
	}
	// kfake listens on loopback by itself; hand it our listener instead so
	// that addr's host is honoured and a busy port fails above, clearly.
	listen := func(string, string) (net.Listener, error) { return ln, nil }
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(listen),
		kfake.WithLogger(kfakeLogger{logger}),
	)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("streamrt: embedded broker: %w", err)
	}
	b := &Broker{cluster: cluster, addr: ln.Addr().String(), logger: logger}
	logger.Warn("embedded broker started: data is kept in memory only and lost at exit; for development, not production",
		"addr", b.addr)
	return b, nil
}

// Addr returns the host:port the broker listens on and advertises, with the
// port chosen when Start was given port 0.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker and drops everything it stored. Clients still
// connected see their connections close. Close may be called more than once.
func (b *Broker) Close() {
	b.once.Do(func() {
		b.cluster.Close()
		b.logger.Info("embedded broker stopped", "addr", b.addr)
	})
}

// kfakeLogger passes kfake's warnings and errors to slog; its informational
// logs, one per request, are left out.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var l slog.Level
	switch level {
	case kfake.LogLevelError:
		l = slog.LevelError
	case kfake.LogLevelWarn:
		l = slog.LevelWarn
	default:
		return
	}
	k.l.Log(context.Background(), l, fmt.Sprintf(format, args...))
}
