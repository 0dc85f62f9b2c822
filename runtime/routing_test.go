package runtime_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// answer is one HTTP answer.
type answer struct {
	code   int
	body   string
	header http.Header
}

// call sends a GET to the instance with the bearer token (if any) and the
// extra headers given as name, value pairs.
func (a *app) call(path, token string, headers ...string) answer {
	req, err := http.NewRequest(http.MethodGet, "http://"+a.http+path, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, body: string(b), header: resp.Header}
}

// routedApp is a counting app whose query API wants a token and whose
// "queries" stage serves routes. Its handler deadline counts CPU time, which
// the looping route uses up in a second; the wall-clock cap, ten times it,
// only stops a handler that a busy machine starves of CPU for ten seconds,
// where a tighter deadline would fail the other routes' answers.
func routedApp(brokers []string, appName, in, out string) string {
	return fmt.Sprintf(`app: %s
brokers: [%s]
partitions: 4
commit_interval: 50ms
query:
  max_key_bytes: 64
  max_range_limit: 20
  handler_deadline: 1s
  tokens: [s3cret]
  routes:
    - {path: "/count/{key}", stage: main, store: counts, key: "{key}"}
    - {path: "/keys/{part}", stage: main, store: counts, key: "{part}"}
    - {path: /boom, stage: main}
    - {path: /loop, stage: main}
    - {path: /exit, stage: main}
    - {method: POST, path: /echo, stage: main}
    - {path: /members, builtin: instances}
    - {path: "/members/{store}", builtin: instances}
stages:
  - name: main
    module: %s
    inputs: [%s]
    outputs: {out: %s}
    stores: [counts]
`, appName, strings.Join(brokers, ", "), guesttest.Dir("queries"), in, out)
}

type instanceJSON struct {
	ID      string
	Address string
	Stores  map[string][]int32
}

