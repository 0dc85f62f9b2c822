package runtime_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/assign"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/probe"
	"github.com/streamrt/streamrt/runtime/internal/serve"
	"github.com/streamrt/streamrt/runtime/internal/state"
)

func dashboardDOM(t *testing.T, bin, url string) string {
	t.Helper()
	return apptest.RunChromium(t, bin, url, "--virtual-time-budget=2500", "--dump-dom")
}

var (
	taskRow   = regexp.MustCompile(`<tr data-task="([^"]+)">(.*?)</tr>`)
	taskField = regexp.MustCompile(`data-field="(lag|rate|processed)">([^<]*)<`)
)

// renderedTasks returns the figures of each task row of the DOM: "lag",
// "rate" and "processed" by task.
func renderedTasks(t *testing.T, dom string) map[string]map[string]float64 {
	t.Helper()
	out := map[string]map[string]float64{}
	for _, m := range taskRow.FindAllStringSubmatch(dom, -1) {
		figs := map[string]float64{}
		for _, f := range taskField.FindAllStringSubmatch(m[2], -1) {
			n, err := strconv.ParseFloat(strings.ReplaceAll(f[2], ",", ""), 64)
			if err != nil {
				t.Fatalf("task %s: %s %q is not a number", m[1], f[1], f[2])
			}
			figs[f[1]] = n
		}
		out[m[1]] = figs
	}
	return out
}

func sumFigure(tasks map[string]map[string]float64, field string) (n float64) {
	for _, figs := range tasks {
		n += figs[field]
	}
	return n
}

