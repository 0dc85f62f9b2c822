//go:build unix

package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/control"
	"github.com/streamrt/streamrt/runtime/internal/wasm"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	benchServers        = 3
	benchAdminToken     = "bench-admin-token"
	benchServerDeadline = 5 * time.Minute // for any one wait of the server benchmarks
)

// benchCluster is servers run in this process (three, unless started by
// startBenchServers), sharing control topics of their own. Each has a
// compilation cache of its own, as it would on a machine of its own.
type benchCluster struct {
	servers []*benchServer
}

type benchServer struct {
	name, addr string
	log        *apptest.Buffer
	cancel     context.CancelFunc
	done       chan error
}

// startBenchCluster starts the servers, with the modules warm already
// compiled in every server's cache, and stops them when b ends.
func startBenchCluster(b *testing.B, brokers []string, warm ...[]byte) *benchCluster {
	b.Helper()
	return startBenchServers(b, brokers, benchServers, warm...)
}

// startBenchServers starts n servers as startBenchCluster does.
func startBenchServers(b *testing.B, brokers []string, n int, warm ...[]byte) *benchCluster {
	b.Helper()
	base := testkafka.Name(b, "ctl")
	ctl := config.Control{AppsTopic: base + "-apps", ModulesTopic: base + "-modules", StatusTopic: base + "-status", TenantsTopic: base + "-tenants", AuditTopic: base + "-audit"}
	deleteTopics(b, brokers, ctl.AppsTopic, ctl.ModulesTopic, ctl.StatusTopic, ctl.TenantsTopic, ctl.AuditTopic)
	c := &benchCluster{}
	for i := range n {
		dir := b.TempDir()
		cacheDir := filepath.Join(dir, "cache")
		warmCache(b, cacheDir, warm...)
		s := &benchServer{name: fmt.Sprintf("s%d", i), addr: apptest.FreeAddr(b), log: &apptest.Buffer{}, done: make(chan error, 1)}
		cfg := &config.Server{Brokers: brokers, HTTP: s.addr, StateDir: filepath.Join(dir, "state"), CacheDir: cacheDir, InstanceID: s.name,
			AdminTokens: []string{benchAdminToken}, Control: ctl}
		var logTo io.Writer = s.log
		if d := os.Getenv("STREAMRT_CHAOS_LOG_DIR"); d != "" {
			f, err := os.Create(filepath.Join(d, base+"-"+s.name+".log"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { f.Close() })
			logTo = io.MultiWriter(s.log, f)
		}
		logger := slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelInfo})).With("server", s.name)
		srv, err := runtime.NewServer(cfg, runtime.ServerOptions{Logger: logger})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		go func() { s.done <- srv.Run(ctx) }()
		b.Cleanup(func() { s.stop(b) })
		c.servers = append(c.servers, s)
	}
	c.waitFor(b, "every server to answer", 50*time.Millisecond, func() bool {
		for _, s := range c.servers {
			if apptest.Get(s.addr, "/healthz").Code != http.StatusOK {
				return false
			}
		}
		return true
	})
	return c
}

