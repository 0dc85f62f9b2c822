package kafkamusic_test

import (
	"encoding/json"
	"fmt"
	"html"
	"regexp"
	"strings"
	"testing"
)

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
