package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
)

// tenantInfo is a tenant as the admin API shows it.
type tenantInfo struct {
	Name     string   `json:"name"`
	Prefixes []string `json:"prefixes"`
	Shared   []string `json:"shared"`
	Quotas   quotas   `json:"quotas"`
	Usage    struct {
		Apps        int    `json:"apps"`
		Partitions  int    `json:"partitions"`
		MemoryBytes int64  `json:"memory_bytes"`
		StateBytes  int64  `json:"state_bytes_here"`
		Held        string `json:"held_here"`
	} `json:"usage"`
	Tokens []struct {
		ID        string    `json:"id"`
		Role      string    `json:"role"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"tokens"`
	Apps []string `json:"apps"`
}

type quotas struct {
	Apps        int     `json:"apps,omitempty"`
	Partitions  int     `json:"partitions,omitempty"`
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	CPU         float64 `json:"cpu,omitempty"`
	StateBytes  int64   `json:"state_bytes,omitempty"`
}

const tenantsAbout = `Manage the tenants of a cluster of servers: the teams whose apps share it.

  tenants list                      every tenant, its grants, quotas and usage
  tenants create NAME [grants]      a new tenant
  tenants update NAME [grants]      a tenant's grants and quotas (all of them:
                                    a grant or quota not given is removed)
  tenants delete NAME               a tenant without apps
  tenants token NAME --role ROLE    a new token of the tenant: query (its
                                    apps' queries) or deploy (also deploys,
                                    rollbacks, deletes, its audit); shown once
  tenants revoke NAME TOKEN-ID      revoke one of its tokens

A tenant's apps are named NAME.APP; they may read and write topics named
NAME.* and under --prefix, and read --shared topics. Every command but list
needs a platform admin token ($STREAMRT_ADMIN_TOKEN or --token-file); list
with a tenant's deploy token shows that tenant.`

func cmdTenants(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("tenants", "tenants list|create|update|delete|token|revoke [flags] [NAME] [TOKEN-ID]", tenantsAbout)
	var af adminFlags
	af.define(f)
	var prefixes, shared stringList
	f.Var(&prefixes, "prefix", "a topic name `PREFIX` the tenant's apps may read and write (repeat for more)")
	f.Var(&shared, "shared", "a `TOPIC` the tenant's apps may read, not write (repeat for more)")
	maxApps := f.Int("max-apps", 0, "at most `N` apps (0: no bound)")
	maxPartitions := f.Int("max-partitions", 0, "at most `N` partitions over its apps (0: no bound)")
	maxMemory := f.String("max-memory", "", "at most `SIZE` of guest memory per server, such as 512MiB (none: no bound)")
	maxCPU := f.Float64("max-cpu", 0, "at most `CORES` of each server's cores for its batches, such as 0.5 (0: no bound)")
	maxState := f.String("max-state", "", "at most `SIZE` of local state per server, such as 10GiB (none: no bound)")
	role := f.String("role", "", "the new token's `ROLE`: query or deploy")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if code, ok := f.parse(args, stdout, stderr); !ok {
			return code
		}
		return f.usageError(stderr, "want a subcommand: list, create, update, delete, token or revoke")
	}
	sub := args[0]
	if code, ok := f.parse(args[1:], stdout, stderr); !ok {
		return code
	}
	pos := f.Args()
	want := map[string]int{"list": 0, "create": 1, "update": 1, "delete": 1, "token": 1, "revoke": 2}
	n, known := want[sub]
	if !known {
		return f.usageError(stderr, "unknown subcommand %q: want list, create, update, delete, token or revoke", sub)
	}
	if len(pos) != n {
		return f.usageError(stderr, "tenants %s takes %d arguments, got %d", sub, n, len(pos))
	}
	arg := func(i int) string { return pos[i] }
	c, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "streamrt tenants: %v\n", err)
		return exitFail
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "streamrt tenants %s: %v\n", sub, err)
		return exitFail
	}
	var path string
	if len(pos) > 0 {
		path = "/v1/admin/tenants/" + url.PathEscape(pos[0])
	}
	switch sub {
	case "list":
		var all struct{ Tenants []tenantInfo }
		if _, err := c.call(ctx, http.MethodGet, "/v1/admin/tenants", nil, &all); err != nil {
			return fail(err)
		}
		printTenants(stdout, all.Tenants)
	case "create", "update":
		q := quotas{Apps: *maxApps, Partitions: *maxPartitions, CPU: *maxCPU}
		for _, sz := range []struct {
			flag string
			text *string
			n    *int64
		}{{"--max-memory", maxMemory, &q.MemoryBytes}, {"--max-state", maxState, &q.StateBytes}} {
			if *sz.text == "" {
				continue
			}
			if *sz.n, err = config.ParseByteSize(*sz.text); err != nil {
				return f.usageError(stderr, "%s: a size such as 512MiB, got %q", sz.flag, *sz.text)
			}
		}
		if sub == "create" {
			var existing struct{ Tenants []tenantInfo }
			if _, err := c.call(ctx, http.MethodGet, "/v1/admin/tenants", nil, &existing); err != nil {
				return fail(err)
			}
			for _, t := range existing.Tenants {
				if t.Name == arg(0) {
					return fail(fmt.Errorf("tenant %q exists: change it with tenants update", t.Name))
				}
			}
		}
		body, _ := json.Marshal(map[string]any{"prefixes": prefixes, "shared": shared, "quotas": q})
		var t tenantInfo
		if _, err := c.call(ctx, http.MethodPut, path, bytes.NewReader(body), &t); err != nil {
			return fail(err)
		}
		printTenants(stdout, []tenantInfo{t})
	case "delete":
		if _, err := c.call(ctx, http.MethodDelete, path, nil, nil); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "tenant %s deleted\n", arg(0))
	case "token":
		if *role != "query" && *role != "deploy" {
			return f.usageError(stderr, "--role: query or deploy, got %q", *role)
		}
		body, _ := json.Marshal(map[string]string{"role": *role})
		var tk struct{ ID, Role, Token string }
		if _, err := c.call(ctx, http.MethodPost, path+"/tokens", bytes.NewReader(body), &tk); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stderr, "%s token %s of tenant %s (shown this once; only its hash is kept):\n", tk.Role, tk.ID, arg(0))
		fmt.Fprintln(stdout, tk.Token)
	case "revoke":
		if _, err := c.call(ctx, http.MethodDelete, path+"/tokens/"+url.PathEscape(arg(1)), nil, nil); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "token %s of tenant %s revoked\n", arg(1), arg(0))
	}
	return exitOK
}

