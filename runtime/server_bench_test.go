//go:build unix

package runtime_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Sizes of the server-mode benchmarks (BENCHMARKS.md section 14).
var (
	serverSwaps    = flag.Int("streamrt.server-swaps", 10, "module swaps BenchmarkServerSwap makes under load")
	serverSwapRate = flag.Int("streamrt.server-swap-rate", 2_000, "records per second BenchmarkServerSwap produces while it swaps")
	rebuildRecords = flag.Int("streamrt.rebuild-records", 1_000_000, "records BenchmarkServerRebuild processes and then replays")
	serverDeploys  = flag.Int("streamrt.server-deploys", 10, "deploys BenchmarkServerDeploy times")
)

const (
	swapPartitions    = 12
	rebuildPartitions = 6
	rebuildKeys       = 10_000
	swapSettle        = 2 * time.Second // between a swap done everywhere and the next deploy
	swapWarmup        = 5 * time.Second // of steady input before the first swap
)

// BenchmarkServerSwap measures how long a live module swap stops each
// partition's processing, on three in-process servers running an
// exactly_once app (12 partitions, the default commit interval) through
// -streamrt.server-swaps swaps, while -streamrt.server-swap-rate records/s
// arrive spread evenly over the partitions. The stage is the identity test
// guest, in Go and in Rust (identityGuests).
//
// Every version is the guest with a custom section of its own, so that its
// hash differs and each server compiles it afresh, as a new build. The input
// starts once every server is in the app's group, and the first swap comes
// 5s later. Each deploy goes to the next server in turn and is followed by
// a wait until every server reports the version running, then 2s of steady
// input. After the last swap the input stops, the app's group catches up,
// and the output topic is read with read_committed.
//
// The output topic keeps the broker's append time (message.timestamp.type
// LogAppendTime): an output's timestamp is when its batch reached Kafka.
// Each input's value names its partition and sequence number there, and its
// key (keyFor) puts its output in the output partition of the same number,
// alone with the outputs of its input partition. Each output carries its
// module in the header streamrt.module.version. Per input partition, in
// input order, consecutive outputs whose offsets are not consecutive belong
// to two transactions; the gap between them is the second's append time
// less the first's. Gaps that end before the first deploy are left out (the
// app's start). Reported:
//
//   - pause-p50-ms, pause-p99-ms, pause-max-ms: the gaps where the module
//     changed, over every partition of every swap (swaps-measured);
//   - commit-gap-p50-ms, commit-gap-p99-ms, commit-gap-max-ms: the gaps
//     between two transactions of one module while no deploy is under way,
//     the pause of every cycle's commit, which a swap happens at;
//   - deploying-commit-gap-p50-ms, -p99-ms, -max-ms: the same gaps while a
//     deploy is under way (from its answer to the last server running the
//     version: the servers compile the new module meanwhile);
//   - ms/commit: the mean time of a commit cycle, from the servers' own
//     streamrt_commit_seconds (the engine processes nothing meanwhile);
//   - input-gap-ms: the mean time between two inputs of one partition, the
//     resolution of a gap;
//   - lost, repeated: inputs without a committed output, and committed
//     outputs beyond one per input (0 and 0 under exactly_once);
//   - deploy-p50-ms, deploy-max-ms: from the deploy's answer to every server
//     reporting the version running, under this load.
//
// kfake keeps the producer's timestamps whatever the topic says: there the
// gaps are not measured (the benchmark says so) and the rest is.
func BenchmarkServerSwap(b *testing.B) {
	if testing.Short() {
		b.Skip("server swap benchmark: three servers swap modules under load for a minute; skipped with -short")
	}
	for _, g := range identityGuests {
		b.Run("guest="+g.name, func(b *testing.B) { benchSwap(b, g.build(b)) })
	}
}