// The dashboard at /ui draws the app from /v1/status in a real browser:
// the topology graph, the instance and its tasks with their lag and rate,
// the module version, the dead letter with its error header and the
// routes; it follows the app live; it paints a real page; and without
// JavaScript it says it needs it.
func TestDashboardRendersTheAppInABrowser(t *testing.T) {
	bin := apptest.Chromium(t)
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	a := startApp(t, appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("faulty"), stores: []string{"seen"},
		policy: "dead_letter", extra: "query:\n  routes:\n    - {path: /members, builtin: instances}\n"})
	a.waitReady()

	var kvs []string
	for i := range 20 {
		kvs = append(kvs, fmt.Sprintf("k%d", i), "ok")
	}
	produce(t, brokers, in, append(kvs, "bad-key", "fail")...)
	var st statusDoc
	apptest.WaitCheck(t, 30*time.Second, "/v1/status to show the 21 records and the dead letter", func() error {
		if st = a.status(t, "?local=true"); len(st.DeadLetters) != 1 || processed(st.Tasks) != 21 {
			return fmt.Errorf("%d dead letters, %d records processed", len(st.DeadLetters), processed(st.Tasks))
		}
		return nil
	})
	url := "http://" + a.http + "/ui"

	t.Run("content", func(t *testing.T) {
		dom := dashboardDOM(t, bin, url)
		want := []string{
			`data-node="input:` + in + `"`,
			`data-node="stage:main"`,
			`data-node="store:seen"`,
			`data-node="output:` + out + `"`,
			`data-node="dlq:` + st.DeadLetters[0].Topic + `"`,
			`data-edge="input:` + in + `-&gt;stage:main"`,
			`data-instance="` + a.http + `"`,
			`data-field="module-version" title="` + st.Topology.Stages[0].ModuleVersion + `">` + st.Topology.Stages[0].ModuleVersionShort + `<`,
			`<dd data-header="streamrt.error">bad record</dd>`,
			`<dd data-header="streamrt.error.kind">record</dd>`,
			`data-route="GET /members"`,
			`data-store="seen"`,
			`data-ready="true"`,
		}
		for _, w := range want {
			if !strings.Contains(dom, w) {
				t.Errorf("the dashboard has no %s", w)
			}
		}
		tasks := renderedTasks(t, dom)
		if len(tasks) != 4 {
			t.Errorf("the dashboard shows tasks %v, want main/0 to main/3", tasks)
		}
		for task, figs := range tasks {
			if _, ok := figs["lag"]; !ok {
				t.Errorf("task %s shows no lag: %v", task, figs)
			}
		}
		if n := sumFigure(tasks, "processed"); n != 21 {
			t.Errorf("the dashboard shows %v records processed, want 21", n)
		}
		if t.Failed() {
			t.Logf("DOM:\n%s", dom)
		}
	})

	t.Run("live", func(t *testing.T) {
		before := renderedTasks(t, dashboardDOM(t, bin, url))
		kvs = kvs[:0]
		for i := range 30 {
			kvs = append(kvs, fmt.Sprintf("more%d", i), "ok")
		}
		produce(t, brokers, in, kvs...)
		apptest.WaitCheck(t, 30*time.Second, "/v1/status to show the 51 records", func() error {
			if n := processed(a.status(t, "?local=true").Tasks); n != 51 {
				return fmt.Errorf("%d records processed", n)
			}
			return nil
		})
		dom := dashboardDOM(t, bin, url)
		after := renderedTasks(t, dom)
		if b, a := sumFigure(before, "processed"), sumFigure(after, "processed"); b != 21 || a != 51 {
			t.Errorf("the dashboard showed %v then %v records processed, want 21 then 51", b, a)
		}
		if r := sumFigure(after, "rate"); r <= 0 {
			t.Errorf("the dashboard shows %v records/s just after 30 records, want more than 0", r)
		}
		if t.Failed() {
			t.Logf("DOM:\n%s", dom)
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		img := screenshot(t, bin, url)
		if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 1000 {
			t.Errorf("the screenshot is %dx%d, want 1280x1000", b.Dx(), b.Dy())
		}
		px := pixels(img)
		if len(px) < 32 {
			t.Errorf("the screenshot has %d colours, want a page (more than 32)", len(px))
		}
		if n := px[stageBlue]; n < 1000 {
			t.Errorf("the screenshot has %d pixels of the stage node's colour, want the topology drawn (1000 or more)", n)
		}
	})

	t.Run("no JavaScript", func(t *testing.T) {
		dom := domWithoutScript(t, bin, url)
		if !strings.Contains(dom, `<p id="noscript" class="notice error">The streamrt dashboard needs JavaScript`) {
			t.Errorf("without JavaScript the page does not say it needs it:\n%s", dom)
		}
		if strings.Contains(dom, "data-node=") {
			t.Errorf("without JavaScript the page drew a graph:\n%s", dom)
		}
	})

	t.Run("unknown store", func(t *testing.T) {
		dom := dashboardDOM(t, bin, url+"?store=nosuch")
		if !strings.Contains(dom, `Unknown store “nosuch” in the page's URL: this app's stores are seen.`) {
			t.Errorf("the page does not say the store is unknown:\n%s", dom)
		}
	})
}

// stageBlue is a stage node's fill in the dashboard's style sheet.
const stageBlue = 0x2f6fdb

// screenshot renders url at 1280x1000 and decodes the PNG, which it keeps
// in a temporary directory of the test.
func screenshot(t *testing.T, bin, url string, flags ...string) image.Image {
	t.Helper()
	file := filepath.Join(t.TempDir(), "dashboard.png")
	apptest.RunChromium(t, bin, url, append(flags, "--virtual-time-budget=2500", "--window-size=1280,1000", "--screenshot="+file)...)
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot %s is not a PNG: %v", file, err)
	}
	t.Logf("screenshot: %s", file)
	return img
}

// pixels counts the pixels of each colour of img, by 0xRRGGBB.
func pixels(img image.Image) map[uint32]int {
	out := map[uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			out[(r>>8)<<16|(g>>8)<<8|bl>>8]++
		}
	}
	return out
}

