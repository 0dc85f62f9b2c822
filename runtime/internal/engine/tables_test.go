package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/twmb/franz-go/pkg/kgo"
)

// joinTask is a task of a stage running the joins guest over input "clicks"
// with the co-partitioned table users (topic "users").
func joinTask(t *testing.T) *task {
	t.Helper()
	return newTestTask(t, stageOpts{guest: "joins", policy: config.PolicyFail,
		inputs: []string{"clicks"}, outputs: map[string]string{"left": "left", "inner": "inner"},
		tables: []config.Table{{Name: "users", Topic: "users"}}})
}

func rec(topic, key, value string, offset int64, ts int64) *kgo.Record {
	r := &kgo.Record{Topic: topic, Key: []byte(key), Offset: offset, Timestamp: time.UnixMilli(ts)}
	if value != "" {
		r.Value = []byte(value)
	}
	return r
}

func commitTxn(t *testing.T, tk *task) {
	t.Helper()
	if err := tk.cycle.txn.Commit(); err != nil {
		t.Fatal(err)
	}
	tk.cycle.committed()
}

// Table updates and stream records of one fetch are applied in timestamp
// order, and a click sees the table as of its place in that order, within a
// cycle and across committed cycles.
func TestTableUpdatesInterleaveWithInputsByTimestamp(t *testing.T) {
	tk := joinTask(t)
	// One fetch: users' records and clicks' records, each partition in
	// offset order, timestamps interleaved.
	if err := tk.process([]*kgo.Record{
		rec("users", "u1", "alice", 0, 100),
		rec("users", "u1", "alice-2", 1, 300),
		rec("clicks", "u1", "home", 0, 200),
		rec("clicks", "u1", "cart", 1, 400),
	}); err != nil {
		t.Fatal(err)
	}
	if got := keysValues(outputs(tk)); got != "u1=home|alice,u1=home|alice,u1=cart|alice-2,u1=cart|alice-2" {
		t.Fatalf("outputs %s", got)
	}
	commitTxn(t, tk)
	// The next cycle: a tombstone, then a click, and a click for a key the
	// table never had.
	if err := tk.process([]*kgo.Record{
		rec("users", "u1", "", 2, 500),
		rec("clicks", "u1", "exit", 2, 600),
		rec("clicks", "u9", "x", 3, 601),
	}); err != nil {
		t.Fatal(err)
	}
	if got := keysValues(outputs(tk)); got != "u1=exit|null,u9=x|null" {
		t.Fatalf("outputs after the tombstone %s", got)
	}
	commitTxn(t, tk)
	// A table record committed in one cycle is seen by a click in the next.
	if err := tk.process([]*kgo.Record{rec("users", "u2", "bob", 3, 700)}); err != nil {
		t.Fatal(err)
	}
	commitTxn(t, tk)
	if err := tk.process([]*kgo.Record{rec("clicks", "u2", "home", 4, 800)}); err != nil {
		t.Fatal(err)
	}
	if got := keysValues(outputs(tk)); got != "u2=home|bob,u2=home|bob" {
		t.Fatalf("outputs in a later cycle %s", got)
	}
}

func TestTablesAreReadOnlyToGuests(t *testing.T) {
	tk := joinTask(t)
	for i, st := range tk.stores {
		if st.Store() == "users" {
			txn := tk.env.db.NewTxn()
			defer txn.Discard()
			h := &batchHost{t: tk, txn: txn}
			if code := h.Put(int32(i), -1, []byte("k"), []byte("v")); code.String() != "store is read-only" {
				t.Fatalf("put on a table: %v", code)
			}
			if code := h.Delete(int32(i), -1, []byte("k")); code.String() != "store is read-only" {
				t.Fatalf("delete on a table: %v", code)
			}
			return
		}
	}
	t.Fatal("no users handle")
}

func TestQueueMergesByTimestamp(t *testing.T) {
	q := queue{rank: func(topic string) int { return strings.Index("ab", topic) }}
	q.push([]*kgo.Record{rec("a", "", "1", 0, 5), rec("a", "", "2", 1, 3), rec("b", "", "3", 0, 4), rec("b", "", "4", 1, 5)})
	var got []string
	for q.len() > 0 {
		got = append(got, string(q.pop().Value))
	}
	// a's records keep their offset order although 2 is older than 1; the
	// tie between 1 and 4 goes to a, the topic ranked first.
	if strings.Join(got, "") != "3124" {
		t.Fatalf("merged %v, want 3 1 2 4", got)
	}
}

func keysValues(rs []*kgo.Record) string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Key)+"="+string(r.Value))
	}
	return strings.Join(out, ",")
}