// identityGuests are the identity test guest in Go (2.9 MB) and in Rust
// (44 KB), whose compile and instantiation take a hundred times longer in Go.
var identityGuests = []struct {
	name  string
	build func(testing.TB) []byte
}{
	{"go", func(t testing.TB) []byte { return guesttest.Build(t, "identity") }},
	{"rust", func(t testing.TB) []byte { return guesttest.BuildRust(t, guesttest.RustDir("testdata/identity")) }},
}

func benchSwap(b *testing.B, guest []byte) {
	brokers := testkafka.Brokers(b)
	var all swapResult
	for range b.N {
		r := serverSwap(b, brokers, guest)
		all.pauses = append(all.pauses, r.pauses...)
		all.commits = append(all.commits, r.commits...)
		all.busy = append(all.busy, r.busy...)
		all.deploys = append(all.deploys, r.deploys...)
		all.lost += r.lost
		all.repeated += r.repeated
		all.inputs += r.inputs
		all.appendTimes = r.appendTimes
		all.inputGap += r.inputGap / time.Duration(b.N)
		all.commitTime += r.commitTime
		all.commitCycles += r.commitCycles
	}
	if all.appendTimes {
		reportPercentiles(b, "pause", all.pauses)
		reportPercentiles(b, "commit-gap", all.commits)
		reportPercentiles(b, "deploying-commit-gap", all.busy)
		b.ReportMetric(float64(len(all.pauses)), "swaps-measured")
	} else {
		b.Logf("the broker kept the producers' timestamps on the LogAppendTime output topic (kfake does): pauses not measured")
	}
	b.ReportMetric(ms(all.inputGap), "input-gap-ms")
	if all.commitCycles > 0 {
		b.ReportMetric(ms(all.commitTime)/float64(all.commitCycles), "ms/commit")
	}
	b.ReportMetric(float64(all.lost), "lost")
	b.ReportMetric(float64(all.repeated), "repeated")
	b.ReportMetric(float64(all.inputs), "inputs")
	slices.Sort(all.deploys)
	if len(all.deploys) > 0 {
		b.ReportMetric(ms(all.deploys[len(all.deploys)/2]), "deploy-p50-ms")
		b.ReportMetric(ms(all.deploys[len(all.deploys)-1]), "deploy-max-ms")
	}
	b.ReportMetric(0, "ns/op")
}

// swapResult is what one run of BenchmarkServerSwap saw.
type swapResult struct {
	pauses      []time.Duration // per partition and swap
	commits     []time.Duration // gaps between two transactions of one module, no deploy under way
	busy        []time.Duration // the same while a deploy was under way
	deploys     []time.Duration // deploy answered to every server running the version
	inputGap    time.Duration   // mean time between two inputs of a partition
	lost        int
	repeated    int
	inputs      int
	appendTimes bool // the outputs carry the broker's append times
	// From the servers' /metrics: time in commit cycles and their number.
	commitTime   time.Duration
	commitCycles int
}

