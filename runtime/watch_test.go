package runtime_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/partition"
)

// sseEvent is one Server-Sent Event of a watch, its data decoded.
type sseEvent struct {
	id, kind string
	data     struct {
		Store     string  `json:"store"`
		Partition int32   `json:"partition"`
		Position  int64   `json:"position"`
		Offset    *int64  `json:"offset"`
		Key       *string `json:"key"`
		Found     *bool   `json:"found"`
		Value     *string `json:"value"`
		Deleted   bool    `json:"deleted"`
		Reason    string  `json:"reason"`
	}
}

func (e sseEvent) String() string {
	k, v := "", ""
	if e.data.Key != nil {
		k = *e.data.Key
	}
	if e.data.Value != nil {
		v = *e.data.Value
	}
	return fmt.Sprintf("%s id=%q p%d@%d %s=%s %s", e.kind, e.id, e.data.Partition, e.data.Position, k, v, e.data.Reason)
}

// sseWatch is an open watch whose events are decoded.
type sseWatch struct {
	*apptest.Stream
	status int
	body   string
}

func openWatch(t *testing.T, addr, path, lastID string, header ...string) *sseWatch {
	t.Helper()
	if lastID != "" {
		header = append(header, "Last-Event-ID", lastID)
	}
	s := apptest.Watch(t, addr, path, header...)
	if s.Code == http.StatusOK {
		if ct := s.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("watch answered Content-Type %q, want text/event-stream", ct)
		}
	}
	return &sseWatch{Stream: s, status: s.Code, body: s.Body}
}

// next returns the watch's next event, failing the test after 20 s.
func (w *sseWatch) next(t *testing.T) sseEvent {
	t.Helper()
	raw := w.Next(t, 20*time.Second)
	ev := sseEvent{id: raw.ID, kind: raw.Kind}
	if err := json.Unmarshal([]byte(raw.Data), &ev.data); err != nil {
		t.Fatalf("event data %q: %v", raw.Data, err)
	}
	return ev
}

// waitValue reads events until key's value is want, and returns the
// events read.
func (w *sseWatch) waitValue(t *testing.T, key, want string) []sseEvent {
	t.Helper()
	var seen []sseEvent
	for {
		ev := w.next(t)
		seen = append(seen, ev)
		if ev.kind == "end" {
			t.Fatalf("the watch ended: %s (events: %v)", ev.data.Reason, seen)
		}
		if ev.data.Key != nil && *ev.data.Key == key && ev.data.Value != nil && *ev.data.Value == want {
			return seen
		}
	}
}