// The dashboard's files are served under /ui, /ui/app.js and /ui/app.css,
// with /ui/ sent to /ui (its URLs are relative, for a server's prefix), and
// without a token: they hold no data. /v1/status asks for one like the
// query API, and the page passes the one given in its URL's fragment.
func TestDashboardFilesAndTokens(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	a := startApp(t, appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("faulty"), extra: "query:\n  tokens: [s3cret]\n"})
	a.waitReady()
	for _, c := range []struct {
		path, ctype, body string
	}{
		{"/ui", "text/html", `<script src="ui/app.js" defer></script>`},
		{"/ui/", "text/html", `<script src="ui/app.js" defer></script>`},
		{"/ui/app.js", "text/javascript", `fetch("v1/status"`},
		{"/ui/app.css", "text/css", `.node.stage rect`},
	} {
		resp, err := http.Get("http://" + a.http + c.path)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), c.ctype) || !strings.Contains(body.String(), c.body) {
			t.Errorf("GET %s: %d %s, want 200 %s with %q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), c.ctype, c.body)
		}
	}
	if code, _ := a.get("/ui/nosuch.js"); code != http.StatusNotFound {
		t.Errorf("GET /ui/nosuch.js answered %d, want 404", code)
	}
	if code, body := a.get("/v1/status"); code != http.StatusUnauthorized {
		t.Errorf("/v1/status without a token: %d %s, want 401", code, body)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.http+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/v1/status with the token: %d, want 200", resp.StatusCode)
	}

	bin := apptest.Chromium(t)
	if dom := dashboardDOM(t, bin, "http://"+a.http+"/ui"); !strings.Contains(dom, `<form id="token-form" class="notice">`) || strings.Contains(dom, "data-node=") {
		t.Errorf("without a token the page does not ask for one:\n%s", dom)
	}
	if dom := dashboardDOM(t, bin, "http://"+a.http+"/ui#token=s3cret"); !strings.Contains(dom, `data-node="stage:main"`) {
		t.Errorf("with the token in its URL the page shows no graph:\n%s", dom)
	}
}

// Under a server, the status and the dashboard of an app are under
// /apps/NAME/, and the page reads the status there; an app the server does
// not run gets its 404.
func TestStatusAndDashboardUnderAServer(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, 4)
	s := startServer(t, brokers, serverTopics(t), "a")
	ver := s.deploy(t, deployedApp(appName, in, out, false, "seen"), map[string][]byte{"main": guesttest.Build(t, "tagv1")})
	waitVersion(t, appName, ver, s)

	var st statusDoc
	apptest.WaitCheck(t, 30*time.Second, "the app's status to show its 4 tasks", func() error {
		code, body := s.get("/apps/" + appName + "/v1/status")
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			return err
		}
		if len(st.Tasks) != 4 || len(st.Instances) != 1 || !st.Instances[0].Answered {
			return fmt.Errorf("%s", body)
		}
		return nil
	})
	if st.App != appName || len(st.Topology.Stages) != 1 || st.Topology.Stages[0].Name != "main" || len(st.Topology.Stages[0].ModuleVersion) != 64 {
		t.Errorf("status of %q with stages %+v, want %q with main and its module version", st.App, st.Topology.Stages, appName)
	}
	if code, body := s.get("/apps/nosuch/v1/status"); code != http.StatusNotFound {
		t.Errorf("/apps/nosuch/v1/status: %d %s, want 404", code, body)
	}
	if code, body := s.get("/apps/" + appName + "/ui"); code != http.StatusOK || !strings.Contains(body, `id="noscript"`) {
		t.Errorf("/apps/%s/ui: %d %s, want the page", appName, code, body)
	}

	bin := apptest.Chromium(t)
	dom := dashboardDOM(t, bin, "http://"+s.addr+"/apps/"+appName+"/ui")
	for _, w := range []string{`data-node="stage:main"`, `data-node="store:seen"`, `data-node="input:` + in + `"`, `<tr data-task="main/3">`} {
		if !strings.Contains(dom, w) {
			t.Errorf("the dashboard under /apps/%s/ has no %s:\n%s", appName, w, dom)
		}
	}
}

