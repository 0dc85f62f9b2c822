//go:build linux

// The server-mode test of record: three `streamrt server` processes host an
// app deployed with `streamrt deploy`. While clicks stream in, a second
// version (the same count in Rust) is swapped in and a server is SIGKILLed
// during the swap; `rollback` brings the first back; a `--rebuild` deploy
// flips to a new generation while queries run, none failing; a second
// rebuild loses a server to SIGKILL as its flip is written. The counts must
// be exact at the end, on the store and on the output topic, and `delete
// --purge` must leave nothing behind.
package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

const (
	clusterServers    = 3
	clusterPartitions = 6
	clusterKeys       = 2_000
	clusterToken      = "cluster-test-token"
)

func TestServerCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes and runs for minutes; skipped under -short")
	}
	// Both stages are built into the shared cache first, so that deploy
	// finds them built (and a machine without cargo skips, unless CI).
	apptest.BuildModule(t, "../examples/clickcount/guest")
	apptest.BuildModule(t, "../examples/clickcount-rust/stage")
	bin := buildStreamrt(t)
	brokers := testkafka.Brokers(t)
	c := newCluster(t, bin, brokers)

	c.deploy(t, c.appFile(t, "../examples/clickcount/guest"))
	c.waitVersion(t, 1, "")
	t.Logf("version 1 (Go) runs on %d servers", clusterServers)
	if out := c.cli(t, "apps", c.app); strings.Count(out, "running") != clusterServers {
		t.Fatalf("streamrt apps %s: want %d instances running:\n%s", c.app, clusterServers, out)
	}

	truth := make([]int64, clusterKeys)
	prod := c.produce(t, truth, 40, 1000, 400*time.Millisecond)

	// A swap under load, with a server killed while the others wait for it.
	c.sleep(t, 2*time.Second)
	c.deploy(t, c.appFile(t, "../examples/clickcount-rust/stage"))
	victim := c.servers[2]
	t.Logf("SIGKILL %s (pid %d) during the swap to version 2", victim.name, victim.kill(t))
	c.sleep(t, time.Second)
	victim.start(t)
	c.waitVersion(t, 2, "")
	t.Logf("version 2 (Rust) runs everywhere")

	if out := c.cli(t, "rollback", c.app); !strings.Contains(out, "rollback from version 2 to version 1") {
		t.Fatalf("streamrt rollback: %s", out)
	}
	c.waitVersion(t, 3, "")
	t.Logf("version 3, the rollback to version 1, runs everywhere")

	// A rebuild with queries running on every server: none may fail.
	queries := c.query(t)
	c.deploy(t, c.appFile(t, "../examples/clickcount/guest"), "--rebuild")
	flip := c.waitFlip(t, 1)
	c.waitVersion(t, flip, "running")
	if failed, n := queries.stop(); len(failed) > 0 {
		t.Errorf("%d of %d queries failed around the rebuild of generation 1, first: %s", len(failed), n, failed[0])
	} else {
		t.Logf("generation 1 serves after its flip (version %d); %d queries during the rebuild, none failed", flip, n)
	}

	// A rebuild whose flip loses a server.
	c.deploy(t, c.appFile(t, "../examples/clickcount/guest"), "--rebuild")
	flip = c.waitFlip(t, 2)
	victim = c.servers[rand.IntN(clusterServers)]
	t.Logf("SIGKILL %s (pid %d) as the flip to generation 2 is written", victim.name, victim.kill(t))
	c.sleep(t, time.Second)
	victim.start(t)
	c.waitVersion(t, flip, "running")
	t.Logf("generation 2 serves after its flip (version %d)", flip)

	total := prod.wait(t)
	t.Logf("produced %d clicks over %d keys", total, clusterKeys)
	c.checkCounts(t, truth)

	// Delete with purge: the app's group, changelog and state go.
	if out := c.cli(t, "delete", "--purge", c.app); !strings.Contains(out, "purge") {
		t.Fatalf("streamrt delete --purge: %s", out)
	}
	adm := kadm.NewClient(testkafka.Client(t, brokers))
	apptest.WaitCheck(t, 2*time.Minute, "the purge to delete the app's topics and state", func() error {
		topics, err := adm.ListTopics(context.Background())
		if err != nil {
			return err
		}
		for _, name := range topics.Names() {
			if strings.HasPrefix(name, c.app+"-") && name != c.in && name != c.out {
				return fmt.Errorf("topic %s remains", name)
			}
		}
		for _, s := range c.servers {
			if _, err := os.Stat(filepath.Join(s.stateDir, "apps", c.app)); err == nil {
				return fmt.Errorf("%s keeps the app's state", s.name)
			}
		}
		return nil
	})
	for _, s := range c.servers {
		s.stop(t)
	}
}

// cluster is the servers of the test and the app they host.
type cluster struct {
	bin, dir     string
	brokers      []string
	app, in, out string
	servers      []*serverChild
	procs        []*child
}

type serverChild struct {
	*child
	stateDir string
}

