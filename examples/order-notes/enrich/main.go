// Command enrich is the order-notes stage: it left-joins each order with
// its product from the global table products and emits the enriched order.
//
// Input: topic orders, keyed by order id, value
// {"id","product_id","customer_id","quantity"}. Table: products (global),
// keyed by product id, value {"id","name","price"}. Output: enriched, the
// order's fields plus "product": the product, or null when it is unknown.
// The product id is a string's text, or a number as written (7 and 7.0 are
// different products). An order that is not JSON or whose product_id is
// missing or of another kind fails, which hands it to the stage's error
// policy (a dead-letter topic in this example).
//
// ../enrich-rust is the same stage in Rust; the test runs the app with each.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	streamrt "github.com/streamrt/streamrt/sdk/go"
)

var products = streamrt.OpenTable("products")

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		var order map[string]json.RawMessage
		if err := json.Unmarshal(r.Value, &order); err != nil {
			return fmt.Errorf("order is not JSON: %w", err)
		}
		raw, ok := order["product_id"]
		if !ok {
			return errors.New("order has no product_id")
		}
		productID, err := productKey(raw)
		if err != nil {
			return err
		}
		product, err := products.Lookup([]byte(productID))
		if err != nil {
			return err
		}
		order["product"] = json.RawMessage("null")
		if product != nil {
			order["product"] = json.RawMessage(product)
		}
		out, err := json.Marshal(order)
		if err != nil {
			return err
		}
		return streamrt.Emit("enriched", r.Key, out)
	})
}

// productKey returns the table key of a product_id value.
func productKey(raw json.RawMessage) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	// A number's key is its text as written, not a float64's formatting.
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err == nil {
		switch v := v.(type) {
		case string:
			return v, nil
		case json.Number:
			return v.String(), nil
		}
	}
	return "", fmt.Errorf("product_id %s is not a string or a number", raw)
}

func main() {}
