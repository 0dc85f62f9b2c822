package instrument

import (
	"testing"

	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// BenchmarkInterruptible measures rewriting the Go identity test guest, as
// Compile does before wazero compiles it (or finds it in its cache).
func BenchmarkInterruptible(b *testing.B) {
	wasm := guesttest.Build(b, "identity")
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Interruptible(wasm); err != nil {
			b.Fatal(err)
		}
	}
}
