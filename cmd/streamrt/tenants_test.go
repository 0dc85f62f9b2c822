package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
)

// The platform manages tenants with `streamrt tenants` against a running
// server: create, list, update, tokens made and revoked, delete; mistakes
// are refused with what is wrong; `streamrt audit` shows each change with
// the token's id, and a tenant's deploy token sees its own tenant only.
func TestTenantsCommand(t *testing.T) {
	brokers := testkafka.Brokers(t)
	base := testkafka.Name(t, "ctl")
	dir := t.TempDir()
	addr := apptest.FreeAddr(t)
	file := filepath.Join(dir, "server.yaml")
	yaml := fmt.Sprintf("brokers: [%s]\nhttp: %s\nstate_dir: %s\ncontrol:\n  apps_topic: %[4]s-apps\n  modules_topic: %[4]s-modules\n  status_topic: %[4]s-status\n  tenants_topic: %[4]s-tenants\n  audit_topic: %[4]s-audit\n",
		strings.Join(brokers, ", "), addr, filepath.Join(dir, "state"), base)
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kv := range testkafka.Env(t) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("STREAMRT_ADMIN_TOKENS", "platform-s3cret")
	t.Setenv("STREAMRT_ADMIN_TOKEN", "platform-s3cret")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if code, _, stderr := cli(t, ctx, "", "server", "-c", file); code != 0 {
			t.Errorf("server exited %d: %s", code, stderr)
		}
	}()
	defer wg.Wait()
	defer cancel()
	apptest.WaitFor(t, time.Minute, "the server to answer", func() bool { return apptest.Get(addr, "/healthz").Code == 200 })

	team, other := testkafka.Name(t, "team"), testkafka.Name(t, "other")
	run := func(want int, args ...string) (string, string) {
		t.Helper()
		code, stdout, stderr := cli(t, context.Background(), "", append(args, "-s", addr)...)
		if code != want {
			t.Fatalf("streamrt %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, stdout, stderr)
		}
		return stdout, stderr
	}
	out, _ := run(0, "tenants", "create", team, "--prefix", team+"-in.", "--shared", "rates", "--max-apps", "3", "--max-memory", "1GiB", "--max-cpu", "0.5", "--max-state", "10GiB")
	for _, want := range []string{team, team + ".," + team + "-in.", "rates", "0/3", "0B/1GiB", "0.5 cores", "0B/10GiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("tenants create printed no %q:\n%s", want, out)
		}
	}
	run(0, "tenants", "create", other)
	token, notice := run(0, "tenants", "token", team, "--role", "deploy")
	token = strings.TrimSpace(token)
	if !strings.HasPrefix(token, "srt_") || !strings.Contains(notice, "shown this once") {
		t.Fatalf("tenants token printed %q, %q", token, notice)
	}
	id := strings.Fields(notice)[2]
	out, _ = run(0, "tenants", "update", team, "--prefix", team+"-in.", "--max-apps", "5")
	if !strings.Contains(out, "0/5") || strings.Contains(out, "rates") || !strings.Contains(out, id+" (deploy)") {
		t.Errorf("tenants update printed:\n%s", out)
	}

	_, errs := run(1, "tenants", "create", team)
	if !strings.Contains(errs, "exists: change it with tenants update") {
		t.Errorf("creating a tenant twice: %s", errs)
	}
	for _, bad := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"tenants", "frobnicate"}, 2, `unknown subcommand "frobnicate"`},
		{[]string{"tenants", "token", team, "--role", "root"}, 2, `--role: query or deploy, got "root"`},
		{[]string{"tenants", "create", "Not.Valid"}, 1, "lower-case letters"},
		{[]string{"tenants", "create", "x", "--max-memory", "lots"}, 2, "--max-memory: a size such as 512MiB"},
		{[]string{"tenants", "create", "x", "--max-cpu", "-1"}, 1, "must not be negative"},
		{[]string{"tenants", "revoke", team, "tok-nope"}, 1, `has no token "tok-nope"`},
		{[]string{"tenants", "delete", "nobody"}, 1, `no tenant "nobody"`},
	} {
		if _, errs := run(bad.code, bad.args...); !strings.Contains(errs, bad.want) {
			t.Errorf("streamrt %s: stderr %q, want %q", strings.Join(bad.args, " "), errs, bad.want)
		}
	}

	// The tenant's own deploy token lists its tenant, not the other, and
	// may not manage tenants.
	t.Setenv("STREAMRT_ADMIN_TOKEN", token)
	out, _ = run(0, "tenants", "list")
	if !strings.Contains(out, team) || strings.Contains(out, other) {
		t.Errorf("tenants list with the tenant's token:\n%s", out)
	}
	if _, errs := run(1, "tenants", "delete", other); !strings.Contains(errs, "needs a platform admin token (403 Forbidden)") {
		t.Errorf("tenants delete with a tenant's token: %s", errs)
	}
	out, _ = run(0, "audit")
	if !strings.Contains(out, "tenant-create") || strings.Contains(out, other) {
		t.Errorf("audit with the tenant's token:\n%s", out)
	}

	t.Setenv("STREAMRT_ADMIN_TOKEN", "platform-s3cret")
	run(0, "tenants", "revoke", team, id)
	run(0, "tenants", "delete", other)
	out, _ = run(0, "audit")
	for _, want := range []string{"tenant-create  " + team, "tenant-update  " + team, "token-create   " + team, "token-revoke   " + team, "tenant-delete  " + other, "admin:"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, token) || strings.Contains(out, "platform-s3cret") {
		t.Errorf("audit shows a token:\n%s", out)
	}
	out, _ = run(0, "audit", "--tenant", other)
	if strings.Contains(out, team) {
		t.Errorf("audit --tenant %s shows %s:\n%s", other, team, out)
	}
}
