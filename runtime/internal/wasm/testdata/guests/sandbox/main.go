// Command sandbox is a test guest that tries to reach outside its
// sandbox, as the record's key asks, with the record's value as the file
// or address:
//
//	read      reads the file
//	write     creates the file and writes to it
//	list      lists the directory
//	dial      opens a TCP connection to the address
//	env       reads the environment (the value is unused)
//
// It emits to output "out" what it got: "ok: " and the result, or "err: "
// and the error.
package main

import (
	"net"
	"os"
	"strings"

	streamrt "github.com/streamrt/streamrt/sdk/go"
)

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		got, err := try(string(r.Key), string(r.Value))
		result := "ok: " + got
		if err != nil {
			result = "err: " + err.Error()
		}
		return streamrt.Emit("out", r.Key, []byte(result))
	})
}

func try(what, arg string) (string, error) {
	switch what {
	case "read":
		b, err := os.ReadFile(arg)
		return string(b), err
	case "write":
		return "written", os.WriteFile(arg, []byte("escaped"), 0o644)
	case "list":
		entries, err := os.ReadDir(arg)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return strings.Join(names, ","), err
	case "dial":
		c, err := net.Dial("tcp", arg)
		if err != nil {
			return "", err
		}
		defer c.Close()
		_, err = c.Write([]byte("escaped"))
		return "connected", err
	case "env":
		return strings.Join(os.Environ(), ","), nil
	}
	return "", os.ErrInvalid
}

func main() {}
