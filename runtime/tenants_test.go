package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/control"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/serve"
	"github.com/twmb/franz-go/pkg/kgo"
)

// tenantToken makes a token of tenant with role through s.
func (s *testServer) tenantToken(t *testing.T, tenant, role string) (id, token string) {
	t.Helper()
	code, ans := s.admin(t, http.MethodPost, "/v1/admin/tenants/"+tenant+"/tokens", mustJSON(map[string]string{"role": role}), adminToken)
	if code != http.StatusCreated {
		t.Fatalf("token of %s: %d %v", tenant, code, ans)
	}
	return ans["id"].(string), ans["token"].(string)
}

// deployAs uploads modules and deploys yaml with token, answering the
// deploy's status and body.
func (s *testServer) deployAs(t *testing.T, token, app, yaml string, modules map[string][]byte) (int, map[string]any) {
	t.Helper()
	for key, b := range modules {
		hash := control.Hash(b)
		if code, out := s.admin(t, http.MethodPut, "/v1/admin/modules/"+hash, b, token); code != http.StatusCreated {
			t.Fatalf("upload module as %s: %d %v", token[:8], code, out)
		}
		yaml = strings.ReplaceAll(yaml, "{{"+key+"}}", config.ModulePrefix+hash)
	}
	return s.admin(t, http.MethodPost, "/v1/admin/apps/"+app+"/versions", mustJSON(map[string]any{"config": yaml}), token)
}

