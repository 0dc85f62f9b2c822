// Package bench holds benchmarks that run streamrt beside other systems as
// separate processes on one real Kafka. BenchmarkCompare (compare_test.go)
// runs the plain pipe (bench/pipe), the streamrt CLI and a Kafka Streams app
// (bench/kstreams, built into one jar by bench/kstreams/build.sh) over the same
// input and reports each one's throughput, CPU time and peak memory;
// BENCHMARKS.md ("Side by side") has the commands and figures.
package bench
