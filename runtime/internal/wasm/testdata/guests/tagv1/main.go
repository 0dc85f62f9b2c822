// Command tagv1 is a test guest for live module swaps: it emits every record
// to output "out" with its value prefixed by "v1:", so the output shows which
// module version processed each record. Its query handler answers every
// route with "v1", so that a route shows which version serves it.
package main

import streamrt "github.com/streamrt/streamrt/sdk/go"

var buf []byte

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		buf = append(append(buf[:0], "v1:"...), r.Value...)
		return streamrt.Emit("out", r.Key, buf)
	})
	streamrt.HandleQuery(func(*streamrt.Query) streamrt.Response {
		return streamrt.Response{ContentType: "text/plain", Body: []byte("v1")}
	})
}

func main() {}