func TestWatchStreamsCommittedChanges(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, faultPartitions)
	a := startClickcount(t, brokers, appName, in, out, config.ExactlyOnce)
	a.waitReady()
	testkafka.Produce(t, brokers, in, "page-1", "c", "page-1", "c", "page-2", "c")
	a.waitGet(t, "/v1/stores/click-counts/keys/page-1", "2")

	// A key watch starts with the current value and its position, then
	// sends each committed change of that key only.
	kw := openWatch(t, a.http, "/v1/stores/click-counts/keys/page-1/watch", "")
	if kw.status != http.StatusOK {
		t.Fatalf("watch answered %d: %s", kw.status, kw.body)
	}
	first := kw.next(t)
	p := partition.For([]byte("page-1"), faultPartitions)
	if first.kind != "snapshot" || first.data.Found == nil || !*first.data.Found || *first.data.Value != "2" || first.data.Partition != p || first.id != fmt.Sprintf("%d:%d", p, first.data.Position) {
		t.Fatalf("first event %v, want the snapshot page-1=2 of partition %d with its position as id", first, p)
	}
	missing := openWatch(t, a.http, "/v1/stores/click-counts/watch?key=nobody", "")
	if ev := missing.next(t); ev.kind != "snapshot" || ev.data.Found == nil || *ev.data.Found || ev.data.Value != nil {
		t.Fatalf("a watch of an absent key began with %v, want a snapshot saying not found", ev)
	}
	pw := openWatch(t, a.http, "/v1/stores/click-counts/watch?prefix=page-", "")
	snapshot := map[string]string{}
	synced := map[int32]bool{}
	for len(synced) < faultPartitions {
		ev := pw.next(t)
		switch ev.kind {
		case "snapshot":
			snapshot[*ev.data.Key] = *ev.data.Value
		case "synced":
			synced[ev.data.Partition] = true
		default:
			t.Fatalf("prefix watch sent %v before every partition's snapshot was whole", ev)
		}
	}
	if len(snapshot) != 2 || snapshot["page-1"] != "2" || snapshot["page-2"] != "1" {
		t.Fatalf("prefix snapshot %v, want page-1=2 and page-2=1", snapshot)
	}

	testkafka.Produce(t, brokers, in, "home", "c", "page-1", "c", "page-3", "c")
	for i := range 5 {
		testkafka.Produce(t, brokers, in, "page-1", "c"+strconv.Itoa(i))
	}
	seen := kw.waitValue(t, "page-1", "8")
	last := first.data.Position
	prev := 2
	for _, ev := range seen {
		if ev.kind != "change" || *ev.data.Key != "page-1" || ev.data.Offset == nil {
			t.Fatalf("key watch sent %v, want only changes of page-1 (all: %v)", ev, seen)
		}
		n, _ := strconv.Atoi(*ev.data.Value)
		if *ev.data.Offset < last || n <= prev {
			t.Fatalf("change %v goes back: offset below %d or count not above %d (all: %v)", ev, last, prev, seen)
		}
		last, prev = ev.data.Position, n
		// Sent after the commit: the store answers at least this count.
		if code, body := a.get("/v1/stores/click-counts/keys/page-1"); code != http.StatusOK {
			t.Fatalf("lookup: %d %s", code, body)
		} else if got, _ := strconv.Atoi(body); got < n {
			t.Fatalf("the watch sent page-1=%d while the store answers %d: sent before it committed", n, got)
		}
	}
	// Partitions' changes come in no order between them: read until both
	// keys have their last value.
	got := map[string]string{}
	for got["page-1"] != "8" || got["page-3"] != "1" {
		ev := pw.next(t)
		if ev.kind != "change" || !strings.HasPrefix(*ev.data.Key, "page-") {
			t.Fatalf("prefix watch sent %v, want changes of page-* keys only", ev)
		}
		got[*ev.data.Key] = *ev.data.Value
	}
	// Resuming at the last position sends no snapshot, only what changes
	// after it; an older position gets a fresh snapshot.
	lastID := seen[len(seen)-1].id
	kw.Close()
	resumed := openWatch(t, a.http, "/v1/stores/click-counts/keys/page-1/watch", lastID)
	testkafka.Produce(t, brokers, in, "page-1", "c")
	if ev := resumed.next(t); ev.kind != "change" || *ev.data.Value != "9" {
		t.Fatalf("resumed at %s, first event %v, want the change to 9", lastID, ev)
	}
	// Resuming at an older position reads what the client missed back
	// from the changelog: the same changes the first watch saw, then 9.
	old := openWatch(t, a.http, "/v1/stores/click-counts/keys/page-1/watch", first.id)
	var replayed, live []string
	for _, ev := range seen {
		live = append(live, ev.id+"="+*ev.data.Value)
	}
	for len(replayed) == 0 || !strings.HasSuffix(replayed[len(replayed)-1], "=9") {
		ev := old.next(t)
		if ev.kind != "change" {
			t.Fatalf("resumed at the old %s, got %v, want the changes since", first.id, ev)
		}
		replayed = append(replayed, ev.id+"="+*ev.data.Value)
	}
	if got, want := strings.Join(replayed[:len(replayed)-1], " "), strings.Join(live, " "); got != want {
		t.Fatalf("resumed at %s, the changes read back are\n%s\nwant the ones sent live\n%s", first.id, got, want)
	}

	for path, want := range map[string]string{
		"/v1/stores/nope/watch":                      "404",
		"/v1/stores/click-counts/watch?partition=99": "400",
		"/v1/stores/click-counts/watch?key=a&partition=" + strconv.Itoa(int(partition.For([]byte("a"), faultPartitions)+1)%faultPartitions): "400",
	} {
		w := openWatch(t, a.http, path, "")
		if strconv.Itoa(w.status) != want {
			t.Errorf("GET %s answered %d %s, want %s", path, w.status, w.body, want)
		}
	}
	if w := openWatch(t, a.http, "/v1/stores/click-counts/keys/page-1/watch", "7:x"); w.status != http.StatusBadRequest || !strings.Contains(w.body, "Last-Event-ID") {
		t.Errorf("a bad Last-Event-ID answered %d %s, want 400 naming it", w.status, w.body)
	}
	if code, body := a.get("/metrics"); code != http.StatusOK || !strings.Contains(body, "streamrt_watches ") || !strings.Contains(body, "streamrt_watch_events_total") {
		t.Errorf("/metrics lacks the watch metrics: %d", code)
	}
}

