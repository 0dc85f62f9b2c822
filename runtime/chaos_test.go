//go:build linux

// The chaos test of the fault-tolerance issue: three instances of the
// clickcount example, run as separate streamrt processes, are killed with
// SIGKILL one at a time while clicks stream in, and restarted on their state
// directories; meanwhile the Kafka broker itself is restarted twice. When
// the stream has been processed, every page's count must be right: exactly
// under exactly_once, on the store and on the output topic, and never below
// the truth under at_least_once.
//
// The broker it restarts is its own (scripts/kafka.sh in a temporary
// directory): a shared broker restarted under the other tests would fail
// them.
//
// Linux only: the children get PR_SET_PDEATHSIG, so that they die with the
// test binary even when it is killed or panics on -timeout.
//
// STREAMRT_CHAOS_LOG_DIR=DIR keeps the instances' logs (and the broker
// restart test's app log and broker directory) in DIR for a post-mortem.
package runtime_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/partition"
)

// The workload the issue asks for.
const (
	chaosClicks     = 200_000
	chaosKeys       = 10_000
	chaosInstances  = 3
	chaosKills      = 10
	chaosBrokerDown = 2 // broker restarts, before kills 3 and 7
	chaosPartitions = 6
	chaosBurst      = 5_000                  // clicks per produce burst
	chaosBurstEvery = 750 * time.Millisecond // 40 bursts: about 30 s of producing
	chaosCatchUp    = 5 * time.Minute        // for the instances to process everything after the last kill
)

func TestChaosKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos test runs for minutes; skipped under -short")
	}
	if !testkafka.Real() {
		// On kfake a SIGKILLed member stalls the group for its whole
		// session timeout, which makes this test many minutes long;
		// .ci/run runs it in its real-Kafka phase.
		t.Skip("runs against a real Kafka (STREAMRT_TEST_BROKERS), as .ci/run does")
	}
	bin := buildStreamrt(t)
	kafkaDir, brokers := startPrivateKafka(t)
	for _, g := range []string{"exactly_once", "at_least_once"} {
		t.Run(g, func(t *testing.T) { chaos(t, bin, g, kafkaDir, brokers) })
	}
}

// brokerRestartAt reports whether the broker is restarted before kill k:
// spread over the run, so that instances are killed both while the broker
// is away and while they recover from its return.
func brokerRestartAt(k int) bool { return k == 3 || k == 7 }

