//go:build linux

package bench_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
)

// Knobs of BenchmarkCompare (go test -bench '^BenchmarkCompare$' ./bench/ -args
// -streamrt.compare-records=100000).
var (
	cmpRecords = flag.Int("streamrt.compare-records", 1_000_000, "records in each workload's input topic")
	cmpKeys    = flag.Int("streamrt.compare-keys", 10_000, "distinct keys among the input's records")
	cmpTimeout = flag.Duration("streamrt.compare-timeout", 10*time.Minute, "longest one system may take over one input")
	cmpSystems = flag.String("streamrt.compare-systems", "pipe,streamrt,kstreams", "the systems to run, in order")
	cmpWarmup  = flag.Int("streamrt.compare-warmup", 20_000, "records of the untimed warm-up run of every workload and system (0: none)")
)

// The workload's shape besides N and the keys: 100-byte values, 4
// partitions, and every system committing each 100 ms.
const (
	cmpPartitions = 4
	cmpValue      = 100
	// cmpCommitInterval is streamrt's default commit_interval, set
	// explicitly for the pipe and Kafka Streams.
	cmpCommitInterval = 100 * time.Millisecond
	// cmpKey formats the key of record i, key i mod -streamrt.compare-keys:
	// 8 bytes for up to 10,000 keys, as in runtime's BenchmarkEndToEnd.
	cmpKey = "key-%04d"
)

// workload is one topology and guarantee, as each system spells it.
type workload struct {
	name        string
	guest       string // streamrt's test guest
	stores      []string
	guarantee   string // streamrt's guarantee
	topology    string // the Kafka Streams app's topology and guarantee
	ksGuarantee string
}

var workloads = []workload{
	{name: "identity", guest: "identity", guarantee: "at_least_once", topology: "identity", ksGuarantee: "at_least_once"},
	{name: "count/at_least_once", guest: "counter", stores: []string{"counts"}, guarantee: "at_least_once", topology: "count", ksGuarantee: "at_least_once"},
	{name: "count/exactly_once", guest: "counter", stores: []string{"counts"}, guarantee: "exactly_once", topology: "count", ksGuarantee: "exactly_once_v2"},
}

// BenchmarkCompare runs the same workloads through three systems, each a
// separate child process on the broker in STREAMRT_TEST_BROKERS:
//
//   - pipe: the plain franz-go consumer group → producer loop (bench/pipe),
//     committing every 100 ms: moving the records with no processing;
//   - streamrt: the streamrt CLI (cmd/streamrt, built by the benchmark) on an
//     app whose stage runs the test guest identity or counter (built .wasm
//     files), with every setting at its default (commit_interval is 100ms);
//   - kstreams: the Kafka Streams app of bench/kstreams (java -jar), an
//     identity topology or groupByKey().count(), with commit.interval.ms=100
//     and everything else at Kafka Streams' defaults, its record cache and
//     one stream thread included.
//
// The workloads are identity (at least once), and a count by key at least
// once and exactly once. Each iteration pre-fills a new input topic with
// -streamrt.compare-records records (1,000,000) over -streamrt.compare-keys
// keys (10,000) with 100-byte values over 4 partitions (untimed), then runs
// each system over it in turn, each in its own consumer group with its own
// output topic. A run's time is from starting the process until its group's
// committed offsets reach the input's end offsets on every partition: the
// outputs cannot tell, since Kafka Streams' cache collapses a count's
// updates. The child's CPU time comes from its rusage (its whole life,
// shutdown included), its peak RSS from /proc (VmHWM when the input is
// processed). The records it wrote are counted by reading the output topic
// (committed data, without transaction markers), and for a count every
// key's last value is checked. Once per process, an untimed warm-up of
// -streamrt.compare-warmup records runs every workload and system, so that
// the broker is warm and streamrt's compiled-module cache is filled.
//
// Reported per workload: each system's records/s, CPU µs per record, peak
// RSS, startup (until its first committed offset) and outputs; x-pipe and
// x-kstreams are streamrt's rate over the pipe's and over Kafka Streams'.
//
// Run it with -benchtime 1x and -count for repetitions. It needs a real Kafka
// (it skips without one), Go to build the binaries, and Java 17 and Maven to
// build the Kafka Streams jar (bench/kstreams/build.sh, cached by its sources
// under ~/.cache/streamrt/kstreams-bench; STREAMRT_KSTREAMS_JAR names a jar
// to use instead).
func BenchmarkCompare(b *testing.B) {
	if !testkafka.Real() {
		b.Skipf("side-by-side benchmark: needs a real Kafka: start one with `scripts/kafka.sh start DIR` and set %s to the address it prints last", testkafka.EnvBrokers)
	}
	if testing.Short() {
		b.Skip("side-by-side benchmark: moves millions of records through a broker; skipped with -short")
	}
	systems := strings.Split(*cmpSystems, ",")
	for _, s := range systems {
		if !slices.Contains([]string{"pipe", "streamrt", "kstreams"}, s) {
			b.Fatalf("-streamrt.compare-systems: unknown system %q (want pipe, streamrt or kstreams)", s)
		}
	}
	brokers := testkafka.Brokers(b)
	bins := buildAll(b, systems)
	warmOnce.Do(func() {
		if *cmpWarmup <= 0 {
			return
		}
		for _, w := range workloads {
			runWorkload(b, brokers, bins, systems, w, *cmpWarmup)
		}
	})
	for _, w := range workloads {
		b.Run(w.name, func(b *testing.B) {
			n := *cmpRecords
			total := make(map[string]*sysRun)
			for _, s := range systems {
				total[s] = &sysRun{}
			}
			b.ResetTimer()
			b.StopTimer()
			for range b.N {
				b.StartTimer()
				runs := runWorkload(b, brokers, bins, systems, w, n)
				b.StopTimer()
				for s, r := range runs {
					total[s].add(r)
				}
			}
			report(b, total, n*b.N)
		})
	}
}

