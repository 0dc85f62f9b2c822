package runtime_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/partition"
	"github.com/twmb/franz-go/pkg/kgo"
)

func values(rs []*kgo.Record) []string {
	var out []string
	for _, r := range rs {
		if r.Value == nil {
			out = append(out, string(r.Key)+"=<tombstone>")
		} else {
			out = append(out, string(r.Key)+"="+string(r.Value))
		}
	}
	return out
}

// Stream–table joins: left emits every click with its user or null, inner
// only clicks whose user exists; a table update applies to clicks after it
// and re-emits nothing; a tombstone removes the user.
func TestStreamTableJoin(t *testing.T) {
	brokers := testkafka.Brokers(t)
	base, _, _ := names(t)
	clicks, users, left, inner := base+"-clicks", base+"-users", base+"-left", base+"-inner"
	testkafka.CreateTopic(t, brokers, users, 4)
	a := startYAML(t, fmt.Sprintf(`app: %s
brokers: [%s]
partitions: 4
commit_interval: 50ms
tables:
  - {name: users, topic: %s}
stages:
  - name: join
    module: %s
    inputs: [%s]
    tables: [users]
    outputs: {left: %s, inner: %s}
`, base, strings.Join(brokers, ","), users, guesttest.Dir("joins"), clicks, left, inner), "", false)
	a.waitReady()
	user := func(key string, want int) {
		waitFor(t, 30*time.Second, "user "+key+" in the table", func() bool {
			code, _ := a.get("/v1/stores/users/keys/" + key)
			return code == want
		})
	}
	// Each click's join is awaited before the table changes again: across
	// topics, order holds only as far as the fetched data allows (a click
	// fetched after a later table update is joined after it).
	produce(t, brokers, users, "u1", "alice")
	user("u1", 200)
	produce(t, brokers, clicks, "u1", "home", "u2", "about")
	testkafka.ReadAll(t, brokers, left, 2, 60*time.Second)
	produce(t, brokers, users, "u1", "alice-2")
	waitFor(t, 30*time.Second, "the update", func() bool { _, b := a.get("/v1/stores/users/keys/u1"); return b == "alice-2" })
	produce(t, brokers, clicks, "u1", "cart")
	testkafka.ReadAll(t, brokers, left, 3, 60*time.Second)
	testkafka.ProduceRecords(t, brokers, &kgo.Record{Topic: users, Key: []byte("u1")}) // tombstone
	user("u1", 404)
	produce(t, brokers, clicks, "u1", "exit")

	// Order holds per key (per partition), not across keys.
	got := values(readExactly(t, brokers, left, 4))
	for _, want := range [][]string{{"u1=home|alice", "u1=cart|alice-2", "u1=exit|null"}, {"u2=about|null"}} {
		if !containsInOrder(got, want) {
			t.Fatalf("left join output %v, want %v in order", got, want)
		}
	}
	gotInner := values(readExactly(t, brokers, inner, 2))
	if wantInner := []string{"u1=home|alice", "u1=cart|alice-2"}; !containsInOrder(gotInner, wantInner) {
		t.Fatalf("inner join output %v, want %v", gotInner, wantInner)
	}
	// Three puts and a tombstone are materialised. A record without a key
	// is skipped and not counted: it goes first on u3's partition, so it
	// was read once u3 is in the table.
	p := partition.For([]byte("u3"), 4)
	manual := testkafka.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := manual.ProduceSync(ctxTimeout(t, 30*time.Second),
		&kgo.Record{Topic: users, Partition: p, Value: []byte("nobody")},
		&kgo.Record{Topic: users, Partition: p, Key: []byte("u3"), Value: []byte("carol")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	user("u3", 200)
	if n := apptest.Metric(a.http, "streamrt_table_records_total", "table", "users"); n != 4 {
		t.Errorf("streamrt_table_records_total{table=users} = %v, want 4", n)
	}
}

// readExactly reads n records from topic, then looks a little longer for
// one more, failing the test unless there are exactly n.
func readExactly(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	testkafka.ReadAll(t, brokers, topic, n, 60*time.Second)
	got := testkafka.ReadAll(t, brokers, topic, n+1, 2*time.Second)
	if len(got) != n {
		t.Fatalf("%d records in %s, want exactly %d: %v", len(got), topic, n, values(got))
	}
	return got
}

// Table–table join: an update on either side re-emits the join for its
// key; a tombstone on either side removes it.
func TestTableTableJoin(t *testing.T) {
	brokers := testkafka.Brokers(t)
	base, _, _ := names(t)
	lt, rt, joined := base+"-l", base+"-r", base+"-joined"
	a := startYAML(t, fmt.Sprintf(`app: %s
brokers: [%s]
partitions: 4
commit_interval: 50ms
tables:
  - {name: left, topic: %s}
  - {name: right, topic: %s}
stages:
  - name: join
    module: %s
    inputs: [%s, %s]
    tables: [left, right]
    outputs: {joined: %s}
`, base, strings.Join(brokers, ","), lt, rt, guesttest.Dir("joins"), lt, rt, joined), "", false)
	a.waitReady()
	steps := []struct {
		topic, key, value string // value "" is a tombstone
		want              string
	}{
		{lt, "k", "a", "k=<tombstone>"},
		{rt, "k", "b", "k=a+b"},
		{lt, "k", "a2", "k=a2+b"},
		{rt, "k", "", "k=<tombstone>"},
	}
	for i, s := range steps {
		r := &kgo.Record{Topic: s.topic, Key: []byte(s.key)}
		if s.value != "" {
			r.Value = []byte(s.value)
		}
		testkafka.ProduceRecords(t, brokers, r)
		got := values(testkafka.ReadAll(t, brokers, joined, i+1, 30*time.Second))
		if len(got) != i+1 || got[i] != s.want {
			t.Fatalf("after step %d: joined %v, want last %s", i, got, s.want)
		}
	}
}

// A stage emits to another through a repartition topic keyed by a new key;
// the next stage counts by that key, on the task that owns it.
func TestRepartition(t *testing.T) {
	brokers := testkafka.Brokers(t)
	base, in, out := names(t)
	a := startYAML(t, fmt.Sprintf(`app: %s
brokers: [%s]
partitions: 4
commit_interval: 50ms
stages:
  - name: rekey
    module: %s
    inputs: [%s]
    outputs: {rekeyed: {repartition: count}}
  - name: count
    module: %s
    inputs: []
    stores: [counts]
    outputs: {out: %s}
`, base, strings.Join(brokers, ","), guesttest.Dir("rekey"), in, guesttest.Dir("counter"), out), "", false)
	a.waitReady()
	// Clicks keyed by user, with the page as value: counted per page.
	var kvs []string
	for i := 0; i < 200; i++ {
		kvs = append(kvs, fmt.Sprintf("user-%d", i), fmt.Sprintf("page-%d", i%8))
	}
	produce(t, brokers, in, kvs...)
	readExactly(t, brokers, out, 200)
	for p := 0; p < 8; p++ {
		if code, body := a.get(fmt.Sprintf("/v1/stores/counts/keys/page-%d", p)); code != 200 || body != "25" {
			t.Errorf("count of page-%d: %d %q, want 25", p, code, body)
		}
	}
}

// containsInOrder reports whether got holds want's items in order (other
// items may come between: a shared cluster can hold earlier runs' records).
func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
