//go:build linux

package runtime_test

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
)

var restartKeys = flag.Int("streamrt.restart-keys", 1000, "keys of the counting app BenchmarkRestart and TestKilledInstanceRestartsAsTheSameMember query")

// A streamrt instance killed with SIGKILL and restarted on its state dir
// rejoins its group as the same static member (the id kept in the state
// dir) and takes its partitions straight back: every key is served again
// long before the group's session timeout (30 s here), which is when a
// new member would get them.
func TestKilledInstanceRestartsAsTheSameMember(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three streamrt processes; skipped under -short")
	}
	const session = 30 * time.Second
	r := killAndRestart(t, buildStreamrt(t), testkafka.Brokers(t), session, *restartKeys)
	t.Logf("every key served again %s after the kill", r.serving)
	if r.serving >= session/2 {
		t.Errorf("keys served again only %s after the kill: the restarted instance waited for the group's session timeout (%s), not rejoining as the member it was", r.serving, session)
	}
	ids := map[string]bool{}
	for _, dir := range r.stateDirs {
		b, err := os.ReadFile(filepath.Join(dir, "instance-id"))
		if err != nil {
			t.Fatalf("instance id of %s: %v", dir, err)
		}
		ids[strings.TrimSpace(string(b))] = true
	}
	if len(ids) != len(r.stateDirs) {
		t.Errorf("the instances' state dirs hold %d distinct instance ids, want %d", len(ids), len(r.stateDirs))
	}
}

// BenchmarkRestart measures how long a streamrt instance killed with
// SIGKILL and restarted at once on the same state dir takes to serve again:
// three processes of a counting app (4 partitions, -streamrt.restart-keys
// keys, 1,000 by default, counted once each), Kafka's default session
// timeout (45 s). From the kill, every key is asked of another instance,
// which routes it to its owner, until each has answered its count.
// Reported: serving-ms, from the kill to the last key answered;
// session-ms, the session timeout a restart without static membership
// waited for.
func BenchmarkRestart(b *testing.B) {
	if testing.Short() {
		b.Skip("restart benchmark: runs three streamrt processes; skipped with -short")
	}
	bin := buildStreamrt(b)
	brokers := testkafka.Brokers(b)
	const session = 45 * time.Second
	var total time.Duration
	for range b.N {
		total += killAndRestart(b, bin, brokers, session, *restartKeys).serving
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "serving-ms")
	b.ReportMetric(float64(session.Milliseconds()), "session-ms")
	b.ReportMetric(0, "ns/op")
}

// restartRun is what one kill and restart saw.
type restartRun struct {
	serving   time.Duration // from SIGKILL to every key answered again
	stateDirs []string
}

// killAndRestart runs three instances of a counting app, counts keys once
// each, kills the first instance with SIGKILL, restarts it on its state
// dir and times until every key is served again through the second.
func killAndRestart(t testing.TB, bin string, brokers []string, session time.Duration, keys int) restartRun {
	t.Helper()
	if b, ok := t.(*testing.B); ok {
		b.StopTimer()
		defer b.StartTimer()
	}
	app := testkafka.Name(t, "restart")
	in, out := app+"-in", app+"-out"
	testkafka.CreateTopic(t, brokers, in, 4)
	dir := t.TempDir()
	cfgFile := standbyApp(t, dir, brokers, app, in, out, 0, session)
	var procs []*child
	var r restartRun
	for _, name := range []string{"a", "b", "c"} {
		state := filepath.Join(dir, name)
		r.stateDirs = append(r.stateDirs, state)
		c := newChild(t, bin, name, cfgFile, brokers, state, filepath.Join(dir, name+".log"))
		c.start(t)
		procs = append(procs, c)
	}
	defer func() {
		for _, c := range procs {
			c.stop(t)
		}
	}()
	check := func(what string, within time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			for _, c := range procs {
				if err := c.died(); err != nil {
					t.Fatal(err)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s\n--- a:\n%s\n--- b:\n%s\n--- c:\n%s", within, what, procs[0].tail(20), procs[1].tail(20), procs[2].tail(20))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	check("every instance ready", 2*time.Minute, func() bool {
		for _, c := range procs {
			if code, _ := getWithin(c.http, "/readyz"); code != http.StatusOK {
				return false
			}
		}
		return true
	})
	kvs := make([]string, 0, 2*keys)
	for i := range keys {
		kvs = append(kvs, fmt.Sprintf("k%06d", i), "x")
	}
	produce(t, brokers, in, kvs...)
	via := procs[1].http
	served := servedKeys(via, keys)
	check("every key counted", 2*time.Minute, func() bool { return served() })

	a := procs[0]
	killed := time.Now()
	a.kill(t)
	a.start(t)
	served = servedKeys(via, keys)
	check("every key served again after the restart", 2*session, func() bool { return served() })
	r.serving = time.Since(killed)
	return r
}

// servedKeys returns a check that asks the instance at addr for each of
// keys keys not answered yet, 8 at a time, and reports whether every one
// has answered its count, 1.
func servedKeys(addr string, keys int) func() bool {
	client := &http.Client{Timeout: time.Second}
	pending := make([]string, keys)
	for i := range keys {
		pending[i] = fmt.Sprintf("k%06d", i)
	}
	return func() bool {
		var mu sync.Mutex
		var left []string
		var wg sync.WaitGroup
		work := make(chan string)
		for range 8 {
			wg.Go(func() {
				for k := range work {
					if code, body, _ := getServed(client, addr, "/v1/stores/counts/keys/"+k); code != http.StatusOK || body != "1" {
						mu.Lock()
						left = append(left, k)
						mu.Unlock()
					}
				}
			})
		}
		for _, k := range pending {
			work <- k
		}
		close(work)
		wg.Wait()
		pending = left
		return len(pending) == 0
	}
}