var warmOnce sync.Once

// sysRun is what one system did over one input, or the sum over iterations.
type sysRun struct {
	took    time.Duration // from start until the group's offsets reach the input's end
	startup time.Duration // from start until the group's first committed offset
	cpu     time.Duration // user and system CPU time of the process
	maxRSS  int64         // peak resident set size until processed, bytes (the largest, when summed)
	outputs int64         // records written to the output topic, markers excluded
	runs    int
}

func (s *sysRun) add(r sysRun) {
	s.took += r.took
	s.startup += r.startup
	s.cpu += r.cpu
	s.maxRSS = max(s.maxRSS, r.maxRSS)
	s.outputs += r.outputs
	s.runs++
}

func report(b *testing.B, total map[string]*sysRun, records int) {
	rate := func(s string) float64 {
		if r := total[s]; r != nil && r.took > 0 {
			return float64(records) / r.took.Seconds()
		}
		return 0
	}
	for s, r := range total {
		if r.runs == 0 {
			continue
		}
		b.ReportMetric(rate(s), s+"-records/s")
		b.ReportMetric(float64(r.cpu.Microseconds())/float64(records), s+"-cpu-us/record")
		b.ReportMetric(float64(r.maxRSS)/(1<<20), s+"-peak-rss-MiB")
		b.ReportMetric(float64(r.startup.Milliseconds())/float64(r.runs), s+"-startup-ms")
		b.ReportMetric(float64(r.outputs)/float64(r.runs), s+"-outputs")
	}
	if rt := rate("streamrt"); rt > 0 {
		if p := rate("pipe"); p > 0 {
			b.ReportMetric(rt/p, "x-pipe")
		}
		if k := rate("kstreams"); k > 0 {
			b.ReportMetric(rt/k, "x-kstreams")
			b.ReportMetric(float64(total["streamrt"].maxRSS)/float64(total["kstreams"].maxRSS), "x-kstreams-rss")
		}
	}
}

