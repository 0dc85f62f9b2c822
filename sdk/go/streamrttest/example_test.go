package streamrttest_test

import (
	"errors"
	"fmt"
	"strconv"
	"testing"

	streamrt "github.com/streamrt/streamrt/sdk/go"
	"github.com/streamrt/streamrt/sdk/go/streamrttest"
)

// count is the clickcount stage's handler: a running count per page in
// store "click-counts", the new count out to output "counts". A stage
// registers it with streamrt.HandleRecord from func init(); here it is
// given to the harness directly.
func count(r *streamrt.Record) error {
	if r.Key == nil {
		return errors.New("click without a page")
	}
	counts := streamrt.OpenStore("click-counts")
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
}

func Example() {
	var t testing.T // in a test, the *testing.T it is given
	h := streamrttest.New(&t, streamrttest.Config{
		Stores:  []string{"click-counts"},
		Outputs: []string{"counts"},
		Record:  count, // leave out to run the handler registered from init
	})
	defer h.Close() // a test's cleanup does this
	h.Feed("clicks", []byte("home"), nil, 1000)
	h.Feed("clicks", []byte("home"), nil, 2000)
	h.Feed("clicks", nil, nil, 3000) // fails: dead-lettered by the default policy

	for _, m := range h.Output("counts") {
		fmt.Printf("%s=%s at %d\n", m.Key, m.Value, m.Timestamp)
	}
	v, _ := h.Get("click-counts", []byte("home"))
	fmt.Printf("stored %s\n", v)
	for _, d := range h.DeadLetters() {
		why, _ := d.Header("streamrt.error")
		fmt.Printf("dead letter at %d: %s\n", d.Timestamp, why)
	}
	// Output:
	// home=1 at 1000
	// home=2 at 2000
	// stored 2
	// dead letter at 3000: click without a page
}