func serverSwap(b *testing.B, brokers []string, guest []byte) swapResult {
	b.StopTimer()
	defer b.StartTimer()
	app := testkafka.Name(b, "bench-swap")
	in, out := app+"-in", app+"-out"
	testkafka.CreateTopic(b, brokers, in, swapPartitions)
	createAppendTimeTopic(b, brokers, out, swapPartitions)
	deleteTopics(b, brokers, in, out)
	c := startBenchCluster(b, brokers)
	yaml := fmt.Sprintf(`app: %s
partitions: %d
guarantee: exactly_once
stages:
  - name: main
    module: "{{main}}"
    inputs: [%s]
    outputs: {out: %s}
`, app, swapPartitions, in, out)
	defer c.purge(b, app)

	v, at := c.deploy(b, 0, app, yaml, map[string][]byte{"main": withNonce(guest, app+"-0")}, false)
	c.waitRunning(b, app, v, at)
	c.waitGroup(b, brokers, app)
	prod := produceSteady(b, brokers, in, swapPartitions, *serverSwapRate)
	c.sleep(b, swapWarmup)
	warm := time.Now()
	var deploys []window
	for i := 1; i <= *serverSwaps; i++ {
		v, at := c.deploy(b, i%benchServers, app, yaml, map[string][]byte{"main": withNonce(guest, fmt.Sprintf("%s-%d", app, i))}, false)
		took := slices.Max(c.waitRunning(b, app, v, at).running)
		deploys = append(deploys, window{at, at.Add(took)})
		c.sleep(b, swapSettle)
	}
	produced, span := prod.stop(b)
	adm := kadm.NewClient(testkafka.Client(b, brokers))
	c.waitFor(b, "the app to commit every input", 100*time.Millisecond, func() bool { return groupLag(adm, app, in) == 0 })
	r := swapGaps(b, readCommittedAll(b, brokers, out, int(sum(produced))), produced, warm, deploys)
	for _, d := range deploys {
		r.deploys = append(r.deploys, d.end.Sub(d.start))
	}
	r.inputs = int(sum(produced))
	r.inputGap = span * time.Duration(swapPartitions) / time.Duration(max(r.inputs, 1))

	for _, s := range c.servers {
		commit, commits, _ := scrapeMetrics(b, s.addr+"/apps/"+app)
		r.commitTime += commit
		r.commitCycles += commits
	}
	return r
}

// swapGaps measures, per input partition, the gaps between consecutive
// outputs (in input order) that fall between two transactions and end after
// from: where the module changed (pauses), and the others while one of the
// deploys was under way (busy) or not (commits). It also counts the inputs
// without an output and the repeated outputs. Each
// output's value is its input's, "PARTITION/SEQUENCE", and it is in the
// output partition of that number. Two outputs of one transaction have
// consecutive offsets; between two transactions lies at least the first
// one's commit marker.
func swapGaps(b *testing.B, outs []*kgo.Record, produced []int64, from time.Time, deploys []window) swapResult {
	var res swapResult
	byPartition := make([][]*kgo.Record, len(produced))
	for p, n := range produced {
		byPartition[p] = make([]*kgo.Record, n)
	}
	res.appendTimes = len(outs) > 0
	for _, r := range outs {
		ps, ss, ok := strings.Cut(string(r.Value), "/")
		p, err1 := strconv.Atoi(ps)
		seq, err2 := strconv.ParseInt(ss, 10, 64)
		if !ok || err1 != nil || err2 != nil || p >= len(produced) || seq >= produced[p] {
			b.Fatalf("output %q at %s/%d/%d is no input's", r.Value, r.Topic, r.Partition, r.Offset)
		}
		if int(r.Partition) != p {
			b.Fatalf("the output of input %s is in partition %d: outputs are not partitioned by key as Kafka's clients do", r.Value, r.Partition)
		}
		if byPartition[p][seq] != nil {
			res.repeated++
			continue
		}
		byPartition[p][seq] = r
		if r.Attrs.TimestampType() != 1 {
			res.appendTimes = false
		}
	}
	version := func(r *kgo.Record) string { return testkafka.Header(r, "streamrt.module.version") }
	for _, outs := range byPartition {
		var prev *kgo.Record
		for _, r := range outs {
			if r == nil {
				res.lost++
				continue
			}
			if prev != nil {
				gap := max(r.Timestamp.Sub(prev.Timestamp), 0)
				switch {
				case r.Timestamp.Before(from):
				case version(r) != version(prev):
					res.pauses = append(res.pauses, gap)
				case r.Offset > prev.Offset+1 && within(deploys, r.Timestamp):
					res.busy = append(res.busy, gap)
				case r.Offset > prev.Offset+1:
					res.commits = append(res.commits, gap)
				}
				if gap >= time.Second {
					b.Logf("partition %d: no output for %v before %s (offset %d, module %.12s)", r.Partition, gap, r.Timestamp.Format("15:04:05.000"), r.Offset, version(r))
				}
			}
			prev = r
		}
	}
	return res
}