func chaos(t *testing.T, bin, guarantee, kafkaDir string, brokers []string) {
	began := time.Now()
	exact := guarantee == "exactly_once"
	app := testkafka.Name(t, "chaos-"+strings.ReplaceAll(guarantee, "_", "-"))
	in, out := app+"-clicks", app+"-page-counts"
	testkafka.CreateTopic(t, brokers, in, chaosPartitions)

	dir := t.TempDir()
	cfgFile := writeClickcount(t, dir, app, brokers, guarantee, chaosPartitions, in, out, "")

	logDir := dir
	if d := os.Getenv("STREAMRT_CHAOS_LOG_DIR"); d != "" {
		logDir = filepath.Join(d, app)
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("instance logs in %s", logDir)
	}
	procs := make([]*child, chaosInstances)
	for i := range procs {
		name := fmt.Sprintf("instance-%d", i)
		procs[i] = newChild(t, bin, name, cfgFile, brokers, filepath.Join(dir, name), filepath.Join(logDir, name+".log"))
		procs[i].start(t)
	}
	dumpOnFailure(t, procs)
	waitChildren(t, procs, 3*time.Minute, "every instance to be ready", func() bool {
		for _, p := range procs {
			if code, _ := getWithin(p.http, "/readyz"); code != http.StatusOK {
				return false
			}
		}
		return true
	})
	t.Logf("%s: %d instances ready after %v", guarantee, len(procs), time.Since(began).Round(time.Millisecond))

	// Produce in bursts from a goroutine while this one kills, and
	// restarts the broker from a third.
	acked := make([]int64, chaosKeys)
	produced := make(chan produceResult, 1)
	prodStart := time.Now()
	go func() { produced <- produceClicks(brokers, in, acked) }()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
	var brokerBack chan error
	restarts := 0
	for k := 1; k <= chaosKills; k++ {
		pause := 2*time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
		sleepWatching(t, procs, pause)
		if brokerRestartAt(k) {
			if brokerBack != nil {
				waitBroker(t, brokerBack)
			}
			restarts++
			t.Logf("broker restart %d/%d at %v", restarts, chaosBrokerDown, time.Since(prodStart).Round(time.Millisecond))
			brokerBack = make(chan error, 1)
			go func(back chan<- error) {
				began := time.Now()
				_, err := kafkaScript(3*time.Minute, "restart", kafkaDir)
				if err == nil {
					t.Logf("broker back after %v", time.Since(began).Round(time.Millisecond))
				}
				back <- err
			}(brokerBack)
		}
		victim := procs[rng.IntN(len(procs))]
		pid := victim.kill(t)
		t.Logf("kill %d/%d at %v: SIGKILL %s (pid %d); restarting it on its state directory", k, chaosKills, time.Since(prodStart).Round(time.Millisecond), victim.name, pid)
		sleepWatching(t, procs, time.Duration(rng.Int64N(int64(500*time.Millisecond))))
		victim.start(t)
	}
	if brokerBack != nil {
		waitBroker(t, brokerBack)
	}
	var res produceResult
	select {
	case res = <-produced:
	case <-time.After(5 * time.Minute):
		t.Fatal("producing 200,000 clicks took over 5 minutes")
	}
	if res.failed > 0 {
		// A burst the restart interrupted may still have been written:
		// the truth is what the input topic holds, read below.
		t.Logf("%d produce bursts failed while the broker restarted, first: %v", res.failed, res.first)
	}
	truth := readCounts(t, brokers, in, chaosKeys)
	var total, ackedTotal int64
	for i, n := range truth {
		total += n
		ackedTotal += acked[i]
		if n < acked[i] {
			t.Fatalf("page-%d: %d acknowledged clicks but %d on the input topic: the broker lost acknowledged records", i, acked[i], n)
		}
	}
	t.Logf("%s: %d clicks over %d keys on the input topic (%d acknowledged) in %v, with %d kills and %d broker restarts", guarantee, total, chaosKeys, ackedTotal, time.Since(prodStart).Round(time.Millisecond), chaosKills, restarts)

	// Wait until the group has consumed everything and every key is
	// answered by an instance with a count that is right.
	keys := make([]string, chaosKeys)
	for i := range keys {
		keys[i] = "page-" + strconv.Itoa(i)
	}
	addrs := make([]string, len(procs))
	for i, p := range procs {
		addrs[i] = p.http
	}
	adm := kadm.NewClient(testkafka.Client(t, brokers))
	deadline := catchUpDeadline(t, chaosCatchUp)
	catchUpStart := time.Now()
	var (
		v         verdict
		lag       int64
		lastLog   time.Time
		sameSince time.Time
		lastBad   string
	)
	for {
		sleepWatching(t, procs, 0)
		lag = groupLag(adm, app, in)
		v = judgeCounts(queryCounts(addrs, "click-counts", keys), truth, exact, chaosPartitions)
		if lag == 0 && v.ok() {
			break
		}
		// A wrong answer that no longer changes while nothing is left to
		// consume is final: stop waiting for it.
		if bad := v.String(); lag == 0 && bad == lastBad {
			if time.Since(sameSince) > 30*time.Second {
				break
			}
		} else {
			lastBad, sameSince = bad, time.Now()
		}
		if time.Now().After(deadline) {
			break
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			t.Logf("%s: catching up for %v: group lag %d, %s", guarantee, time.Since(catchUpStart).Round(time.Second), lag, v.summary())
		}
		time.Sleep(time.Second)
	}
	t.Logf("%s: %v after producing: group lag %d, %s", guarantee, time.Since(catchUpStart).Round(time.Millisecond), lag, v.summary())

	outLast, outSum, seqErrs := readOutputs(t, brokers, out)
	t.Logf("%s: total true count %d, total store count %d, total of last output values %d", guarantee, total, v.storeSum, outSum)
	if !v.ok() {
		t.Errorf("%s: store counts wrong after %d kills: %s\n%s", guarantee, chaosKills, v.summary(), v.String())
	}
	if lag != 0 {
		t.Errorf("%s: the consumer group still lags by %d records on %s after waiting %v", guarantee, lag, in, time.Since(catchUpStart).Round(time.Second))
	}
	if exact {
		var wrong []string
		for i, k := range keys {
			if got := outLast[k]; got != truth[i] {
				wrong = append(wrong, fmt.Sprintf("%s (partition %d): last committed output %d, true count %d", k, partition.For([]byte(k), chaosPartitions), got, truth[i]))
			}
		}
		if len(wrong) > 0 {
			t.Errorf("exactly_once: %d keys' last committed output differs from the true count; first ones:\n%s", len(wrong), strings.Join(wrong[:min(len(wrong), 20)], "\n"))
		}
		if len(seqErrs) > 0 {
			t.Errorf("exactly_once: %d keys' committed outputs are not exactly 1, 2, ..., n in order; first ones:\n%s", len(seqErrs), strings.Join(seqErrs[:min(len(seqErrs), 20)], "\n"))
		}
	}
	for _, p := range procs {
		p.stop(t)
	}
	t.Logf("%s: took %v in all", guarantee, time.Since(began).Round(time.Millisecond))
}

