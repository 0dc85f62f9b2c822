package main

import (
	"testing"

	"github.com/streamrt/streamrt/sdk/go/streamrttest"
)

// The stage as the host runs it: orders in, the products table filled by
// the test, enriched orders out and bad orders dead-lettered.
func TestStageJoinsOrdersWithTheProductsTable(t *testing.T) {
	h := streamrttest.New(t, streamrttest.Config{
		Stage:   "enrich",
		Tables:  []string{"products"},
		Outputs: []string{"enriched"},
	})
	h.Set("products", []byte("p1"), []byte(`{"id":"p1","name":"widget","price":9.5}`))
	h.Set("products", []byte("42"), []byte(`{"id":42,"name":"gadget"}`))

	err := h.Run(
		streamrttest.Input{Topic: "orders", Key: []byte("o1"), Value: []byte(`{"id":"o1","product_id":"p1","quantity":2}`), Timestamp: 100},
		streamrttest.Input{Topic: "orders", Key: []byte("o2"), Value: []byte(`{"id":"o2","product_id":42}`), Timestamp: 101},
		streamrttest.Input{Topic: "orders", Key: []byte("o3"), Value: []byte(`{"id":"o3","product_id":"gone"}`), Timestamp: 102},
		streamrttest.Input{Topic: "orders", Key: []byte("o4"), Value: []byte(`{"id":"o4"}`), Timestamp: 103},
		streamrttest.Input{Topic: "orders", Key: []byte("o5"), Value: []byte(`[1]`), Timestamp: 104},
	)
	if err != nil {
		t.Fatal(err)
	}

	want := []struct{ key, value string }{
		{"o1", `{"id":"o1","product_id":"p1","quantity":2,"product":{"id":"p1","name":"widget","price":9.5}}`},
		{"o2", `{"id":"o2","product_id":42,"product":{"id":42,"name":"gadget"}}`},
		{"o3", `{"id":"o3","product_id":"gone","product":null}`},
	}
	got := h.Output("enriched")
	if len(got) != len(want) {
		t.Fatalf("%d enriched orders, want %d", len(got), len(want))
	}
	for i, w := range want {
		if string(got[i].Key) != w.key || string(got[i].Value) != w.value || got[i].Timestamp != int64(100+i) {
			t.Errorf("enriched %d: %s=%s at %d\nwant %s=%s", i, got[i].Key, got[i].Value, got[i].Timestamp, w.key, w.value)
		}
	}

	wantDead := []struct{ key, err, offset string }{
		{"o4", "order has no product_id", "3"},
		{"o5", "order is an array, not a JSON object", "4"},
	}
	dead := h.DeadLetters()
	if len(dead) != len(wantDead) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(wantDead))
	}
	for i, w := range wantDead {
		msg, _ := dead[i].Header("streamrt.error")
		off, _ := dead[i].Header("streamrt.source.offset")
		stage, _ := dead[i].Header("streamrt.stage")
		if string(dead[i].Key) != w.key || string(msg) != w.err || string(off) != w.offset || string(stage) != "enrich" {
			t.Errorf("dead letter %d: key %s, error %q, offset %s, stage %s; want %s, %q, %s", i, dead[i].Key, msg, off, stage, w.key, w.err, w.offset)
		}
	}
}
