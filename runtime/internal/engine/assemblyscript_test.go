package engine

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/logtest"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// The AssemblyScript conformance guest (sdk/assemblyscript/conformance)
// joins the Go and Rust ones in TestConformance: the same transcript,
// through the same task.
func init() {
	conformanceGuests = append(conformanceGuests, conformanceGuest{
		"assemblyscript", func(t *testing.T) []byte { return guesttest.BuildAS(t, guesttest.ASDir("conformance")) },
	})
}

// An AssemblyScript handler that throws traps, after the SDK's abort hook
// reported the message against the record: the host gives that record the
// stage's error policy with the message, and the other records of the
// batch their normal effects.
func TestASThrowFollowsErrorPolicy(t *testing.T) {
	bin := guesttest.BuildAS(t, guesttest.ASDir("conformance"))
	stage := transcriptStage{inputs: []string{"in"}, stores: []string{"seen"}, outputs: map[string]string{"out": "out-topic"}, dlq: "dlq"}
	input := func() []*kgo.Record {
		var recs []*kgo.Record
		for i, v := range []string{"put seen a 1; emit out a 1", "put seen b 1; emit out b 1; panic boom at %22b%22", "put seen c 1; emit out c 1"} {
			recs = append(recs, &kgo.Record{Topic: "in", Offset: int64(i), Key: []byte{'a' + byte(i)}, Value: []byte(v), Timestamp: time.UnixMilli(1_700_000_000_000)})
		}
		return recs
	}
	const want = `panic: boom at "b"`
	for _, policy := range []config.ErrorPolicy{config.PolicyDeadLetter, config.PolicySkip, config.PolicyFail} {
		t.Run(string(policy), func(t *testing.T) {
			tk, logs := newConformanceTask(t, "assemblyscript", bin, stage, policy)
			err := tk.process(input())
			if policy == config.PolicyFail {
				var te *TaskError
				if !errors.As(err, &te) || te.Offset != 1 || !strings.Contains(te.Reason, want) {
					t.Fatalf("got %v, want the task stopped at offset 1 with %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var out, dead []*kgo.Record
			for _, r := range tk.cycle.outputs {
				if r.Topic == "dlq" {
					dead = append(dead, r)
				} else {
					out = append(out, r)
				}
			}
			if keys(out) != "a,c" {
				t.Errorf("emitted %s, want a,c", keys(out))
			}
			for k, want := range map[string]bool{"a": true, "b": false, "c": true} {
				if _, ok := get(t, tk, "seen", k); ok != want {
					t.Errorf("store key %s present %v, want %v", k, ok, want)
				}
			}
			if policy == config.PolicySkip {
				if len(dead) != 0 {
					t.Errorf("%d dead letters under the skip policy", len(dead))
				}
				if !logs.Has(func(r logtest.Record) bool {
					return r.Message == "record failed; skipped" && r.Attrs["offset"] == "1" && r.Attrs["kind"] == "trap" && strings.Contains(r.Attrs["error"], want)
				}) {
					t.Errorf("no skip of offset 1 with kind trap and %q logged", want)
				}
				return
			}
			if len(dead) != 1 || string(dead[0].Key) != "b" {
				t.Fatalf("dead letters %s, want b", keys(dead))
			}
			if got := header(dead[0], "streamrt.error"); !strings.Contains(got, want) {
				t.Errorf("dead letter error %q lacks %q", got, want)
			}
			if got := header(dead[0], "streamrt.error.kind"); got != "trap" {
				t.Errorf("dead letter kind %q, want trap", got)
			}
			if !logs.Has(func(r logtest.Record) bool {
				return r.Attrs["guest"] == "true" && strings.Contains(r.Message, "streamrt: record 0: "+want)
			}) {
				t.Errorf("the throw was not logged")
			}
		})
	}
}

// An AssemblyScript batch handler (sdk/assemblyscript/testdata/batch) on
// the real host: Batch.fail fails one record, undoing its effects; a
// returned error fails the batch, whose records the host then runs one per
// call; effects after Batch.release belong to the batch as a whole.
func TestASBatchHandler(t *testing.T) {
	bin := guesttest.BuildAS(t, guesttest.ASDir("testdata/batch"))
	stage := transcriptStage{inputs: []string{"in"}, stores: []string{"seen"}, outputs: map[string]string{"out": "out-topic"}, dlq: "dlq"}
	for _, tc := range []struct {
		words, emitted, dead, reason, kind string
	}{
		{"x,fail,y", "a=x,c=y,batch=3", "b", "record 1 failed", "record"},
		{"x,boom,y", "a=x,batch=1,c=y,batch=1", "b", "boom at record 0", "batch"},
	} {
		t.Run(tc.words, func(t *testing.T) {
			tk, _ := newConformanceTask(t, "assemblyscript-batch", bin, stage, config.PolicyDeadLetter)
			var in []*kgo.Record
			for i, w := range strings.Split(tc.words, ",") {
				in = append(in, &kgo.Record{Topic: "in", Offset: int64(i), Key: []byte{'a' + byte(i)}, Value: []byte(w), Timestamp: time.UnixMilli(1_700_000_000_000)})
			}
			if err := tk.process(in); err != nil {
				t.Fatal(err)
			}
			var out, dead []string
			for _, r := range tk.cycle.outputs {
				if r.Topic == "dlq" {
					dead = append(dead, string(r.Key))
					// A failed batch's message is the guest's, then what
					// the host saw in parentheses.
					if got := header(r, "streamrt.error"); got != tc.reason && !strings.HasPrefix(got, tc.reason+" (") {
						t.Errorf("dead letter error %q, want %q", got, tc.reason)
					}
					if got := header(r, "streamrt.error.kind"); got != tc.kind {
						t.Errorf("dead letter kind %q, want %q", got, tc.kind)
					}
				} else {
					out = append(out, string(r.Key)+"="+string(r.Value))
				}
			}
			if got := strings.Join(out, ","); got != tc.emitted {
				t.Errorf("emitted %s, want %s", got, tc.emitted)
			}
			if got := strings.Join(dead, ","); got != tc.dead {
				t.Errorf("dead letters %s, want %s", got, tc.dead)
			}
			for k, want := range map[string]bool{"a": true, "b": false, "c": true} {
				if _, ok := get(t, tk, "seen", k); ok != want {
					t.Errorf("store key %s present %v, want %v", k, ok, want)
				}
			}
		})
	}
}