// window is a span of time: a deploy from its answer to the last server
// running it.
type window struct{ start, end time.Time }

func within(ws []window, t time.Time) bool {
	for _, w := range ws {
		if !t.Before(w.start) && !t.After(w.end) {
			return true
		}
	}
	return false
}

func sum(ns []int64) int64 {
	var s int64
	for _, n := range ns {
		s += n
	}
	return s
}

// keyFor returns a key that Kafka's clients place in partition p of n, and
// so does the runtime: the outputs of input partition p, which keep their
// input's key, are then alone in output partition p.
func keyFor(p, n int) []byte {
	tp := kgo.StickyKeyPartitioner(nil).ForTopic("")
	for i := 0; ; i++ {
		k := fmt.Appendf(nil, "k%d-%d", p, i)
		if tp.Partition(&kgo.Record{Key: k}, n) == p {
			return k
		}
	}
}

// BenchmarkServerRebuild measures a `deploy --rebuild` of an app that has
// processed -streamrt.rebuild-records records (1,000,000 by default): how
// fast the new generation replays them against how fast the app processed
// them in the first place, and whether any query fails meanwhile.
//
// The input (6 partitions, 10,000 keys, 100-byte values) is filled first
// (untimed). Three in-process servers, each with the counter guest already
// compiled in its cache, run an exactly_once app that counts records per
// key into a store and emits each new count. Before the rebuild the
// benchmark waits until every server answers right for a key of each
// partition three times in a row: the partitions have settled after the
// servers joined the group. Reported:
//
//   - normal-records/s: the records over the time from the first deploy's
//     answer until the app's group has committed them all (polled every
//     100 ms);
//   - replay-records/s: the records over the time from the rebuild deploy's
//     answer until the flip, when the app's version makes the new
//     generation serve (polled every 50 ms);
//   - x-normal: replay over normal;
//   - caught-up-to-flip-ms: from the new generation's group having
//     committed every record to the flip;
//   - flip-to-serving-ms: from the flip to every server reporting the new
//     generation's version running;
//   - queries, failed-queries, wrong-answers: from just before the rebuild
//     deploy until every server serves the new generation, each server is
//     asked for the count of a random key (of those in the input) by a
//     goroutine of its own, 10 ms after its previous answer. Failed is an error or a status other than
//     200; wrong is a count other than the key's number of records. The
//     target is no failed query. flip-queries of them were answered between
//     the flip and the last server serving the new generation.
func BenchmarkServerRebuild(b *testing.B) {
	if testing.Short() {
		b.Skip("server rebuild benchmark: processes and replays a million records on three servers; skipped with -short")
	}
	brokers := testkafka.Brokers(b)
	counter := guesttest.Build(b, "counter")
	var normal, replay, caughtUpToFlip, flipToServing time.Duration
	var queries, flipQueries, failed, wrong int
	n := *rebuildRecords
	for range b.N {
		r := serverRebuild(b, brokers, counter, n)
		normal += r.normal
		replay += r.replay
		caughtUpToFlip += r.caughtUpToFlip
		flipToServing += r.flipToServing
		queries += r.queries
		flipQueries += r.flipQueries
		failed += len(r.failed)
		wrong += len(r.wrong)
		for _, f := range r.failed[:min(len(r.failed), 5)] {
			b.Logf("failed query: %s", f)
		}
		for _, w := range r.wrong[:min(len(r.wrong), 5)] {
			b.Logf("wrong answer: %s", w)
		}
	}
	records := float64(n * b.N)
	b.ReportMetric(records/normal.Seconds(), "normal-records/s")
	b.ReportMetric(records/replay.Seconds(), "replay-records/s")
	b.ReportMetric(normal.Seconds()/replay.Seconds(), "x-normal")
	b.ReportMetric(ms(caughtUpToFlip)/float64(b.N), "caught-up-to-flip-ms")
	b.ReportMetric(ms(flipToServing)/float64(b.N), "flip-to-serving-ms")
	b.ReportMetric(float64(queries), "queries")
	b.ReportMetric(float64(flipQueries), "flip-queries")
	b.ReportMetric(float64(failed), "failed-queries")
	b.ReportMetric(float64(wrong), "wrong-answers")
	b.ReportMetric(0, "ns/op")
}