// queryAs reads key of the counts store of app through s with token.
func (s *testServer) queryAs(t *testing.T, app, key, token string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr+"/apps/"+app+"/v1/stores/counts/keys/"+key, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Two tenants on three servers: each deploys, queries and lists its own apps
// only, with tokens the platform made; a spec reaching for the other's
// topics, or writing a topic only shared with it, is refused naming the
// topic and the grant it lacks; each quota refuses only its tenant; a
// tenant with apps cannot be deleted; a revoked token stops working; and
// every change is in the audit trail with the token's id, never the token.
func TestTenantsAreIsolatedAndHeldToQuotas(t *testing.T) {
	brokers := testkafka.Brokers(t)
	ctl := serverTopics(t)
	acme, globex := testkafka.Name(t, "acme"), testkafka.Name(t, "globex")
	shared := testkafka.Name(t, "rates")
	acmeIn, acmeOut := acme+".clicks", acme+".counts-out"
	globexIn := globex + "-team.clicks"
	for _, topic := range []string{acmeIn, globexIn, shared} {
		testkafka.CreateTopic(t, brokers, topic, 4)
	}
	a := startServer(t, brokers, ctl, "a")
	b := startServer(t, brokers, ctl, "b")
	c := startServer(t, brokers, ctl, "c")
	servers := []*testServer{a, b, c}
	counter := guesttest.Build(t, "counter")

	// The platform declares the tenants.
	for _, tc := range []struct {
		name string
		body map[string]any
	}{
		{acme, map[string]any{"shared": []string{shared}, "quotas": map[string]any{"apps": 1, "partitions": 8}}},
		{globex, map[string]any{"prefixes": []string{globex + "-team."}, "quotas": map[string]any{"memory_bytes": 200 << 20}}},
	} {
		if code, ans := a.admin(t, http.MethodPut, "/v1/admin/tenants/"+tc.name, mustJSON(tc.body), adminToken); code != http.StatusCreated {
			t.Fatalf("create tenant %s: %d %v", tc.name, code, ans)
		}
	}
	for _, bad := range []struct {
		path string
		body map[string]any
		want string
	}{
		{"/v1/admin/tenants/Bad.Name", map[string]any{}, "lower-case letters"},
		{"/v1/admin/tenants/" + globex, map[string]any{"prefixes": []string{acme + ".x"}}, "overlaps tenant"},
		{"/v1/admin/tenants/" + globex, map[string]any{"shared": []string{"no/slash"}}, "shared[0]"},
		{"/v1/admin/tenants/" + globex, map[string]any{"quotas": map[string]any{"apps": -1}}, "must not be negative"},
		{"/v1/admin/tenants/" + globex, map[string]any{"prefixes": []string{"ctl-"}}, "covers the control topic"},
		{"/v1/admin/tenants/" + globex, map[string]any{"shared": []string{ctl.AppsTopic}}, "is a control topic"},
		{"/v1/admin/tenants/" + globex + "-team", map[string]any{}, "overlaps tenant"},
	} {
		if code, ans := a.admin(t, http.MethodPut, bad.path, mustJSON(bad.body), adminToken); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(ans["error"]), bad.want) {
			t.Errorf("PUT %s %v: %d %v, want 400 with %q", bad.path, bad.body, code, ans, bad.want)
		}
	}
	acmeDeployID, acmeDeploy := a.tenantToken(t, acme, "deploy")
	acmeQueryID, acmeQuery := a.tenantToken(t, acme, "query")
	_, globexDeploy := b.tenantToken(t, globex, "deploy")
	_, globexQuery := b.tenantToken(t, globex, "query")

	// acme deploys its app with its deploy token, made on another server:
	// it reads its own topic and the one the platform shares with it.
	app := acme + ".counts"
	yaml := strings.Replace(deployedApp(app, acmeIn, acmeOut, true, "counts"), "inputs: ["+acmeIn+"]", "inputs: ["+acmeIn+", "+shared+"]", 1)
	code, ans := b.deployAs(t, acmeDeploy, app, yaml, map[string][]byte{"main": counter})
	if code != http.StatusCreated {
		t.Fatalf("acme deploys its app: %d %v", code, ans)
	}
	waitVersion(t, app, int64(ans["version"].(float64)), servers...)
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	produce(t, brokers, acmeIn, clicks(keys, 3)...)
	if got := readCommitted(t, brokers, acmeOut, 24); len(got) != 24 {
		t.Fatalf("%d outputs of acme's app, want 24", len(got))
	}

	// Queries: acme's tokens (and the platform's) read every key through
	// any server, forwarded to the owner where needed; no token, or
	// globex's, is refused on the first hop and on a forwarded one.
	for _, s := range servers {
		for _, k := range keys {
			for _, tok := range []string{acmeQuery, acmeDeploy, adminToken} {
				apptest.WaitCheck(t, 20*time.Second, "a query of "+k, func() error {
					if code, body := s.queryAs(t, app, k, tok); code != 200 || body != "3" {
						return fmt.Errorf("%d %s", code, body)
					}
					return nil
				})
			}
		}
	}
	for _, q := range []struct {
		token  string
		header []string
		code   int
		want   string
	}{
		{"", nil, 401, "a token is required"},
		{"srt_forged", nil, 401, "invalid token"},
		{globexQuery, nil, 403, "may not query app"},
		{globexDeploy, nil, 403, "may not query app"},
		{globexQuery, []string{serve.HeaderForwarded, "127.0.0.1:1"}, 403, "may not query app"},
	} {
		for _, s := range servers {
			if code, body := s.queryAs(t, app, "k1", q.token, q.header...); code != q.code || !strings.Contains(body, q.want) {
				t.Errorf("query of %s with %.12q %v: %d %s, want %d with %q", app, q.token, q.header, code, body, q.code, q.want)
			}
		}
	}

	// Without a token, every name in a namespace is refused alike: an app
	// that exists, one that does not, and one of no tenant at all.
	for _, name := range []string{app, acme + ".nothing", "nobody.nothing"} {
		code, body := a.queryAs(t, name, "k1", "")
		var e struct{ Error string }
		json.Unmarshal([]byte(body), &e)
		if want := fmt.Sprintf("app %q: a token is required (Authorization: Bearer <token>)", name); code != 401 || e.Error != want {
			t.Errorf("anonymous query of %s: %d %s, want 401 %q", name, code, body, want)
		}
	}

	// The admin API: globex's tokens neither see nor touch acme's app, and
	// are answered alike for an app of acme's that does not exist.
	for _, r := range []struct {
		method, path, token string
		code                int
		want                string
	}{
		{http.MethodGet, "/v1/admin/apps/" + app, globexDeploy, 403, "may not manage app"},
		{http.MethodGet, "/v1/admin/apps/" + acme + ".nothing", globexDeploy, 403, "may not manage app"},
		{http.MethodPost, "/v1/admin/apps/" + app + "/rollback", globexDeploy, 403, "may not manage app"},
		{http.MethodPost, "/v1/admin/apps/" + app + "/promote", globexDeploy, 403, "may not manage app"},
		{http.MethodDelete, "/v1/admin/apps/" + app, globexDeploy, 403, "may not manage app"},
		{http.MethodPost, "/v1/admin/apps/" + app + "/versions", globexDeploy, 403, "may not manage app"},
		{http.MethodGet, "/v1/admin/apps", acmeQuery, 403, "query token"},
		{http.MethodPut, "/v1/admin/tenants/" + globex, globexDeploy, 403, "platform admin token"},
		{http.MethodPost, "/v1/admin/tenants/" + globex + "/tokens", globexDeploy, 403, "platform admin token"},
		{http.MethodDelete, "/v1/admin/tenants/" + acme, adminToken, 409, app},
		{http.MethodGet, "/metrics", acmeDeploy, 403, "platform admin token"},
	} {
		if code, ans := a.admin(t, r.method, r.path, mustJSON(map[string]string{"config": yaml}), r.token); code != r.code || !strings.Contains(fmt.Sprint(ans["error"]), r.want) {
			t.Errorf("%s %s: %d %v, want %d with %q", r.method, r.path, code, ans, r.code, r.want)
		}
	}
	for _, l := range []struct {
		token string
		want  []string
	}{{globexDeploy, nil}, {acmeDeploy, []string{app}}} {
		code, ans := a.admin(t, http.MethodGet, "/v1/admin/apps", nil, l.token)
		var listed []string
		for _, ai := range ans["apps"].([]any) {
			listed = append(listed, ai.(map[string]any)["app"].(string))
		}
		if code != 200 || fmt.Sprint(listed) != fmt.Sprint(l.want) {
			t.Errorf("apps listed with %.12s: %d %v, want %v", l.token, code, listed, l.want)
		}
	}

	// Deploys reaching outside the grants, or past a quota, are refused
	// naming what is wrong, and nothing of them runs.
	globexApp := globex + ".spy"
	for _, d := range []struct {
		token, app, yaml string
		code             int
		want             string
	}{
		{globexDeploy, globexApp, deployedApp(globexApp, acmeIn, globex+"-team.out", false, ""), 403, fmt.Sprintf("it reads topic %q, outside tenant %q", acmeIn, globex)},
		{globexDeploy, globexApp, deployedApp(globexApp, globexIn, acmeOut, false, ""), 403, fmt.Sprintf("it writes topic %q, outside tenant %q", acmeOut, globex)},
		{acmeDeploy, app, deployedApp(app, acmeIn, shared, false, "counts"), 403, fmt.Sprintf("it writes topic %q, which tenant %q may only read (shared)", shared, acme)},
		{acmeDeploy, acme + ".second", deployedApp(acme+".second", acmeIn, acme+".y", false, ""), 403, "apps: 2 with this one, quota 1"},
		{acmeDeploy, app, strings.Replace(deployedApp(app, acmeIn, acmeOut, true, "counts"), "partitions: 4", "partitions: 12", 1), 403, "partitions: 12 with this app's 12, quota 8"},
		{acmeDeploy, app, deployedApp(app, acmeIn, acmeOut, true, "counts") + "query:\n  tokens: [mine]\n", 400, "queried with its tenant's query tokens"},
		{globexDeploy, globexApp, deployedApp(globexApp, globexIn, globex+"-team.out", false, ""), 403, "guest memory per server: 256MiB with this app's 256MiB, quota 200MiB"},
	} {
		code, ans := a.deployAs(t, d.token, d.app, d.yaml, map[string][]byte{"main": counter})
		if code != d.code || !strings.Contains(fmt.Sprint(ans["error"]), d.want) {
			t.Errorf("deploy of %s: %d %v, want %d with %q", d.app, code, ans, d.code, d.want)
		}
	}
	if code, ans := a.admin(t, http.MethodGet, "/v1/admin/apps/"+globexApp, nil, adminToken); code != http.StatusNotFound {
		t.Errorf("a refused app exists: %d %v", code, ans)
	}

	// A revoked token stops working on every server.
	if code, ans := b.admin(t, http.MethodDelete, "/v1/admin/tenants/"+acme+"/tokens/"+acmeQueryID, nil, adminToken); code != http.StatusOK {
		t.Fatalf("revoke: %d %v", code, ans)
	}
	for _, s := range servers {
		apptest.WaitCheck(t, 10*time.Second, "the revoked token to be refused", func() error {
			if code, body := s.queryAs(t, app, "k1", acmeQuery); code != 401 {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
	}

	// The quotas and usage are visible in the metrics.
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`streamrt_tenant_apps{tenant=%q} 1`, acme),
		fmt.Sprintf(`streamrt_tenant_partitions{tenant=%q} 4`, acme),
		fmt.Sprintf(`streamrt_tenant_quota{resource="apps",tenant=%q} 1`, acme),
		fmt.Sprintf(`streamrt_tenant_quota_refusals_total{tenant=%q} 2`, acme),
		fmt.Sprintf(`streamrt_tenant_quota_refusals_total{tenant=%q} 1`, globex),
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The audit trail names the tokens by id; a tenant reads only its own.
	code, ans = a.admin(t, http.MethodGet, "/v1/admin/audit", nil, adminToken)
	var actions []string
	for _, e := range ans["events"].([]any) {
		ev := e.(map[string]any)
		actions = append(actions, fmt.Sprint(ev["action"], " ", ev["tenant"], " ", ev["token_id"]))
	}
	all := strings.Join(actions, "\n")
	for _, want := range []string{
		"tenant-create " + acme + " admin:", "tenant-create " + globex + " admin:",
		"token-create " + acme + " admin:", "deploy " + acme + " " + acmeDeployID, "token-revoke " + acme + " admin:",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("audit lacks %q:\n%s", want, all)
		}
	}
	code, ans = a.admin(t, http.MethodGet, "/v1/admin/audit", nil, globexDeploy)
	for _, e := range ans["events"].([]any) {
		if ev := e.(map[string]any); ev["tenant"] != globex {
			t.Errorf("globex's deploy token read an event of %v", ev["tenant"])
		}
	}
	if code != 200 || len(ans["events"].([]any)) != 3 { // its creation and two tokens
		t.Errorf("globex's audit: %d %v", code, ans)
	}

	// Tokens are kept hashed: none is in the tenants topic or the audit
	// trail as it was given.
	raw := readValues(t, brokers, ctl.TenantsTopic, ctl.AuditTopic)
	for _, tok := range []string{acmeDeploy, acmeQuery, globexDeploy, globexQuery, adminToken} {
		if strings.Contains(raw, tok) {
			t.Errorf("a token is stored as it was given: %.12s...", tok)
		}
	}

	// Once its app is deleted, a tenant can be.
	if code, ans := a.admin(t, http.MethodDelete, "/v1/admin/apps/"+app, nil, acmeDeploy); code != http.StatusOK {
		t.Fatalf("delete acme's app: %d %v", code, ans)
	}
	if code, ans := a.admin(t, http.MethodDelete, "/v1/admin/tenants/"+acme, nil, adminToken); code != http.StatusOK {
		t.Fatalf("delete tenant: %d %v", code, ans)
	}
	if code, _ := a.admin(t, http.MethodGet, "/v1/admin/apps", nil, acmeDeploy); code != http.StatusUnauthorized {
		t.Errorf("a deleted tenant's token: %d, want 401", code)
	}
}

// readValues returns every record value of topics, concatenated.
func readValues(t *testing.T, brokers []string, topics ...string) string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var sb strings.Builder
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { sb.Write(r.Value); sb.WriteByte('\n') })
	}
	if sb.Len() == 0 {
		t.Fatalf("no records in %v", topics)
	}
	return sb.String()
}

