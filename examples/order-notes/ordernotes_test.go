// order-notes end to end, with two instances of the app sharing the work:
// orders that arrive before their product, product updates and deletions,
// bad orders, and "status of order X" served from the enriched-orders table.
// It runs once with each variant of the enrich stage (Go and Rust), against
// the embedded kfake broker or the cluster STREAMRT_TEST_BROKERS names.
package ordernotes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
)

// ensureTopic creates topic unless it exists (a real cluster outlives runs).
func ensureTopic(t *testing.T, brokers []string, topic string, partitions int32) {
	t.Helper()
	resp, err := kadm.NewClient(testkafka.Client(t, brokers)).CreateTopic(context.Background(), partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatal(err)
	}
}

// TestOrderNotes runs the app with each variant of its enrich stage under the
// same assertions: the variants are the same app, and either may replace the
// other. On a real cluster they run one after the other on the same topics
// and consumer group, each with orders and products of its own.
func TestOrderNotes(t *testing.T) {
	for _, tc := range []struct {
		name, configFile string
		crate            string // a Rust stage to build first, or ""
	}{
		{name: "go", configFile: "streamrt.yaml"},
		{name: "rust", configFile: "streamrt-rust.yaml", crate: "enrich-rust"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.crate != "" {
				// Skips the variant on a machine without cargo, unless
				// CI=true, rather than failing in the runtime's build.
				apptest.BuildModule(t, tc.crate)
			}
			testOrderNotes(t, tc.configFile)
		})
	}
}

