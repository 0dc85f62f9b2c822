//go:build unix

package runtime_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/config"
)

// BenchmarkExactlyOnceCost measures clickcount's throughput under
// exactly_once against at_least_once, on the workload of BenchmarkEndToEnd
// (-streamrt.e2e-records records over 1,000 keys, default commit interval
// and batch size, the default batch deadline).
//
// Each iteration pre-fills one input topic (untimed) and runs clickcount
// over it three times, each as a new app (its own group, changelog, output
// topic and state directory): at_least_once, exactly_once, at_least_once.
// x-alo is the exactly_once rate over the mean of the two at_least_once runs
// around it; 1 - x-alo is the cost of exactly_once.
//
// A run ends when the output's end offsets add up to the input's record
// count. Under exactly_once each transaction also puts a commit marker in
// every output partition it wrote, so the run ends a few hundred records
// early (one marker per partition per commit interval, 0.04% of 500,000
// records in a five-second run): the figure flatters exactly_once by that.
func BenchmarkExactlyOnceCost(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark: moves hundreds of thousands of records through a broker; skipped with -short")
	}
	brokers := testkafka.Brokers(b)
	warmModules(b)
	warmBroker(b, brokers)
	n := *e2eRecords
	var alo, eos, aloCPU, eosCPU, eosCommit time.Duration
	var aloRuns, eosCommits int
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		base := testkafka.Name(b, "bench-eos")
		in := base + "-in"
		createTopics(b, brokers, in)
		prefill(b, brokers, in, n)
		b.StartTimer()
		for i, g := range []config.Guarantee{config.AtLeastOnce, config.ExactlyOnce, config.AtLeastOnce} {
			app := fmt.Sprintf("%s-%d", base, i)
			createTopics(b, brokers, app+"-out")
			deleteTopics(b, brokers, config.ChangelogTopic(app, "counts"))
			st := e2eStage{name: "clickcount", guest: "counter", stores: []string{"counts"}, deadline: config.DefaultBatchDeadline, guarantee: g}
			r := runApp(b, brokers, app, in, app+"-out", st, n)
			if g == config.ExactlyOnce {
				eos += r.took
				eosCPU += r.cpu
				eosCommit += r.commit
				eosCommits += r.commits
			} else {
				alo += r.took
				aloCPU += r.cpu
				aloRuns++
			}
		}
		b.StopTimer()
	}
	total := float64(n * b.N)
	eosRate := total / eos.Seconds()
	aloRate := float64(n*aloRuns) / alo.Seconds()
	b.ReportMetric(eosRate, "eos-records/s")
	b.ReportMetric(aloRate, "alo-records/s")
	b.ReportMetric(eosRate/aloRate, "x-alo")
	b.ReportMetric(float64(eosCPU.Microseconds())/total, "eos-cpu-us/record")
	b.ReportMetric(float64(aloCPU.Microseconds())/float64(n*aloRuns), "alo-cpu-us/record")
	if eosCommits > 0 {
		b.ReportMetric(float64(eosCommit.Milliseconds())/float64(eosCommits), "eos-ms/commit")
	}
}
