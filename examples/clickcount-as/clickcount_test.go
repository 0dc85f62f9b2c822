// The clickcount app with its stage in AssemblyScript (stage/), run
// in-process from streamrt.yaml as written: clicks in, counts out and
// queryable, a click without a page dead-lettered. It runs against the
// embedded kfake broker, or the cluster STREAMRT_TEST_BROKERS names.
package clickcountas_test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
)

func TestClickCountAS(t *testing.T) {
	// Builds the project into the shared cache the runtime reads below (and
	// skips the test on a machine without node and npm, unless CI=true).
	apptest.BuildModule(t, "stage")
	brokers := testkafka.Brokers(t)
	yaml, err := os.ReadFile("streamrt.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// On a shared real cluster, the other clickcount examples' tests may be
	// counting the same topics at the same time: use topics of this run.
	clicks, pageCounts := "clicks", "page-counts"
	if testkafka.Real() {
		clicks, pageCounts = testkafka.Name(t, "clicks"), testkafka.Name(t, "page-counts")
		for old, new := range map[string]string{"inputs: [clicks]": "inputs: [" + clicks + "]", "{counts: page-counts}": "{counts: " + pageCounts + "}"} {
			if !bytes.Contains(yaml, []byte(old)) {
				t.Fatalf("streamrt.yaml has no %q to rename", old)
			}
			yaml = bytes.Replace(yaml, []byte(old), []byte(new), 1)
		}
	}
	app := apptest.StartYAML(t, yaml, "streamrt.yaml", apptest.Options{Brokers: brokers})

	// On a shared real cluster the dead-letter topic outlives the test:
	// count pages of this run only.
	page := fmt.Sprintf("home-%d", time.Now().UnixNano())
	testkafka.Produce(t, brokers, clicks, page, "x", page, "x")
	app.WaitValue(t, time.Minute, "click-counts", page, "2")

	// A click without a page is dead-lettered with the error; the count of
	// the page goes on.
	lost := "no page here " + page
	testkafka.ProduceRecords(t, brokers,
		&kgo.Record{Topic: clicks, Key: nil, Value: []byte(lost)},
		&kgo.Record{Topic: clicks, Key: []byte(page), Value: []byte("x")})
	app.WaitValue(t, time.Minute, "click-counts", page, "3")
	dead := testkafka.ReadUntil(t, brokers, "clickcount-as-count-dlq", time.Minute, func(r *kgo.Record) bool { return string(r.Value) == lost })
	if dead == nil {
		t.Fatal("clickcount-as-count-dlq: the click without a page did not arrive within a minute")
	}
	if got := testkafka.Header(dead, "streamrt.error"); got != "click without a page (null key)" {
		t.Errorf("dead letter error %q", got)
	}
	if got := testkafka.Header(dead, "streamrt.error.kind"); got != "record" {
		t.Errorf("dead letter kind %q, want record", got)
	}
	if got := testkafka.Header(dead, "streamrt.stage"); got != "count" {
		t.Errorf("dead letter stage %q", got)
	}

	// Each count went out to page-counts, in order.
	if counts := testkafka.ReadKey(t, brokers, pageCounts, page, 3, time.Minute); strings.Join(counts, ",") != "1,2,3" {
		t.Errorf("page-counts for %s: %v, want 1,2,3", page, counts)
	}
	if got := app.Store("click-counts", "no-such-page"); got.Code != 404 {
		t.Errorf("query of a missing page: %+v, want 404", got)
	}
}