// waitBroker waits for a broker restart begun by the chaos test, which
// fails if the broker did not come back.
func waitBroker(t *testing.T, back <-chan error) {
	t.Helper()
	if err := <-back; err != nil {
		t.Fatalf("restart the broker: %v", err)
	}
}

// produceResult is how producing went: the bursts that failed (whose
// clicks may or may not be on the topic) and the first error.
type produceResult struct {
	failed int
	first  error
}

// produceClicks produces chaosClicks clicks on random keys page-0 ...
// page-(chaosKeys-1), in bursts, counting each acknowledged click in
// acked. A burst that fails (the broker restarting under it) is counted and
// not retried: whether its clicks were written is for the topic to say.
func produceClicks(brokers []string, topic string, acked []int64) (res produceResult) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MaxBufferedRecords(2*chaosBurst))
	if err != nil {
		return produceResult{failed: 1, first: err}
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tick := time.NewTicker(chaosBurstEvery)
	defer tick.Stop()
	recs := make([]*kgo.Record, 0, chaosBurst)
	idx := make([]int, 0, chaosBurst)
	for sent := 0; sent < chaosClicks; sent += chaosBurst {
		recs, idx = recs[:0], idx[:0]
		for range chaosBurst {
			k := rand.IntN(chaosKeys)
			idx = append(idx, k)
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("page-" + strconv.Itoa(k)), Value: []byte("click")})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			if res.failed++; res.first == nil {
				res.first = fmt.Errorf("after %d clicks: %w", sent, err)
			}
		} else {
			for _, k := range idx {
				acked[k]++
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			res.failed++
			res.first = cmp.Or(res.first, ctx.Err())
			return res
		}
	}
	return res
}

// catchUpDeadline is when to stop waiting for processing to catch up:
// after wait, or a minute before the test binary's -timeout, so that the
// test fails with its evidence and its cleanups run.
func catchUpDeadline(t *testing.T, wait time.Duration) time.Time {
	deadline := time.Now().Add(wait)
	if d, ok := t.Deadline(); ok && d.Add(-time.Minute).Before(deadline) {
		t.Logf("waiting %v at most, not %v: the test binary's -timeout is near", time.Until(d.Add(-time.Minute)).Round(time.Second), wait)
		deadline = d.Add(-time.Minute)
	}
	return deadline
}

// fixedPort returns a free loopback address for a process that restarts on
// it. Its port is below Linux's ephemeral range (32768 and up), so that an
// outgoing connection does not take it while the process is down.
func fixedPort(t testing.TB) string {
	t.Helper()
	for range 1000 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20_000+rand.IntN(12_000)))
		if err == nil {
			defer ln.Close()
			return ln.Addr().String()
		}
	}
	t.Fatal("no free port on 127.0.0.1 between 20000 and 32000")
	return ""
}

// groupLag returns how many records of topic the group has not committed,
// summed over partitions, or -1 if that cannot be told right now.
func groupLag(adm *kadm.Client, group, topic string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		return -1
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return -1
	}
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		at := int64(0)
		if c, ok := committed.Lookup(topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
			at = c.At
		}
		lag += max(0, o.Offset-at)
	})
	return lag
}

// countAnswers holds, per key, the counts that instances owning the key's
// partition answered: 200 with the count, or 404 for a count of 0.
type countAnswers [][]int64