// domWithoutScript loads url in headless Chromium with JavaScript off and
// returns its DOM. --dump-dom runs a script to read the DOM, which the
// setting forbids, so this asks over the DevTools protocol instead
// (--remote-debugging-pipe: commands on fd 3, answers and events on fd 4,
// each message JSON ended by a NUL).
func domWithoutScript(t *testing.T, bin, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	toChrome, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmdR, fromChrome, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update",
		"--no-first-run", "--disable-sync", "--user-data-dir="+t.TempDir(),
		"--blink-settings=scriptEnabled=false", "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{toChrome, fromChrome}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	toChrome.Close()
	fromChrome.Close()
	defer func() {
		cmdW.Close()
		cmd.Process.Kill()
		cmd.Wait()
		cmdR.Close()
	}()
	in := bufio.NewReader(cmdR)
	id := 0
	// call sends a command and returns its result, dropping the events
	// before it; wait, when set, is an event to see first.
	call := func(session, method string, params any, wait string) map[string]any {
		t.Helper()
		id++
		msg := map[string]any{"id": id, "method": method, "params": params}
		if session != "" {
			msg["sessionId"] = session
		}
		b, _ := json.Marshal(msg)
		if _, err := cmdW.Write(append(b, 0)); err != nil {
			t.Fatalf("DevTools %s: %v\n%s", method, err, stderr.String())
		}
		var result map[string]any
		for result == nil || wait != "" {
			line, err := in.ReadBytes(0)
			if err != nil {
				t.Fatalf("DevTools %s: %v\n%s", method, err, stderr.String())
			}
			var m struct {
				ID     int             `json:"id"`
				Method string          `json:"method"`
				Result map[string]any  `json:"result"`
				Error  json.RawMessage `json:"error"`
			}
			if err := json.Unmarshal(line[:len(line)-1], &m); err != nil {
				t.Fatalf("DevTools %s: %v", method, err)
			}
			switch {
			case m.ID == id && m.Error != nil:
				t.Fatalf("DevTools %s: %s", method, m.Error)
			case m.ID == id:
				result = m.Result
			case m.Method != "" && m.Method == wait:
				wait = ""
			}
		}
		return result
	}
	target := call("", "Target.createTarget", map[string]any{"url": "about:blank"}, "")["targetId"]
	session, _ := call("", "Target.attachToTarget", map[string]any{"targetId": target, "flatten": true}, "")["sessionId"].(string)
	call(session, "Page.enable", map[string]any{}, "")
	call(session, "Page.navigate", map[string]any{"url": url}, "Page.loadEventFired")
	doc := call(session, "DOM.getDocument", map[string]any{"depth": -1}, "")
	root := doc["root"].(map[string]any)["nodeId"]
	html, _ := call(session, "DOM.getOuterHTML", map[string]any{"nodeId": root}, "")["outerHTML"].(string)
	return html
}

// uiEngine is an instance with tasks in every state, for the dashboard to
// draw without a running app.
type uiEngine struct {
	a     assign.Assignment
	tasks []probe.Task
}

func (e *uiEngine) Owns(string, int32) bool { return true }
func (e *uiEngine) Readiness() probe.Readiness {
	return probe.Readiness{Reasons: []string{"1 task(s) restoring their stores"}}
}
func (e *uiEngine) Assignment() assign.Assignment   { return e.a }
func (e *uiEngine) Tasks() []probe.Task             { return e.tasks }
func (e *uiEngine) DeadLetters() []probe.DeadLetter { return nil }
func (e *uiEngine) Modules() map[string]probe.Module {
	return map[string]probe.Module{"count": {Version: strings.Repeat("c0", 32)}}
}
func (e *uiEngine) InstanceID() string { return "" }

