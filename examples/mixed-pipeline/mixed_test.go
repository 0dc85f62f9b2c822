// The mixed-pipeline app run in-process from streamrt.yaml as written: a
// Go stage normalises page views into a topic that a Rust stage counts, and
// an AssemblyScript stage announces the pages the counts make popular. It
// runs against the embedded kfake broker, or the cluster
// STREAMRT_TEST_BROKERS names.
package mixedpipeline_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
)

func TestMixedPipeline(t *testing.T) {
	// Build the stages into the shared cache the runtime reads (the Rust
	// one skips the test on a machine without cargo, the AssemblyScript one
	// on a machine without node and npm, unless CI=true).
	apptest.BuildModule(t, "count")
	apptest.BuildModule(t, "normalize")
	apptest.BuildModule(t, "popular")
	brokers := testkafka.Brokers(t)
	app := apptest.Start(t, "streamrt.yaml", apptest.Options{Brokers: brokers})

	// On a shared real cluster the topics outlive the test: view pages of
	// this run only.
	run := fmt.Sprintf("/run-%d", time.Now().UnixNano())
	testkafka.Produce(t, brokers, "page-views",
		"ann", " "+run+"/Docs/Intro/?utm=mail",
		"bob", run+"/docs/intro",
		"ann", run+"/docs/intro#top",
		"cid", run+"/Blog/",
		"dee", "not a path "+run,
		"eve", run+"/blog",
	)
	intro, blog := run+"/docs/intro", run+"/blog"
	app.WaitValue(t, time.Minute, "page-views", intro, "3")
	app.WaitValue(t, time.Minute, "page-views", blog, "2")

	// The Go stage wrote normalised pages, keyed for the Rust stage.
	viewers := testkafka.ReadKey(t, brokers, "pages", intro, 3, time.Minute)
	// (Views of one page by several viewers come from several partitions
	// of page-views, so in no particular order.)
	slices.Sort(viewers)
	if strings.Join(viewers, ",") != "ann,ann,bob" {
		t.Errorf("pages for %s: viewers %v", intro, viewers)
	}
	// The Rust stage wrote each count in order.
	if counts := testkafka.ReadKey(t, brokers, "page-view-counts", intro, 3, time.Minute); strings.Join(counts, ",") != "1,2,3" {
		t.Errorf("page-view-counts for %s: %v, want 1,2,3", intro, counts)
	}
	// The AssemblyScript stage announced each page once, when its count
	// reached 2, and remembers the count it announced.
	app.WaitValue(t, time.Minute, "popular", intro, "2")
	app.WaitValue(t, time.Minute, "popular", blog, "2")
	if got := testkafka.ReadKey(t, brokers, "popular-pages", intro, 1, time.Minute); strings.Join(got, ",") != "2" {
		t.Errorf("popular-pages for %s: %v, want 2", intro, got)
	}
	if got := app.Store("popular", run+"/never-viewed"); got.Code != 404 {
		t.Errorf("popular for a page without views: %+v, want 404", got)
	}

	// The view that was not a path failed in the Go stage only.
	dead := testkafka.ReadUntil(t, brokers, "mixed-pipeline-normalize-dlq", time.Minute, func(r *kgo.Record) bool { return strings.HasSuffix(string(r.Value), run) })
	if dead == nil {
		t.Fatal("mixed-pipeline-normalize-dlq: the view that was not a path did not arrive within a minute")
	}
	if got, want := testkafka.Header(dead, "streamrt.error"), fmt.Sprintf("not a path: %q", "not a path "+run); got != want {
		t.Errorf("dead letter error %q, want %q", got, want)
	}
}
