package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The helpers below follow internal/testkafka, which this package,
// being outside runtime/, may not import: STREAMRT_TEST_BROKERS selects a real
// cluster, else each test gets its own embedded broker (the one run starts).

func testBrokers(t *testing.T) []string {
	t.Helper()
	if env := strings.TrimSpace(os.Getenv("STREAMRT_TEST_BROKERS")); env != "" {
		return strings.Split(env, ",")
	}
	b, err := startBroker("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return []string{b.Addr()}
}

var nameSeq atomic.Int64

// testName returns a topic name unique to this test process.
func testName(base string) string {
	return fmt.Sprintf("%s-%d-%d", base, time.Now().UnixNano()%1_000_000_000, nameSeq.Add(1))
}

func testClient(t *testing.T, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func createTopic(t *testing.T, brokers []string, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(testClient(t, brokers)).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %q: %v", topic, err)
	}
}

// readAll reads topic from the start until n records arrived or timeout passed.
func readAll(t *testing.T, brokers []string, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl := testClient(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}