// The dashboard draws a restoring task with its progress and ETA, a
// stopped one with why, a task catching up its tables, standby copies, an
// instance that does not answer, a table and a repartition topic in the
// graph, and highlights the store its URL names.
func TestDashboardShowsRestoresStopsAndSilentInstances(t *testing.T) {
	bin := apptest.Chromium(t)
	cfg := &config.Config{App: "shop", Partitions: 4,
		Tables: []config.Table{{Name: "prices", Topic: "prices"}},
		Stages: []config.Stage{
			{Name: "route", Module: "route.wasm", Inputs: []string{"orders"}, Outputs: map[string]string{"byuser": "shop-byuser"},
				Repartition: map[string]string{"byuser": "count"}, ErrorPolicy: config.PolicySkip},
			{Name: "count", Module: "count.wasm", Inputs: []string{"shop-byuser"}, Stores: []string{"totals"}, Tables: []string{"prices"},
				Outputs: map[string]string{"out": "totals"}, ErrorPolicy: config.PolicyFail},
		}}
	topo, err := cfg.Topology()
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	eng := &uiEngine{tasks: []probe.Task{
		{Stage: "count", Partition: 0, Topics: []string{"shop-byuser", "prices"}, State: probe.TaskRestoring, RestorePercent: 42.5, RestoreETASeconds: 75},
		{Stage: "count", Partition: 1, Topics: []string{"shop-byuser", "prices"}, State: probe.TaskStopped, Reason: `stage "count" stopped at shop-byuser/1 offset 9: bad record`, Lag: 12},
		{Stage: "count", Partition: 2, Topics: []string{"shop-byuser", "prices"}, State: probe.TaskCatchingUp},
		{Stage: "count", Partition: 3, Topics: []string{"shop-byuser", "prices"}, State: probe.TaskStandby},
	}}
	hs := httptest.NewUnstartedServer(nil)
	hs.Config.Handler = serve.New(serve.Options{DB: db, Engine: eng, Metrics: metrics.New(), Topology: topo, Advertise: hs.Listener.Addr().String(),
		Query:  config.Query{MaxKeyBytes: 64, MaxRangeLimit: 10, ForwardTimeout: time.Second},
		Stores: []serve.Store{{Name: "totals", Partitions: 4, Topic: "shop-byuser"}, {Name: "prices", Partitions: 4, Topic: "prices"}}})
	silent := freeAddr(t) // nothing listens there
	if eng.a, err = assign.Static(1, "a", []assign.Member{
		{ID: "a", Addr: hs.Listener.Addr().String(), Partitions: map[string][]int32{"shop-byuser": {0, 1, 2}, "prices": {0, 1, 2}},
			Standbys: map[string][]int32{"shop-byuser": {3}}},
		{ID: "b", Addr: silent, Partitions: map[string][]int32{"orders": {0, 1, 2, 3}, "shop-byuser": {3}, "prices": {3}},
			Standbys: map[string][]int32{"shop-byuser": {0}}},
	}); err != nil {
		t.Fatal(err)
	}
	// Started once the engine is complete: the server reads it from then on.
	hs.Start()
	defer hs.Close()

	dom := dashboardDOM(t, bin, hs.URL+"/ui?store=totals")
	rows := map[string]string{}
	for _, m := range taskRow.FindAllStringSubmatch(dom, -1) {
		rows[m[1]] = m[2]
	}
	for _, c := range []struct{ where, want string }{
		{rows["count/0"], `<td class="state restoring" data-field="state">restoring <progress max="100" value="42.5" data-field="restore"></progress> 42.5% · <span data-field="eta">ETA 1m15s</span></td>`},
		{rows["count/1"], `<td class="state stopped" data-field="state">stopped<div class="reason small">stage "count" stopped at shop-byuser/1 offset 9: bad record</div></td>`},
		{rows["count/1"], `<td class="num" data-field="lag">12</td>`},
		{rows["count/2"], `<td class="state catching_up" data-field="state">catching up</td>`},
		{dom, `<div class="instance" data-instance="` + silent + `"><h3><code>` + silent + `</code><span class="badge bad" data-field="error">no answer</span></h3><p class="error small">instance ` + silent},
		{dom, `<p class="small standbys" data-field="standbys">Standby copies: count/0</p>`},
		{dom, `Assigned: count/3, route/0, route/1, route/2, route/3`},
		{rows["count/3"], `<td class="state standby" data-field="state">standby copy</td><td class="num">—</td>`},
		{dom, `data-node="table:prices"`},
		{dom, `data-node="internal:shop-byuser"`},
		{dom, `data-edge="internal:shop-byuser-&gt;stage:count"`},
		{dom, `data-edge="table:prices-&gt;stage:count"`},
		{dom, `data-node="output:totals"`},
		{dom, `Not ready: 1 task(s) restoring their stores`},
		{dom, `<g class="node store focus" data-node="store:totals"`},
		{dom, `<tr data-store="totals" class="focus">`},
	} {
		if !strings.Contains(c.where, c.want) {
			t.Errorf("the dashboard has no %s", c.want)
		}
	}
	if strings.Contains(dom, "Unknown store") {
		t.Errorf("the dashboard calls the store totals unknown")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}