// A tenant whose local state on a server reaches its state quota has its
// tasks stopped there with the reason, in its apps' status, the metrics and
// the log, while another tenant's app on the same server runs on; raising
// the quota resumes it, and nothing it was sent is lost.
func TestTenantStateQuotaStopsOnlyItsTenant(t *testing.T) {
	brokers := testkafka.Brokers(t)
	ctl := serverTopics(t)
	full, free := testkafka.Name(t, "full"), testkafka.Name(t, "free")
	a := startServer(t, brokers, ctl, "a")
	counter := guesttest.Build(t, "counter")
	tokens := map[string]string{}
	for name, quotas := range map[string]map[string]any{full: {"state_bytes": 1}, free: {}} {
		if code, ans := a.admin(t, http.MethodPut, "/v1/admin/tenants/"+name, mustJSON(map[string]any{"quotas": quotas}), adminToken); code != http.StatusCreated {
			t.Fatalf("create tenant %s: %d %v", name, code, ans)
		}
		_, tokens[name] = a.tenantToken(t, name, "deploy")
		testkafka.CreateTopic(t, brokers, name+".in", 4)
		app := name + ".counts"
		code, ans := a.deployAs(t, tokens[name], app, deployedApp(app, name+".in", name+".out", true, "counts"), map[string][]byte{"main": counter})
		if code != http.StatusCreated {
			t.Fatalf("deploy %s: %d %v", app, code, ans)
		}
		waitVersion(t, app, int64(ans["version"].(float64)), a)
	}

	// Its state directory alone is over a quota of one byte.
	apptest.WaitCheck(t, 30*time.Second, "the full tenant's app to be held", func() error {
		_, ans := a.admin(t, http.MethodGet, "/v1/admin/apps/"+full+".counts", nil, tokens[full])
		held := fmt.Sprint(ans["instances"].([]any)[0].(map[string]any)["held"])
		if !strings.Contains(held, "state quota exceeded: tenant "+fmt.Sprintf("%q", full)) {
			return fmt.Errorf("held %q", held)
		}
		return nil
	})
	keys := []string{"k0", "k1", "k2", "k3"}
	produce(t, brokers, full+".in", clicks(keys, 5)...)
	produce(t, brokers, free+".in", clicks(keys, 5)...)
	if got := readCommitted(t, brokers, free+".out", 20); len(got) != 20 {
		t.Fatalf("the other tenant's app: %d outputs, want 20", len(got))
	}
	if got := testkafka.ReadAll(t, brokers, full+".out", 1, 3*time.Second); len(got) != 0 {
		t.Fatalf("the held tenant's app wrote %d records", len(got))
	}
	metrics := a.adminGet(t, "/metrics")
	for _, want := range []string{fmt.Sprintf(`streamrt_tenant_held{tenant=%q} 1`, full), fmt.Sprintf(`streamrt_tenant_held{tenant=%q} 0`, free)} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The free tenant's batches were metered, and the held one's waited.
	for _, m := range []struct{ name, tenant string }{{"streamrt_tenant_batch_seconds_total", free}, {"streamrt_tenant_wait_seconds_total", full}} {
		var v float64
		prefix := fmt.Sprintf("%s{tenant=%q} ", m.name, m.tenant)
		for _, line := range strings.Split(metrics, "\n") {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				fmt.Sscan(rest, &v)
			}
		}
		if v <= 0 {
			t.Errorf("%s%v, want above 0", prefix, v)
		}
	}
	if !strings.Contains(a.log.String(), "tenant's tasks stopped: state quota exceeded") {
		t.Error("the log does not say the tenant's tasks stopped")
	}

	// Raised, the quota lets it go on from where it stopped.
	if code, ans := a.admin(t, http.MethodPut, "/v1/admin/tenants/"+full, mustJSON(map[string]any{"quotas": map[string]any{"state_bytes": 1 << 30}}), adminToken); code != http.StatusOK {
		t.Fatalf("raise the quota: %d %v", code, ans)
	}
	if got := readCommitted(t, brokers, full+".out", 21); len(got) != 20 {
		t.Fatalf("after the quota was raised: %d outputs, want 20", len(got))
	}
	code, body := a.queryAs(t, full+".counts", "k1", tokens[full])
	if code != 200 || body != "5" {
		t.Fatalf("count of k1 after the hold: %d %s, want 5", code, body)
	}
}

