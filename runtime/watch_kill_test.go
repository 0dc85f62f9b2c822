//go:build linux

package runtime_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/partition"
)

// watchClient follows one key's watch as a browser's EventSource would:
// when the stream ends or breaks it reconnects, with the last event id, to
// the next instance that answers.
type watchClient struct {
	key   string
	addrs []string // tried in turn, from the first

	mu       sync.Mutex
	snapshot string   // the first event's value
	changes  []string // "offset=value" of every change event, in order
	lastID   string
	ends     []string // why streams ended
}

func (w *watchClient) run(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		w.follow(ctx, w.addrs[i%len(w.addrs)])
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// follow reads one stream from addr until it ends.
func (w *watchClient) follow(ctx context.Context, addr string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/stores/click-counts/keys/"+w.key+"/watch", nil)
	if err != nil {
		return
	}
	w.mu.Lock()
	if w.lastID != "" {
		req.Header.Set("Last-Event-ID", w.lastID)
	}
	w.mu.Unlock()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.ended(addr + ": " + err.Error())
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		w.ended(fmt.Sprintf("%s: %d", addr, resp.StatusCode))
		return
	}
	sc := bufio.NewScanner(resp.Body)
	var id, kind string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			kind = line[7:]
		case strings.HasPrefix(line, "data: "):
			var d struct {
				Offset *int64  `json:"offset"`
				Value  *string `json:"value"`
				Reason string  `json:"reason"`
			}
			json.Unmarshal([]byte(line[6:]), &d)
			w.mu.Lock()
			switch kind {
			case "snapshot":
				if w.lastID == "" && d.Value != nil {
					w.snapshot = *d.Value
				} else {
					w.changes = append(w.changes, "snapshot="+fmt.Sprint(d.Value))
				}
			case "change":
				w.changes = append(w.changes, fmt.Sprintf("%d=%s", *d.Offset, *d.Value))
			case "end":
				w.ends = append(w.ends, addr+": "+d.Reason)
				w.mu.Unlock()
				return
			}
			if id != "" {
				w.lastID = id
			}
			w.mu.Unlock()
		}
	}
	w.ended(addr + ": the stream closed")
}

func (w *watchClient) ended(why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ends = append(w.ends, why)
}

func (w *watchClient) last() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.changes) == 0 {
		return w.snapshot
	}
	_, v, _ := strings.Cut(w.changes[len(w.changes)-1], "=")
	return v
}

// TestWatchSeesEveryChangeOnceAcrossAKill watches one key from two
// instances, the one that owns it and another that relays it, while its
// count changes, and SIGKILLs the owner on the way: each client, moving to
// another instance when its stream ends, sees the changelog's changes of
// the key exactly once, in order.
func TestWatchSeesEveryChangeOnceAcrossAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three streamrt processes; skipped under -short")
	}
	bin := buildStreamrt(t)
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	const partitions = 4
	testkafka.CreateTopic(t, brokers, in, partitions)
	dir := t.TempDir()
	cfgFile := writeClickcount(t, dir, appName, brokers, "exactly_once", partitions, in, out, "session_timeout: 6s\n")
	procs := make([]*child, 3)
	for i := range procs {
		name := fmt.Sprintf("instance-%d", i)
		procs[i] = newChild(t, bin, name, cfgFile, brokers, filepath.Join(dir, name), filepath.Join(dir, name+".log"))
		procs[i].start(t)
	}
	dumpOnFailure(t, procs)
	waitChildren(t, procs, 2*time.Minute, "every instance to be ready", func() bool {
		for _, p := range procs {
			if code, _ := getWithin(p.http, "/readyz"); code != http.StatusOK {
				return false
			}
		}
		return true
	})

	// The key's owner, and another instance.
	key := "page-7"
	var owner, other *child
	waitChildren(t, procs, time.Minute, "the key's owner to be known", func() bool {
		code, body := getWithin(procs[0].http, "/v1/metadata/stores/click-counts/keys/"+key)
		if code != http.StatusOK {
			return false
		}
		for _, p := range procs {
			if strings.Contains(body, `"address":"`+p.http+`"`) {
				owner = p
			}
		}
		return owner != nil
	})
	for _, p := range procs {
		if p != owner && other == nil {
			other = p
		}
	}
	t.Logf("%s (partition %d) is owned by %s; the relayed watch is at %s", key, partition.For([]byte(key), partitions), owner.name, other.name)
	testkafka.Produce(t, brokers, in, key, "c")
	waitChildren(t, procs, time.Minute, "the first click to be counted", func() bool {
		code, body := getWithin(owner.http, "/v1/stores/click-counts/keys/"+key)
		return code == http.StatusOK && body == "1"
	})

	var live []string
	for _, p := range procs {
		if p != owner {
			live = append(live, p.http)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	local := &watchClient{key: key, addrs: append([]string{owner.http}, live...)}
	relayed := &watchClient{key: key, addrs: append([]string{other.http}, live...)}
	var wg sync.WaitGroup
	for _, w := range []*watchClient{local, relayed} {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx) }()
	}
	defer wg.Wait()
	defer cancel()

	// Clicks on the key, one every 20 ms for 8 s; the owner dies after 3 s.
	cl := testkafka.Client(t, brokers)
	clicks := 1
	deadline := time.Now().Add(8 * time.Second)
	killAt := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if owner.running() && time.Now().After(killAt) {
			t.Logf("SIGKILL %s (pid %d) after %d clicks", owner.name, owner.kill(t), clicks)
		}
		pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
		err := cl.ProduceSync(pctx, &kgo.Record{Topic: in, Key: []byte(key), Value: []byte("c")}).FirstErr()
		pcancel()
		if err != nil {
			t.Fatalf("produce: %v", err)
		}
		clicks++
		time.Sleep(20 * time.Millisecond)
	}
	want := strconv.Itoa(clicks)
	t.Logf("%d clicks on %s", clicks, key)
	waitChildren(t, procs, 2*time.Minute, "both watches to reach "+want, func() bool {
		return local.last() == want && relayed.last() == want
	})
	cancel()

	// The changelog's committed changes of the key after the first click,
	// which is what each watch began with.
	var history []string
	readStable(t, brokers, appName+"-click-counts-changelog", func(r *kgo.Record) {
		if string(r.Key) == key && string(r.Value) != "1" {
			history = append(history, fmt.Sprintf("%d=%s", r.Offset, r.Value))
		}
	})
	for name, w := range map[string]*watchClient{"local": local, "relayed": relayed} {
		w.mu.Lock()
		t.Logf("%s watch: began with %s, %d changes, %d streams ended, the first: %v", name, w.snapshot, len(w.changes), len(w.ends), w.ends[:min(3, len(w.ends))])
		if w.snapshot != "1" {
			t.Errorf("%s watch began with %q, want 1", name, w.snapshot)
		}
		if !slices.Equal(w.changes, history) {
			t.Errorf("%s watch saw the changes\n%v\nwant the changelog's, once each and in order:\n%v", name, w.changes, history)
		}
		w.mu.Unlock()
	}
}