// queryCounts asks every instance (by HTTP address) for every key, with a
// few requests in flight, and keeps the answers of the owners. It gives up
// after a minute: the keys not asked by then have no answers.
func queryCounts(addrs []string, store string, keys []string) countAnswers {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	answers := make(countAnswers, len(keys))
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				for _, addr := range addrs {
					if n, ok := queryCount(ctx, client, addr, store, keys[i]); ok {
						answers[i] = append(answers[i], n)
					}
				}
			}
		})
	}
	for i := range keys {
		select {
		case work <- i:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return answers
}

func queryCount(ctx context.Context, client *http.Client, addr, store, key string) (int64, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/stores/"+store+"/keys/"+key, nil)
	if err != nil {
		return 0, false
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false
	}
	switch resp.StatusCode {
	case http.StatusOK:
		n, err := strconv.ParseInt(string(body), 10, 64)
		if err != nil {
			return -1, true // a value that is no count is wrong
		}
		return n, true
	case http.StatusNotFound:
		return 0, true
	}
	return 0, false // 503: not this instance's partition, or restoring
}

// verdict compares the counts the instances serve with the true counts.
type verdict struct {
	keys       int
	unanswered []int // keys no instance answers for
	wrong      []string
	low, high  int   // keys below and above their true count
	storeSum   int64 // of the answered counts
}

func (v verdict) ok() bool { return len(v.unanswered) == 0 && len(v.wrong) == 0 }

func (v verdict) summary() string {
	return fmt.Sprintf("%d of %d keys answered, %d wrong (%d below, %d above the true count)", v.keys-len(v.unanswered), v.keys, len(v.wrong), v.low, v.high)
}

func (v verdict) String() string {
	var b strings.Builder
	for _, w := range v.wrong[:min(len(v.wrong), 20)] {
		b.WriteString(w + "\n")
	}
	if len(v.unanswered) > 0 {
		fmt.Fprintf(&b, "no instance answers for %d keys, first: page-%d\n", len(v.unanswered), v.unanswered[0])
	}
	return b.String()
}

// judgeCounts checks the answers for keys page-0, page-1, ... against truth:
// every key must be answered and all its answers must equal the truth, or
// (at least once) be no lower.
func judgeCounts(answers countAnswers, truth []int64, exact bool, partitions int32) verdict {
	v := verdict{keys: len(truth)}
	for i, got := range answers {
		if len(got) == 0 {
			v.unanswered = append(v.unanswered, i)
			continue
		}
		v.storeSum += got[0]
		bad := slices.ContainsFunc(got, func(n int64) bool { return n != got[0] })
		if n := got[0]; n < truth[i] {
			v.low++
			bad = true
		} else if n > truth[i] {
			v.high++
			bad = bad || exact
		}
		if bad {
			k := "page-" + strconv.Itoa(i)
			v.wrong = append(v.wrong, fmt.Sprintf("%s (partition %d): served %v, true count %d", k, partition.For([]byte(k), partitions), got, truth[i]))
		}
	}
	return v
}

// readOutputs reads topic with read_committed up to its last stable offsets
// and returns the last value per key, their sum, and the keys whose values
// are not 1, 2, 3, ... in order, which exactly once requires of counts.
func readOutputs(t *testing.T, brokers []string, topic string) (last map[string]int64, sum int64, seqErrs []string) {
	t.Helper()
	last = map[string]int64{}
	prev := map[string]int64{}
	readStable(t, brokers, topic, func(r *kgo.Record) {
		k := string(r.Key)
		n, err := strconv.ParseInt(string(r.Value), 10, 64)
		if err != nil {
			n = -1
		}
		if n != prev[k]+1 && len(seqErrs) < 1000 {
			seqErrs = append(seqErrs, fmt.Sprintf("%s: %d follows %d at %s/%d offset %d", k, n, prev[k], r.Topic, r.Partition, r.Offset))
		}
		prev[k], last[k] = n, n
	})
	for _, n := range last {
		sum += n
	}
	return last, sum, seqErrs
}

// readStable hands fn the committed records of topic, read with
// read_committed from the start up to its last stable offsets.
func readStable(t *testing.T, brokers []string, topic string, fn func(r *kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stable, err := kadm.NewClient(testkafka.Client(t, brokers)).ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = stable.Error()
	}
	if err != nil {
		t.Fatalf("last stable offsets of %s: %v", topic, err)
	}
	cl := testkafka.Client(t, brokers,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers take offsets too: keeping them is how the
		// reader knows it reached the last stable offset.
		kgo.KeepControlRecords(),
	)
	next := map[int32]int64{}
	done := func() bool {
		finished := true
		stable.Each(func(o kadm.ListedOffset) { finished = finished && next[o.Partition] >= o.Offset })
		return finished
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s up to its last stable offsets %v: %v (read up to %v)", topic, stable.Offsets(), ctx.Err(), next)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Logf("reading %s partition %d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() {
				fn(r)
			}
		})
	}
}

// buildStreamrt builds the CLI once for the test; the children are not
// race-instrumented even when the test binary is.
func buildStreamrt(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "streamrt")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/streamrt").CombinedOutput(); err != nil {
		t.Fatalf("build streamrt: %v\n%s", err, out)
	}
	return bin
}

