//go:build unix

package engine

import (
	"testing"
	"time"

	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// BenchmarkASStoreGetPut is BenchmarkRustStoreGetPut's measure for the
// AssemblyScript counter guest (sdk/assemblyscript/testdata/counter): run
// both in one go test to have Go, Rust and AssemblyScript side by side.
func BenchmarkASStoreGetPut(b *testing.B) {
	bin := guesttest.BuildAS(b, guesttest.ASDir("testdata/counter"))
	recs := benchRecords(benchKeys, benchKeys, "key-%05d")
	for _, d := range []time.Duration{0, benchDeadline} {
		b.Run("guest=assemblyscript/"+deadlineName(d), func(b *testing.B) {
			tk := newBenchTaskOf(b, "assemblyscript", bin, d)
			for i := 0; i < len(recs); i += benchCycle * benchBatch {
				if err := tk.process(recs[i:min(i+benchCycle*benchBatch, len(recs))]); err != nil {
					b.Fatal(err)
				}
				commitCycle(b, tk)
			}
			timePairs(b, tk, recs)
			tx := tk.env.db.NewTxn()
			v, _, err := tx.Get(tk.stores[0], []byte("key-00000"), nil)
			tx.Discard()
			if err != nil || len(v) == 0 {
				b.Fatalf("count of key-00000: %q, %v", v, err)
			}
		})
	}
}
