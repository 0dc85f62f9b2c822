//go:build unix

package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// The order-notes enrich stage's per-record path in Wasm: the guest's cost
// per order, without Kafka, Pebble or the engine (BenchmarkOrderNotesEnrich
// in package runtime has those).

// enrichProducts is how many products the host's table holds; each order
// names one of them, or, for one order in twenty, one it lacks, as in
// BenchmarkOrderNotesEnrich.
const enrichProducts = 1000

// encodingJSONEnrichSource is the enrich stage as it was written with
// encoding/json, kept as the baseline of BenchmarkGuestEnrich.
const encodingJSONEnrichSource = `package main

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

func productKey(raw json.RawMessage) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
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
`

// lookupEmitSource does what the enrich stage does around its JSON: one
// lookup in the products table (always of a product it holds) and one emit
// of the order as it came, with no JSON at all.
const lookupEmitSource = `package main

import streamrt "github.com/streamrt/streamrt/sdk/go"

var (
	products = streamrt.OpenTable("products")
	key      = []byte("p000001")
)

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		if _, err := products.Lookup(key); err != nil {
			return err
		}
		return streamrt.Emit("enriched", r.Key, r.Value)
	})
}

func main() {}
`

// enrichExampleDir is the example's own enrich stage.
func enrichExampleDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "examples", "order-notes", "enrich")
}

// enrichHost is benchHost with the products table.
type enrichHost struct {
	benchHost
	products map[string][]byte
}

func (h *enrichHost) OpenStore(name string) (int32, abi.Code) {
	if name != "products" {
		return 0, abi.ErrUnknownStore
	}
	return 0, abi.OK
}

func (h *enrichHost) Get(_ int32, key []byte) ([]byte, abi.Code) {
	if v, ok := h.products[string(key)]; ok {
		return v, abi.OK
	}
	return nil, abi.ErrNotFound
}

// newEnrichBatch returns benchRecords orders as BenchmarkOrderNotesEnrich
// writes them (about 75 bytes), and the products they name.
func newEnrichBatch() (*benchBatch, map[string][]byte) {
	products := make(map[string][]byte, enrichProducts)
	for i := range enrichProducts {
		id := fmt.Sprintf("p%06d", i)
		products[id] = fmt.Appendf(nil, `{"id":%q,"name":"Product %06d, standard edition","price":%d.%02d}`, id, i, 1+i%500, i%100)
	}
	b := &benchBatch{topics: []string{"orders"}}
	for i := range benchRecords {
		id := fmt.Sprintf("o%07d", i)
		p := (i * 7919) % enrichProducts
		if i%20 == 0 {
			p = enrichProducts + i // not in the table
		}
		b.keys = append(b.keys, []byte(id))
		b.values = append(b.values, fmt.Appendf(nil, `{"id":%q,"product_id":"p%06d","customer_id":"c%05d","quantity":%d}`, id, p, (i*31)%50_000, 1+i%9))
	}
	return b, products
}

// BenchmarkGuestEnrich measures the order-notes enrich guest per order: a
// 500-order batch, each order looked up in a products table of the host's
// (a map) and emitted enriched to a host that copies it, with the batch
// deadline off and on. The cases:
//
//	example                 examples/order-notes/enrich as it is now
//	baseline=encoding-json  the stage as written with encoding/json
//	baseline=lookup-emit    one lookup and one emit per order, no JSON
//
// The guest's JSON costs the difference between a case and lookup-emit.
func BenchmarkGuestEnrich(b *testing.B) {
	cases := []struct {
		name string
		wasm []byte
	}{
		{"example", guesttest.BuildDir(b, enrichExampleDir())},
		{"baseline=encoding-json", buildSource(b, "enrich-encoding-json", encodingJSONEnrichSource)},
		{"baseline=lookup-emit", buildSource(b, "lookup-emit", lookupEmitSource)},
	}
	for _, tc := range cases {
		for _, d := range []time.Duration{0, benchDeadline} {
			b.Run(tc.name+"/"+deadlineName(d), func(b *testing.B) {
				inst := instantiate(b, newBenchEngine(b, d), tc.name, tc.wasm)
				batch, products := newEnrichBatch()
				h := &enrichHost{benchHost: benchHost{buf: make([]byte, 0, 256<<10)}, products: products}
				ctx := context.Background()
				if err := inst.ProcessBatch(ctx, h, batch.size(), batch.encode); err != nil {
					b.Fatal(err)
				}
				if tc.name != "baseline=lookup-emit" {
					checkEnriched(b, h.buf, batch, products)
				}
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					h.reset()
					if err := inst.ProcessBatch(ctx, h, batch.size(), batch.encode); err != nil {
						b.Fatal(err)
					}
					if h.emits != benchRecords {
						b.Fatalf("%d emits, want %d", h.emits, benchRecords)
					}
				}
				n := float64(b.N * benchRecords)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/record")
				b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/n, "cpu-ns/record")
			})
		}
	}
}

// checkEnriched checks the first batch's output, which benchHost leaves as
// each emit's key and value one after the other: every order comes out
// with its members and its product, or null.
func checkEnriched(b *testing.B, out []byte, batch *benchBatch, products map[string][]byte) {
	b.Helper()
	for i, key := range batch.keys {
		if string(out[:len(key)]) != string(key) {
			b.Fatalf("emit %d: key %q, want %q", i, out[:min(len(key), len(out))], key)
		}
		out = out[len(key):]
		dec := json.NewDecoder(bytes.NewReader(out))
		var got, order map[string]any
		if err := dec.Decode(&got); err != nil {
			b.Fatalf("emit %d: %v", i, err)
		}
		out = out[dec.InputOffset():]
		if err := json.Unmarshal(batch.values[i], &order); err != nil {
			b.Fatal(err)
		}
		var want any
		if p, ok := products[order["product_id"].(string)]; ok {
			if err := json.Unmarshal(p, &want); err != nil {
				b.Fatal(err)
			}
		}
		order["product"] = want
		if !reflect.DeepEqual(got, order) {
			b.Fatalf("emit %d: %v, want %v", i, got, order)
		}
	}
}
