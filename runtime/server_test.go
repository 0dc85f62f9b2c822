package runtime_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/internal/testtls"
	"github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/control"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const adminToken = "admin-s3cret"

// testServer is one server instance run in-process.
type testServer struct {
	addr     string
	log      *syncBuffer
	cancel   context.CancelFunc
	done     chan error
	stateDir string
	// scheme and client reach the server: https with its CA when it has
	// http_tls.
	scheme string
	client *http.Client
}

// serverTopics are control topics of the test's own, so that tests on a
// shared real cluster do not see each other's apps.
func serverTopics(t testing.TB) config.Control {
	base := testkafka.Name(t, "ctl")
	return config.Control{AppsTopic: base + "-apps", ModulesTopic: base + "-modules", StatusTopic: base + "-status", TenantsTopic: base + "-tenants", AuditTopic: base + "-audit"}
}

// startServer runs a server instance until the test ends.
func startServer(t *testing.T, brokers []string, ctl config.Control, name string) *testServer {
	return startServerWith(t, brokers, ctl, name, config.HTTPTLS{}, nil)
}

// startServerWith runs a server with http_tls, reached by client.
func startServerWith(t *testing.T, brokers []string, ctl config.Control, name string, tlsc config.HTTPTLS, client *http.Client) *testServer {
	t.Helper()
	s := &testServer{addr: freeAddr(t), log: &syncBuffer{}, done: make(chan error, 1), stateDir: filepath.Join(t.TempDir(), name), scheme: "http", client: http.DefaultClient}
	if tlsc.Enabled() {
		s.scheme, s.client = "https", client
	}
	cfg := &config.Server{Brokers: brokers, HTTP: s.addr, StateDir: s.stateDir, CacheDir: guesttest.CacheDir(), InstanceID: name,
		AdminTokens: []string{adminToken}, Control: ctl, HTTPTLS: tlsc}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(s.log, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelInfo})).With("server", name)
	srv, err := runtime.NewServer(cfg, runtime.ServerOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- srv.Run(ctx) }()
	t.Cleanup(func() { s.stop(t) })
	apptest.WaitFor(t, 60*time.Second, "server "+name+" to answer", func() bool { code, _ := s.get("/healthz"); return code == 200 })
	return s
}

// readyz is s's /readyz as the platform reads it: with what it runs of
// each app.
func (s *testServer) readyz() string {
	req, _ := http.NewRequest(http.MethodGet, s.scheme+"://"+s.addr+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := s.client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// get answers a GET of path on s: the status code and body, or 0 and why.
func (s *testServer) get(path string) (int, string) {
	resp, err := s.client.Get(s.scheme + "://" + s.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *testServer) stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("server: %v", err)
		}
	case <-time.After(time.Minute):
		t.Errorf("server did not stop within a minute")
	}
}