// Two instances split the partitions; each answers every key, forwarding
// to the other for the keys it does not own, and range queries merge both
// halves in key order.
func TestAnyInstanceAnswersAnyKey(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	yaml := routedApp(brokers, appName, in, out)
	a := startYAML(t, yaml, "", false)
	b := startYAML(t, yaml, filepath.Join(t.TempDir(), "b"), false)
	const token = "s3cret"

	// Wait until the group has settled with partitions on both instances.
	waitFor(t, 60*time.Second, "both instances to own partitions", func() bool {
		ans := a.call("/v1/instances", token)
		var ins []instanceJSON
		if ans.code != 200 || json.Unmarshal([]byte(ans.body), &ins) != nil || len(ins) != 2 {
			return false
		}
		var all []int32
		for _, in := range ins {
			if len(in.Stores["counts"]) == 0 {
				return false
			}
			all = append(all, in.Stores["counts"]...)
		}
		slices.Sort(all)
		return slices.Equal(all, []int32{0, 1, 2, 3}) && a.call("/readyz", "").code == 200 && b.call("/readyz", "").code == 200
	})

	keys := make([]string, 40)
	var kvs []string
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%02d", i)
	}
	for i := 0; i < 400; i++ {
		kvs = append(kvs, keys[i%len(keys)], "x")
	}
	produce(t, brokers, in, kvs...)
	if got := testkafka.ReadAll(t, brokers, out, 400, 60*time.Second); len(got) != 400 {
		t.Fatalf("%d outputs, want 400", len(got))
	}
	// Outputs are sent as batches end; the state of their cycle is served
	// once it commits, a moment later.
	for _, k := range keys {
		waitFor(t, 10*time.Second, "the count of "+k+" to be served", func() bool {
			return a.call("/v1/stores/counts/keys/"+k, token).body == "10"
		})
	}

	forwarded := map[string]int{}
	for _, k := range keys {
		md := a.call("/v1/metadata/stores/counts/keys/"+k, token)
		var meta struct {
			Partition int32
			Active    *struct{ Address string }
			Standbys  []any
		}
		if md.code != 200 || json.Unmarshal([]byte(md.body), &meta) != nil || meta.Active == nil {
			t.Fatalf("metadata of %s: %d %s", k, md.code, md.body)
		}
		if meta.Active.Address != a.http && meta.Active.Address != b.http {
			t.Fatalf("metadata of %s names %s, not one of the instances %s, %s", k, meta.Active.Address, a.http, b.http)
		}
		for _, x := range []*app{a, b} {
			ans := x.call("/v1/stores/counts/keys/"+k, token)
			if ans.code != 200 || ans.body != "10" {
				t.Fatalf("count of %s from %s: %d %q, want 200 \"10\"", k, x.http, ans.code, ans.body)
			}
			if by := ans.header.Get("X-Streamrt-Served-By"); by != meta.Active.Address {
				t.Fatalf("count of %s from %s served by %q, want the owner %s", k, x.http, by, meta.Active.Address)
			}
			if p := ans.header.Get("X-Streamrt-Partition"); p != fmt.Sprint(meta.Partition) {
				t.Fatalf("count of %s: partition header %q, metadata says %d", k, p, meta.Partition)
			}
			if meta.Active.Address != x.http {
				forwarded[x.http]++
			}
			// The app's own route, answered by the guest on the owner.
			g := x.call("/count/"+k, token)
			want := fmt.Sprintf(`{"key":%q,"count":10,"partition":%d}`, k, meta.Partition)
			if g.code != 200 || g.body != want || g.header.Get("Content-Type") != "application/json" {
				t.Fatalf("/count/%s from %s: %d %q %q, want %s", k, x.http, g.code, g.header.Get("Content-Type"), g.body, want)
			}
		}
	}
	if forwarded[a.http] == 0 || forwarded[b.http] == 0 {
		t.Fatalf("forwarded lookups per instance %v: want both instances to forward some", forwarded)
	}

	// A range over every key, a page of 7 at a time, from either instance.
	for _, x := range []*app{a, b} {
		var got []string
		after := ""
		for page := 0; page < 10; page++ {
			ans := x.call("/v1/stores/counts?prefix=key-&limit=7&after="+after, token)
			var r struct {
				Entries []struct{ Key, Value string }
				Next    string
			}
			if ans.code != 200 || json.Unmarshal([]byte(ans.body), &r) != nil {
				t.Fatalf("range page %d from %s: %d %s", page, x.http, ans.code, ans.body)
			}
			for _, e := range r.Entries {
				if e.Value != "10" {
					t.Fatalf("range: %s = %q, want 10", e.Key, e.Value)
				}
				got = append(got, e.Key)
			}
			if r.Next == "" {
				break
			}
			after = r.Next
		}
		if !slices.Equal(got, keys) {
			t.Fatalf("range from %s gave %d keys %v, want the %d keys in order", x.http, len(got), got, len(keys))
		}
	}
	// from/to bounds.
	if ans := b.call("/v1/stores/counts?from=key-05&to=key-08", token); ans.code != 200 ||
		!strings.Contains(ans.body, `"key-05"`) || !strings.Contains(ans.body, `"key-07"`) || strings.Contains(ans.body, `"key-08"`) || strings.Contains(ans.body, `"next"`) {
		t.Fatalf("range [key-05, key-08): %d %s", ans.code, ans.body)
	}

	// Builtin instance listing, Kafka Streams' shape.
	ans := a.call("/members/counts", token)
	var hosts []struct {
		Host       string
		Port       int
		StoreNames []string
	}
	if ans.code != 200 || json.Unmarshal([]byte(ans.body), &hosts) != nil || len(hosts) != 2 || !slices.Equal(hosts[0].StoreNames, []string{"counts"}) {
		t.Fatalf("/members/counts: %d %s", ans.code, ans.body)
	}
	if ans := a.call("/members/nope", token); ans.code != 404 {
		t.Fatalf("/members/nope: %d %s, want 404", ans.code, ans.body)
	}

	// A request that was already forwarded is never forwarded again.
	for _, k := range keys {
		if a.call("/v1/stores/counts/keys/"+k, token).header.Get("X-Streamrt-Served-By") == a.http {
			continue
		}
		ans := a.call("/v1/stores/counts/keys/"+k, token, "X-Streamrt-Forwarded-By", "127.0.0.1:1")
		if ans.code != 503 || !strings.Contains(ans.body, "ownership moved") || ans.header.Get("Retry-After") == "" {
			t.Fatalf("forwarding loop: %d %s, want 503 with Retry-After", ans.code, ans.body)
		}
		break
	}

	// Guest handlers that fail answer 500 with a JSON error, and the
	// instance goes on serving.
	for path, want := range map[string]string{
		"/boom": "panic: boom at /boom",
		"/loop": "deadline",
		"/exit": "exit",
	} {
		ans := a.call(path, token)
		var e struct{ Error string }
		if ans.code != 500 || json.Unmarshal([]byte(ans.body), &e) != nil || !strings.Contains(e.Error, want) {
			t.Errorf("%s: %d %s, want 500 with a JSON error containing %q", path, ans.code, ans.body, want)
		}
	}
	if g := b.call("/count/key-01", token); g.code != 200 {
		t.Fatalf("after failing handlers: /count/key-01: %d %s", g.code, g.body)
	}
	if g := a.call("/count/missing", token); g.code != 404 || !strings.Contains(g.body, "no count for missing") {
		t.Fatalf("/count/missing: %d %s", g.code, g.body)
	}

	// Access: no token or a wrong one is 401; probes stay open.
	for _, tok := range []string{"", "wrong"} {
		for _, path := range []string{"/v1/stores/counts/keys/key-01", "/count/key-01", "/v1/instances"} {
			if ans := a.call(path, tok); ans.code != 401 || ans.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s with token %q: %d %s, want 401", path, tok, ans.code, ans.body)
			}
		}
	}
	if ans := a.call("/healthz", ""); ans.code != 200 {
		t.Errorf("/healthz without a token: %d", ans.code)
	}

	// Bad input, each with a message naming the problem.
	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"/v1/stores/nope/keys/k", 404, `unknown store \"nope\"`},
		{"/v1/stores/nope?prefix=a", 404, `unknown store \"nope\"`},
		{"/v1/metadata/stores/nope/keys/k", 404, `unknown store \"nope\"`},
		{"/v1/stores/counts/keys/" + strings.Repeat("k", 65), 400, "longer than the maximum of 64 (query.max_key_bytes)"},
		{"/count/" + strings.Repeat("k", 65), 400, "longer than the maximum of 64"},
		{"/v1/stores/counts", 400, "a range query needs from, to or prefix"},
		{"/v1/stores/counts?prefix=k&limit=21", 400, "limit 21 is over the maximum of 20 (query.max_range_limit)"},
		{"/v1/stores/counts?prefix=k&limit=x", 400, "limit must be a positive integer"},
		{"/v1/stores/counts?prefix=k&after=!!", 400, "not a continuation token"},
	} {
		if ans := a.call(c.path, token); ans.code != c.code || !strings.Contains(ans.body, c.want) {
			t.Errorf("%s: %d %s, want %d containing %q", c.path, ans.code, ans.body, c.code, c.want)
		}
	}
}