func TestWatchIsRelayedFromTheOwnerAndResumesAfterAMove(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, faultPartitions)
	a := startClickcount(t, brokers, appName, in, out, config.AtLeastOnce)
	b := startClickcount(t, brokers, appName, in, out, config.AtLeastOnce)
	a.waitReady()
	b.waitReady()
	var key string
	waitFor(t, 60*time.Second, "both instances to own partitions", func() bool {
		for i := range 200 {
			k := "page-" + strconv.Itoa(i)
			if _, body := a.get("/v1/metadata/stores/click-counts/keys/" + k); strings.Contains(body, b.http) {
				key = k
				return true
			}
		}
		return false
	})
	testkafka.Produce(t, brokers, in, key, "c")
	b.waitGet(t, "/v1/stores/click-counts/keys/"+key, "1")

	// Watched at a, answered by b.
	w := openWatch(t, a.http, "/v1/stores/click-counts/keys/"+key+"/watch", "")
	if w.status != http.StatusOK {
		t.Fatalf("watch at the other instance answered %d: %s", w.status, w.body)
	}
	first := w.next(t)
	if first.kind != "snapshot" || *first.data.Value != "1" {
		t.Fatalf("relayed watch began with %v, want the snapshot 1", first)
	}
	testkafka.Produce(t, brokers, in, key, "c", key, "c")
	lastID := w.waitValue(t, key, "3")[0].id

	// b stops: its partitions move to a, the relayed watch ends with the
	// reason, and the client resumes at a from its position.
	if err := b.stop(); err != nil {
		t.Fatalf("stop b: %v", err)
	}
	var end sseEvent
	for end.kind != "end" {
		end = w.next(t)
		if end.kind == "change" {
			lastID = end.id
		}
	}
	if end.data.Reason == "" {
		t.Fatal("the relayed watch ended without a reason")
	}
	t.Logf("the relayed watch ended: %s", end.data.Reason)
	a.waitGet(t, "/v1/stores/click-counts/keys/"+key, "3")
	again := openWatch(t, a.http, "/v1/stores/click-counts/keys/"+key+"/watch", lastID)
	if again.status != http.StatusOK {
		t.Fatalf("resumed watch answered %d: %s", again.status, again.body)
	}
	testkafka.Produce(t, brokers, in, key, "c")
	seen := again.waitValue(t, key, "4")
	for _, ev := range seen {
		if ev.kind == "snapshot" && *ev.data.Value != "3" {
			t.Fatalf("after the move the watch resent %v: a snapshot older or newer than the last state seen (3)", ev)
		}
	}
	t.Logf("after the move: %v", seen)
}

func TestWatchesPastTheLimitsAreRefusedWithTheReason(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, faultPartitions)
	file := writeClickcount(t, t.TempDir(), appName, brokers, "at_least_once", faultPartitions, in, out,
		"query: {max_watches: 3, max_watches_per_client: 2, tokens: [alpha, beta, gamma]}\n")
	yaml, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	a := startYAML(t, string(yaml), "", false)
	a.waitReady()
	open := func(token string) *sseWatch {
		if token == "" {
			return openWatch(t, a.http, "/v1/stores/click-counts/watch", "")
		}
		return openWatch(t, a.http, "/v1/stores/click-counts/watch", "", "Authorization", "Bearer "+token)
	}
	if w := open(""); w.status != http.StatusUnauthorized {
		t.Fatalf("a watch without a token answered %d, want 401", w.status)
	}
	open("alpha")
	open("alpha")
	if w := open("alpha"); w.status != http.StatusServiceUnavailable || !strings.Contains(w.body, "query.max_watches_per_client") {
		t.Fatalf("a client's third watch answered %d %s, want 503 naming query.max_watches_per_client", w.status, w.body)
	}
	if w := open("beta"); w.status != http.StatusOK {
		t.Fatalf("another client's watch answered %d %s", w.status, w.body)
	}
	if w := open("gamma"); w.status != http.StatusServiceUnavailable || !strings.Contains(w.body, "query.max_watches") {
		t.Fatalf("the instance's fourth watch answered %d %s, want 503 naming query.max_watches", w.status, w.body)
	}
	if _, body := a.get("/metrics"); !strings.Contains(body, "streamrt_watches 3") || !strings.Contains(body, `streamrt_watches_ended_total{reason="limit"} 2`) {
		t.Errorf("/metrics does not show 3 open watches and 2 refused:\n%s", grepLines(body, "streamrt_watch"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// openUnread opens a watch of every key of click-counts at a over a raw
// connection with a small receive buffer, and does not read it.
func openUnread(t *testing.T, a *app) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", a.http)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /v1/stores/click-counts/watch HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", a.http)
	waitFor(t, 30*time.Second, "the watch to open", func() bool {
		_, body := a.get("/metrics")
		return strings.Contains(body, "streamrt_watches 1")
	})
	return conn
}

// clickMany counts clicks on n new keys of about 2 KB each, named after
// round.
func clickMany(t *testing.T, brokers []string, in string, round, n int) {
	big := strings.Repeat("x", 2000)
	var kvs []string
	for k := range n {
		kvs = append(kvs, fmt.Sprintf("key-%d-%d-%s", round, k, big), "c")
	}
	testkafka.Produce(t, brokers, in, kvs...)
}

func startWatchLimited(t *testing.T, query string) (*app, []string, string) {
	t.Helper()
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, faultPartitions)
	file := writeClickcount(t, t.TempDir(), appName, brokers, "at_least_once", faultPartitions, in, out, "query: "+query+"\n")
	yaml, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	a := startYAML(t, string(yaml), "", false)
	a.waitReady()
	return a, brokers, in
}

