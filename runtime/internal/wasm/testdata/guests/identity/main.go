// Command identity is a test guest: it emits every record unchanged (key,
// value, headers, timestamp inherited) to output "out".
package main

import streamrt "github.com/streamrt/streamrt/sdk/go"

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		return streamrt.Emit("out", r.Key, r.Value, streamrt.WithHeaders(r.Headers...))
	})
}

func main() {}
