package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/control"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

const adminToken = "admin-s3cret"

// testServer is one server instance run in-process.
type testServer struct {
	addr     string
	log      *syncBuffer
	cancel   context.CancelFunc
	done     chan error
	stateDir string
}

// serverTopics are control topics of the test's own, so that tests on a
// shared real cluster do not see each other's apps.
func serverTopics(t testing.TB) config.Control {
	base := testkafka.Name(t, "ctl")
	return config.Control{AppsTopic: base + "-apps", ModulesTopic: base + "-modules", StatusTopic: base + "-status"}
}

// startServer runs a server instance until the test ends.
func startServer(t *testing.T, brokers []string, ctl config.Control, name string) *testServer {
	t.Helper()
	s := &testServer{addr: freeAddr(t), log: &syncBuffer{}, done: make(chan error, 1), stateDir: filepath.Join(t.TempDir(), name)}
	cfg := &config.Server{Brokers: brokers, HTTP: s.addr, StateDir: s.stateDir, CacheDir: guesttest.CacheDir(), InstanceID: name,
		AdminTokens: []string{adminToken}, Control: ctl}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(s.log, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelInfo})).With("server", name)
	srv, err := runtime.NewServer(cfg, runtime.ServerOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- srv.Run(ctx) }()
	t.Cleanup(func() { s.stop(t) })
	apptest.WaitFor(t, 60*time.Second, "server "+name+" to answer", func() bool { return apptest.Get(s.addr, "/healthz").Code == 200 })
	return s
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
	req, err := http.NewRequest(method, "http://"+s.addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
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
			ans := apptest.Get(s.addr, "/readyz")
			if err := json.Unmarshal([]byte(ans.Body), &ready); err != nil {
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
	yaml := fmt.Sprintf(`app: %s
partitions: 4
guarantee: exactly_once
commit_interval: 50ms
stages:
  - name: main
    module: "{{main}}"
    inputs: [%s]
    outputs: {out: %s}
`, appName, in, out)

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