// rebuildRun is the outcome of one run of BenchmarkServerRebuild.
type rebuildRun struct {
	normal, replay                time.Duration
	caughtUpToFlip, flipToServing time.Duration
	queries, flipQueries          int
	failed, wrong                 []string
}

func serverRebuild(b *testing.B, brokers []string, counter []byte, n int) rebuildRun {
	b.StopTimer()
	defer b.StartTimer()
	app := testkafka.Name(b, "bench-rebuild")
	in, out := app+"-in", app+"-out"
	testkafka.CreateTopic(b, brokers, in, rebuildPartitions)
	deleteTopics(b, brokers, in, out)
	truth := make([]int, rebuildKeys)
	value := bytes.Repeat([]byte{'v'}, e2eValue)
	produceAll(b, brokers, in, n, func(i int) (k, v []byte) {
		truth[i%rebuildKeys]++
		return fmt.Appendf(nil, "key-%05d", i%rebuildKeys), value
	})
	c := startBenchCluster(b, brokers, counter)
	yaml := fmt.Sprintf(`app: %s
partitions: %d
guarantee: exactly_once
stages:
  - name: main
    module: "{{main}}"
    inputs: [%s]
    stores: [counts]
    outputs: {out: %s}
`, app, rebuildPartitions, in, out)
	defer c.purge(b, app)
	adm := kadm.NewClient(testkafka.Client(b, brokers))
	var r rebuildRun

	v, at := c.deploy(b, 0, app, yaml, map[string][]byte{"main": counter}, false)
	c.waitFor(b, "the app to process the input", 100*time.Millisecond, func() bool { return groupLag(adm, app, in) == 0 })
	r.normal = time.Since(at)
	c.waitRunning(b, app, v, at)
	c.waitGroup(b, brokers, app)
	c.waitAnswers(b, app, rebuildPartitions, truth)

	q := c.queryCounts(app, truth)
	_, at = c.deploy(b, 1, app, yaml, map[string][]byte{"main": counter}, true)
	newGroup := (&config.Config{App: app, Generation: 1}).Internal()
	var caughtUp, flipped time.Time
	var flip int64
	c.waitFor(b, "the flip to generation 1", 50*time.Millisecond, func() bool {
		if caughtUp.IsZero() && groupLag(adm, newGroup, in) == 0 {
			caughtUp = time.Now()
		}
		st, err := c.appState(b, app)
		if err == nil && st.Serving == 1 {
			flipped, flip = time.Now(), st.Version
			return true
		}
		return false
	})
	r.replay = flipped.Sub(at)
	if !caughtUp.IsZero() {
		r.caughtUpToFlip = flipped.Sub(caughtUp)
	}
	r.flipToServing = slices.Max(c.waitRunning(b, app, flip, flipped).running)
	answered, failed, wrong := q.stop()
	r.queries, r.failed, r.wrong = len(answered), failed, wrong
	for _, t := range answered {
		if !t.Before(flipped) && !t.After(flipped.Add(r.flipToServing)) {
			r.flipQueries++
		}
	}
	return r
}

