package broker

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/testkafka"
)

func TestProduceConsume(t *testing.T) {
	var logs bytes.Buffer
	b, err := Start("127.0.0.1:0", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close) // registered first, so it runs after the clients close
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") || strings.HasSuffix(b.Addr(), ":0") {
		t.Fatalf("Addr() = %q", b.Addr())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "in memory only") {
		t.Errorf("no in-memory warning in logs:\n%s", logs.String())
	}

	brokers := []string{b.Addr()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	topics, err := kadm.NewClient(testkafka.Client(t, brokers)).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(topics) != 0 {
		t.Errorf("broker starts with topics %v, want none", topics.Names())
	}

	testkafka.CreateTopic(t, brokers, "clicks", 2)
	cl := testkafka.Client(t, brokers)
	rec := &kgo.Record{Topic: "clicks", Key: []byte("page-1"), Value: []byte("click")}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := testkafka.ReadAll(t, brokers, "clicks", 1, 10*time.Second)
	if len(got) != 1 || string(got[0].Key) != "page-1" || string(got[0].Value) != "click" {
		t.Fatalf("consumed %v, want one record page-1=click", got)
	}
}

func TestStartBusyPort(t *testing.T) {
	b, err := Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(b.Addr(), nil)
	if err == nil || !strings.Contains(err.Error(), b.Addr()) {
		t.Errorf("second Start on %s: err = %v, want a listen error naming the address", b.Addr(), err)
	}
	b.Close()
	b.Close() // a second Close does nothing
}