func (s *benchServer) stop(b *testing.B) {
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			b.Errorf("server %s: %v", s.name, err)
		}
	case <-time.After(time.Minute):
		b.Errorf("server %s did not stop within a minute", s.name)
	}
	if b.Failed() {
		lines := strings.Split(strings.TrimSpace(s.log.String()), "\n")
		b.Logf("last log lines of server %s:\n%s", s.name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}

// warmCache compiles modules into the compilation cache at dir as a
// server's stages and query handlers would, so that a server using it does
// not compile them.
func warmCache(b *testing.B, dir string, modules ...[]byte) {
	b.Helper()
	if len(modules) == 0 {
		return
	}
	ctx := context.Background()
	cache, err := wasm.NewCache(filepath.Join(dir, "wasm"))
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close(ctx)
	for _, d := range []time.Duration{config.DefaultBatchDeadline, config.DefaultHandlerDeadline} {
		e, err := wasm.NewEngine(ctx, wasm.Config{Cache: cache, MemoryLimit: config.DefaultMemoryLimit, Deadline: d})
		if err != nil {
			b.Fatal(err)
		}
		for i, m := range modules {
			if _, err := e.Compile(ctx, strconv.Itoa(i), m); err != nil {
				b.Fatal(err)
			}
		}
		e.Close(ctx)
	}
}

// admin calls server i's admin API; out, when not nil, receives the JSON
// answer.
func (c *benchCluster) admin(b *testing.B, i int, method, path string, body []byte, out any) (int, error) {
	return c.call(b, i, benchAdminToken, method, path, body, out)
}

// call is admin with token: a tenant's, for example.
func (c *benchCluster) call(b *testing.B, i int, token, method, path string, body []byte, out any) (int, error) {
	req, err := http.NewRequest(method, "http://"+c.servers[i].addr+path, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s %s", method, path, resp.Status, raw)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(raw, out)
	}
	return resp.StatusCode, nil
}

// deploy does through server i what `streamrt deploy` does: it uploads the
// modules (stage name to bytes) and writes yaml, whose "{{stage}}"
// placeholders become the modules' content addresses, as the app's next
// version. It returns the version and when its write was answered.
func (c *benchCluster) deploy(b *testing.B, i int, app, yaml string, modules map[string][]byte, rebuild bool) (int64, time.Time) {
	b.Helper()
	for stage, m := range modules {
		hash := control.Hash(m)
		if _, err := c.admin(b, i, http.MethodPut, "/v1/admin/modules/"+hash, m, nil); err != nil {
			b.Fatalf("upload module: %v", err)
		}
		yaml = strings.ReplaceAll(yaml, `"{{`+stage+`}}"`, config.ModulePrefix+hash)
	}
	var ans struct{ Version int64 }
	body, _ := json.Marshal(map[string]any{"config": yaml, "rebuild": rebuild})
	if _, err := c.admin(b, i, http.MethodPost, "/v1/admin/apps/"+app+"/versions", body, &ans); err != nil {
		b.Fatalf("deploy: %v", err)
	}
	return ans.Version, time.Now()
}

// purge deletes app and its internal topics and group.
func (c *benchCluster) purge(b *testing.B, app string) {
	if _, err := c.admin(b, 0, http.MethodDelete, "/v1/admin/apps/"+app+"?purge=true", nil, nil); err != nil {
		b.Logf("purge: %v", err)
	}
}

// benchAppState is the admin API's view of an app, what the benchmarks
// read of it.
type benchAppState struct {
	Version int64 `json:"version"`
	Serving int   `json:"serving"`
}

func (c *benchCluster) appState(b *testing.B, app string) (benchAppState, error) {
	var st benchAppState
	_, err := c.admin(b, 0, http.MethodGet, "/v1/admin/apps/"+app, nil, &st)
	return st, err
}

// rollout is when each server reported a version, counted from the
// deploy's answer: prepared (state swapping: its modules compiled, waiting
// for the other servers) and running. A server that went straight to
// running has prepared equal to running.
type rollout struct {
	prepared, running []time.Duration
}

// waitRunning polls every server's /readyz every 5 ms until it reports
// version v of app running, and returns when each server reported it
// prepared and running, counted from start.
func (c *benchCluster) waitRunning(b *testing.B, app string, v int64, start time.Time) rollout {
	b.Helper()
	r := rollout{prepared: make([]time.Duration, len(c.servers)), running: make([]time.Duration, len(c.servers))}
	c.waitFor(b, fmt.Sprintf("every server to run %s version %d", app, v), 5*time.Millisecond, func() bool {
		done := true
		for i := range c.servers {
			if r.running[i] != 0 {
				continue
			}
			done = false
			var ready struct {
				Apps map[string]struct {
					Version int64  `json:"version"`
					State   string `json:"state"`
				} `json:"apps"`
			}
			if _, err := c.admin(b, i, http.MethodGet, "/readyz", nil, &ready); err != nil {
				continue
			}
			st := ready.Apps[app]
			switch {
			case st.Version == v && st.State == control.StateRunning:
				r.running[i] = time.Since(start)
				if r.prepared[i] == 0 {
					r.prepared[i] = r.running[i]
				}
			case st.State == control.StateSwapping && r.prepared[i] == 0:
				r.prepared[i] = time.Since(start)
			}
		}
		return done
	})
	return r
}

// waitGroup waits until every server is a member of the consumer group
// and the group is stable: a benchmark's timed part does not start while
// the app's partitions still move to the servers that joined last.
func (c *benchCluster) waitGroup(b *testing.B, brokers []string, group string) {
	b.Helper()
	adm := kadm.NewClient(testkafka.Client(b, brokers))
	c.waitFor(b, "every server in the group "+group, 50*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return false
		}
		g, ok := gs[group]
		return ok && g.Err == nil && g.State == "Stable" && len(g.Members) == len(c.servers)
	})
}

