package pipe_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/pipe"
	"github.com/streamrt/streamrt/internal/testkafka"
)

func TestRunCopiesAndCommits(t *testing.T) {
	const n = 1000
	brokers := testkafka.Brokers(t)
	in, out, group := testkafka.Name(t, "pipe-in"), testkafka.Name(t, "pipe-out"), testkafka.Name(t, "pipe")
	testkafka.CreateTopic(t, brokers, in, 2)
	testkafka.CreateTopic(t, brokers, out, 2)
	var rs []*kgo.Record
	for i := range n {
		rs = append(rs, &kgo.Record{Topic: in, Key: fmt.Appendf(nil, "k%d", i%10), Value: fmt.Appendf(nil, "v%d", i),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}}})
	}
	testkafka.ProduceRecords(t, brokers, rs...)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- pipe.Run(ctx, pipe.Config{Brokers: brokers, Group: group, Input: in, Output: out, CommitInterval: 50 * time.Millisecond})
	}()
	got := testkafka.ReadAll(t, brokers, out, n, 30*time.Second)
	adm := kadm.NewClient(testkafka.Client(t, brokers))
	var committed int64
	for deadline := time.Now().Add(30 * time.Second); committed < n && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		offsets, err := adm.FetchOffsets(context.Background(), group)
		if err != nil {
			continue
		}
		committed = 0
		offsets.Each(func(o kadm.OffsetResponse) { committed += o.At })
	}
	if committed != n {
		t.Errorf("the group's committed offsets add up to %d, want %d", committed, n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	if len(got) != n {
		t.Fatalf("read %d records from the output, want %d", len(got), n)
	}
	values := make(map[string]string)
	for _, r := range got {
		values[string(r.Value)] = string(r.Key)
		if len(r.Headers) != 1 || r.Headers[0].Key != "h" {
			t.Fatalf("record %q: headers %v, want the input's", r.Value, r.Headers)
		}
	}
	for i := range n {
		if k := values[fmt.Sprintf("v%d", i)]; k != fmt.Sprintf("k%d", i%10) {
			t.Fatalf("value v%d: key %q, want k%d", i, k, i%10)
		}
	}
}

func TestRunRefusesIncompleteConfig(t *testing.T) {
	err := pipe.Run(context.Background(), pipe.Config{Brokers: []string{"127.0.0.1:1"}, Group: "g", Input: "in", Output: "out"})
	if err == nil {
		t.Fatal("Run without a commit interval: no error")
	}
}