// runWorkload pre-fills a new input topic with n records and runs each
// system over it, one after the other.
func runWorkload(b *testing.B, brokers []string, bins binaries, systems []string, w workload, n int) map[string]sysRun {
	b.Helper()
	base := testkafka.Name(b, "cmp-"+strings.ReplaceAll(w.name, "/", "-"))
	in := base + "-in"
	adm := kadm.NewClient(testkafka.Client(b, brokers))
	b.Cleanup(func() { dropAll(b, adm, base) })
	createTopic(b, adm, in)
	prefill(b, brokers, in, n)
	ends := endOffsets(b, adm, in)

	runs := make(map[string]sysRun)
	for _, s := range systems {
		group, out := base+"-"+s, base+"-"+s+"-out"
		createTopic(b, adm, out)
		dir := b.TempDir()
		var cmd *exec.Cmd
		switch s {
		case "pipe":
			cmd = exec.Command(bins.pipe, "-brokers", strings.Join(brokers, ","), "-group", group,
				"-in", in, "-out", out, "-commit-interval", cmpCommitInterval.String())
		case "streamrt":
			cmd = exec.Command(bins.streamrt, "run", "-c", writeApp(b, dir, brokers, group, in, out, bins.guests[w.guest], w))
		case "kstreams":
			cmd = exec.Command("java", "-jar", bins.jar, strings.Join(brokers, ","), group, in, out,
				w.topology, w.ksGuarantee, filepath.Join(dir, "state"))
		}
		r := runChild(b, adm, s, cmd, filepath.Join(dir, s+".log"), group, in, ends)
		var last map[string]string
		r.outputs, last = readOutputs(b, brokers, adm, out)
		if w.topology == "count" && s != "pipe" {
			checkCounts(b, s, last, n)
		}
		runs[s] = r
		b.Logf("%s n=%d %-8s %9.0f records/s  %6.2f cpu-us/record  peak RSS %5.0f MiB  startup %5d ms  %8d outputs  (load %s)",
			w.name, n, s, float64(n)/r.took.Seconds(), float64(r.cpu.Microseconds())/float64(n),
			float64(r.maxRSS)/(1<<20), r.startup.Milliseconds(), r.outputs, loadAverage())
	}
	return runs
}

// writeApp writes the streamrt app's YAML: one stage from in to out running
// module, every other setting at its default.
func writeApp(b *testing.B, dir string, brokers []string, app, in, out, module string, w workload) string {
	b.Helper()
	y := fmt.Sprintf(`app: %s
brokers: [%s]
http: %s
state_dir: %s
cache_dir: %s
guarantee: %s
stages:
  - name: main
    module: %s
    inputs: [%s]
    outputs: {out: %s}
`, app, strings.Join(brokers, ", "), freeLoopback(b), filepath.Join(dir, "state"), apptest.CacheDir(),
		w.guarantee, module, in, out)
	if len(w.stores) > 0 {
		y += fmt.Sprintf("    stores: [%s]\n", strings.Join(w.stores, ", "))
	}
	file := filepath.Join(dir, "app.yaml")
	if err := os.WriteFile(file, []byte(y), 0o644); err != nil {
		b.Fatal(err)
	}
	return file
}

// runChild starts cmd, waits until group's committed offsets on in reach
// ends on every partition, then stops it with SIGTERM (SIGKILL a minute
// later) and returns its figures. It fails b when the process exits first
// or the run takes longer than -streamrt.compare-timeout, showing the end
// of the process's output, which goes to logFile.
func runChild(b *testing.B, adm *kadm.Client, name string, cmd *exec.Cmd, logFile, group, in string, ends map[int32]int64) sysRun {
	b.Helper()
	logf, err := os.Create(logFile)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	// The child dies with the benchmark, whatever way it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	ctx, cancel := context.WithTimeout(context.Background(), *cmpTimeout)
	defer cancel()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			b.Logf("%s did not stop within a minute of SIGTERM: killing it", name)
			cmd.Process.Kill()
			<-exited
		}
	}

	var r sysRun
	for done := false; !done; {
		select {
		case <-exited:
			b.Fatalf("%s exited before it processed its input (%v):\n%s", name, waitErr, tail(logFile))
		case <-ctx.Done():
			stop()
			b.Fatalf("%s: input not processed within %v:\n%s", name, *cmpTimeout, tail(logFile))
		case <-time.After(20 * time.Millisecond):
		}
		committed, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			continue // the group is not there yet, or the coordinator is moving
		}
		done = true
		started := false
		for p, end := range ends {
			o, ok := committed.Lookup(in, p)
			at := int64(0)
			if ok && o.Err == nil {
				at = o.At
			}
			started = started || at > 0
			done = done && at >= end
		}
		if started && r.startup == 0 {
			r.startup = time.Since(start)
		}
	}
	r.took = time.Since(start)
	r.maxRSS = peakRSS(b, cmd.Process.Pid)
	stop()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return r
}

