// Command enrich is the order-notes stage: it left-joins each order with
// its product from the global table products and emits the enriched order.
//
// Input: topic orders, keyed by order id, value
// {"id","product_id","customer_id","quantity"}. Table: products (global),
// keyed by product id, value {"id","name","price"}. Output: enriched, the
// order's fields plus "product": the product, or null when it is unknown.
// The product id is a string's text, or a number as written (7 and 7.0 are
// different products). An order that is not a JSON object or whose
// product_id is missing or of another kind fails, which hands it to the
// stage's error policy (a dead-letter topic in this example); so does one
// whose product is in the table but is not JSON.
//
// The enriched order is the order as written, with "product" added after
// its other members (or put in place of a "product" member it had), read
// and written with the SDK's rawjson: nothing is decoded into maps or
// re-encoded, and nothing is allocated per order.
//
// ../enrich-rust is the same stage in Rust; the test runs the app with each.
// Their outputs are the same JSON objects, but not the same bytes: the Rust
// stage drops the whitespace between tokens.
package main

import (
	"errors"
	"fmt"

	streamrt "github.com/streamrt/streamrt/sdk/go"
	"github.com/streamrt/streamrt/sdk/go/rawjson"
)

var stage = enricher{lookup: streamrt.OpenTable("products").Lookup}

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		out, err := stage.enrich(r.Value)
		if err != nil {
			return err
		}
		return streamrt.Emit("enriched", r.Key, out)
	})
}

// enricher enriches orders, reusing its buffers from one order to the next
// (the host copies what Lookup and Emit are given).
type enricher struct {
	lookup   func(key []byte) ([]byte, error) // the products table's
	key, out []byte
}

// enrich returns the enriched order, valid until the next call.
func (e *enricher) enrich(value []byte) ([]byte, error) {
	order, err := rawjson.Parse(value)
	if err != nil {
		return nil, fmt.Errorf("order is not JSON: %w", err)
	}
	if order.Kind() != rawjson.Object {
		return nil, fmt.Errorf("order is %s, not a JSON object", describe(order.Kind()))
	}
	id, ok := order.Get("product_id")
	if !ok {
		return nil, errors.New("order has no product_id")
	}
	switch id.Kind() {
	case rawjson.String:
		e.key, _ = id.AppendUnquoted(e.key[:0])
	case rawjson.Number:
		e.key = append(e.key[:0], id.Raw()...)
	default:
		return nil, fmt.Errorf("product_id %s is not a string or a number", id.Raw())
	}
	found, err := e.lookup(e.key)
	if err != nil {
		return nil, err
	}
	var product rawjson.Value // null: the product is unknown
	if found != nil {
		if product, err = rawjson.Parse(found); err != nil {
			return nil, fmt.Errorf("product %q is not JSON: %w", e.key, err)
		}
	}
	e.out, err = rawjson.Set(e.out[:0], order, "product", product)
	return e.out, err
}

// describe names a kind of JSON value as the Rust stage's errors do.
func describe(k rawjson.Kind) string {
	switch k {
	case rawjson.Null:
		return "null"
	case rawjson.Array, rawjson.Object:
		return "an " + k.String()
	}
	return "a " + k.String()
}

func main() {}
