package apptest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// Page is a page open in headless Chromium, driven over the DevTools
// protocol on a pipe (--remote-debugging-pipe): unlike --dump-dom, which
// dumps once the page has loaded, it lets a test read a page that stays
// open and changes, such as one fed by Server-Sent Events.
type Page struct {
	cmd     *exec.Cmd
	in      io.WriteCloser // to Chromium: fd 3
	out     *bufio.Reader  // from Chromium: fd 4
	session string
	mu      sync.Mutex
	nextID  int
	stderr  bytes.Buffer
}

// OpenPage starts bin (from Chromium) headless on url and returns the page,
// closed when the test ends.
func OpenPage(t testing.TB, bin, url string) *Page {
	t.Helper()
	toChrome, chromeIn, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	chromeOut, fromChrome, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update",
		"--no-first-run", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-pipe", "about:blank")
	p := &Page{cmd: cmd, in: chromeIn, out: bufio.NewReader(chromeOut)}
	cmd.Stderr = &p.stderr
	cmd.ExtraFiles = []*os.File{toChrome, fromChrome} // fds 3 and 4
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start chromium: %v", err)
	}
	toChrome.Close()
	fromChrome.Close()
	t.Cleanup(func() {
		// Best effort, and not waited for: the kill below ends a browser
		// that does not close, and closing its pipe ends the call.
		go p.call("", "Browser.close", nil)
		time.Sleep(100 * time.Millisecond)
		chromeIn.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		cancel()
		chromeOut.Close()
	})
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := p.call("", "Target.createTarget", map[string]any{"url": url}, &target); err != nil {
		t.Fatalf("open %s in chromium: %v\n%s", url, err, p.stderr.String())
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := p.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		t.Fatalf("attach to the page: %v", err)
	}
	p.session = attached.SessionID
	return p
}

// Eval evaluates a JavaScript expression in the page and returns its
// value as a string.
func (p *Page) Eval(t testing.TB, expr string) string {
	t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := p.call(p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res); err != nil {
		t.Fatalf("evaluate %q: %v", expr, err)
	}
	if res.Exception != nil {
		t.Fatalf("evaluate %q: %s", expr, res.Exception.Text)
	}
	if s, ok := res.Result.Value.(string); ok {
		return s
	}
	b, _ := json.Marshal(res.Result.Value)
	return string(b)
}

// DOM returns the page's HTML as it is now.
func (p *Page) DOM(t testing.TB) string {
	t.Helper()
	return p.Eval(t, "document.documentElement.outerHTML")
}

// call sends one DevTools command and waits for its answer, skipping the
// events Chromium sends meanwhile; result, when given, receives the
// answer's result.
func (p *Page) call(session, method string, params map[string]any, result ...any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	id := p.nextID
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := p.in.Write(append(b, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	for {
		line, err := p.out.ReadBytes(0)
		if err != nil {
			return fmt.Errorf("%s: reading chromium's answer: %w", method, err)
		}
		var ans struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line[:len(line)-1], &ans); err != nil {
			return fmt.Errorf("%s: chromium's answer does not parse: %w", method, err)
		}
		if ans.ID != id {
			continue // an event, or the answer to an abandoned call
		}
		if ans.Error != nil {
			return fmt.Errorf("%s: %s", method, ans.Error.Message)
		}
		if len(result) > 0 {
			return json.Unmarshal(ans.Result, result[0])
		}
		return nil
	}
}
