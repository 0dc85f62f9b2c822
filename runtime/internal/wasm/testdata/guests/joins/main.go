// Command joins is a test guest for the join semantics, in one of two modes
// chosen by the tables its stage declares:
//
//   - table "users": a stream–table join of each input record (a click keyed
//     by user) with the user; output "left" gets value|user (or value|null),
//     output "inner" gets value|user only when the user exists;
//   - tables "left" and "right", whose topics are also the stage's inputs: a
//     table–table join; on an update to either side, output "joined" gets
//     left+right for the key, or a tombstone when either side is missing.
package main

import (
	"errors"

	streamrt "github.com/streamrt/streamrt/sdk/go"
)

var (
	users       = streamrt.OpenTable("users")
	left, right = streamrt.OpenTable("left"), streamrt.OpenTable("right")
	buf         []byte
)

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		user, err := users.Lookup(r.Key)
		switch {
		case err == nil:
			buf = append(append(buf[:0], r.Value...), '|')
			if user == nil {
				return streamrt.Emit("left", r.Key, append(buf, "null"...))
			}
			buf = append(buf, user...)
			if err := streamrt.Emit("left", r.Key, buf); err != nil {
				return err
			}
			return streamrt.Emit("inner", r.Key, buf)
		case !errors.Is(err, streamrt.ErrUnknownStore):
			return err
		}
		l, err := left.Lookup(r.Key)
		if err != nil {
			return err
		}
		rv, err := right.Lookup(r.Key)
		if err != nil {
			return err
		}
		if l == nil || rv == nil {
			return streamrt.Emit("joined", r.Key, nil)
		}
		buf = append(append(append(buf[:0], l...), '+'), rv...)
		return streamrt.Emit("joined", r.Key, buf)
	})
}

func main() {}
