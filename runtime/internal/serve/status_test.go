package serve

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/assign"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/probe"
	"github.com/streamrt/streamrt/runtime/internal/state"
)

// statusEngine is an instance under a fixed assignment, with fixed tasks
// and dead letters.
type statusEngine struct {
	a       assign.Assignment
	tasks   []probe.Task
	letters []probe.DeadLetter
}

func (e *statusEngine) Owns(string, int32) bool         { return true }
func (e *statusEngine) Readiness() probe.Readiness      { return probe.Readiness{Ready: true, Lag: 7} }
func (e *statusEngine) Assignment() assign.Assignment   { return e.a }
func (e *statusEngine) Tasks() []probe.Task             { return e.tasks }
func (e *statusEngine) DeadLetters() []probe.DeadLetter { return e.letters }
func (e *statusEngine) Modules() map[string]probe.Module {
	return map[string]probe.Module{"count": {Version: strings.Repeat("ab", 32)}}
}
func (e *statusEngine) InstanceID() string { return "" }

// /v1/status asks every other instance of the assignment for its own
// status, under the same prefix and with the caller's token, and shows one
// that refuses the connection, or does not answer in time, with its error
// rather than failing.
func TestStatusFansOutAndShowsWhoDidNotAnswer(t *testing.T) {
	const prefix, token = "/apps/clickcount", "s3cret"
	cfg := &config.Config{App: "clickcount", Partitions: 2, Stages: []config.Stage{{Name: "count", Module: "count.wasm", Inputs: []string{"clicks"},
		Stores: []string{"counts"}, Outputs: map[string]string{"out": "counts-out"}, ErrorPolicy: config.PolicyDeadLetter, DeadLetterTopic: "clickcount-count-dlq"}}}
	topo, err := cfg.Topology()
	if err != nil {
		t.Fatal(err)
	}
	q := config.Query{MaxKeyBytes: 64, MaxRangeLimit: 10, ForwardTimeout: config.DefaultForwardTimeout, Tokens: []string{token}}
	server := func(eng *statusEngine) *httptest.Server {
		db, err := state.Open(t.TempDir(), state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		hs := httptest.NewUnstartedServer(nil)
		s := New(Options{DB: db, Engine: eng, Metrics: metrics.New(), Query: q, Topology: topo, Prefix: prefix,
			Advertise: hs.Listener.Addr().String(), Stores: []Store{{Name: "counts", Partitions: 2, Topic: "clicks"}}})
		hs.Config.Handler = http.StripPrefix(prefix, s)
		hs.Start()
		t.Cleanup(hs.Close)
		return hs
	}
	self, other := &statusEngine{}, &statusEngine{
		tasks:   []probe.Task{{Stage: "count", Partition: 1, Topics: []string{"clicks"}, State: probe.TaskRunning, Lag: 3}},
		letters: []probe.DeadLetter{{Stage: "count", Topic: "clickcount-count-dlq", SourceTopic: "clicks", SourcePartition: 1, Headers: map[string]string{"streamrt.error": "bad"}}},
	}
	a, b := server(self), server(other)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer hang.Close()

	members := []assign.Member{
		{ID: "a", Addr: a.Listener.Addr().String(), Partitions: map[string][]int32{"clicks": {0}}},
		{ID: "b", Addr: b.Listener.Addr().String(), Partitions: map[string][]int32{"clicks": {1}}, Standbys: map[string][]int32{"clicks": {0}}},
		{ID: "c", Addr: refused},
		{ID: "d", Addr: hang.Listener.Addr().String()},
	}
	for _, e := range []struct {
		eng *statusEngine
		id  string
	}{{self, "a"}, {other, "b"}} {
		if e.eng.a, err = assign.Static(1, e.id, members); err != nil {
			t.Fatal(err)
		}
	}

	req, _ := http.NewRequest(http.MethodGet, a.URL+prefix+"/v1/status", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/v1/status without a token: %v %v, want 401", resp, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/v1/status: %d %v", resp.StatusCode, err)
	}
	if took := time.Since(start); took > statusTimeout+time.Second {
		t.Errorf("/v1/status took %v with an instance hanging, want about %v", took, statusTimeout)
	}
	if st.App != "clickcount" || st.Local || len(st.Topology.Stages) != 1 || st.Topology.Stages[0].ModuleVersionShort != strings.Repeat("ab", 6) ||
		st.Topology.Stages[0].Outputs["out"] != "counts-out" || len(st.Topology.Inputs) != 1 || st.Topology.DeadLetterTopics[0] != "clickcount-count-dlq" {
		t.Errorf("status %+v, want clickcount's topology, fanned out", st)
	}
	byID := byIDOf(st)
	if in := byID["a"]; !in.Self || !in.Answered || len(in.Active) != 1 || in.Active[0] != (statusTaskRef{"count", 0}) {
		t.Errorf("instance a %+v, want this one with count/0", in)
	}
	if in := byID["b"]; in.Self || !in.Answered || in.Error != "" || len(in.Tasks) != 1 || in.Tasks[0].Lag != 3 || len(in.DeadLetters) != 1 ||
		in.DeadLetters[0].Headers["streamrt.error"] != "bad" || in.Readiness == nil || in.Readiness.Lag != 7 || len(in.Standby) != 1 {
		t.Errorf("instance b %+v, want its task, dead letter, readiness and standby", in)
	}
	for _, id := range []string{"c", "d"} {
		if in := byID[id]; in.Answered || !strings.Contains(in.Error, "instance "+in.Address) || in.Tasks != nil {
			t.Errorf("instance %s %+v, want no answer, with the error", id, in)
		}
	}

	local, _ := http.NewRequest(http.MethodGet, a.URL+prefix+"/v1/status?local=true", nil)
	local.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(local)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	st = status{}
	json.NewDecoder(resp.Body).Decode(&st)
	if !st.Local || byIDOf(st)["b"].Answered || byIDOf(st)["b"].Error != "" {
		t.Errorf("?local=true: %+v, want no other instance asked", st.Instances)
	}
}

func byIDOf(st status) map[string]statusInstance {
	out := map[string]statusInstance{}
	for _, in := range st.Instances {
		out[in.ID] = in
	}
	return out
}
