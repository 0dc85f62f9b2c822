package runtime_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// streamrt_queries_total counts each answer by route and status code, and
// streamrt_query_seconds times it by where it was served: by the instance
// asked (local), or by the owner it forwarded to (forwarded on the
// instance asked, local on the owner).
func TestQueryMetricsCountEachAnswer(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	yaml := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}}.yaml()
	a := startYAML(t, yaml, "", false)
	b := startYAML(t, yaml, filepath.Join(t.TempDir(), "b"), false)
	waitFor(t, 60*time.Second, "both instances to own partitions", func() bool {
		_, body := a.get("/v1/instances")
		var list []struct{ Stores map[string][]int32 }
		return json.Unmarshal([]byte(body), &list) == nil && len(list) == 2 &&
			len(list[0].Stores["counts"]) > 0 && len(list[1].Stores["counts"]) > 0
	})
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	produce(t, brokers, in, clicks(keys, 1)...)
	for _, k := range keys {
		a.waitGet(t, "/v1/stores/counts/keys/"+k, "1")
	}
	missing := []string{"nope-1", "nope-2", "nope-3"}
	// Each key's owner, asked before counting starts.
	owner := map[string]*app{}
	for _, k := range append(keys[:len(keys):len(keys)], missing...) {
		md := apptest.Get(a.http, "/v1/metadata/stores/counts/keys/"+url.PathEscape(k))
		var meta struct{ Active *struct{ Address string } }
		if err := json.Unmarshal([]byte(md.Body), &meta); err != nil || meta.Active == nil {
			t.Fatalf("metadata of %s: %d %s", k, md.Code, md.Body)
		}
		owner[k] = a
		if meta.Active.Address == b.http {
			owner[k] = b
		}
	}

	type series struct {
		name   string
		labels []string
	}
	queries := func(route, code string) series {
		return series{"streamrt_queries_total", []string{"route", route, "code", code}}
	}
	timed := func(route, where string) series {
		return series{"streamrt_query_seconds_count", []string{"route", route, "served", where}}
	}
	all := []series{queries("key", "200"), queries("key", "404"), queries("range", "200"),
		timed("key", "local"), timed("key", "forwarded"), timed("range", "local")}
	read := func() map[*app]map[int]float64 {
		got := map[*app]map[int]float64{}
		for _, x := range []*app{a, b} {
			got[x] = map[int]float64{}
			for i, s := range all {
				got[x][i] = apptest.Metric(x.http, s.name, s.labels...)
			}
		}
		return got
	}
	want := map[*app]map[int]float64{a: {}, b: {}}
	count := func(x *app, s series) {
		for i, si := range all {
			if fmt.Sprint(si) == fmt.Sprint(s) {
				want[x][i]++
			}
		}
	}
	ask := func(k string, code int) {
		t.Helper()
		if got, _ := a.get("/v1/stores/counts/keys/" + k); got != code {
			t.Fatalf("key %s: %d, want %d", k, got, code)
		}
		count(a, queries("key", fmt.Sprint(code)))
		if owner[k] == a {
			count(a, timed("key", "local"))
		} else {
			count(a, timed("key", "forwarded"))
			count(b, queries("key", fmt.Sprint(code)))
			count(b, timed("key", "local"))
		}
	}

	before := read()
	for _, k := range keys {
		ask(k, 200)
	}
	for _, k := range missing {
		ask(k, 404)
	}
	// A range reads a's partitions and asks b for its own.
	if code, _ := a.get("/v1/stores/counts?prefix=key-"); code != 200 {
		t.Fatalf("range: %d", code)
	}
	count(a, queries("range", "200"))
	count(a, timed("range", "local"))
	count(b, queries("range", "200"))
	count(b, timed("range", "local"))

	after := read()
	for _, x := range []*app{a, b} {
		for i, s := range all {
			if got := after[x][i] - before[x][i]; got != want[x][i] {
				t.Errorf("instance %s: %s%v went up by %v, want %v", x.http, s.name, s.labels, got, want[x][i])
			}
		}
		if sum := apptest.Metric(x.http, "streamrt_query_seconds_sum", "route", "key"); sum <= 0 {
			t.Errorf("instance %s: streamrt_query_seconds_sum{route=key} is %v, want the time of its answers", x.http, sum)
		}
	}
}
