package main

import (
	"testing"

	"github.com/streamrt/streamrt/sdk/go/streamrttest"
)

func TestViewsBecomePageNamesKeyedByPage(t *testing.T) {
	h := streamrttest.New(t, streamrttest.Config{
		Stage:   "normalize",
		Outputs: []string{"pages"},
	})
	views := []struct{ viewer, path, page string }{
		{"ann", " /Docs/Intro/?utm=mail#top", "/docs/intro"},
		{"bob", "/docs/intro", "/docs/intro"},
		{"cy", "/", "/"},
		{"dee", "/?q=1", "/"},
		{"eve", "//", "/"},
	}
	for i, v := range views {
		h.Feed("page-views", []byte(v.viewer), []byte(v.path), int64(i))
	}
	h.Feed("page-views", []byte("mal"), []byte("docs/intro"), 99)

	got := h.Output("pages")
	if len(got) != len(views) {
		t.Fatalf("%d pages, want %d", len(got), len(views))
	}
	for i, v := range views {
		if string(got[i].Key) != v.page || string(got[i].Value) != v.viewer {
			t.Errorf("view %q: %s=%s, want %s=%s", v.path, got[i].Key, got[i].Value, v.page, v.viewer)
		}
	}
	dead := h.DeadLetters()
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	if msg, _ := dead[0].Header("streamrt.error"); string(msg) != `not a path: "docs/intro"` || dead[0].Timestamp != 99 {
		t.Errorf("dead letter: error %q at %d", msg, dead[0].Timestamp)
	}
}
