// Command initfail is a test guest whose initialisation fails: it has every
// export a stage needs, but its package init panics, so _initialize traps
// and the host must refuse the module.
package main

import streamrt "github.com/streamrt/streamrt/sdk/go"

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error { return nil })
	panic("initfail: refuses to start")
}

func main() {}
