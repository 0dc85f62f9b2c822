package kafkamusic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromium returns the path of Debian's chromium. Without it the test is
// skipped, except in CI (CI=true), where .ci/run installs it and its
// absence is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err == nil {
		return bin
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("chromium is not installed, and CI=true: the browser test needs it (.ci/run installs it with apt-get install chromium): %v", err)
	}
	t.Skipf("chromium is not installed (apt-get install chromium); skipping the browser test: %v", err)
	return ""
}

// dumpDOM loads url in headless Chromium and returns the DOM once the
// page's scripts have run. The virtual time budget does not advance while
// fetches are pending, so the page's first refresh completes; it ends
// before the page's next refresh.
func dumpDOM(t *testing.T, bin, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update",
		"--no-first-run", "--disable-sync",
		"--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=3000",
		"--dump-dom", url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, stderr.String())
	}
	return stdout.String()
}

var (
	tableStart = regexp.MustCompile(`<table class="chart" data-chart="([^"]*)">`)
	tableRow   = regexp.MustCompile(`<tr><td class="rank">(\d+)</td><td class="name">(.*?)</td><td class="artist">(.*?)</td><td class="album">(.*?)</td><td class="plays">(\d+)</td></tr>`)
)

// renderedChart returns the rows of the named chart in the DOM, one
// "rank name / artist / album: plays" a line, or "(no table)".
func renderedChart(dom, name string) string {
	for _, m := range tableStart.FindAllStringSubmatchIndex(dom, -1) {
		if html.UnescapeString(dom[m[2]:m[3]]) != name {
			continue
		}
		table, _, _ := strings.Cut(dom[m[1]:], "</table>")
		var rows []string
		for _, r := range tableRow.FindAllStringSubmatch(table, -1) {
			u := func(i int) string { return html.UnescapeString(r[i]) }
			rows = append(rows, fmt.Sprintf("%s %s / %s / %s: %s", u(1), u(2), u(3), u(4), u(5)))
		}
		return strings.Join(rows, "\n")
	}
	return "(no table)"
}

// pageRows is renderedChart's form of a chart route's answer.
func pageRows(t *testing.T, chart string) string {
	t.Helper()
	var songs []struct {
		Artist, Album, Name string
		Plays               int
	}
	if err := json.Unmarshal([]byte(chart), &songs); err != nil {
		t.Fatal(err)
	}
	var rows []string
	for i, s := range songs {
		rows = append(rows, fmt.Sprintf("%d %s / %s / %s: %d", i+1, s.Name, s.Artist, s.Album, s.Plays))
	}
	return strings.Join(rows, "\n")
}