func newCluster(t *testing.T, bin string, brokers []string) *cluster {
	name := testkafka.Name(t, "cluster")
	c := &cluster{bin: bin, dir: t.TempDir(), brokers: brokers, app: name, in: name + "-clicks", out: name + "-counts"}
	testkafka.CreateTopic(t, brokers, c.in, clusterPartitions)
	logDir := c.dir
	if d := os.Getenv("STREAMRT_CHAOS_LOG_DIR"); d != "" {
		logDir = filepath.Join(d, name)
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("server logs in %s", logDir)
	}
	for i := range clusterServers {
		s := &serverChild{stateDir: filepath.Join(c.dir, fmt.Sprintf("server-%d", i))}
		s.child = &child{name: fmt.Sprintf("server-%d", i), bin: bin, http: fixedPort(t), logPath: filepath.Join(logDir, fmt.Sprintf("server-%d.log", i))}
		file := filepath.Join(c.dir, s.name+".yaml")
		y := fmt.Sprintf(`brokers: [%s]
http: %s
state_dir: %s
instance_id: %s
admin_tokens: [%s]
control:
  apps_topic: ctl-%[6]s-apps
  modules_topic: ctl-%[6]s-modules
  status_topic: ctl-%[6]s-status
  tenants_topic: ctl-%[6]s-tenants
  audit_topic: ctl-%[6]s-audit
`, strings.Join(brokers, ", "), s.http, s.stateDir, s.name, clusterToken, name)
		if err := os.WriteFile(file, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		s.args = []string{"server", "-c", file}
		s.env = testkafka.Env(t)
		sc := s.child
		t.Cleanup(func() {
			if sc.running() {
				sc.cmd.Process.Kill()
				<-sc.done
			}
		})
		c.servers = append(c.servers, s)
		c.procs = append(c.procs, s.child)
	}
	for _, s := range c.servers {
		s.start(t)
	}
	dumpOnFailure(t, c.procs)
	waitChildren(t, c.procs, time.Minute, "every server to serve", func() bool {
		for _, s := range c.servers {
			if code, _ := getWithin(s.http, "/healthz"); code != http.StatusOK {
				return false
			}
		}
		return true
	})
	return c
}

// appFile writes the app's configuration with module as its stage.
func (c *cluster) appFile(t *testing.T, module string) string {
	t.Helper()
	abs, err := filepath.Abs(module)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(c.dir, "app-"+filepath.Base(filepath.Dir(abs))+".yaml")
	y := fmt.Sprintf(`app: %s
guarantee: exactly_once
partitions: %d
commit_interval: 100ms
# A SIGKILLed server's partitions move after this long.
session_timeout: 6s
stages:
  - name: count
    module: %s
    inputs: [%s]
    stores: [click-counts]
    outputs: {counts: %s}
`, c.app, clusterPartitions, abs, c.in, c.out)
	if err := os.WriteFile(file, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// cli runs a streamrt admin command against a running server and returns
// its output, failing the test when it fails.
func (c *cluster) cli(t *testing.T, args ...string) string {
	t.Helper()
	var server string
	for _, s := range c.servers {
		if s.running() {
			server = "http://" + s.http
			break
		}
	}
	args = append([]string{args[0], "--server", server}, args[1:]...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), "STREAMRT_ADMIN_TOKEN="+clusterToken, "STREAMRT_CACHE_DIR="+guesttest.CacheDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("streamrt %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (c *cluster) deploy(t *testing.T, file string, flags ...string) {
	t.Helper()
	out := c.cli(t, append(append([]string{"deploy"}, flags...), "-c", file)...)
	if !strings.Contains(out, "deployed "+c.app+" version") {
		t.Fatalf("streamrt deploy: %s", out)
	}
	t.Logf("streamrt deploy %s: %s", strings.Join(flags, " "), strings.TrimSpace(out))
}

// appState is the admin API's view of the app.
type appState struct {
	Version    int64 `json:"version"`
	Generation int   `json:"generation"`
	Serving    int   `json:"serving"`
	Instances  []struct {
		Instance string `json:"instance"`
		Version  int64  `json:"version"`
		State    string `json:"state"`
		Failed   int64  `json:"failed"`
		Reason   string `json:"reason"`
	} `json:"instances"`
}

func (c *cluster) state() (appState, error) {
	var st appState
	for _, s := range c.servers {
		if !s.running() {
			continue
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.http+"/v1/admin/apps/"+c.app, nil)
		req.Header.Set("Authorization", "Bearer "+clusterToken)
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return st, fmt.Errorf("%s: %s", resp.Status, b)
		}
		return st, json.Unmarshal(b, &st)
	}
	return st, fmt.Errorf("no server answers")
}

// waitVersion waits until every server runs version v (in state, when
// given).
func (c *cluster) waitVersion(t *testing.T, v int64, state string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st, err := c.state()
		n := 0
		for _, in := range st.Instances {
			if in.Failed >= v {
				t.Fatalf("%s refused version %d: %s", in.Instance, in.Failed, in.Reason)
			}
			if in.Version == v && (state == "" || in.State == state) {
				n++
			}
		}
		if err == nil && n == clusterServers {
			return
		}
		if time.Now().After(deadline) {
			js, _ := json.Marshal(st.Instances)
			t.Fatalf("after 3 minutes, %d of %d servers run version %d %s (%v): %s", n, clusterServers, v, state, err, js)
		}
		c.sleep(t, 200*time.Millisecond)
	}
}

// waitFlip waits for the spec that makes generation g serve, and returns
// its version.
func (c *cluster) waitFlip(t *testing.T, g int) int64 {
	t.Helper()
	var v int64
	waitChildren(t, c.procs, 5*time.Minute, fmt.Sprintf("the flip to generation %d", g), func() bool {
		st, err := c.state()
		v = st.Version
		return err == nil && st.Serving == g
	})
	return v
}

func (c *cluster) sleep(t *testing.T, d time.Duration) { sleepWatching(t, c.procs, d) }

// producer streams clicks on random keys in bursts, counting each
// acknowledged click in truth.
type producer struct {
	done  chan error
	total atomic.Int64
}

func (c *cluster) produce(t *testing.T, truth []int64, bursts, size int, every time.Duration) *producer {
	p := &producer{done: make(chan error, 1)}
	go func() {
		p.done <- func() error {
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...))
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			for range bursts {
				recs := make([]*kgo.Record, size)
				idx := make([]int, size)
				for i := range recs {
					idx[i] = rand.IntN(len(truth))
					recs[i] = &kgo.Record{Topic: c.in, Key: []byte("page-" + strconv.Itoa(idx[i])), Value: []byte("click")}
				}
				if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					return err
				}
				for _, k := range idx {
					truth[k]++
				}
				p.total.Add(int64(size))
				select {
				case <-time.After(every):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}()
	}()
	return p
}

func (p *producer) wait(t *testing.T) int64 {
	t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("producing clicks: %v", err)
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("producing took over 5 minutes")
	}
	return p.total.Load()
}