func testOrderNotes(t *testing.T, configFile string) {
	brokers := testkafka.Brokers(t)
	ensureTopic(t, brokers, "products", 3) // a global table needs no co-partitioning
	ensureTopic(t, brokers, "orders", 4)
	opts := apptest.Options{Brokers: brokers, LogLevel: slog.LevelWarn}
	instances := []*apptest.App{apptest.Start(t, configFile, opts), apptest.Start(t, configFile, opts)}
	// The group settles before orders flow, so that each order is
	// processed where it is later served.
	apptest.WaitCheck(t, 60*time.Second, "both instances to own partitions of the enriched orders", func() error {
		got := instances[0].Get("/v1/instances")
		var list []struct {
			Address string
			Stores  map[string][]int32
		}
		if err := json.Unmarshal([]byte(got.Body), &list); err != nil || got.Code != 200 {
			return fmt.Errorf("/v1/instances: %d %s", got.Code, got.Body)
		}
		n := 0
		for _, in := range list {
			n += len(in.Stores["enriched-orders-store"])
			if len(in.Stores["enriched-orders-store"]) == 0 {
				return fmt.Errorf("/v1/instances: %s owns none", in.Address)
			}
		}
		if len(list) != 2 || n != 4 {
			return fmt.Errorf("/v1/instances: %s", got.Body)
		}
		return nil
	})

	cl := testkafka.Client(t, brokers)
	send := func(topic, key string, value []byte) {
		t.Helper()
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UnixNano()
	run := fmt.Sprintf("%x", now)
	order := func(i int, product string) string {
		id := fmt.Sprintf("o-%s-%d", run, i)
		send("orders", id, fmt.Appendf(nil, `{"id":%q,"product_id":%q,"customer_id":"c%d","quantity":%d}`, id, product, i%3, i))
		return id
	}
	product := func(j int) string { return fmt.Sprintf("p-%s-%d", run, j) }
	putProduct := func(j int, price float64) {
		send("products", product(j), fmt.Appendf(nil, `{"id":%q,"name":"widget %d","price":%g}`, product(j), j, price))
	}
	// enriched returns the order as served by whichever instance owns it.
	enriched := func(id string) map[string]any {
		for _, in := range instances {
			if got := in.Store("enriched-orders-store", id); got.Code == 200 {
				var m map[string]any
				if err := json.Unmarshal([]byte(got.Body), &m); err != nil {
					t.Fatalf("order %s: %v in %q", id, err, got.Body)
				}
				return m
			}
		}
		return nil
	}
	waitOrder := func(id string, check func(m map[string]any) bool) map[string]any {
		t.Helper()
		var m map[string]any
		apptest.WaitFor(t, 60*time.Second, "enriched order "+id, func() bool {
			m = enriched(id)
			return m != nil && check(m)
		})
		return m
	}
	productOf := func(m map[string]any) map[string]any { p, _ := m["product"].(map[string]any); return p }
	// Product updates reach every instance's copy of the global table.
	waitProduct := func(id string, check func(got apptest.Answer) bool) {
		t.Helper()
		apptest.WaitFor(t, 60*time.Second, "product "+id+" on every instance", func() bool {
			for _, in := range instances {
				if !check(in.Store("products", id)) {
					return false
				}
			}
			return true
		})
	}

	// 1. Orders before their products exist: left join, product null.
	var early []string
	for i := 0; i < 12; i++ {
		early = append(early, order(i, product(i%4)))
	}
	for _, id := range early {
		m := waitOrder(id, func(m map[string]any) bool { return true })
		if m["product"] != nil || m["id"] != id || m["customer_id"] == nil || m["quantity"] == nil {
			t.Fatalf("early order %s enriched as %v, want its fields and product null", id, m)
		}
	}

	// 2. Products arrive; later orders see them.
	for j := 0; j < 4; j++ {
		putProduct(j, 10+float64(j))
	}
	for j := 0; j < 4; j++ {
		waitProduct(product(j), func(got apptest.Answer) bool { return got.Code == 200 })
	}
	var later []string
	for i := 12; i < 24; i++ {
		later = append(later, order(i, product(i%4)))
	}
	for k, id := range later {
		j := (12 + k) % 4
		m := waitOrder(id, func(m map[string]any) bool { return true })
		if p := productOf(m); p == nil || p["id"] != product(j) || p["price"] != 10+float64(j) {
			t.Fatalf("order %s enriched as %v, want product %s at %v", id, m, product(j), 10+float64(j))
		}
	}

	// 3. A product_id written with escapes is looked up unescaped; one
	// written as a number is looked up by its text.
	escaped := fmt.Sprintf("o-%s-escaped", run)
	send("orders", escaped, fmt.Appendf(nil, `{"id":%q, "product_id" : "\u0070%s", "quantity":1}`, escaped, strings.TrimPrefix(product(3), "p")))
	if p := productOf(waitOrder(escaped, func(map[string]any) bool { return true })); p["id"] != product(3) {
		t.Fatalf("order %s with an escaped product_id got product %v, want %s", escaped, p, product(3))
	}
	numberedID := fmt.Sprint(now) // a number, unique to the run
	send("products", numberedID, fmt.Appendf(nil, `{"id":%s,"name":"numbered","price":5}`, numberedID))
	waitProduct(numberedID, func(got apptest.Answer) bool { return got.Code == 200 })
	numbered := fmt.Sprintf("o-%s-numbered", run)
	send("orders", numbered, fmt.Appendf(nil, `{"id":%q,"product_id":%s,"quantity":1}`, numbered, numberedID))
	if p := productOf(waitOrder(numbered, func(map[string]any) bool { return true })); p["name"] != "numbered" {
		t.Fatalf("order %s with a numeric product_id got product %v, want product %s", numbered, p, numberedID)
	}

	// 4. A product update applies to orders after it and re-emits nothing.
	putProduct(1, 99)
	waitProduct(product(1), func(got apptest.Answer) bool { return got.Code == 200 && strings.Contains(got.Body, "99") })
	updated := order(100, product(1))
	if p := productOf(waitOrder(updated, func(map[string]any) bool { return true })); p["price"] != float64(99) {
		t.Fatalf("order after the update got %v, want price 99", p)
	}
	if p := productOf(enriched(later[1])); p["price"] != float64(11) {
		t.Fatalf("an order enriched before the update changed to %v", p)
	}

	// 5. A deleted product is unknown to orders after the deletion.
	send("products", product(2), nil)
	waitProduct(product(2), func(got apptest.Answer) bool { return got.Code == 404 })
	afterDelete := order(101, product(2))
	if m := waitOrder(afterDelete, func(map[string]any) bool { return true }); m["product"] != nil {
		t.Fatalf("order after the product's deletion enriched as %v, want product null", m)
	}

	// 6. Bad orders go to the dead-letter topic with their error.
	send("orders", "bad-"+run+"-1", []byte("not json at all"))
	send("orders", "bad-"+run+"-2", []byte(`{"id":"x","quantity":1}`))
	send("orders", "bad-"+run+"-3", []byte(`{"id":"y","product_id":null}`))
	want := map[string]string{
		"bad-" + run + "-1": "not JSON",
		"bad-" + run + "-2": "no product_id",
		"bad-" + run + "-3": "product_id null is not a string or a number",
	}
	dlq := testkafka.Client(t, brokers, kgo.ConsumeTopics("order-notes-enrich-dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	deadline := time.Now().Add(60 * time.Second)
	for len(want) > 0 && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		dlq.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "streamrt.error" && strings.Contains(string(h.Value), want[string(r.Key)]) && want[string(r.Key)] != "" {
					delete(want, string(r.Key))
				}
			}
		})
		cancel()
	}
	if len(want) > 0 {
		t.Fatalf("bad orders missing from the dead-letter topic or without their error: %v", want)
	}

	// 7. Every order was enriched exactly once: the table's topic holds one
	// record per order of this run.
	seen := map[string]int{}
	out := testkafka.Client(t, brokers, kgo.ConsumeTopics("enriched-orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		n := 0
		out.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if strings.Contains(string(r.Key), run) {
				seen[string(r.Key)]++
			}
			n++
		})
		cancel()
		if n == 0 && len(seen) > 0 {
			break
		}
	}
	if len(seen) != 28 {
		t.Fatalf("%d orders of this run enriched, want 28", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("order %s enriched %d times", id, n)
		}
	}
	// Both instances took part: each order is served from the state of
	// the owner that the metadata names, whichever instance is asked, and
	// each instance owns some orders and processed some.
	owned := map[string]int{}
	for id := range seen {
		md := instances[0].Get("/v1/metadata/stores/enriched-orders-store/keys/" + url.PathEscape(id))
		var meta struct{ Active *struct{ Address string } }
		if err := json.Unmarshal([]byte(md.Body), &meta); err != nil || md.Code != 200 || meta.Active == nil {
			t.Fatalf("metadata of order %s: %d %s", id, md.Code, md.Body)
		}
		for _, in := range instances {
			if got := in.Store("enriched-orders-store", id); got.Code != 200 || got.ServedBy != meta.Active.Address {
				t.Fatalf("order %s asked of %s: %d, served by %q; want 200 from its owner %s", id, in.Addr, got.Code, got.ServedBy, meta.Active.Address)
			}
		}
		owned[meta.Active.Address]++
	}
	processed := 0.0
	for _, in := range instances {
		n := in.Metric("streamrt_records_in_total", "stage", "enrich")
		t.Logf("instance %s owns %d orders of the run and processed %v orders", in.Addr, owned[in.Addr], n)
		if owned[in.Addr] == 0 || n <= 0 {
			t.Errorf("instance %s owns %d orders and processed %v: want both instances to take part", in.Addr, owned[in.Addr], n)
		}
		processed += n
	}
	// 28 good orders and 3 bad ones, each processed once; a shared
	// cluster's topic may hold orders of earlier runs.
	if processed < 31 || (!testkafka.Real() && processed != 31) {
		t.Errorf("%v orders processed by both instances, want 31", processed)
	}
}