// admin calls the admin API of s and decodes its JSON answer.
func (s *testServer) admin(t *testing.T, method, path string, body []byte, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.scheme+"://"+s.addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// deploy uploads modules and writes a version of an app through s,
// failing the test unless it is accepted; it returns the version.
func (s *testServer) deploy(t *testing.T, yaml string, modules map[string][]byte) int64 {
	t.Helper()
	code, out := s.deployCode(t, yaml, modules, false)
	if code != http.StatusCreated {
		t.Fatalf("deploy: %d %v", code, out)
	}
	return int64(out["version"].(float64))
}

func (s *testServer) deployCode(t *testing.T, yaml string, modules map[string][]byte, rebuild bool) (int, map[string]any) {
	t.Helper()
	for _, b := range modules {
		hash := control.Hash(b)
		if code, out := s.admin(t, http.MethodPut, "/v1/admin/modules/"+hash, b, adminToken); code != http.StatusCreated {
			t.Fatalf("upload module: %d %v", code, out)
		}
		yaml = strings.ReplaceAll(yaml, "{{"+hashKey(modules, b)+"}}", config.ModulePrefix+hash)
	}
	app := strings.TrimSpace(strings.SplitN(strings.SplitN(yaml, "app:", 2)[1], "\n", 2)[0])
	body, _ := json.Marshal(map[string]any{"config": yaml, "rebuild": rebuild})
	return s.admin(t, http.MethodPost, "/v1/admin/apps/"+app+"/versions", body, adminToken)
}

func hashKey(m map[string][]byte, b []byte) string {
	for k, v := range m {
		if bytes.Equal(v, b) {
			return k
		}
	}
	return ""
}

// waitVersion waits until every server reports running version v of app.
func waitVersion(t *testing.T, app string, v int64, servers ...*testServer) {
	t.Helper()
	for _, s := range servers {
		apptest.WaitCheck(t, 2*time.Minute, fmt.Sprintf("%s to run %s version %d", s.addr, app, v), func() error {
			var ready struct {
				Apps map[string]struct {
					Version int64
					State   string
					Reason  string
				}
			}
			if err := json.Unmarshal([]byte(s.readyz()), &ready); err != nil {
				return err
			}
			st := ready.Apps[app]
			if st.Version != v || st.State != "running" {
				return fmt.Errorf("runs version %d, %s %s", st.Version, st.State, st.Reason)
			}
			return nil
		})
	}
}

// Two servers run an app deployed through the admin API: it counts clicks
// and serves counts under /apps/NAME/ from either server; a new module
// version is swapped in on both without a lost or repeated record; a
// rollback brings the first back; a delete stops it everywhere.
func TestServerDeploysSwapsRollsBackAndDeletes(t *testing.T) {
	brokers := testkafka.Brokers(t)
	ctl := serverTopics(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, 4)
	a := startServer(t, brokers, ctl, "a")
	b := startServer(t, brokers, ctl, "b")
	v1, v2 := guesttest.Build(t, "tagv1"), guesttest.Build(t, "tagv2")
	yaml := deployedApp(appName, in, out, true, "")

	ver := a.deploy(t, yaml, map[string][]byte{"main": v1})
	waitVersion(t, appName, ver, a, b)
	produce(t, brokers, in, clicks([]string{"k1", "k2", "k3", "k4"}, 25)...)
	if got := readCommitted(t, brokers, out, 100); len(got) != 100 {
		t.Fatalf("%d outputs of version 1, want 100", len(got))
	}

	ver2 := b.deploy(t, yaml, map[string][]byte{"main": v2})
	if ver2 != ver+1 {
		t.Fatalf("second deploy got version %d, want %d", ver2, ver+1)
	}
	waitVersion(t, appName, ver2, a, b)
	produce(t, brokers, in, clicks([]string{"k1", "k2", "k3", "k4"}, 25)...)
	got := readCommitted(t, brokers, out, 200)
	if len(got) != 200 {
		t.Fatalf("%d outputs after the swap, want 200", len(got))
	}
	tags := map[string]int{}
	for _, r := range got {
		tag, _, _ := strings.Cut(string(r.Value), ":")
		tags[tag]++
	}
	if tags["v1"] != 100 || tags["v2"] != 100 {
		t.Fatalf("outputs per version %v, want 100 each", tags)
	}

	if code, out := a.admin(t, http.MethodPost, "/v1/admin/apps/"+appName+"/rollback", nil, adminToken); code != http.StatusCreated {
		t.Fatalf("rollback: %d %v", code, out)
	}
	waitVersion(t, appName, ver2+1, a, b)
	produce(t, brokers, in, clicks([]string{"k1"}, 10)...)
	got = readCommitted(t, brokers, out, 211) // one more would be a repeat
	tags = map[string]int{}
	for _, r := range got {
		tag, _, _ := strings.Cut(string(r.Value), ":")
		tags[tag]++
	}
	if len(got) != 210 || tags["v1"] != 110 || tags["v2"] != 100 {
		t.Fatalf("after the rollback, %d outputs, per version %v; want 110 of v1 and 100 of v2", len(got), tags)
	}

	if code, out := b.admin(t, http.MethodDelete, "/v1/admin/apps/"+appName, nil, adminToken); code != http.StatusOK {
		t.Fatalf("delete: %d %v", code, out)
	}
	for _, s := range []*testServer{a, b} {
		apptest.WaitFor(t, time.Minute, "the app to be gone from "+s.addr, func() bool {
			return apptest.Get(s.addr, "/apps/"+appName+"/healthz").Code == http.StatusNotFound
		})
	}
}

// The admin API refuses bad requests with a clear status and message; a
// version that no instance can load is refused everywhere, the app keeps
// its version, and the app's status says why; a canary runs the new
// version on its partitions only until a promote; and outputs name the
// module version that produced them.
func TestServerRefusesBadVersionsAndRunsCanaries(t *testing.T) {
	brokers := testkafka.Brokers(t)
	ctl := serverTopics(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, 4)
	a := startServer(t, brokers, ctl, "a")
	b := startServer(t, brokers, ctl, "b")
	v1, v2 := guesttest.Build(t, "tagv1"), guesttest.Build(t, "tagv2")
	yaml := deployedApp(appName, in, out, false, "")

	// Bad requests.
	for _, tc := range []struct {
		method, path string
		body         []byte
		token        string
		code         int
		want         string
	}{
		{http.MethodGet, "/v1/admin/apps", nil, "", 401, "missing token"},
		{http.MethodGet, "/v1/admin/apps", nil, "wrong", 401, "invalid token"},
		{http.MethodPut, "/v1/admin/modules/" + control.Hash(v1), v2, adminToken, 400, "the body hashes to"},
		{http.MethodPut, "/v1/admin/modules/" + control.Hash([]byte("not wasm")), []byte("not wasm"), adminToken, 400, "not a WebAssembly module"},
		{http.MethodPost, "/v1/admin/apps/" + appName + "/versions", []byte(`{"config": "app: [oops"}`), adminToken, 400, "invalid YAML"},
		{http.MethodPost, "/v1/admin/apps/" + appName + "/versions", mustJSON(map[string]string{"config": strings.ReplaceAll(yaml, `"{{main}}"`, config.ModulePrefix+strings.Repeat("ab", 32))}), adminToken, 409, "upload them first"},
		{http.MethodPost, "/v1/admin/apps/" + appName + "/versions", mustJSON(map[string]string{"config": strings.ReplaceAll(yaml, `"{{main}}"`, "./main.wasm")}), adminToken, 400, "names its modules by content address"},
		{http.MethodPost, "/v1/admin/apps/nope/rollback", nil, adminToken, 404, `no app "nope"`},
	} {
		code, ans := a.admin(t, tc.method, tc.path, tc.body, tc.token)
		if code != tc.code || !strings.Contains(fmt.Sprint(ans["error"]), tc.want) {
			t.Errorf("%s %s: %d %v, want %d with %q", tc.method, tc.path, code, ans, tc.code, tc.want)
		}
	}

	ver := a.deploy(t, yaml, map[string][]byte{"main": v1})
	waitVersion(t, appName, ver, a, b)
	if code, ans := a.admin(t, http.MethodPost, "/v1/admin/apps/"+appName+"/rollback?to=99", nil, adminToken); code != 404 || !strings.Contains(fmt.Sprint(ans["error"]), "has no version 99") {
		t.Errorf("rollback to a version that does not exist: %d %v", code, ans)
	}
	if code, ans := a.admin(t, http.MethodPost, "/v1/admin/apps/"+appName+"/promote", nil, adminToken); code != 409 {
		t.Errorf("promote without a canary: %d %v", code, ans)
	}

	// A module that compiles but lacks the ABI's exports: every instance
	// refuses it, and the app runs version 1 on.
	// A module that compiles but lacks the ABI's exports, and one whose
	// initialisation traps: every instance refuses each, and the app runs
	// version 1 on.
	for _, bad := range []struct {
		module []byte
		why    string
	}{
		{[]byte("\x00asm\x01\x00\x00\x00"), "does not export its memory"},
		{guesttest.Build(t, "initfail"), "initfail: refuses to start"},
	} {
		v := a.deploy(t, yaml, map[string][]byte{"main": bad.module})
		for _, s := range []*testServer{a, b} {
			apptest.WaitCheck(t, time.Minute, fmt.Sprintf("version %d to be refused on %s", v, s.addr), func() error {
				code, ans := s.admin(t, http.MethodGet, "/v1/admin/apps/"+appName, nil, adminToken)
				if code != 200 {
					return fmt.Errorf("%d %v", code, ans)
				}
				js, _ := json.Marshal(ans["instances"])
				if n := strings.Count(string(js), fmt.Sprintf(`"failed":%d`, v)); n != 2 || !strings.Contains(string(js), bad.why) {
					return fmt.Errorf("instances %s", js)
				}
				return nil
			})
		}
	}
	// Each phase's inputs carry its own value, so that outputs, which
	// arrive in no set order across partitions, can be told apart.
	produce(t, brokers, in, phase([]string{"a", "b", "c", "d", "e", "f", "g", "h"}, "p1")...)
	got := testkafka.ReadAll(t, brokers, out, 40, time.Minute)
	if len(got) != 40 {
		t.Fatalf("%d outputs of 40 inputs after the refused versions", len(got))
	}
	for _, r := range got {
		if !strings.HasPrefix(string(r.Value), "v1:") || testkafka.Header(r, "streamrt.module.version") != control.Hash(v1) {
			t.Fatalf("after the refused version, output %q with module %q", r.Value, testkafka.Header(r, "streamrt.module.version"))
		}
	}

	// A canary on two partitions, then a promote.
	code, ans := b.deployCodeCanary(t, yaml, map[string][]byte{"main": v2}, 2)
	if code != http.StatusCreated {
		t.Fatalf("canary deploy: %d %v", code, ans)
	}
	canaryVersion := int64(ans["version"].(float64))
	waitVersion(t, appName, canaryVersion, a, b)
	produce(t, brokers, in, phase([]string{"a", "b", "c", "d", "e", "f", "g", "h"}, "p2")...)
	got = testkafka.ReadAll(t, brokers, out, 80, time.Minute)
	n2 := 0
	for _, r := range got {
		want := "v1:p2"
		if r.Partition < 2 {
			want = "v2:p2"
		}
		if !strings.HasSuffix(string(r.Value), ":p2") {
			continue
		}
		n2++
		if string(r.Value) != want {
			t.Fatalf("canary on partitions 0 and 1: partition %d output %q", r.Partition, r.Value)
		}
	}
	if n2 != 40 {
		t.Fatalf("%d outputs of the canary phase's 40 inputs", n2)
	}
	if code, ans := a.admin(t, http.MethodPost, "/v1/admin/apps/"+appName+"/promote", nil, adminToken); code != http.StatusCreated {
		t.Fatalf("promote: %d %v", code, ans)
	}
	waitVersion(t, appName, canaryVersion+1, a, b)
	produce(t, brokers, in, phase([]string{"a", "b", "c", "d", "e", "f", "g", "h"}, "p3")...)
	got = testkafka.ReadAll(t, brokers, out, 120, time.Minute)
	n3 := 0
	for _, r := range got {
		if !strings.HasSuffix(string(r.Value), ":p3") {
			continue
		}
		n3++
		if string(r.Value) != "v2:p3" || testkafka.Header(r, "streamrt.module.version") != control.Hash(v2) {
			t.Fatalf("after the promote, partition %d output %q with module %q", r.Partition, r.Value, testkafka.Header(r, "streamrt.module.version"))
		}
	}
	if n3 != 40 {
		t.Fatalf("%d outputs of the last phase's 40 inputs", n3)
	}
}

// phase is five inputs per key, each with the value tag.
func phase(keys []string, tag string) []string {
	var kvs []string
	for range 5 {
		for _, k := range keys {
			kvs = append(kvs, k, tag)
		}
	}
	return kvs
}

func (s *testServer) deployCodeCanary(t *testing.T, yaml string, modules map[string][]byte, canary int) (int, map[string]any) {
	t.Helper()
	for _, b := range modules {
		if code, out := s.admin(t, http.MethodPut, "/v1/admin/modules/"+control.Hash(b), b, adminToken); code != http.StatusCreated {
			t.Fatalf("upload module: %d %v", code, out)
		}
		yaml = strings.ReplaceAll(yaml, "{{"+hashKey(modules, b)+"}}", config.ModulePrefix+control.Hash(b))
	}
	app := strings.TrimSpace(strings.SplitN(strings.SplitN(yaml, "app:", 2)[1], "\n", 2)[0])
	return s.admin(t, http.MethodPost, "/v1/admin/apps/"+app+"/versions", mustJSON(map[string]any{"config": yaml, "canary": canary}), adminToken)
}

// deployedApp is the YAML of a one-stage app whose module is {{main}}, with
// exactly_once and a store when asked.
func deployedApp(app, in, out string, exactlyOnce bool, store string) string {
	y := "app: " + app + "\npartitions: 4\n"
	if exactlyOnce {
		y += "guarantee: exactly_once\n"
	}
	y += "commit_interval: 50ms\nstages:\n  - name: main\n    module: \"{{main}}\"\n    inputs: [" + in + "]\n"
	if store != "" {
		y += "    stores: [" + store + "]\n"
	}
	return y + "    outputs: {out: " + out + "}\n"
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// A --rebuild deploy starts a new generation that replays the inputs from
// their start beside the serving one, with its outputs held back; once it
// has caught up, every instance flips to it: queries never fail around the
// flip, each input offset's output comes from exactly one generation (the
// counts per key run 1, 2, 3... with no gap or repeat), and the old
// generation's group and internal topics are deleted.
func TestServerRebuildFlipsWithoutAFailedQuery(t *testing.T) {
	brokers := testkafka.Brokers(t)
	ctl := serverTopics(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, 4)
	a := startServer(t, brokers, ctl, "a")
	b := startServer(t, brokers, ctl, "b")
	counter := guesttest.Build(t, "counter")
	yaml := deployedApp(appName, in, out, true, "counts")
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	ver := a.deploy(t, yaml, map[string][]byte{"main": counter})
	waitVersion(t, appName, ver, a, b)
	produce(t, brokers, in, clicks(keys, 50)...)
	if got := readCommitted(t, brokers, out, 400); len(got) != 400 {
		t.Fatalf("%d outputs before the rebuild, want 400", len(got))
	}

	// Clicks and queries keep coming during the rebuild and the flip.
	stop := make(chan struct{})
	var failed []string
	var clicked int
	queriesDone := make(chan struct{})
	go func() {
		defer close(queriesDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			s := []*testServer{a, b}[i%2]
			if ans := apptest.Get(s.addr, "/apps/"+appName+"/v1/stores/counts/keys/"+keys[i%len(keys)]); ans.Code != 200 {
				failed = append(failed, fmt.Sprintf("%s %s: %d %s", time.Now().Format("15:04:05.000"), s.addr, ans.Code, ans.Body))
			}
		}
	}()
	code, ans := b.deployCode(t, yaml, map[string][]byte{"main": counter}, true)
	if code != http.StatusCreated || ans["generation"].(float64) != 1 {
		t.Fatalf("rebuild deploy: %d %v", code, ans)
	}
	rebuildVersion := int64(ans["version"].(float64))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		produce(t, brokers, in, clicks(keys, 2)...)
		clicked += 2
		var ready struct {
			Apps map[string]struct{ Version int64 }
		}
		done := true
		for _, s := range []*testServer{a, b} {
			json.Unmarshal([]byte(s.readyz()), &ready)
			if ready.Apps[appName].Version <= rebuildVersion {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no flip within 2 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	produce(t, brokers, in, clicks(keys, 5)...)
	clicked += 5
	close(stop)
	<-queriesDone
	if len(failed) > 0 {
		t.Errorf("%d queries failed around the rebuild, first: %s", len(failed), failed[0])
	}

	total := 400 + clicked*len(keys)
	got := readCommitted(t, brokers, out, total+1)
	if len(got) != total {
		t.Fatalf("%d outputs for %d clicks: the generations produced some offsets twice or none", len(got), total)
	}
	last := map[string]int{}
	for _, r := range got {
		n, _ := strconv.Atoi(string(r.Value))
		if n != last[string(r.Key)]+1 {
			t.Fatalf("key %s: count %d after %d", r.Key, n, last[string(r.Key)])
		}
		last[string(r.Key)] = n
	}
	for _, k := range keys {
		a.waitGetApp(t, appName, k, strconv.Itoa(last[k]))
	}
	// The old generation's group and changelog are gone.
	adm := kadm.NewClient(testkafka.Client(t, brokers))
	apptest.WaitCheck(t, time.Minute, "the old generation to be deleted", func() error {
		topics, err := adm.ListTopics(context.Background(), config.ChangelogTopic(appName, "counts"))
		if err != nil {
			return err
		}
		if topics.Has(config.ChangelogTopic(appName, "counts")) {
			return fmt.Errorf("changelog %s still exists", config.ChangelogTopic(appName, "counts"))
		}
		return nil
	})
}

// waitGetApp waits until s serves value for key in the counts store of app.
func (s *testServer) waitGetApp(t *testing.T, app, key, value string) {
	t.Helper()
	apptest.WaitCheck(t, 10*time.Second, fmt.Sprintf("count of %s to be %s", key, value), func() error {
		if ans := apptest.Get(s.addr, "/apps/"+app+"/v1/stores/counts/keys/"+key); ans.Code != 200 || ans.Body != value {
			return fmt.Errorf("%d %s", ans.Code, ans.Body)
		}
		return nil
	})
}

// A module whose chunk is missing from the modules topic (an upload cut
// short, a record lost) is refused with the chunk named: by deploy, and by
// every instance when a version naming it reaches the apps topic anyway.
// The running version serves on, and an upload made whole again deploys.
func TestServerRefusesAModuleMissingAChunk(t *testing.T) {
	brokers := testkafka.Brokers(t)
	ctl := serverTopics(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, 4)
	a := startServer(t, brokers, ctl, "a")
	b := startServer(t, brokers, ctl, "b")
	v1, v2 := guesttest.Build(t, "tagv1"), guesttest.Build(t, "tagv2")
	yaml := deployedApp(appName, in, out, false, "")
	ver := a.deploy(t, yaml, map[string][]byte{"main": v1})
	waitVersion(t, appName, ver, a, b)

	// v2's chunks but the first, then its manifest, as an upload would
	// write them.
	const chunk = 512 << 10
	if len(v2) <= chunk {
		t.Fatalf("the tagv2 guest is %d bytes: the test needs a module of two chunks or more", len(v2))
	}
	hash := control.Hash(v2)
	cl := testkafka.Client(t, brokers)
	var recs []*kgo.Record
	n := 0
	for off := 0; off < len(v2); off += chunk {
		if n > 0 {
			recs = append(recs, &kgo.Record{Topic: ctl.ModulesTopic, Key: []byte(hash + "#" + strconv.Itoa(n)), Value: v2[off:min(off+chunk, len(v2))]})
		}
		n++
	}
	recs = append(recs, &kgo.Record{Topic: ctl.ModulesTopic, Key: []byte(hash), Value: mustJSON(map[string]int{"size": len(v2), "chunks": n})})
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	yaml2 := strings.ReplaceAll(yaml, "{{main}}", config.ModulePrefix+hash)
	want := fmt.Sprintf("lacks chunk 0 of %d", n)
	apptest.WaitCheck(t, time.Minute, "deploy to refuse the module missing its first chunk", func() error {
		code, ans := a.admin(t, http.MethodPost, "/v1/admin/apps/"+appName+"/versions", mustJSON(map[string]string{"config": yaml2}), adminToken)
		if code != http.StatusConflict || !strings.Contains(fmt.Sprint(ans["error"]), want) {
			return fmt.Errorf("%d %v", code, ans)
		}
		return nil
	})

	// The same version written to the apps topic past deploy's check: as a
	// swap (only the module changes), then as a restart (the configuration
	// changes too).
	log, err := control.Open(context.Background(), control.Topics{Apps: ctl.AppsTopic, Modules: ctl.ModulesTopic, Status: ctl.StatusTopic, Tenants: ctl.TenantsTopic, Audit: ctl.AuditTopic}, 1, slog.New(slog.NewTextHandler(io.Discard, nil)), kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if err := log.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	head, _ := log.App(appName)
	for _, config := range []string{yaml2, strings.Replace(yaml2, "commit_interval: 50ms", "commit_interval: 60ms", 1)} {
		next := head
		next.Version++
		next.Config = config
		next.Modules = map[string]string{"main": hash}
		if err := log.PutSpec(context.Background(), next, 10); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*testServer{a, b} {
			apptest.WaitCheck(t, time.Minute, fmt.Sprintf("version %d, missing a chunk, to be refused on %s", next.Version, s.addr), func() error {
				code, ans := s.admin(t, http.MethodGet, "/v1/admin/apps/"+appName, nil, adminToken)
				js, _ := json.Marshal(ans["instances"])
				if code != 200 || strings.Count(string(js), fmt.Sprintf(`"failed":%d`, next.Version)) != 2 || !strings.Contains(string(js), want) {
					return fmt.Errorf("%d instances %s", code, js)
				}
				return nil
			})
		}
		head = next
	}
	produce(t, brokers, in, phase([]string{"a", "b", "c", "d", "e", "f", "g", "h"}, "p1")...)
	got := testkafka.ReadAll(t, brokers, out, 40, time.Minute)
	if len(got) != 40 {
		t.Fatalf("%d outputs of 40 inputs while the app should run version 1 on", len(got))
	}
	for _, r := range got {
		if string(r.Value) != "v1:p1" || testkafka.Header(r, "streamrt.module.version") != control.Hash(v1) {
			t.Fatalf("after the refused versions, output %q with module %q", r.Value, testkafka.Header(r, "streamrt.module.version"))
		}
	}

	// A rollback from refused versions goes back to the version that runs.
	code, ans := a.admin(t, http.MethodPost, "/v1/admin/apps/"+appName+"/rollback", nil, adminToken)
	if code != http.StatusCreated || !strings.Contains(fmt.Sprint(ans), fmt.Sprintf("rollback from version %d to version %d", head.Version, ver)) {
		t.Fatalf("rollback after two refused versions: %d %v", code, ans)
	}
	waitVersion(t, appName, head.Version+1, a, b)

	// Uploaded again whole, the module deploys.
	ver = b.deploy(t, yaml, map[string][]byte{"main": v2})
	waitVersion(t, appName, ver, a, b)
	produce(t, brokers, in, phase([]string{"a", "b", "c", "d", "e", "f", "g", "h"}, "p2")...)
	n2 := 0
	for _, r := range testkafka.ReadAll(t, brokers, out, 80, time.Minute) {
		if strings.HasSuffix(string(r.Value), ":p2") {
			n2++
			if string(r.Value) != "v2:p2" {
				t.Fatalf("after the whole upload, output %q", r.Value)
			}
		}
	}
	if n2 != 40 {
		t.Fatalf("%d outputs of the last phase's 40 inputs", n2)
	}
}

// With http_tls in the server's configuration, two servers serve the admin
// API and the apps' APIs over HTTPS only, and the apps forward queries to
// each other over it, each verifying the other against the CA and
// presenting its certificate. A deployed app may not bring its own
// http_tls: the server's listener serves it.
func TestServerHTTPS(t *testing.T) {
	brokers := testkafka.Brokers(t)
	ctl := serverTopics(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, 4)
	dir := t.TempDir()
	ca := testtls.NewCA(t, "servers CA")
	leaf := ca.Issue(t, testtls.Options{CommonName: "server"})
	caFile := testtls.Write(t, dir, "ca.pem", ca.PEM)
	tlsc := config.HTTPTLS{CertFile: testtls.Write(t, dir, "server.pem", leaf.CertPEM), KeyFile: testtls.Write(t, dir, "server.key", leaf.KeyPEM), ClientCAFile: caFile, CAFile: caFile}
	client := ca.Issue(t, testtls.Options{CommonName: "an operator"})
	https := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLS}}}}
	a := startServerWith(t, brokers, ctl, "a", tlsc, https)
	b := startServerWith(t, brokers, ctl, "b", tlsc, https)

	if resp, err := http.Get("http://" + a.addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to an HTTPS server: %d, want 400", resp.StatusCode)
		}
	}
	yaml := deployedApp(appName, in, out, false, "counts")
	code, ans := a.deployCode(t, yaml+"http_tls:\n  cert_file: /nowhere.pem\n", map[string][]byte{"main": guesttest.Build(t, "counter")}, false)
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(ans["error"]), "set http_tls in the server's configuration") {
		t.Errorf("a deployed app with its own http_tls: %d %v", code, ans)
	}
	ver := a.deploy(t, yaml, map[string][]byte{"main": guesttest.Build(t, "counter")})
	waitVersion(t, appName, ver, a, b)
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = fmt.Sprintf("page-%d", i)
	}
	produce(t, brokers, in, clicks(keys, 1)...)
	apptest.WaitCheck(t, time.Minute, "every key from a over HTTPS, some forwarded to b", func() error {
		served := map[string]bool{}
		for _, k := range keys {
			resp, err := https.Get("https://" + a.addr + "/apps/" + appName + "/v1/stores/counts/keys/" + k)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "1" {
				return fmt.Errorf("key %s: %d %s", k, resp.StatusCode, body)
			}
			served[resp.Header.Get("X-Streamrt-Served-By")] = true
		}
		if !served[a.addr] || !served[b.addr] {
			return fmt.Errorf("served by %v, want both %s and %s", served, a.addr, b.addr)
		}
		return nil
	})
}
