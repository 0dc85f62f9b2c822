//go:build !linux

package wasm

import "time"

// threadID returns 0: the deadline counts wall time on this system.
func threadID() int32 { return 0 }

// threadCPU reports that this system offers no per-thread CPU clock that
// another thread can read, so the deadline counts wall time instead.
func threadCPU(int32) (time.Duration, bool) { return 0, false }
