package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	streamrt "github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
	"go.yaml.in/yaml/v3"
)

// adminClient calls a server's admin API.
type adminClient struct {
	base, token string
	http        *http.Client
}

// adminFlags are the flags of the commands that call the admin API.
type adminFlags struct {
	server    string
	tokenFile string
	// httpTLS reaches a server with http_tls: the CA that signed its
	// certificate, and a client certificate where it asks for one.
	httpTLS config.HTTPTLS
}

func (a *adminFlags) define(f *flags) {
	f.StringVar(&a.server, "server", "http://"+config.DefaultServerHTTP, "base `URL` of any server instance")
	f.alias("s", "server")
	f.StringVar(&a.tokenFile, "token-file", "", "read the admin token, or a tenant's deploy token, from `FILE` (default $STREAMRT_ADMIN_TOKEN)")
	f.StringVar(&a.httpTLS.CAFile, "cacert", "", "trust the CAs in the PEM `FILE` for a server that serves HTTPS")
	f.StringVar(&a.httpTLS.CertFile, "cert", "", "present the client certificate in the PEM `FILE` (with --key)")
	f.StringVar(&a.httpTLS.KeyFile, "key", "", "the client certificate's private key, a PEM `FILE`")
}

func (a *adminFlags) client() (*adminClient, error) {
	token := os.Getenv("STREAMRT_ADMIN_TOKEN")
	if a.tokenFile != "" {
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	useTLS := a.httpTLS.CAFile != "" || a.httpTLS.CertFile != "" || a.httpTLS.KeyFile != ""
	base := strings.TrimRight(a.server, "/")
	if !strings.Contains(base, "://") {
		base = map[bool]string{false: "http://", true: "https://"}[useTLS] + base
	}
	cl := &http.Client{Timeout: adminTimeout}
	if useTLS {
		tc, err := a.httpTLS.ClientConfig()
		if err != nil {
			// Name the flag, not the configuration key, at fault.
			return nil, errors.New(strings.NewReplacer("ca_file", "--cacert", "cert_file", "--cert", "key_file", "--key").Replace(err.Error()))
		}
		cl.Transport = &http.Transport{TLSClientConfig: tc}
	}
	return &adminClient{base: base, token: token, http: cl}, nil
}

// call sends a request and decodes a JSON answer into out (unless nil); an
// answer that is not 2xx is an error with the server's message.
func (c *adminClient) call(ctx context.Context, method, path string, body io.Reader, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s (%s)", errorMessage(b), resp.Status)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("answer of %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func cmdDeploy(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("deploy", "deploy -c FILE [flags]", `Deploy the app described by FILE to a cluster of servers: build its stages'
modules as run does (Go packages, Rust crates, AssemblyScript projects, .wasm
files), upload those the cluster lacks by content hash, then write the app's
new version. Every server
converges on it: a new app starts, a new module swaps in at each task's next
cycle once every instance has it, a changed configuration restarts the app.

The token (an admin token, or the deploy token of the tenant that owns the
app) comes from $STREAMRT_ADMIN_TOKEN or --token-file.`)
	file := f.String("config", "", "the app's YAML config `FILE` (required)")
	f.alias("c", "config")
	var af adminFlags
	af.define(f)
	canary := f.Int("canary", 0, "run the new version on `N` partitions first (finish with promote or rollback)")
	rebuild := f.Bool("rebuild", false, "start a new generation of the app's state, replayed from its inputs' start")
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return code
	}
	if f.NArg() > 0 {
		return f.usageError(stderr, "unexpected argument %q", f.Arg(0))
	}
	if *file == "" {
		return f.usageError(stderr, "-c FILE is required")
	}
	c, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "streamrt deploy: %v\n", err)
		return exitFail
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	// The server gives the app its brokers; the file's are not needed.
	cfg, err := config.Load(*file, map[string]string{"brokers": "deploy.invalid:9092"})
	if err != nil {
		printConfigError(stderr, "deploy", err)
		return exitFail
	}
	cacheDir, err := deployCache()
	if err != nil {
		fmt.Fprintf(stderr, "streamrt deploy: %v\n", err)
		return exitFail
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	hashes := map[string]string{} // stage → hash
	for _, sc := range cfg.Stages {
		if hash, ok := config.ModuleHash(sc.Module); ok {
			hashes[sc.Name] = hash
			continue
		}
		b, err := streamrt.LoadModule(ctx, sc.Module, cacheDir, log)
		if err != nil {
			fmt.Fprintf(stderr, "streamrt deploy: stage %q: %v\n", sc.Name, err)
			return exitFail
		}
		sum := sha256.Sum256(b)
		hash := hex.EncodeToString(sum[:])
		hashes[sc.Name] = hash
		if code, _ := c.call(ctx, http.MethodHead, "/v1/admin/modules/"+hash, nil, nil); code == http.StatusOK {
			continue
		}
		if _, err := c.call(ctx, http.MethodPut, "/v1/admin/modules/"+hash, bytes.NewReader(b), nil); err != nil {
			fmt.Fprintf(stderr, "streamrt deploy: upload module of stage %q: %v\n", sc.Name, err)
			return exitFail
		}
		fmt.Fprintf(stdout, "uploaded module %s of stage %s (%d bytes)\n", hash[:12], sc.Name, len(b))
	}
	text, err := os.ReadFile(*file)
	if err != nil {
		fmt.Fprintf(stderr, "streamrt deploy: %v\n", err)
		return exitFail
	}
	text, err = addressModules(text, hashes)
	if err != nil {
		fmt.Fprintf(stderr, "streamrt deploy: %s: %v\n", *file, err)
		return exitFail
	}
	body, _ := json.Marshal(map[string]any{"config": string(text), "canary": *canary, "rebuild": *rebuild, "deployed_by": deployer()})
	var answer struct {
		Version    int64 `json:"version"`
		Generation int   `json:"generation"`
	}
	if _, err := c.call(ctx, http.MethodPost, "/v1/admin/apps/"+url.PathEscape(cfg.App)+"/versions", bytes.NewReader(body), &answer); err != nil {
		fmt.Fprintf(stderr, "streamrt deploy: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "deployed %s version %d (generation %d)\n", cfg.App, answer.Version, answer.Generation)
	return exitOK
}

// addressModules rewrites an app's YAML so that each stage's module is the
// content address of its bytes, leaving the rest of the text as it is.
func addressModules(text []byte, hashes map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("not a mapping")
	}
	stages := mapValue(doc.Content[0], "stages")
	if stages == nil || stages.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("no stages")
	}
	for _, st := range stages.Content {
		name, module := mapValue(st, "name"), mapValue(st, "module")
		if name == nil || module == nil {
			continue
		}
		if hash, ok := hashes[name.Value]; ok {
			module.Value, module.Style = config.ModulePrefix+hash, 0
		}
	}
	return yaml.Marshal(&doc)
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// deployCache is where deploy keeps the modules it builds:
// $STREAMRT_CACHE_DIR when set, as for run, else the user's cache.
func deployCache() (string, error) {
	if dir := os.Getenv("STREAMRT_CACHE_DIR"); dir != "" {
		return dir, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "streamrt", "deploy"), nil
}

// deployer names who deploys, for the app's history.
func deployer() string {
	user := os.Getenv("USER")
	host, _ := os.Hostname()
	if user == "" {
		return host
	}
	return user + "@" + host
}

// appsAnswer is GET /v1/admin/apps's answer, and one app's.
type appInfo struct {
	App        string    `json:"app"`
	Tenant     string    `json:"tenant"`
	Version    int64     `json:"version"`
	Generation int       `json:"generation"`
	Serving    int       `json:"serving"`
	Canary     int       `json:"canary"`
	DeployedBy string    `json:"deployed_by"`
	DeployedAt time.Time `json:"deployed_at"`
	Note       string    `json:"note"`
	Instances  []struct {
		Instance string `json:"instance"`
		Version  int64  `json:"version"`
		Prepared int64  `json:"prepared"`
		State    string `json:"state"`
		Failed   int64  `json:"failed"`
		Reason   string `json:"reason"`
		Held     string `json:"held"`
		Rebuild  *struct {
			Generation int     `json:"generation"`
			Replayed   int64   `json:"replayed"`
			Lag        int64   `json:"lag"`
			ETASeconds float64 `json:"eta_seconds"`
			Flipping   bool    `json:"flipping"`
		} `json:"rebuild"`
	} `json:"instances"`
	Versions []struct {
		Version    int64             `json:"version"`
		Generation int               `json:"generation"`
		Modules    map[string]string `json:"modules"`
		DeployedAt time.Time         `json:"deployed_at"`
		Note       string            `json:"note"`
		Deleted    bool              `json:"deleted"`
	} `json:"versions"`
}

func cmdApps(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("apps", "apps [flags] [APP]", `List the apps deployed to a cluster: each one's version in force and what every
instance runs of it (running, swapping, failed with its reason), then the
quotas of the tenants they belong to and what their apps use. With APP, that
app and its kept versions. With a tenant's deploy token, that tenant's apps.`)
	var af adminFlags
	af.define(f)
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return code
	}
	if f.NArg() > 1 {
		return f.usageError(stderr, "unexpected argument %q", f.Arg(1))
	}
	c, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "streamrt apps: %v\n", err)
		return exitFail
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	var apps []appInfo
	if f.NArg() == 1 {
		var one appInfo
		if _, err := c.call(ctx, http.MethodGet, "/v1/admin/apps/"+url.PathEscape(f.Arg(0)), nil, &one); err != nil {
			fmt.Fprintf(stderr, "streamrt apps: %v\n", err)
			return exitFail
		}
		apps = append(apps, one)
	} else {
		var all struct{ Apps []appInfo }
		if _, err := c.call(ctx, http.MethodGet, "/v1/admin/apps", nil, &all); err != nil {
			fmt.Fprintf(stderr, "streamrt apps: %v\n", err)
			return exitFail
		}
		apps = all.Apps
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tVERSION\tGEN\tINSTANCE\tRUNS\tSTATE\tDETAIL")
	for _, a := range apps {
		head := fmt.Sprintf("%s\t%d\t%d", a.App, a.Version, a.Serving)
		if a.Generation > a.Serving {
			head += fmt.Sprintf(" (rebuilding %d)", a.Generation)
		}
		if a.Canary > 0 {
			head += fmt.Sprintf(" (canary on %d partitions)", a.Canary)
		}
		if len(a.Instances) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tno instance runs it yet\n", head)
		}
		for _, in := range a.Instances {
			detail := ""
			if in.Prepared > in.Version {
				detail = fmt.Sprintf("prepared version %d", in.Prepared)
			}
			if rb := in.Rebuild; rb != nil {
				detail = fmt.Sprintf("generation %d: %d records replayed, %d behind", rb.Generation, rb.Replayed, rb.Lag)
				if rb.ETASeconds > 0 {
					detail += fmt.Sprintf(", about %s left", (time.Duration(rb.ETASeconds) * time.Second).String())
				}
				if rb.Flipping {
					detail += ", flipping"
				}
			}
			if in.Failed != 0 {
				detail = fmt.Sprintf("refused version %d: %s", in.Failed, in.Reason)
			}
			if in.Held != "" {
				detail = strings.TrimPrefix(detail+"; ", "; ") + "held: " + in.Held
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", head, in.Instance, in.Version, in.State, detail)
			head = "\t\t"
		}
	}
	tw.Flush()
	// The quotas of the tenants whose apps are listed, and what they use.
	tenants := map[string]bool{}
	for _, a := range apps {
		if a.Tenant != "" {
			tenants[a.Tenant] = true
		}
	}
	if len(tenants) > 0 {
		var all struct{ Tenants []tenantInfo }
		if _, err := c.call(ctx, http.MethodGet, "/v1/admin/tenants", nil, &all); err == nil {
			var shown []tenantInfo
			for _, t := range all.Tenants {
				if tenants[t.Name] {
					shown = append(shown, t)
				}
			}
			fmt.Fprintln(stdout)
			printTenants(stdout, shown)
		}
	}
	if f.NArg() == 1 && len(apps) == 1 && len(apps[0].Versions) > 0 {
		fmt.Fprintln(stdout)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tGEN\tDEPLOYED\tMODULES\tNOTE")
		for _, v := range apps[0].Versions {
			var mods []string
			for stage, h := range v.Modules {
				mods = append(mods, stage+"="+h[:min(12, len(h))])
			}
			sort.Strings(mods)
			note := v.Note
			if v.Deleted {
				note = strings.TrimSpace("deleted " + note)
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\n", v.Version, v.Generation, v.DeployedAt.Format(time.RFC3339), strings.Join(mods, " "), note)
		}
		tw.Flush()
	}
	return exitOK
}

func cmdRollback(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("rollback", "rollback [flags] APP", `Make an earlier version of APP the one in force again, as a new version: by
default the last version that ran something else, or --to VERSION. During a
canary, rollback takes every partition back to the previous version.`)
	var af adminFlags
	af.define(f)
	to := f.Int64("to", 0, "the `VERSION` to go back to")
	return adminAction(ctx, f, &af, args, stdout, stderr, func(app string) (string, string) {
		q := ""
		if *to > 0 {
			q = "?to=" + strconv.FormatInt(*to, 10)
		}
		return http.MethodPost, "/v1/admin/apps/" + url.PathEscape(app) + "/rollback" + q
	})
}

func cmdPromote(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("promote", "promote [flags] APP", `End APP's canary: its version in force runs on every partition.`)
	var af adminFlags
	af.define(f)
	return adminAction(ctx, f, &af, args, stdout, stderr, func(app string) (string, string) {
		return http.MethodPost, "/v1/admin/apps/" + url.PathEscape(app) + "/promote"
	})
}

func cmdDelete(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("delete", "delete [flags] APP", `Delete APP from the cluster: every server stops it. With --purge its consumer
group and internal topics (changelogs, repartition topics) are deleted once
every instance has left the group, and every server removes its local state.`)
	var af adminFlags
	af.define(f)
	purge := f.Bool("purge", false, "also delete its internal topics, group and local state")
	return adminAction(ctx, f, &af, args, stdout, stderr, func(app string) (string, string) {
		q := ""
		if *purge {
			q = "?purge=true"
		}
		return http.MethodDelete, "/v1/admin/apps/" + url.PathEscape(app) + q
	})
}

// adminAction runs a command that calls one admin endpoint for one app and
// prints its answer.
func adminAction(ctx context.Context, f *flags, af *adminFlags, args []string, stdout, stderr io.Writer, endpoint func(app string) (method, path string)) int {
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return code
	}
	if f.NArg() != 1 {
		return f.usageError(stderr, "want APP, got %d arguments", f.NArg())
	}
	c, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", f.Name(), err)
		return exitFail
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	method, path := endpoint(f.Arg(0))
	var answer map[string]any
	if _, err := c.call(ctx, method, path, nil, &answer); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", f.Name(), err)
		return exitFail
	}
	keys := make([]string, 0, len(answer))
	for k := range answer {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(stdout, "%s: %v\n", k, answer[k])
	}
	return exitOK
}