func printTenants(w io.Writer, ts []tenantInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tPREFIXES\tSHARED\tAPPS\tPARTITIONS\tGUEST MEMORY\tCPU\tSTATE HERE\tTOKENS\tHELD HERE")
	of := func(used, quota int64, size bool) string {
		text := func(n int64) string {
			if size {
				return config.FormatByteSize(n)
			}
			return fmt.Sprint(n)
		}
		if quota == 0 {
			return text(used)
		}
		return text(used) + "/" + text(quota)
	}
	for _, t := range ts {
		var tokens []string
		for _, tk := range t.Tokens {
			tokens = append(tokens, tk.ID+" ("+tk.Role+")")
		}
		cpu := "-"
		if t.Quotas.CPU > 0 {
			cpu = fmt.Sprintf("%g cores", t.Quotas.CPU)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, orDash(append([]string{t.Name + "."}, t.Prefixes...)), orDash(t.Shared),
			of(int64(t.Usage.Apps), int64(t.Quotas.Apps), false), of(int64(t.Usage.Partitions), int64(t.Quotas.Partitions), false),
			of(t.Usage.MemoryBytes, t.Quotas.MemoryBytes, true), cpu, of(t.Usage.StateBytes, t.Quotas.StateBytes, true), orDash(tokens), dash(t.Usage.Held))
	}
	tw.Flush()
}

func orDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stringList is a flag that may be given more than once.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func cmdAudit(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("audit", "audit [flags]", `Print the changes made to a cluster through its admin API, oldest first: every
deploy, rollback, promote, delete and tenant change, with the tenant, the id
of the token that made it (never the token), the time and the versions. With
a tenant's deploy token, that tenant's changes only.`)
	var af adminFlags
	af.define(f)
	tenant := f.String("tenant", "", "only the changes of `TENANT`")
	app := f.String("app", "", "only the changes of `APP`")
	limit := f.Int("limit", 100, "the newest `N` changes")
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return code
	}
	if f.NArg() > 0 {
		return f.usageError(stderr, "unexpected argument %q", f.Arg(0))
	}
	c, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "streamrt audit: %v\n", err)
		return exitFail
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	q := url.Values{"limit": {fmt.Sprint(*limit)}}
	if *tenant != "" {
		q.Set("tenant", *tenant)
	}
	if *app != "" {
		q.Set("app", *app)
	}
	var out struct {
		Events []struct {
			At      time.Time `json:"at"`
			Action  string    `json:"action"`
			Tenant  string    `json:"tenant"`
			TokenID string    `json:"token_id"`
			App     string    `json:"app"`
			Version int64     `json:"version"`
			From    int64     `json:"from"`
			Detail  string    `json:"detail"`
		}
	}
	if _, err := c.call(ctx, http.MethodGet, "/v1/admin/audit?"+q.Encode(), nil, &out); err != nil {
		fmt.Fprintf(stderr, "streamrt audit: %v\n", err)
		return exitFail
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tTENANT\tTOKEN\tAPP\tVERSION\tDETAIL")
	for _, e := range out.Events {
		version := "-"
		if e.Version != 0 {
			version = fmt.Sprint(e.Version)
			if e.From != 0 {
				version = fmt.Sprintf("%d→%d", e.From, e.Version)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339), e.Action, dash(e.Tenant), e.TokenID, dash(e.App), version, e.Detail)
	}
	tw.Flush()
	return exitOK
}
