package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// With start_offset: latest, a new consumer group starts at the end of
// its inputs: records produced before the app first started are never
// processed, and those produced after it are.
func TestStartOffsetLatestSkipsEarlierRecords(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, 4)
	var before, after []string
	for i := range 20 {
		before = append(before, fmt.Sprintf("before-%d", i))
		after = append(after, fmt.Sprintf("after-%d", i))
	}
	produce(t, brokers, in, clicks(before, 1)...)
	a := startApp(t, appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"},
		extra: "start_offset: latest\n"})
	a.waitReady()
	// A partition's position is taken at its first fetch: clicks produced
	// before that are skipped too, so produce until every key counts.
	apptest.WaitCheck(t, 60*time.Second, "every key produced after the start to be counted", func() error {
		var missing []string
		for _, k := range after {
			if code, _ := a.get("/v1/stores/counts/keys/" + k); code != 200 {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			produce(t, brokers, in, clicks(missing, 1)...)
			return fmt.Errorf("%d not counted yet: %v", len(missing), missing)
		}
		return nil
	})
	for _, k := range before {
		if code, body := a.get("/v1/stores/counts/keys/" + k); code != 404 {
			t.Errorf("%s, produced before the group existed, was counted: %d %q", k, code, body)
		}
	}
}

// advertise is the address other instances reach an instance at: the
// group's map, the metadata and the forwarded lookups use it, and the
// instance names itself by it.
func TestAdvertisedAddressIsTheOneOthersUse(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	yaml := []byte(appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}}.yaml())
	path := filepath.Join(t.TempDir(), "app.yaml")
	bound := apptest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(bound)
	advertised := net.JoinHostPort("localhost", port)
	a := apptest.StartYAML(t, yaml, path, apptest.Options{Overrides: map[string]string{"http": bound, "advertise": advertised}})
	b := apptest.StartYAML(t, yaml, path, apptest.Options{})

	var list []struct {
		Address string
		Stores  map[string][]int32
	}
	apptest.WaitCheck(t, 60*time.Second, "both instances to own partitions", func() error {
		got := b.Get("/v1/instances")
		if err := json.Unmarshal([]byte(got.Body), &list); err != nil || len(list) != 2 ||
			len(list[0].Stores["counts"]) == 0 || len(list[1].Stores["counts"]) == 0 {
			return fmt.Errorf("/v1/instances: %d %s", got.Code, got.Body)
		}
		return nil
	})
	var addrs []string
	for _, in := range list {
		addrs = append(addrs, in.Address)
	}
	if !strings.Contains(strings.Join(addrs, " "), advertised) || strings.Contains(strings.Join(addrs, " "), bound) {
		t.Fatalf("/v1/instances names %v, want %s (advertised) and not %s (bound)", addrs, advertised, bound)
	}

	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	produce(t, brokers, in, clicks(keys, 1)...)
	onA := 0
	for _, k := range keys {
		md := b.Get("/v1/metadata/stores/counts/keys/" + url.PathEscape(k))
		var meta struct{ Active *struct{ Address string } }
		if err := json.Unmarshal([]byte(md.Body), &meta); err != nil || meta.Active == nil {
			t.Fatalf("metadata of %s: %d %s", k, md.Code, md.Body)
		}
		if meta.Active.Address != advertised {
			continue
		}
		onA++
		// b reaches a at the advertised address only.
		apptest.WaitCheck(t, 10*time.Second, k+" asked of the other instance", func() error {
			if got := b.Store("counts", k); got.Code != 200 || got.Body != "1" || got.ServedBy != advertised {
				return fmt.Errorf("%d %q served by %q, want 200 \"1\" from %s", got.Code, got.Body, got.ServedBy, advertised)
			}
			return nil
		})
		if got := a.Store("counts", k); got.ServedBy != advertised {
			t.Errorf("%s asked of its owner: served by %q, want %s", k, got.ServedBy, advertised)
		}
	}
	if onA == 0 {
		t.Fatalf("no key's metadata names the advertised address %s", advertised)
	}
}

// replication_factor is that of the topics the app creates: each of their
// partitions has that many replicas, and a factor the cluster cannot meet
// stops the app with the broker's reason rather than creating topics some
// other way. On kfake, three brokers make a factor of two differ from the
// broker's default (every broker); a single real broker can only show one
// replica, and refuse two.
func TestReplicationFactorOfCreatedTopics(t *testing.T) {
	var brokers []string
	if testkafka.Real() {
		brokers = testkafka.Brokers(t)
	} else {
		c, err := kfake.NewCluster(kfake.NumBrokers(3))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		brokers = c.ListenAddrs()
	}
	adm := kadm.NewClient(testkafka.Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nbrokers := len(md.Brokers)
	factor := max(1, nbrokers-1)

	appName, in, out := names(t)
	spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"},
		extra: fmt.Sprintf("replication_factor: %d\n", factor)}
	a := startApp(t, spec)
	a.waitReady()
	created := []string{in, out, appName + "-counts-changelog"}
	var details kadm.TopicDetails
	// A broker's metadata may list a topic just created before its
	// partitions.
	apptest.WaitCheck(t, 30*time.Second, "the created topics' partitions to be listed", func() error {
		details, err = adm.ListTopics(ctx, created...)
		if err != nil {
			return err
		}
		for _, topic := range created {
			if d := details[topic]; d.Err != nil || len(d.Partitions) != 4 {
				return fmt.Errorf("topic %s: %+v", topic, d)
			}
		}
		return nil
	})
	for _, topic := range created {
		for _, p := range details[topic].Partitions {
			if len(p.Replicas) != factor {
				t.Errorf("%s partition %d has replicas %v, want %d (replication_factor) of %d brokers", topic, p.Partition, p.Replicas, factor, nbrokers)
			}
		}
	}

	appName, in, out = names(t)
	too := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"},
		extra: fmt.Sprintf("replication_factor: %d\n", nbrokers+1)}
	b := startApp(t, too)
	select {
	case err := <-b.done:
		b.cancel = nil
		if err == nil || !strings.Contains(err.Error(), "INVALID_REPLICATION_FACTOR") {
			t.Fatalf("replication_factor %d on %d broker(s): %v, want the broker's refusal", nbrokers+1, nbrokers, err)
		}
		t.Logf("replication_factor %d on %d broker(s): %v", nbrokers+1, nbrokers, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("the app started with replication_factor %d on %d broker(s)", nbrokers+1, nbrokers)
	}
}