// peakRSS returns the peak resident set size of a running process, from
// VmHWM in /proc/PID/status. The child's rusage Maxrss would not do: os/exec
// starts children with vfork, and Linux keeps the high-water mark of the
// address space replaced at exec, which is this process's, so a child's
// Maxrss is at least the benchmark's own peak RSS.
func peakRSS(b *testing.B, pid int) int64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("/proc/%d/status: %q: %v", pid, line, err)
			}
			return kb << 10
		}
	}
	b.Fatalf("/proc/%d/status has no VmHWM", pid)
	return 0
}

// readOutputs reads topic's committed records from the start to its end
// offsets and returns how many there are, without transaction markers, and
// the last value of each key.
func readOutputs(b *testing.B, brokers []string, adm *kadm.Client, topic string) (int64, map[string]string) {
	b.Helper()
	ends := endOffsets(b, adm, topic)
	next := make(map[int32]int64)
	finished := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var n int64
	last := make(map[string]string)
	for !finished() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Logf("read %s: gave up after reading %d records: %v", topic, n, ctx.Err())
			return n, last
		}
		fs.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() {
				n++
				last[string(r.Key)] = string(r.Value)
			}
		})
	}
	return n, last
}

// checkCounts fails b unless the last count output for every key of an input
// of n records is the number of records with that key: whatever the cache
// collapsed or a replay repeated, the final counts must be right.
func checkCounts(b *testing.B, system string, last map[string]string, n int) {
	b.Helper()
	keys := *cmpKeys
	wrong := 0
	for k := range min(keys, n) {
		want := strconv.Itoa(n / keys)
		if k < n%keys {
			want = strconv.Itoa(n/keys + 1)
		}
		got, ok := last[fmt.Sprintf(cmpKey, k)]
		if !ok || got != want {
			if wrong < 3 {
				b.Errorf("%s: key %q: last count %q, want %s", system, fmt.Sprintf(cmpKey, k), got, want)
			}
			wrong++
		}
	}
	if wrong > 0 {
		b.Errorf("%s: %d of %d keys have a wrong last count", system, wrong, min(keys, n))
	}
}

// binaries are the programs the benchmark runs, built once per process.
type binaries struct {
	pipe, streamrt, jar string
	guests              map[string]string // test guest name → .wasm file
}

var (
	buildOnce sync.Once
	built     binaries
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	deleteOpenGroups()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildAll builds the pipe and the streamrt CLI with go build, the test
// guests with guesttest, and the Kafka Streams jar with
// bench/kstreams/build.sh, once per process. The streamrt app loads its
// guest as a built .wasm file, as a deployment would: pointed at the guest's
// Go package, each start would first run the Go toolchain to fingerprint it.
func buildAll(b *testing.B, systems []string) binaries {
	b.Helper()
	if slices.Contains(systems, "kstreams") && os.Getenv("STREAMRT_KSTREAMS_JAR") == "" {
		for _, tool := range []string{"java", "mvn"} {
			if _, err := exec.LookPath(tool); err != nil {
				b.Skipf("side-by-side benchmark: the Kafka Streams app needs Java 17+ and Maven (%s is not on PATH), or STREAMRT_KSTREAMS_JAR naming a jar built by bench/kstreams/build.sh", tool)
			}
		}
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "streamrt-compare-")
		if buildErr != nil {
			return
		}
		built.pipe = filepath.Join(binDir, "pipe")
		built.streamrt = filepath.Join(binDir, "streamrt")
		for _, c := range [][]string{
			{"go", "build", "-o", built.pipe, "./pipe"},
			{"go", "build", "-o", built.streamrt, "../cmd/streamrt"},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out)
				return
			}
		}
		built.guests = make(map[string]string)
		for _, g := range []string{"identity", "counter"} {
			built.guests[g] = filepath.Join(binDir, g+".wasm")
			if buildErr = os.WriteFile(built.guests[g], apptest.BuildModule(b, filepath.Join("..", "runtime", "internal", "wasm", "testdata", "guests", g)), 0o644); buildErr != nil {
				return
			}
		}
		built.jar = os.Getenv("STREAMRT_KSTREAMS_JAR")
		if built.jar == "" && slices.Contains(systems, "kstreams") {
			var stderr bytes.Buffer
			cmd := exec.Command("./kstreams/build.sh")
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				buildErr = fmt.Errorf("kstreams/build.sh: %v\n%s", err, stderr.String())
				return
			}
			lines := strings.Fields(string(out))
			built.jar = lines[len(lines)-1]
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return built
}