// child is one `streamrt run` process of an app, restartable on the same
// state directory and HTTP address. Its output, over all its runs, goes to
// one log file.
type child struct {
	name    string
	bin     string
	args    []string
	env     []string // added to the test's environment
	http    string
	logPath string

	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited
	waitErr error         // what Wait returned, once done is closed
	killed  bool          // the current process was stopped on purpose
}

func newChild(t testing.TB, bin, name, cfgFile string, brokers []string, stateDir, logPath string) *child {
	c := &child{name: name, bin: bin, http: fixedPort(t), logPath: logPath}
	c.args = []string{"run", "-c", cfgFile, "--brokers", strings.Join(brokers, ","), "--http", c.http, "--state-dir", stateDir}
	t.Cleanup(func() {
		if c.running() {
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

func (c *child) start(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "=== %s: start %s\n", time.Now().Format(time.RFC3339Nano), c.name)
	cmd := exec.Command(c.bin, c.args...)
	// Share built and compiled guests with the other tests of this machine.
	cmd.Env = append(append(os.Environ(), "STREAMRT_CACHE_DIR="+guesttest.CacheDir()), c.env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", c.name, err)
	}
	c.cmd, c.done, c.killed = cmd, make(chan struct{}), false
	go func(done chan struct{}) {
		err := cmd.Wait()
		f.Close()
		c.waitErr = err
		close(done)
	}(c.done)
}

func (c *child) running() bool {
	if c.cmd == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and reaps the process; it returns its pid.
func (c *child) kill(t testing.TB) int {
	t.Helper()
	pid := c.cmd.Process.Pid
	c.killed = true
	c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s (pid %d) still running 10s after SIGKILL", c.name, pid)
	}
	return pid
}

// stop asks the process to stop with SIGTERM and fails the test if it does
// not exit cleanly within 30 s.
func (c *child) stop(t testing.TB) {
	t.Helper()
	if !c.running() {
		return
	}
	c.killed = true
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if c.waitErr != nil {
			t.Errorf("%s did not exit cleanly on SIGTERM: %v\n%s", c.name, c.waitErr, c.tail(20))
		}
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
		t.Errorf("%s did not stop within 30s of SIGTERM\n%s", c.name, c.tail(20))
	}
}

// died reports an exit nobody asked for.
func (c *child) died() error {
	if c.killed || c.running() {
		return nil
	}
	return fmt.Errorf("%s exited by itself: %v\n%s", c.name, c.waitErr, c.tail(30))
}

// tail returns the last n lines of the child's log.
func (c *child) tail(n int) string {
	lines := readLines(c.logPath)
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// problemSummary lists the distinct warnings and errors of a log, and
// starts of the process, each once with how often it occurred, in the order
// of their first occurrence: a failing test's evidence, without the noise
// of a message repeated every retry.
func problemSummary(lines []string, limit int) string {
	timeRE := regexp.MustCompile(`^time=\S+ `)
	var order []string
	count := map[string]int{}
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "=== "):
			l = "=== (re)start"
		case strings.Contains(l, "level=WARN"), strings.Contains(l, "level=ERROR"), strings.HasPrefix(l, "panic"), strings.HasPrefix(l, "fatal"):
			l = timeRE.ReplaceAllString(l, "")
		default:
			continue
		}
		if count[l] == 0 {
			order = append(order, l)
		}
		count[l]++
	}
	var b strings.Builder
	for i, l := range order {
		if i == limit {
			fmt.Fprintf(&b, "... and %d more distinct lines\n", len(order)-limit)
			break
		}
		fmt.Fprintf(&b, "%5d× %s\n", count[l], l)
	}
	return b.String()
}

func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	return lines
}

// dumpOnFailure logs, when the test has failed, what the children logged
// that a reader needs to see: restarts, warnings and errors, and the end.
func dumpOnFailure(t *testing.T, procs []*child) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range procs {
			t.Logf("%s: starts, warnings and errors:\n%s--- last lines:\n%s", p.name, problemSummary(readLines(p.logPath), 60), p.tail(15))
		}
	})
}

// sleepWatching sleeps for d, failing the test at once if a child exits
// by itself.
func sleepWatching(t *testing.T, procs []*child, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	for {
		for _, p := range procs {
			if err := p.died(); err != nil {
				t.Fatal(err)
			}
		}
		left := time.Until(end)
		if left <= 0 {
			return
		}
		time.Sleep(min(left, 100*time.Millisecond))
	}
}

func waitChildren(t *testing.T, procs []*child, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		sleepWatching(t, procs, 200*time.Millisecond)
	}
}
