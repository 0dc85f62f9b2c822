package main

import "testing"

// products is the table of the Rust stage's unit tests (enrich-rust).
var products = map[string][]byte{
	"p1":         []byte(`{"id":"p1", "name":"widget", "price":10}`),
	"p\"2\u00e9": []byte(`{"id":"p\"2\u00e9"}`),
	"7":          []byte(`{"id":7}`),
	"not json":   []byte(`{oops`),
}

func lookup(key []byte) ([]byte, error) { return products[string(key)], nil }

// The Rust stage's cases: the same orders enrich to the same objects; the
// bytes differ where the Rust stage drops whitespace and moves "product"
// last.
func TestEnrichesOrdersWithTheirProductOrNull(t *testing.T) {
	e := enricher{lookup: lookup}
	for _, tc := range []struct{ order, want string }{
		{`{"id":"o0","product_id":"p1","customer_id":"c0","quantity":1}`,
			`{"id":"o0","product_id":"p1","customer_id":"c0","quantity":1,"product":{"id":"p1", "name":"widget", "price":10}}`},
		{`{"id":"o1","product_id":"p9","quantity":2}`,
			`{"id":"o1","product_id":"p9","quantity":2,"product":null}`},
		// Escapes in the product id are undone before the lookup, and the
		// order is kept as written.
		{` { "id" : "o2", "product_id" : "p\"2\u00e9", "note" : "a  b\"" } `,
			`{ "id" : "o2", "product_id" : "p\"2\u00e9", "note" : "a  b\"","product":{"id":"p\"2\u00e9"}}`},
		{`{"id":"o3","product_id":7}`, `{"id":"o3","product_id":7,"product":{"id":7}}`},
		{`{"id":"o4","product_id":7.0}`, `{"id":"o4","product_id":7.0,"product":null}`},
		// A "product" the order had is replaced, in its place, and only one
		// is left; the last product_id counts.
		{`{"product":{"id":"fake"},"product_id":"p9","produc\u0074":1,"product_id":"p1"}`,
			`{"product":{"id":"p1", "name":"widget", "price":10},"product_id":"p9","product_id":"p1"}`},
	} {
		got, err := e.enrich([]byte(tc.order))
		if err != nil || string(got) != tc.want {
			t.Errorf("enrich(%s)\n got %s, %v\nwant %s", tc.order, got, err, tc.want)
		}
	}
}

// The Rust stage's dead-letter cases, with its messages.
func TestRefusesBadOrdersWithTheirError(t *testing.T) {
	e := enricher{lookup: lookup}
	for _, tc := range []struct{ order, want string }{
		{"not json at all", "order is not JSON: invalid character 'o' in literal null at byte 1"},
		{`{"id":"x","quantity":1}`, "order has no product_id"},
		{`{"id":"x","product_id":"p1"`, "order is not JSON: unexpected end of input after an object member at byte 27"},
		{`["product_id","p1"]`, "order is an array, not a JSON object"},
		{`"p1"`, "order is a string, not a JSON object"},
		{`null`, "order is null, not a JSON object"},
		{`{"product_id":null}`, "product_id null is not a string or a number"},
		{`{"product_id":{"id":"p1"}}`, `product_id {"id":"p1"} is not a string or a number`},
		{`{"product_id":true}`, "product_id true is not a string or a number"},
		{`{"product_id":"not json"}`, `product "not json" is not JSON: invalid character 'o' looking for the beginning of an object member's name at byte 1`},
		// A tombstone is no more JSON than an empty value.
		{"", "order is not JSON: unexpected end of input looking for the beginning of a value at byte 0"},
	} {
		got, err := e.enrich([]byte(tc.order))
		if err == nil || err.Error() != tc.want {
			t.Errorf("enrich(%s) = %s, %v; want error %q", tc.order, got, err, tc.want)
		}
	}
	if _, err := e.enrich(nil); err == nil {
		t.Errorf("a tombstone enriched")
	}
}

// Once its buffers have grown, the stage allocates nothing per order.
func TestEnrichAllocatesNothing(t *testing.T) {
	e := enricher{lookup: lookup}
	order := []byte(`{"id":"o0","product_id":"p\"2\u00e9","customer_id":"c0","quantity":1}`)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := e.enrich(order); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per order, want 0", allocs)
	}
}
