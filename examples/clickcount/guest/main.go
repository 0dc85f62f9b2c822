// Command guest is the clickcount stage: it counts clicks per page.
//
// Input: topic clicks, keyed by page. State: store click-counts, page → count
// as decimal ASCII. Output: counts (the app's configuration maps it to topic
// page-counts), page → the new count. A click with a null key fails, which
// hands it to the stage's error policy.
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o clickcount.wasm ./examples/clickcount/guest
package main

import (
	"errors"
	"fmt"
	"strconv"

	streamrt "github.com/streamrt/streamrt/sdk/go"
)

var (
	counts = streamrt.OpenStore("click-counts")
	num    []byte // the new count, reused: Put and Emit copy it
)

// The handler is registered in init: the host's _initialize runs init
// functions, and main is never called in a -buildmode=c-shared guest.
func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		if r.Key == nil {
			return errors.New("click without a page (null key)")
		}
		v, _, err := counts.Get(r.Key)
		if err != nil {
			return err
		}
		n := int64(0)
		if v != nil {
			if n, err = strconv.ParseInt(string(v), 10, 64); err != nil {
				return fmt.Errorf("count of page %q: %w", r.Key, err)
			}
		}
		num = strconv.AppendInt(num[:0], n+1, 10)
		if err := counts.Put(r.Key, num); err != nil {
			return err
		}
		return streamrt.Emit("counts", r.Key, num)
	})
}

func main() {}
