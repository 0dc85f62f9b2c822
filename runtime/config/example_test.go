package config_test

import (
	"fmt"

	"github.com/streamrt/streamrt/runtime/config"
)

func ExampleParse() {
	cfg, err := config.Parse([]byte(`
app: clickcount
brokers: [127.0.0.1:9092]
stages:
  - name: count
    module: testdata/guest.wasm
    inputs: [clicks]
    outputs: {counts: page-counts}
`), "clickcount.yaml", []string{"STREAMRT_PARTITIONS=8"}, map[string]string{"http": "127.0.0.1:7171"})
	if err != nil {
		fmt.Println(err)
		return
	}
	s, _ := cfg.Stage("count")
	fmt.Println(cfg.App, cfg.Brokers, cfg.HTTP, cfg.Partitions, cfg.Guarantee)
	fmt.Println(s.Inputs, s.Outputs, s.ErrorPolicy, s.BatchSize, s.MemoryLimit>>20, s.BatchDeadline)
	// Output:
	// clickcount [127.0.0.1:9092] 127.0.0.1:7171 8 at_least_once
	// [clicks] map[counts:page-counts] fail 500 64 5s
}

func ExampleError() {
	_, err := config.Parse([]byte(`
app: clickcount
brokers: [127.0.0.1:9092]
partitons: 3
stages:
  - name: count
    module: testdata/guest.wasm
    inputs: [clicks]
    batch_size: -3
    memory_limit: 64XB
    dead_letter_topic: clicks-dlq
`), "clickcount.yaml", []string{"STREAMRT_COMMIT_INTERVAL=100"}, map[string]string{"http": "localhost"})
	fmt.Println(err)
	// Output:
	// clickcount.yaml: partitons: unknown key (did you mean partitions?)
	// clickcount.yaml: STREAMRT_COMMIT_INTERVAL: must be a duration with a unit, such as 100ms or 5s, got "100"
	// clickcount.yaml: stages[0].memory_limit: must be a size such as 64MiB (units B, KiB, MiB, GiB, KB, MB, GB), got "64XB"
	// clickcount.yaml: --http: must be host:port, got "localhost"
	// clickcount.yaml: stages[0].dead_letter_topic: only allowed with error_policy dead_letter, not fail
	// clickcount.yaml: stages[0].batch_size: must be between 1 and 100000, got -3
}