// queryRun asks the servers for random keys until stopped, keeping every
// answer that is neither a count nor a 404 (a key not clicked yet).
type queryRun struct {
	stopc  chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	failed []string
	n      int
}

func (c *cluster) query(t *testing.T) *queryRun {
	q := &queryRun{stopc: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second}
	go func() {
		defer close(q.done)
		for i := 0; ; i++ {
			select {
			case <-q.stopc:
				return
			case <-time.After(20 * time.Millisecond):
			}
			s := c.servers[i%len(c.servers)]
			path := fmt.Sprintf("http://%s/apps/%s/v1/stores/click-counts/keys/page-%d", s.http, c.app, rand.IntN(clusterKeys))
			resp, err := client.Get(path)
			q.mu.Lock()
			q.n++
			switch {
			case err != nil:
				q.failed = append(q.failed, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), s.name, err))
			case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound:
				b, _ := io.ReadAll(resp.Body)
				q.failed = append(q.failed, fmt.Sprintf("%s %s: %s %s", time.Now().Format("15:04:05.000"), s.name, resp.Status, b))
			}
			q.mu.Unlock()
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
	return q
}

func (q *queryRun) stop() ([]string, int) {
	close(q.stopc)
	<-q.done
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failed, q.n
}

// checkCounts waits until the servers answer every key's true count, and
// checks that the output topic holds each key's counts 1, 2, ..., n once.
func (c *cluster) checkCounts(t *testing.T, truth []int64) {
	t.Helper()
	keys := make([]string, len(truth))
	for i := range keys {
		keys[i] = "page-" + strconv.Itoa(i)
	}
	addrs := make([]string, len(c.servers))
	for i, s := range c.servers {
		addrs[i] = s.http + "/apps/" + c.app
	}
	adm := kadm.NewClient(testkafka.Client(t, c.brokers))
	group := (&config.Config{App: c.app, Generation: 2}).Internal()
	deadline := catchUpDeadline(t, 3*time.Minute)
	var v verdict
	var lag int64
	for {
		c.sleep(t, 0)
		lag = groupLag(adm, group, c.in)
		v = judgeCounts(queryCounts(addrs, "click-counts", keys), truth, true, clusterPartitions)
		if lag == 0 && v.ok() || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if !v.ok() {
		t.Errorf("store counts wrong: %s\n%s", v.summary(), v.String())
	}
	if lag != 0 {
		t.Errorf("the group %s still lags by %d records", group, lag)
	}
	last, _, seqErrs := readOutputs(t, c.brokers, c.out)
	var wrong []string
	for i, k := range keys {
		if last[k] != truth[i] {
			wrong = append(wrong, fmt.Sprintf("%s: last output %d, true count %d", k, last[k], truth[i]))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d keys' last committed output differs from the true count; first ones:\n%s", len(wrong), strings.Join(wrong[:min(len(wrong), 20)], "\n"))
	}
	if len(seqErrs) > 0 {
		t.Errorf("%d keys' committed outputs are not exactly 1, 2, ..., n; first ones:\n%s", len(seqErrs), strings.Join(seqErrs[:min(len(seqErrs), 20)], "\n"))
	}
}
