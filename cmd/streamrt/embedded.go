package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"
)

// This file stands in for internal/broker, which this command, being
// outside runtime/, may not import. It does what that package's Start does;
// once the package moves where cmd/ can reach it (the module root's
// internal/), this file goes and run.go calls broker.Start.

// defaultBroker is where the embedded broker listens unless told otherwise,
// and where produce and consume look for a cluster by default.
const defaultBroker = "127.0.0.1:9092"

// embeddedBroker is an in-memory, single-node kfake cluster.
type embeddedBroker struct {
	cluster *kfake.Cluster
	addr    string
	logger  *slog.Logger
}

// startBroker listens on addr and serves the Kafka protocol there until
// Close, warning that its data lives in memory only.
func startBroker(addr string, logger *slog.Logger) (*embeddedBroker, error) {
	logger = logger.With("component", "embedded-broker")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", addr, err)
	}
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(func(string, string) (net.Listener, error) { return ln, nil }),
		kfake.WithLogger(kfakeLogger{logger}),
	)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	b := &embeddedBroker{cluster: cluster, addr: ln.Addr().String(), logger: logger}
	logger.Warn("embedded broker started: data is kept in memory only and lost at exit; for development, not production",
		"addr", b.addr)
	return b, nil
}

func (b *embeddedBroker) Addr() string { return b.addr }

func (b *embeddedBroker) Close() {
	b.cluster.Close()
	b.logger.Info("embedded broker stopped", "addr", b.addr)
}

// kfakeLogger passes kfake's warnings and errors to slog.
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