// adminGet answers the body of a GET of path with the admin token.
func (s *testServer) adminGet(t *testing.T, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A tenant's guest that burns CPU to its deadline on some records and
// exhausts its memory on others is contained: those records are
// dead-lettered with the kind of failure, its good records are processed,
// and another tenant's app on the same servers counts every record exactly.
func TestTenantGuestExhaustingCPUOrMemoryIsContained(t *testing.T) {
	brokers := testkafka.Brokers(t)
	ctl := serverTopics(t)
	bad, good := testkafka.Name(t, "bad"), testkafka.Name(t, "good")
	a := startServer(t, brokers, ctl, "a")
	b := startServer(t, brokers, ctl, "b")
	tokens := map[string]string{}
	for _, name := range []string{bad, good} {
		if code, ans := a.admin(t, http.MethodPut, "/v1/admin/tenants/"+name, mustJSON(map[string]any{"quotas": map[string]any{"cpu": 0.5}}), adminToken); code != http.StatusCreated {
			t.Fatalf("create tenant %s: %d %v", name, code, ans)
		}
		_, tokens[name] = a.tenantToken(t, name, "deploy")
		testkafka.CreateTopic(t, brokers, name+".in", 4)
	}
	badApp, goodApp, snoopApp := bad+".faulty", good+".counts", bad+".snoop"
	// A deadline long enough that a guest running out of memory usually
	// traps before it.
	badYAML := strings.Replace(deployedApp(badApp, bad+".in", bad+".out", false, "seen"), "    outputs:",
		"    error_policy: dead_letter\n    dead_letter_topic: "+bad+".dlq\n    batch_deadline: 1s\n    memory_limit: 16MiB\n    outputs:", 1)
	for _, d := range []struct {
		tenant, app, yaml, guest string
	}{
		{bad, badApp, badYAML, "faulty"},
		{good, goodApp, deployedApp(goodApp, good+".in", good+".out", true, "counts"), "counter"},
		// The counter guest opens store "counts", which only the other
		// tenant's app has: a guest reaches its own app's stores alone.
		{bad, snoopApp, strings.Replace(deployedApp(snoopApp, bad+".in", bad+".snoop-out", false, ""), "    outputs:",
			"    error_policy: dead_letter\n    dead_letter_topic: "+bad+".snoop-dlq\n    outputs:", 1), "counter"},
	} {
		code, ans := b.deployAs(t, tokens[d.tenant], d.app, d.yaml, map[string][]byte{"main": guesttest.Build(t, d.guest)})
		if code != http.StatusCreated {
			t.Fatalf("deploy %s: %d %v", d.app, code, ans)
		}
		waitVersion(t, d.app, int64(ans["version"].(float64)), a, b)
	}

	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for round := range 5 {
			produce(t, brokers, good+".in", clicks(keys, 1)...)
			v := []string{"loop", "oom"}[round%2]
			produce(t, brokers, bad+".in", "x"+fmt.Sprint(round), v, "ok"+fmt.Sprint(round), "fine")
		}
	}()
	<-done
	if got := readCommitted(t, brokers, good+".out", 41); len(got) != 40 {
		t.Fatalf("the other tenant's app: %d outputs, want 40", len(got))
	}
	for _, k := range keys {
		if code, body := a.queryAs(t, goodApp, k, tokens[good]); code != 200 || body != "5" {
			t.Errorf("count of %s: %d %s, want 5", k, code, body)
		}
	}
	if got := testkafka.ReadAll(t, brokers, bad+".out", 5, 60*time.Second); len(got) != 5 {
		t.Errorf("the misbehaving app processed %d of its 5 good records", len(got))
	}
	// Each failing record is dead-lettered with the kind of its failure: a
	// loop meets the deadline; a guest out of memory traps, unless growing
	// its memory took the deadline first (under -race on a loaded
	// machine), which contains it as well.
	kinds := map[string]string{}
	dead := testkafka.ReadAll(t, brokers, bad+".dlq", 5, 60*time.Second)
	for _, r := range dead {
		for _, h := range r.Headers {
			if h.Key == "streamrt.error.kind" {
				kinds[string(r.Key)] = string(h.Value)
			}
		}
	}
	for round := range 5 {
		key, kind := "x"+fmt.Sprint(round), kinds["x"+fmt.Sprint(round)]
		if round%2 == 0 && kind != "deadline" || round%2 == 1 && kind != "trap" && kind != "deadline" {
			t.Errorf("dead letter of %s (%s): kind %q; want deadline for a loop, trap (or deadline) for running out of memory", key, []string{"loop", "oom"}[round%2], kind)
		}
	}
	if len(dead) != 5 {
		t.Errorf("%d dead letters, want 5 (the loop and oom records)", len(dead))
	}
	snooped := testkafka.ReadAll(t, brokers, bad+".snoop-dlq", 10, 60*time.Second)
	for _, r := range snooped {
		for _, h := range r.Headers {
			if h.Key == "streamrt.error" && !strings.Contains(string(h.Value), `store_open "counts": unknown store`) {
				t.Errorf("a guest opening another app's store: %s", h.Value)
			}
		}
	}
	if len(snooped) != 10 {
		t.Errorf("%d of the 10 records of the app opening another app's store were dead-lettered", len(snooped))
	}
}
