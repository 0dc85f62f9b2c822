package rawjson_test

import (
	"fmt"

	"github.com/streamrt/streamrt/sdk/go/rawjson"
)

// Enriching an order as the order-notes stage does: read a member, look
// its text up, and add a member to the order without re-encoding it.
func Example() {
	order, err := rawjson.Parse([]byte(`{"id":"o1", "product_id":"p\u0031", "quantity":2}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	id, _ := order.Get("product_id")
	key, _ := id.AppendUnquoted(nil) // escapes undone: p1
	qty, _ := order.Get("quantity")
	n, _ := qty.Int()
	fmt.Printf("product %s, quantity %d\n", key, n)

	product, _ := rawjson.Parse([]byte(`{"id":"p1","price":9.5}`))
	out, _ := rawjson.Set(nil, order, "product", product)
	fmt.Println(string(out))

	_, err = rawjson.Parse([]byte(`{"id":"o2",}`))
	fmt.Println(err)
	// Output:
	// product p1, quantity 2
	// {"id":"o1", "product_id":"p\u0031", "quantity":2,"product":{"id":"p1","price":9.5}}
	// invalid character '}' looking for the beginning of an object member's name at byte 11
}

func ExampleBuilder() {
	var b rawjson.Builder
	b.StartObject()
	b.Key("order")
	b.String(`o"1`)
	b.Key("lines")
	b.StartArray()
	b.Int(2)
	b.Float(0.5)
	b.Null()
	b.EndArray()
	b.EndObject()
	fmt.Println(string(b.Bytes()))
	// Output:
	// {"order":"o\"1","lines":[2,0.5,null]}
}

func ExampleValue_Members() {
	v, _ := rawjson.Parse([]byte(`{"a": 1, "b": [true, "x"]}`))
	for name, value := range v.Members() {
		text, _ := name.Unquote()
		fmt.Println(text, value.Kind(), string(value.Raw()))
	}
	// Output:
	// a number 1
	// b array [true, "x"]
}
