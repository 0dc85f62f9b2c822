// Command normalize is the Go stage of the mixed-pipeline example: it turns
// raw page views into page names that count the same page once.
//
// Input: topic page-views, any key (the viewer), value the path viewed as
// the client sent it (" /Docs/Intro/?utm=mail#top"). Output: pages (topic
// pages), keyed by the normalised path ("/docs/intro"), the viewer as value,
// so that the Rust stage downstream, which reads that topic, sees every view
// of a page in one partition. A view whose value is not a path fails, which
// hands it to the stage's error policy.
package main

import (
	"fmt"
	"strings"

	streamrt "github.com/streamrt/streamrt/sdk/go"
)

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		page, err := normalize(string(r.Value))
		if err != nil {
			return err
		}
		return streamrt.Emit("pages", []byte(page), r.Key)
	})
}

// normalize lower-cases a path and drops its surrounding spaces, query,
// fragment and trailing slash.
func normalize(raw string) (string, error) {
	p := strings.TrimSpace(raw)
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("not a path: %q", raw)
	}
	p = strings.ToLower(p)
	if len(p) > 1 {
		p = strings.TrimRight(p, "/")
	}
	if p == "" {
		p = "/"
	}
	return p, nil
}

func main() {}
