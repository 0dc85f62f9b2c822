package serve

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/assign"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/partition"
	"github.com/streamrt/streamrt/runtime/internal/probe"
	"github.com/streamrt/streamrt/runtime/internal/state"
)

// lostEngine owns nothing and has no assignment: the state of an instance
// in the middle of a rebalance, or before its first one.
type lostEngine struct{}

func (lostEngine) Owns(string, int32) bool       { return false }
func (lostEngine) Readiness() probe.Readiness    { return probe.Readiness{} }
func (lostEngine) Assignment() assign.Assignment { return assign.Assignment{} }

func newTestServer(t *testing.T) (*httptest.Server, *state.DB) {
	t.Helper()
	db, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	q := config.Query{MaxKeyBytes: 64, MaxRangeLimit: 10, ForwardTimeout: config.DefaultForwardTimeout}
	s := New(Options{DB: db, Engine: lostEngine{}, Metrics: metrics.New(), Query: q,
		Stores: []Store{{Name: "counts", Partitions: 4, Topic: "clicks"}}})
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return hs, db
}

func put(t *testing.T, db *state.DB, store string, p int32, kv ...string) {
	t.Helper()
	txn := db.NewTxn()
	ks, err := db.Keyspace(store, p)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if err := txn.Put(ks, []byte(kv[i]), []byte(kv[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// With no owner to ask, a query answers 503 at once with Retry-After and
// a JSON reason; with stale=true it answers from a local copy, marked
// stale, when there is one.
func TestNoOwnerIs503OrAStaleAnswer(t *testing.T) {
	hs, db := newTestServer(t)
	p := partition.For([]byte("home"), 4)
	put(t, db, "counts", p, "home", "7")

	code, h, body := get(t, hs.URL+"/v1/stores/counts/keys/home")
	var e struct{ Error string }
	if code != 503 || h.Get("Retry-After") == "" || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, "has not received the group's assignment") {
		t.Fatalf("no owner: %d %q %s, want 503 with Retry-After and a reason", code, h.Get("Retry-After"), body)
	}
	code, h, body = get(t, hs.URL+"/v1/stores/counts/keys/home?stale=true")
	if code != 200 || body != "7" || h.Get(HeaderStale) != "true" {
		t.Fatalf("stale read: %d %s stale=%q, want 200 7 marked stale", code, body, h.Get(HeaderStale))
	}
	// A partition with no local copy has nothing stale to offer.
	other := "x"
	for partition.For([]byte(other), 4) == p {
		other += "x"
	}
	if code, _, body = get(t, hs.URL+"/v1/stores/counts/keys/"+other+"?stale=true"); code != 503 {
		t.Fatalf("stale read without a copy: %d %s, want 503", code, body)
	}

	// Range: a partition without an owner or a local copy makes it 503,
	// stale or not: a range never silently leaves out a partition.
	if code, _, body = get(t, hs.URL+"/v1/stores/counts?prefix=&stale=true"); code != 503 {
		t.Fatalf("stale range with a partition missing: %d %s, want 503", code, body)
	}
	for q := range int32(4) {
		if q != p {
			put(t, db, "counts", q, "p"+string(rune('0'+q)), "1")
		}
	}
	if code, _, body = get(t, hs.URL+"/v1/stores/counts?prefix="); code != 503 {
		t.Fatalf("range without owners: %d %s, want 503", code, body)
	}
	code, h, body = get(t, hs.URL+"/v1/stores/counts?prefix=&stale=true")
	var r rangeAnswer
	if code != 200 || json.Unmarshal([]byte(body), &r) != nil || len(r.Entries) != 4 || string(r.Entries[0].key) != "home" ||
		len(r.Stale) != 4 || h.Get(HeaderStale) != "true" {
		t.Fatalf("stale range: %d %s", code, body)
	}
}

// Keys and values that are not UTF-8 come back in base64 and survive the
// round trip through JSON, which forwarding between instances relies on.
func TestRangeEntriesKeepEveryByte(t *testing.T) {
	for _, e := range []entry{
		{[]byte("plain"), []byte("text")},
		{[]byte{0xff, 0x00, 'k'}, []byte{0xc3}},
		{[]byte{}, []byte{}},
	} {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var back entry
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if string(back.key) != string(e.key) || string(back.value) != string(e.value) {
			t.Fatalf("%s: got %q=%q, want %q=%q", b, back.key, back.value, e.key, e.value)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a", "b"}, {"a\xff", "b"}, {"\xff\xff", ""}, {"", ""},
	} {
		if got := string(prefixEnd([]byte(c.in))); got != c.want {
			t.Errorf("prefixEnd(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
