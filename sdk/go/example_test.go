//go:build !wasip1

package streamrt_test

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/streamrt/streamrt/abi"
	streamrt "github.com/streamrt/streamrt/sdk/go"
)

// A counting stage: clicks keyed by page in, running counts per page out.
// In a guest the handler is registered from func init(); here a fake host,
// which exists only in this package's tests, stands in for streamrt.
func Example() {
	host := streamrt.NewFakeHost(streamrt.FakeConfig{Stores: []string{"click-counts"}, Outputs: []string{"counts"}})

	counts := streamrt.OpenStore("click-counts")
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		if r.Key == nil {
			return errors.New("click without a page")
		}
		v, _, err := counts.Get(r.Key)
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(string(v))
		next := strconv.AppendInt(nil, int64(n+1), 10)
		if err := counts.Put(r.Key, next); err != nil {
			return err
		}
		return streamrt.Emit("counts", r.Key, next)
	})

	host.Process(&abi.Batch{Records: []abi.Record{
		{Topic: "clicks", Key: []byte("home")},
		{Topic: "clicks", Key: []byte("docs")},
		{Topic: "clicks", Key: nil},
		{Topic: "clicks", Key: []byte("home")},
	}})
	for _, e := range host.Emitted() {
		fmt.Printf("%s: %s=%s (record %d)\n", e.Output, e.Key, e.Value, e.Rec)
	}
	for _, e := range host.RecordErrors() {
		fmt.Printf("record %d failed: %s\n", e.Rec, e.Msg)
	}
	// Output:
	// counts: home=1 (record 0)
	// counts: docs=1 (record 1)
	// counts: home=2 (record 3)
	// record 2 failed: click without a page
}