func createTopic(b *testing.B, adm *kadm.Client, topic string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, cmpPartitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		b.Fatalf("create topic %s: %v", topic, err)
	}
}

// dropAll deletes the topics (inputs, outputs and the systems' internal
// topics) and consumer groups whose names start with base.
func dropAll(b *testing.B, adm *kadm.Client, base string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		b.Logf("clean up %s: %v", base, err)
		return
	}
	var drop []string
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, base+"-") {
			drop = append(drop, t)
		}
	}
	if _, err := adm.DeleteTopics(ctx, drop...); err != nil {
		b.Logf("clean up %s: delete topics: %v", base, err)
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		b.Logf("clean up %s: %v", base, err)
		return
	}
	var gs []string
	for _, g := range groups.Groups() {
		if strings.HasPrefix(g, base+"-") {
			gs = append(gs, g)
		}
	}
	deleteGroups(ctx, adm, gs, b.Logf)
}

// openGroups are groups whose deletion failed because a member's session was
// still open: Kafka Streams does not leave its group on close, so its group
// empties only when the session times out (45 s by default). Later clean-ups
// and TestMain try them again.
var (
	openMu     sync.Mutex
	openGroups []string
)

// deleteGroups deletes groups and those left open before, and keeps those
// still open for later.
func deleteGroups(ctx context.Context, adm *kadm.Client, groups []string, logf func(string, ...any)) {
	openMu.Lock()
	defer openMu.Unlock()
	groups = append(groups, openGroups...)
	openGroups = nil
	if len(groups) == 0 {
		return
	}
	resp, err := adm.DeleteGroups(ctx, groups...)
	if err != nil {
		logf("delete groups %v: %v", groups, err)
		return
	}
	for g, r := range resp {
		switch {
		case errors.Is(r.Err, kerr.NonEmptyGroup):
			openGroups = append(openGroups, g)
		case r.Err != nil && !errors.Is(r.Err, kerr.GroupIDNotFound):
			logf("delete group %s: %v", g, r.Err)
		}
	}
}

// deleteOpenGroups waits up to a minute for the groups left open to empty,
// and deletes them.
func deleteOpenGroups() {
	openMu.Lock()
	n := len(openGroups)
	openMu.Unlock()
	if n == 0 || !testkafka.Real() {
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(os.Getenv(testkafka.EnvBrokers), ",")...))
	if err != nil {
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "clean up: "+format+"\n", args...) }
	fmt.Fprintf(os.Stderr, "clean up: waiting up to a minute for %d Kafka Streams groups to empty, to delete them\n", n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		deleteGroups(ctx, adm, nil, logf)
		openMu.Lock()
		left := slices.Clone(openGroups)
		openMu.Unlock()
		if len(left) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			logf("groups still not empty, left on the broker: %v", left)
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// prefill produces n records to topic: keys cycling over
// -streamrt.compare-keys keys (cmpKey), 100-byte values.
func prefill(b *testing.B, brokers []string, topic string, n int) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	value := bytes.Repeat([]byte{'v'}, cmpValue)
	var (
		mu       sync.Mutex
		firstErr error
	)
	for i := range n {
		r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, cmpKey, i%*cmpKeys), Value: value}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatalf("prefill %s: %v", topic, err)
	}
	if firstErr != nil {
		b.Fatalf("prefill %s: %v", topic, firstErr)
	}
}

func endOffsets(b *testing.B, adm *kadm.Client, topic string) map[int32]int64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		b.Fatalf("end offsets of %s: %v", topic, err)
	}
	ends := make(map[int32]int64)
	listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	if len(ends) != cmpPartitions {
		b.Fatalf("end offsets of %s: %d partitions, want %d", topic, len(ends), cmpPartitions)
	}
	return ends
}

// freeLoopback returns a loopback address that was free a moment ago, for
// the streamrt app's HTTP server.
func freeLoopback(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// tail returns the last lines of a child's output, for a failure message.
func tail(file string) string {
	out, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// loadAverage returns the 1-, 5- and 15-minute load averages, for the log.
func loadAverage() string {
	out, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
