package runtime_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// In server mode every app's stores are watched under its prefix, from
// any server: the one that owns the key, or another that relays it.
func TestServerAppsStoresAreWatched(t *testing.T) {
	brokers := testkafka.Brokers(t)
	ctl := serverTopics(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, 4)
	a := startServer(t, brokers, ctl, "a")
	b := startServer(t, brokers, ctl, "b")
	ver := a.deploy(t, deployedApp(appName, in, out, true, "counts"), map[string][]byte{"main": guesttest.Build(t, "counter")})
	waitVersion(t, appName, ver, a, b)
	produce(t, brokers, in, clicks([]string{"k1"}, 5)...)
	a.waitGetApp(t, appName, "k1", "5")

	var watches []*sseWatch
	for _, s := range []*testServer{a, b} {
		w := openWatch(t, s.addr, "/apps/"+appName+"/v1/stores/counts/keys/k1/watch", "")
		if w.status != http.StatusOK {
			t.Fatalf("watch at %s answered %d %s", s.addr, w.status, w.body)
		}
		if ev := w.next(t); ev.kind != "snapshot" || ev.data.Value == nil || *ev.data.Value != "5" {
			t.Fatalf("watch at %s began with %v, want the snapshot 5", s.addr, ev)
		}
		watches = append(watches, w)
	}
	produce(t, brokers, in, clicks([]string{"k1"}, 3)...)
	for i, w := range watches {
		prev := 5
		for prev < 8 {
			ev := w.next(t)
			n, err := strconv.Atoi(*ev.data.Value)
			if ev.kind != "change" || err != nil || n <= prev {
				t.Fatalf("watch %d sent %v after %d, want a change to a higher count", i, ev, prev)
			}
			prev = n
		}
	}
	if w := openWatch(t, a.addr, "/apps/"+appName+"/v1/stores/nope/watch", ""); w.status != http.StatusNotFound {
		t.Errorf("a watch of an unknown store answered %d %s, want 404", w.status, w.body)
	}
}
