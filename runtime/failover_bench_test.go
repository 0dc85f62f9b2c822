//go:build linux

package runtime_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/config"
)

// BenchmarkFailover measures the time from SIGKILL of the instance owning a
// key to the first answer for that key from the instance that takes its
// task over, with a store of -streamrt.restore-keys keys (1,000,000 by
// default), without a standby replica and with one.
//
// Each run fills the store's changelog (4 partitions, a record per key;
// untimed), starts two streamrt processes of a counting app on it, waits
// until both are ready (their tasks restored) and, with a standby, until
// each one's copy of the other's tasks has caught up. It then finds a key
// the first instance answers from its own state, kills that instance with
// SIGKILL, and asks the second for the key every 5 ms until it answers from
// its own state (X-Streamrt-Served-By) with the right value.
//
// The time includes the group noticing the death, which takes up to the
// session timeout: 2s on the benchmark's kfake (whose minimum it lowers to
// 1s), 6s on a Kafka broker with the default group.min.session.timeout.ms.
// Reported: failover-ms; after-assigned-ms, the part of it after the
// survivor was assigned the dead instance's tasks (its "partitions
// assigned" log line), which is what a standby shortens; session-ms; and
// replayed-records, the changelog records the survivor restored to take
// over.
func BenchmarkFailover(b *testing.B) {
	if testing.Short() {
		b.Skip("failover benchmark: runs streamrt processes over a million-key store; skipped with -short")
	}
	bin := buildStreamrt(b)
	brokers, minSession := failoverBrokers(b)
	session := max(minSession, 2*time.Second)
	warmModules(b)
	for _, standbys := range []int{0, 1} {
		b.Run(fmt.Sprintf("standby=%d", standbys), func(b *testing.B) {
			var took, takeover time.Duration
			var replayed float64
			for range b.N {
				r := failover(b, bin, brokers, session, standbys)
				took += r.took
				takeover += r.takeover
				replayed += r.replayed
			}
			b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "failover-ms")
			b.ReportMetric(float64(takeover.Milliseconds())/float64(b.N), "after-assigned-ms")
			b.ReportMetric(float64(session.Milliseconds()), "session-ms")
			b.ReportMetric(replayed/float64(b.N), "replayed-records")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func failover(b *testing.B, bin string, brokers []string, session time.Duration, standbys int) failoverRun {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	n := *restoreKeys
	app := testkafka.Name(b, "bench-failover")
	in, out := app+"-in", app+"-out"
	changelog := config.ChangelogTopic(app, "counts")
	createTopics(b, brokers, in, out, changelog)
	produceAll(b, brokers, changelog, n, func(i int) (k, v []byte) {
		return fmt.Appendf(nil, "k%010d", i), []byte("7")
	})
	dir := b.TempDir()
	logDir := dir
	if d := os.Getenv("STREAMRT_CHAOS_LOG_DIR"); d != "" {
		logDir = d
	}
	cfgFile := standbyApp(b, dir, brokers, app, in, out, standbys, session)
	a := newChild(b, bin, "a", cfgFile, brokers, filepath.Join(dir, "a"), filepath.Join(logDir, app+"-a.log"))
	s := newChild(b, bin, "b", cfgFile, brokers, filepath.Join(dir, "b"), filepath.Join(logDir, app+"-b.log"))
	a.start(b)
	s.start(b)
	defer s.kill(b)
	wait := func(what string, cond func() bool) {
		deadline := time.Now().Add(5 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				b.Fatalf("timed out waiting for %s\n--- a:\n%s\n--- b:\n%s", what, a.tail(20), s.tail(20))
			}
			for _, c := range []*child{a, s} {
				if err := c.died(); err != nil {
					b.Fatal(err)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wait("both instances ready", func() bool {
		ca, _ := getWithin(a.http, "/readyz")
		cb, _ := getWithin(s.http, "/readyz")
		return ca == http.StatusOK && cb == http.StatusOK
	})
	client := &http.Client{Timeout: time.Second}
	// The tasks are split once each instance answers some key from its own
	// state (the second gets its share in a follow-up rebalance).
	own := func(c *child) string {
		for i := range 100 {
			k := fmt.Sprintf("k%010d", i)
			if code, body, by := getServed(client, c.http, "/v1/stores/counts/keys/"+k); code == 200 && body == "7" && by == c.http {
				return k
			}
		}
		return ""
	}
	var key string
	wait("the tasks split between the instances", func() bool {
		key = own(a)
		return key != "" && own(s) != ""
	})
	if standbys > 0 {
		// Caught up: the copies have taken a record per key in all, and
		// nothing more for a second.
		last, since := -1.0, time.Now()
		wait("the standby copies caught up", func() bool {
			applied := metricSum(a.http, "streamrt_standby_records_total") + metricSum(s.http, "streamrt_standby_records_total")
			if applied != last {
				last, since = applied, time.Now()
			}
			return applied >= float64(n) && time.Since(since) >= time.Second
		})
	}
	before := metricSum(s.http, "streamrt_restored_records_total")

	killed := time.Now()
	a.kill(b)
	for {
		if code, body, by := getServed(client, s.http, "/v1/stores/counts/keys/"+key); code == 200 && body == "7" && by == s.http {
			break
		}
		if time.Since(killed) > 5*time.Minute {
			b.Fatalf("the survivor did not answer for %s within 5 minutes\n%s", key, s.tail(20))
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(killed)
	// When the survivor learned of its new tasks: its last "partitions
	// assigned" log line.
	var assigned time.Time
	for _, line := range readLines(s.logPath) {
		if strings.Contains(line, `msg="partitions assigned"`) && strings.HasPrefix(line, "time=") {
			if t, err := time.Parse(time.RFC3339Nano, strings.Fields(line)[0][len("time="):]); err == nil {
				assigned = t
			}
		}
	}
	return failoverRun{took: took, takeover: killed.Add(took).Sub(assigned), replayed: metricSum(s.http, "streamrt_restored_records_total") - before}
}

// failoverRun is the outcome of one failover.
type failoverRun struct {
	took     time.Duration // SIGKILL to the survivor's first answer
	takeover time.Duration // the survivor's new assignment to that answer
	replayed float64       // changelog records the survivor restored meanwhile
}
