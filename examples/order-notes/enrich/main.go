// Command enrich is the order-notes stage: it left-joins each order with
// its product from the global table products and emits the enriched order.
//
// Input: topic orders, keyed by order id, value
// {"id","product_id","customer_id","quantity"}. Table: products (global),
// keyed by product id, value {"id","name","price"}. Output: enriched, the
// order's fields plus "product": the product, or null when it is unknown.
// An order that is not JSON or has no product_id fails, which hands it to
// the stage's error policy (a dead-letter topic in this example).
package main

import (
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
		var productID string
		if err := json.Unmarshal(raw, &productID); err != nil {
			return fmt.Errorf("product_id is not a string: %w", err)
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

func main() {}
