package wasm

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadID returns the id of the calling thread.
func threadID() int32 { return int32(unix.Gettid()) }

// threadCPU returns the CPU time thread tid of this process has used, read
// from its CPU clock (the clock id pthread_getcpuclockid makes from a
// thread id), and false when the thread is gone.
func threadCPU(tid int32) (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(^tid<<3|6, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
