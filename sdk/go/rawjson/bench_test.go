package rawjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// An order and a product as the order-notes benchmark writes them
// (runtime/tables_bench_test.go).
var (
	benchOrder   = []byte(`{"id":"o0000042","product_id":"p001234","customer_id":"c04321","quantity":3}`)
	benchProduct = []byte(`{"id":"p001234","name":"Product 001234, standard edition","price":235.34}`)
)

// enrich is the order-notes stage's work on one order (without the table
// lookup): the product id's text, and the order with the product added.
func enrich(out, key, order, product []byte) ([]byte, []byte, error) {
	o, err := Parse(order)
	if err != nil {
		return out, key, err
	}
	id, ok := o.Get("product_id")
	if !ok {
		return out, key, fmt.Errorf("no product_id")
	}
	key, _ = id.AppendUnquoted(key[:0])
	p, err := Parse(product)
	if err != nil {
		return out, key, err
	}
	out, err = Set(out[:0], o, "product", p)
	return out, key, err
}

// The enrichment allocates nothing once its buffers have grown.
func TestEnrichAllocatesNothing(t *testing.T) {
	var out, key []byte
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if out, key, err = enrich(out, key, benchOrder, benchProduct); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per order, want 0", allocs)
	}
	v := mustParse(t, `{"s":"a\u00e9\ud83d\ude00","n":-12.5e3,"i":42}`)
	allocs = testing.AllocsPerRun(100, func() {
		s, _ := v.Get("s")
		key, _ = s.AppendUnquoted(key[:0])
		_ = s.EqualString("x")
		n, _ := v.Get("n")
		_, _ = n.Float()
		i, _ := v.Get("i")
		_, _ = i.Int()
		var b Builder
		b.Reset(out[:0])
		b.StartObject()
		b.Key("s")
		b.StringBytes(key)
		b.Key("f")
		b.Float(1.25)
		b.EndObject()
		out = b.Bytes()
	})
	if allocs != 0 {
		t.Errorf("%v allocations for getters and a Builder, want 0", allocs)
	}
}

func BenchmarkEnrich(b *testing.B) {
	var out, key []byte
	b.SetBytes(int64(len(benchOrder) + len(benchProduct)))
	b.ReportAllocs()
	for b.Loop() {
		out, key, _ = enrich(out, key, benchOrder, benchProduct)
	}
}

// BenchmarkEnrichEncodingJSON is the same work as the stage did it before
// this package: decoding into a map of raw messages, a second decoding for
// the product id, and encoding the map.
func BenchmarkEnrichEncodingJSON(b *testing.B) {
	b.SetBytes(int64(len(benchOrder) + len(benchProduct)))
	b.ReportAllocs()
	for b.Loop() {
		var order map[string]json.RawMessage
		if err := json.Unmarshal(benchOrder, &order); err != nil {
			b.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(order["product_id"]))
		dec.UseNumber()
		var id any
		if err := dec.Decode(&id); err != nil {
			b.Fatal(err)
		}
		order["product"] = json.RawMessage(benchProduct)
		if _, err := json.Marshal(order); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.SetBytes(int64(len(benchOrder)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(benchOrder); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	o := mustParse(b, string(benchOrder))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := o.Get("product_id"); !ok {
			b.Fatal("no product_id")
		}
	}
}

func BenchmarkSet(b *testing.B) {
	o, p := mustParse(b, string(benchOrder)), mustParse(b, string(benchProduct))
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		out, _ = Set(out[:0], o, "product", p)
	}
}

func BenchmarkBuilder(b *testing.B) {
	var bld Builder
	b.ReportAllocs()
	for b.Loop() {
		bld.Reset(bld.Bytes()[:0])
		bld.StartObject()
		bld.Key("id")
		bld.String("o0000042")
		bld.Key("note")
		bld.String("a \"quoted\" note\n")
		bld.Key("quantity")
		bld.Int(3)
		bld.Key("price")
		bld.Float(235.34)
		bld.EndObject()
	}
}