// BenchmarkServerDeploy measures the time from a deploy's answer (the
// admin API's POST of a version, the last request `streamrt deploy` makes)
// to every one of three in-process servers reporting the new version
// running, by its /readyz, polled every 5 ms. The app is idle: one stage of
// the identity guest (identityGuests), 4 partitions.
//
// Each of -streamrt.server-deploys deploys uploads a new module (the guest
// with a custom section of its own, so that every server compiles it as a
// new build; untimed), writes the version, waits, and lets a second pass.
// Reported:
//
//   - deploy-p50-ms, deploy-max-ms: until the last server runs the version
//     (the target is under 2 s);
//   - first-p50-ms: until the first server runs it (servers swap once all
//     have compiled it, so this is near the last);
//   - compile-ms: one compile of a new version of the module in this
//     process, with the servers idle: what each server spends on a deploy
//     when it has the machine to itself;
//   - rss-mb/deploy: how much this process's resident memory grew per deploy
//     and server, over the timed deploys.
func BenchmarkServerDeploy(b *testing.B) {
	if testing.Short() {
		b.Skip("server deploy benchmark: three servers compile and swap in new modules; skipped with -short")
	}
	for _, g := range identityGuests {
		b.Run("guest="+g.name, func(b *testing.B) {
			guest := g.build(b)
			brokers := testkafka.Brokers(b)
			var all deployRun
			for range b.N {
				r := serverDeploy(b, brokers, guest, g.name)
				all.last = append(all.last, r.last...)
				all.first = append(all.first, r.first...)
				all.compile += r.compile / time.Duration(b.N)
				all.rss += r.rss / float64(b.N)
			}
			median := func(ds []time.Duration) float64 {
				slices.Sort(ds)
				return ms(ds[len(ds)/2])
			}
			b.ReportMetric(median(all.last), "deploy-p50-ms")
			b.ReportMetric(ms(slices.Max(all.last)), "deploy-max-ms")
			b.ReportMetric(median(all.first), "first-p50-ms")
			b.ReportMetric(ms(all.compile), "compile-ms")
			if !math.IsNaN(all.rss) {
				b.ReportMetric(all.rss, "rss-mb/deploy")
			}
			b.ReportMetric(float64(len(guest)), "module-bytes")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// deployRun is what one run of BenchmarkServerDeploy saw.
type deployRun struct {
	last, first []time.Duration // per deploy: until the last and the first server runs it
	compile     time.Duration
	rss         float64 // MB per deploy and server; NaN when unknown
}

func serverDeploy(b *testing.B, brokers []string, guest []byte, lang string) deployRun {
	b.StopTimer()
	defer b.StartTimer()
	app := testkafka.Name(b, "bench-deploy-"+lang)
	in, out := app+"-in", app+"-out"
	testkafka.CreateTopic(b, brokers, in, 4)
	deleteTopics(b, brokers, in, out)
	c := startBenchCluster(b, brokers)
	yaml := fmt.Sprintf(`app: %s
partitions: 4
stages:
  - name: main
    module: "{{main}}"
    inputs: [%s]
    outputs: {out: %s}
`, app, in, out)
	defer c.purge(b, app)
	v, at := c.deploy(b, 0, app, yaml, map[string][]byte{"main": withNonce(guest, app+"-0")}, false)
	c.waitRunning(b, app, v, at)
	c.waitGroup(b, brokers, app)

	var r deployRun
	r.compile = compileTime(b, withNonce(guest, app+"-probe"))
	debug.FreeOSMemory() // what the Go heap no longer holds is not counted
	rss := residentMB()
	for i := 1; i <= *serverDeploys; i++ {
		v, at := c.deploy(b, i%benchServers, app, yaml, map[string][]byte{"main": withNonce(guest, fmt.Sprintf("%s-%d", app, i))}, false)
		ro := c.waitRunning(b, app, v, at)
		r.last = append(r.last, slices.Max(ro.running))
		r.first = append(r.first, slices.Min(ro.running))
		c.sleep(b, time.Second)
	}
	r.rss = math.NaN()
	if rss > 0 {
		debug.FreeOSMemory()
		r.rss = (residentMB() - rss) / float64(*serverDeploys*benchServers)
	}
	return r
}

// compileTime compiles module once, without a cache, as a server's stage.
func compileTime(b *testing.B, module []byte) time.Duration {
	ctx := context.Background()
	e, err := wasm.NewEngine(ctx, wasm.Config{MemoryLimit: config.DefaultMemoryLimit, Deadline: config.DefaultBatchDeadline})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(ctx)
	start := time.Now()
	if _, err := e.Compile(ctx, "probe", module); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// residentMB returns this process's resident memory in MB, or 0 where
// /proc does not tell it.
func residentMB() float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// steadyProducer produces records at a steady rate, spread evenly over a
// topic's partitions, each with the value "PARTITION/SEQUENCE" and a key
// of keyFor its partition.
type steadyProducer struct {
	stopc chan struct{}
	done  chan error
	sent  []int64 // per partition, once done
	span  time.Duration
}

func produceSteady(b *testing.B, brokers []string, topic string, partitions, rate int) *steadyProducer {
	cl := testkafka.Client(b, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	p := &steadyProducer{stopc: make(chan struct{}), done: make(chan error, 1), sent: make([]int64, partitions)}
	keys := make([][]byte, partitions)
	for i := range keys {
		keys[i] = keyFor(i, partitions)
	}
	go func() {
		var (
			mu       sync.Mutex
			firstErr error
		)
		start := time.Now()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		total := 0
		for {
			select {
			case <-p.stopc:
				p.span = time.Since(start)
				err := cl.Flush(context.Background())
				mu.Lock()
				firstErr = firstOf(firstErr, err)
				p.done <- firstErr
				mu.Unlock()
				return
			case <-tick.C:
			}
			for due := int(time.Since(start).Seconds() * float64(rate)); total < due; total++ {
				part := total % partitions
				v := fmt.Appendf(nil, "%d/%d", part, p.sent[part])
				p.sent[part]++
				cl.Produce(context.Background(), &kgo.Record{Topic: topic, Partition: int32(part), Key: keys[part], Value: v, Timestamp: time.Now()},
					func(_ *kgo.Record, err error) {
						if err != nil {
							mu.Lock()
							firstErr = firstOf(firstErr, err)
							mu.Unlock()
						}
					})
			}
		}
	}()
	return p
}

// stop stops producing and returns the records produced per partition and
// over how long.
func (p *steadyProducer) stop(b *testing.B) ([]int64, time.Duration) {
	close(p.stopc)
	if err := <-p.done; err != nil {
		b.Fatalf("producing: %v", err)
	}
	return p.sent, p.span
}

// createAppendTimeTopic creates a topic whose records carry the time the
// broker appended them, not the producer's.
func createAppendTimeTopic(b *testing.B, brokers []string, topic string, partitions int32) {
	b.Helper()
	adm := kadm.NewClient(testkafka.Client(b, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, map[string]*string{"message.timestamp.type": kadm.StringPtr("LogAppendTime")}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		b.Fatalf("create topic %q: %v", topic, err)
	}
}

// readCommittedAll reads topic from the start with read_committed until it
// has n records and a second has passed without more (a repeat would come
// late), and returns what it read.
func readCommittedAll(b *testing.B, brokers []string, topic string, n int) []*kgo.Record {
	b.Helper()
	cl := testkafka.Client(b, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var out []*kgo.Record
	deadline := time.Now().Add(2 * time.Minute)
	last := time.Now()
	for time.Now().Before(deadline) && (len(out) < n || time.Since(last) < time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r); last = time.Now() })
	}
	return out
}

// withNonce returns module with a custom section holding nonce appended:
// the same code under another content address, which a server compiles
// as a new module.
func withNonce(module []byte, nonce string) []byte {
	const name = "streamrt-bench-nonce"
	payload := binary.AppendUvarint(nil, uint64(len(name)))
	payload = append(append(payload, name...), nonce...)
	out := append(slices.Clip(module), 0) // custom section
	out = binary.AppendUvarint(out, uint64(len(payload)))
	return append(out, payload...)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
