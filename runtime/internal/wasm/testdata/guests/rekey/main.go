// Command rekey is a test guest for repartitioning: it emits each record's
// value as the key of a new record, to output "rekeyed" (which the app maps
// to another stage's repartition topic).
package main

import streamrt "github.com/streamrt/streamrt/sdk/go"

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		return streamrt.Emit("rekeyed", r.Value, r.Key)
	})
}

func main() {}
