// Command faulty is a test guest that misbehaves on request, by record
// value:
//
//	panic  panics (the SDK turns it into a record error "panic: faulty: asked to panic")
//	loop   loops forever (for the host's CPU deadline)
//	oom    allocates until memory runs out (the runtime aborts: a trap)
//	fail   returns the error "bad record"
//	exit   calls os.Exit(3)
//	putfail  puts and emits, then returns the error "failed after writing"
//	         (the host must undo its effects)
//
// Any other record is emitted unchanged to output "out", and its value is
// put under its key in store "seen".
package main

import (
	"errors"
	"os"

	streamrt "github.com/streamrt/streamrt/sdk/go"
)

var (
	seen = streamrt.OpenStore("seen")
	hog  [][]byte // reachable from a global, so the collector cannot free it
)

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		switch string(r.Value) {
		case "panic":
			panic("faulty: asked to panic")
		case "loop":
			for {
			}
		case "oom":
			for {
				hog = append(hog, make([]byte, 1<<20))
			}
		case "fail":
			return errors.New("bad record")
		case "exit":
			os.Exit(3)
		case "putfail":
			if err := seen.Put(r.Key, r.Value); err != nil {
				return err
			}
			if err := streamrt.Emit("out", r.Key, r.Value); err != nil {
				return err
			}
			return errors.New("failed after writing")
		}
		if err := streamrt.Emit("out", r.Key, r.Value, streamrt.WithHeaders(r.Headers...)); err != nil {
			return err
		}
		return seen.Put(r.Key, r.Value)
	})
}

func main() {}