// A watch whose client reads more slowly than its keys change keeps a
// bounded queue, then ends with the reason, while the app goes on.
func TestASlowWatchEndsWithTheReason(t *testing.T) {
	a, brokers, in := startWatchLimited(t, "{watch_buffer: 16, watch_coalesce_keys: 64}")
	conn := openUnread(t, a)
	clickMany(t, brokers, in, 0, 500)
	waitFor(t, 60*time.Second, "the slow watch to end", func() bool {
		_, body := a.get("/metrics")
		return strings.Contains(body, "streamrt_watches 0") && strings.Contains(body, `streamrt_watches_ended_total{reason="slow"}`)
	})
	// Its last event says why.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	var last string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the watch up to its end: %v (last data: %s)", err, last)
		}
		if strings.HasPrefix(line, "data: ") {
			last = line
		}
		if strings.HasPrefix(line, "event: end") {
			line, _ = r.ReadString('\n')
			if !strings.Contains(line, "read too slowly") {
				t.Fatalf("the watch ended with %s, want the reason: too slow", line)
			}
			break
		}
	}
	a.waitGet(t, "/v1/stores/click-counts/keys/"+fmt.Sprintf("key-0-0-%s", strings.Repeat("x", 2000)), "1")
}

// A client that never reads at all: once its connection's buffers are
// full, the write times out and the connection is closed.
func TestAWatchThatIsNeverReadIsDisconnected(t *testing.T) {
	a, brokers, in := startWatchLimited(t, "{watch_buffer: 100000, watch_coalesce_keys: 100000}")
	conn := openUnread(t, a)
	for round := 0; round < 10; round++ {
		clickMany(t, brokers, in, round, 2000)
		if _, body := a.get("/metrics"); strings.Contains(body, "streamrt_watches 0") {
			break
		}
	}
	waitFor(t, 90*time.Second, "the unread watch to be disconnected", func() bool {
		_, body := a.get("/metrics")
		return strings.Contains(body, "streamrt_watches 0") && strings.Contains(body, `streamrt_watches_ended_total{reason="slow"}`)
	})
	// The server closed the connection: reading drains what was sent,
	// then meets its end.
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	if n, err := io.Copy(io.Discard, conn); err != nil {
		t.Errorf("the server did not close the unread watch's connection (read %d bytes): %v", n, err)
	}
	a.waitGet(t, "/v1/stores/click-counts/keys/"+fmt.Sprintf("key-0-0-%s", strings.Repeat("x", 2000)), "1")
}

// Ten thousand watches opened at once: the instance keeps
// query.max_watches of them and refuses the others with 503 and the
// reason, and serves on.
func TestTenThousandWatchesAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 10,000 connections; skipped under -short")
	}
	a, brokers, in := startWatchLimited(t, "{max_watches: 1000, max_watches_per_client: 100000}")
	const total, workers = 10_000, 100
	var mu sync.Mutex
	codes := map[int]int{}
	reasons := map[string]bool{}
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: workers}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range total / workers {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/v1/stores/click-counts/keys/k-%d-%d/watch", a.http, w, i), nil)
				resp, err := client.Do(req)
				mu.Lock()
				if err != nil {
					codes[-1]++
					mu.Unlock()
					continue
				}
				codes[resp.StatusCode]++
				if resp.StatusCode != http.StatusOK {
					b, _ := io.ReadAll(resp.Body)
					reasons[string(b)] = true
					resp.Body.Close()
				}
				mu.Unlock()
				// An open watch stays open until the test ends.
			}
		}()
	}
	wg.Wait()
	t.Logf("answers: %v", codes)
	if codes[http.StatusOK] != 1000 || codes[http.StatusServiceUnavailable] != total-1000 {
		t.Fatalf("answers by status %v, want 1000 watches open and %d refused with 503", codes, total-1000)
	}
	for r := range reasons {
		if !strings.Contains(r, "query.max_watches") {
			t.Fatalf("a refusal said %s, want the limit named", r)
		}
	}
	testkafka.Produce(t, brokers, in, "k-0-0", "c")
	a.waitGet(t, "/v1/stores/click-counts/keys/k-0-0", "1")
}
