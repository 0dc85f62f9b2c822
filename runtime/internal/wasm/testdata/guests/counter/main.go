// Command counter is a test guest: it counts records per key in store
// "counts" (decimal ASCII) and emits key → new count to output "out". A
// record with a null key fails.
package main

import (
	"errors"
	"fmt"
	"strconv"

	streamrt "github.com/streamrt/streamrt/sdk/go"
)

var (
	counts = streamrt.OpenStore("counts")
	num    []byte
)

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		if r.Key == nil {
			return errors.New("null key")
		}
		v, _, err := counts.Get(r.Key)
		if err != nil {
			return err
		}
		n := int64(0)
		if v != nil {
			if n, err = strconv.ParseInt(string(v), 10, 64); err != nil {
				return fmt.Errorf("count of key %q: %w", r.Key, err)
			}
		}
		num = strconv.AppendInt(num[:0], n+1, 10)
		if err := counts.Put(r.Key, num); err != nil {
			return err
		}
		return streamrt.Emit("out", r.Key, num)
	})
}

func main() {}
