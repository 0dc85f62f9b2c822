//go:build linux

package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// failoverBrokers returns the test's brokers and the shortest session
// timeout they allow: kfake started for the test with a 1s minimum, or a
// real cluster's group.min.session.timeout.ms as it reports it (Kafka's
// default is 6s; scripts/kafka.sh sets 1s).
func failoverBrokers(t testing.TB) ([]string, time.Duration) {
	t.Helper()
	if testkafka.Real() {
		brokers := testkafka.Brokers(t)
		return brokers, minSessionTimeout(t, brokers)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.BrokerConfigs(map[string]string{"group.min.session.timeout.ms": "1000"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs(), time.Second
}

// minSessionTimeout asks the cluster for group.min.session.timeout.ms,
// falling back to Kafka's default when it does not say.
func minSessionTimeout(t testing.TB, brokers []string) time.Duration {
	const kafkaDefault = 6 * time.Second
	adm := kadm.NewClient(testkafka.Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Static settings (server.properties) are reported per broker, not as
	// cluster defaults.
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return kafkaDefault
	}
	rcs, err := adm.DescribeBrokerConfigs(ctx, md.Brokers.NodeIDs()...)
	if err != nil {
		return kafkaDefault
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "group.min.session.timeout.ms" && c.Value != nil {
				if ms, err := strconv.Atoi(*c.Value); err == nil {
					return time.Duration(ms) * time.Millisecond
				}
			}
		}
	}
	return kafkaDefault
}

// metricSum adds up the samples of a metric (every label set) on the
// instance at addr; -1 when it cannot be read.
func metricSum(addr, name string) float64 {
	code, body := getWithin(addr, "/metrics")
	if code != http.StatusOK {
		return -1
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\S+)$`)
	var sum float64
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		sum += v
	}
	return sum
}

// getServed gets path from the instance at addr and returns the status, the
// body and the instance that answered (X-Streamrt-Served-By).
func getServed(client *http.Client, addr, path string) (int, string, string) {
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return 0, "", ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("X-Streamrt-Served-By")
}

// standbyApp writes the configuration of a counting app with standby
// replicas and a short session, and returns its file.
func standbyApp(t testing.TB, dir string, brokers []string, app, in, out string, standbys int, session time.Duration) string {
	t.Helper()
	y := fmt.Sprintf(`app: %s
brokers: [%s]
partitions: 4
commit_interval: 100ms
standby_replicas: %d
session_timeout: %s
stages:
  - name: main
    module: %s
    inputs: [%s]
    outputs: {out: %s}
    stores: [counts]
`, app, strings.Join(brokers, ", "), standbys, session, guesttest.Dir("counter"), in, out)
	file := filepath.Join(dir, "app.yaml")
	if err := os.WriteFile(file, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// Two instances with standby_replicas: 1 each keep a warm copy of the
// other's tasks. When one is killed with SIGKILL, the survivor takes its
// tasks over, replaying only the changelog's tail (here nothing, since
// its copies were caught up), and serves the same counts from its own state.
func TestStandbyTakesOverWithOnlyTheTail(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two streamrt processes; skipped under -short")
	}
	bin := buildStreamrt(t)
	brokers, minSession := failoverBrokers(t)
	app, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, 4)
	dir := t.TempDir()
	cfgFile := standbyApp(t, dir, brokers, app, in, out, 1, max(minSession, 3*time.Second))
	procs := []*child{
		newChild(t, bin, "a", cfgFile, brokers, filepath.Join(dir, "a"), filepath.Join(dir, "a.log")),
		newChild(t, bin, "b", cfgFile, brokers, filepath.Join(dir, "b"), filepath.Join(dir, "b.log")),
	}
	for _, p := range procs {
		p.start(t)
	}
	dumpOnFailure(t, procs)
	a, b := procs[0], procs[1]
	waitChildren(t, procs, 2*time.Minute, "both instances ready, each with standbys", func() bool {
		for _, p := range procs {
			if code, _ := getWithin(p.http, "/readyz"); code != http.StatusOK || metricSum(p.http, "streamrt_standby_tasks") != 2 {
				return false
			}
		}
		return true
	})

	const nkeys, rounds = 200, 5
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	produce(t, brokers, in, clicks(keys, rounds)...)
	client := &http.Client{Timeout: 5 * time.Second}
	waitChildren(t, procs, time.Minute, "every count at 5", func() bool {
		for _, k := range keys {
			if code, body, _ := getServed(client, a.http, "/v1/stores/counts/keys/"+k); code != 200 || body != strconv.Itoa(rounds) {
				return false
			}
		}
		return true
	})
	// Each instance's copies of the other's tasks take every change in:
	// every count is committed, so the changelog has reached its end, and
	// each of its records has one standby copy to apply it, which commits
	// the records of a poll with the position they reach.
	adm := kadm.NewClient(testkafka.Client(t, brokers))
	changelog := app + "-counts-changelog"
	var ends int64
	waitChildren(t, procs, time.Minute, "the standby copies to apply every changelog record", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		listed, err := adm.ListEndOffsets(ctx, changelog)
		if err != nil || listed.Error() != nil {
			return false
		}
		ends = 0
		listed.Each(func(o kadm.ListedOffset) { ends += o.Offset })
		applied := metricSum(a.http, "streamrt_standby_records_total") + metricSum(b.http, "streamrt_standby_records_total")
		return ends >= nkeys && applied >= float64(ends)
	})

	// Metadata names each key's owner and its standby: the other instance.
	aKey := ""
	for _, k := range keys {
		resp, err := client.Get("http://" + b.http + "/v1/metadata/stores/counts/keys/" + k)
		if err != nil {
			t.Fatal(err)
		}
		var md struct {
			Active   *struct{ Address string }
			Standbys []struct{ Address string }
		}
		err = json.NewDecoder(resp.Body).Decode(&md)
		resp.Body.Close()
		if err != nil || md.Active == nil || len(md.Standbys) != 1 || md.Standbys[0].Address == md.Active.Address {
			t.Fatalf("metadata of %s: %+v (%v), want an owner and one standby on the other instance", k, md, err)
		}
		if md.Active.Address == a.http && aKey == "" {
			aKey = k
		}
	}
	if aKey == "" {
		t.Fatal("no key is owned by the instance about to be killed")
	}

	before := metricSum(b.http, "streamrt_restored_records_total")
	killed := time.Now()
	a.kill(t)

	// Until the group notices, the dead instance still owns its keys: a
	// lookup cannot reach it and answers 503, and one that accepts a stale
	// answer gets the standby copy, marked stale.
	moved := false
	switch code, _, by := getServed(client, b.http, "/v1/stores/counts/keys/"+aKey); {
	case code == http.StatusOK && by == b.http:
		moved = true // the group was quicker than this request
	case code != http.StatusServiceUnavailable:
		t.Errorf("lookup of %s right after the owner died: %d, want 503", aKey, code)
	}
	if resp, err := client.Get("http://" + b.http + "/v1/stores/counts/keys/" + aKey + "?stale=true"); err != nil {
		t.Error(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("right after the SIGKILL, %s with stale=true: %d %q, stale=%q (moved already: %v)", aKey, resp.StatusCode, body, resp.Header.Get("X-Streamrt-Stale"), moved)
		if resp.StatusCode != 200 || string(body) != strconv.Itoa(rounds) || (!moved && resp.Header.Get("X-Streamrt-Stale") != "true") {
			t.Errorf("stale lookup of %s right after the owner died: %d %q stale=%q, want %d from the standby copy",
				aKey, resp.StatusCode, body, resp.Header.Get("X-Streamrt-Stale"), rounds)
		}
	}
	var servedAt time.Duration
	waitChildren(t, procs[1:], time.Minute, "the survivor to serve every count from its own state", func() bool {
		for _, k := range keys {
			code, body, by := getServed(client, b.http, "/v1/stores/counts/keys/"+k)
			if code != 200 || body != strconv.Itoa(rounds) || by != b.http {
				return false
			}
		}
		servedAt = time.Since(killed)
		return true
	})
	replayed := metricSum(b.http, "streamrt_restored_records_total") - before
	t.Logf("the survivor served every key %v after the SIGKILL, replaying %v of the changelog's %d records", servedAt.Round(time.Millisecond), replayed, ends)
	// Without a standby the survivor would replay every record of the
	// dead instance's changelog partitions, at least a record per key it
	// owned; its caught-up copies leave an empty tail.
	if replayed != 0 {
		t.Errorf("the survivor replayed %v changelog records to take over from caught-up copies, want none", replayed)
	}

	// Counting goes on from the taken-over state.
	produce(t, brokers, in, clicks(keys, 1)...)
	waitChildren(t, procs[1:], time.Minute, "every count at 6", func() bool {
		for _, k := range keys {
			if code, body, _ := getServed(client, b.http, "/v1/stores/counts/keys/"+k); code != 200 || body != strconv.Itoa(rounds+1) {
				return false
			}
		}
		return true
	})
}