// waitFor calls cond every interval until it holds, failing b after five
// minutes or when a server has stopped.
func (c *benchCluster) waitFor(b *testing.B, what string, every time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(benchServerDeadline)
	for !cond() {
		time.Sleep(every)
		for _, s := range c.servers {
			select {
			case err := <-s.done:
				s.done <- err
				b.Fatalf("waiting for %s: server %s stopped: %v", what, s.name, err)
			default:
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %v waiting for %s", benchServerDeadline, what)
		}
	}
}

func (c *benchCluster) sleep(b *testing.B, d time.Duration) {
	end := time.Now().Add(d)
	c.waitFor(b, "a pause", min(50*time.Millisecond, d), func() bool { return !time.Now().Before(end) })
}

// waitAnswers waits until every server answers the right count, three
// times in a row 100 ms apart, for a key of each of the app's partitions:
// until then its partitions may still move or restore after the servers
// joined its group.
func (c *benchCluster) waitAnswers(b *testing.B, app string, partitions int, truth []int) {
	b.Helper()
	tp := kgo.StickyKeyPartitioner(nil).ForTopic("")
	probes := map[int]int{} // partition → key index
	for k := 0; k < len(truth) && len(probes) < partitions; k++ {
		if truth[k] == 0 {
			continue
		}
		p := tp.Partition(&kgo.Record{Key: fmt.Appendf(nil, "key-%05d", k)}, partitions)
		if _, ok := probes[p]; !ok {
			probes[p] = k
		}
	}
	streak := 0
	c.waitFor(b, "every server to answer for every partition of "+app, 100*time.Millisecond, func() bool {
		streak++
		for _, s := range c.servers {
			for _, k := range probes {
				ans := apptest.Get(s.addr, fmt.Sprintf("/apps/%s/v1/stores/counts/keys/key-%05d", app, k))
				if ans.Code != http.StatusOK || ans.Body != strconv.Itoa(truth[k]) {
					streak = 0
				}
			}
		}
		return streak == 3
	})
}

// countQueries asks every server, each from a goroutine of its own and
// every 10 ms, for the count of a random key among those counted, until
// stopped.
type countQueries struct {
	stopc chan struct{}
	wg    sync.WaitGroup

	mu      sync.Mutex
	at      []time.Time // when each query was answered
	failed  []string
	wrong   []string
	queries int
}

func (c *benchCluster) queryCounts(app string, truth []int) *countQueries {
	q := &countQueries{stopc: make(chan struct{})}
	var counted []int
	for k, n := range truth {
		if n > 0 {
			counted = append(counted, k)
		}
	}
	for _, s := range c.servers {
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			for {
				select {
				case <-q.stopc:
					return
				case <-time.After(10 * time.Millisecond):
				}
				k := counted[rand.IntN(len(counted))]
				ans := apptest.Get(s.addr, fmt.Sprintf("/apps/%s/v1/stores/counts/keys/key-%05d", app, k))
				now := time.Now()
				q.mu.Lock()
				q.at = append(q.at, now)
				switch {
				case ans.Code != http.StatusOK:
					q.failed = append(q.failed, fmt.Sprintf("%s %s key-%05d: %d %s", now.Format("15:04:05.000"), s.name, k, ans.Code, ans.Body))
				case ans.Body != strconv.Itoa(truth[k]):
					q.wrong = append(q.wrong, fmt.Sprintf("%s %s key-%05d: %s, want %d", now.Format("15:04:05.000"), s.name, k, ans.Body, truth[k]))
				}
				q.mu.Unlock()
			}
		}()
	}
	return q
}

// stop stops the queries and returns when each was answered, and the
// failed and wrong answers.
func (q *countQueries) stop() (at []time.Time, failed, wrong []string) {
	close(q.stopc)
	q.wg.Wait()
	return q.at, q.failed, q.wrong
}
