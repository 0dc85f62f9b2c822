package engine

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRestoreETA(t *testing.T) {
	for _, c := range []struct {
		perMille int64
		elapsed  time.Duration
		want     float64
	}{
		{0, 10 * time.Second, -1},
		{250, 0, -1},
		{250, 10 * time.Second, 30},
		{500, 3 * time.Second, 3},
		{999, 999 * time.Second, 1},
		{1000, time.Minute, 0},
		{1, time.Second, 999},
	} {
		if got := restoreETA(c.perMille, c.elapsed); got != c.want {
			t.Errorf("restoreETA(%d‰, %v) = %v, want %v", c.perMille, c.elapsed, got, c.want)
		}
	}
}

// The rate is the records processed since the oldest of the samples kept,
// six of them a second or more apart: a burst shows, then fades.
func TestTaskRate(t *testing.T) {
	var s taskStats
	t0 := time.Unix(1000, 0)
	s.begin(t0)
	steps := []struct {
		at        time.Duration // since t0
		processed int64         // in all
		want      float64
	}{
		{500 * time.Millisecond, 10, 0}, // under a second since the last sample: no new one
		{time.Second, 100, 100},
		{2 * time.Second, 300, 150},
		{2500 * time.Millisecond, 900, 150}, // no new sample
		{3 * time.Second, 900, 300},
		{5 * time.Second, 900, 180},
		{6 * time.Second, 900, 150}, // six samples kept, the first among them
		{7 * time.Second, 900, 133.3},
		{8 * time.Second, 900, 100},
		{9 * time.Second, 900, 0}, // no record since the oldest sample, at 3s
		{10 * time.Second, 900, 0},
		{11 * time.Second, 1000, 20}, // 100 since the oldest sample, at 6s
	}
	for _, st := range steps {
		s.processed.Store(st.processed)
		s.sample(t0.Add(st.at))
		if got := s.rate(); got != st.want {
			t.Errorf("at %v with %d processed: rate %v, want %v", st.at, st.processed, got, st.want)
		}
	}
}

// The ring keeps the last maxDeadLetters dead letters, oldest first, with
// their keys as text or base64 and the headers the host added, each cut
// at 1 KiB.
func TestDeadLetterRing(t *testing.T) {
	var d deadLetterRing
	for i := range maxDeadLetters + 5 {
		d.add("count", "dlq", &kgo.Record{Topic: "clicks", Partition: 2, Offset: int64(i), Key: []byte(fmt.Sprint("k", i))},
			[]kgo.RecordHeader{{Key: "streamrt.error", Value: []byte("bad")}})
	}
	d.add("count", "dlq", &kgo.Record{Topic: "clicks", Key: []byte(strings.Repeat("é", 1000))},
		[]kgo.RecordHeader{{Key: "streamrt.error", Value: bytes.Repeat([]byte("x"), 5000)}})
	d.add("count", "dlq", &kgo.Record{Topic: "clicks", Key: []byte{0xff, 0x00}}, nil)
	d.add("count", "dlq", &kgo.Record{Topic: "clicks"}, nil)
	got := d.list()
	if len(got) != maxDeadLetters {
		t.Fatalf("%d dead letters kept, want %d", len(got), maxDeadLetters)
	}
	if first := got[0]; first.SourceOffset != 8 || *first.Key != "k8" || first.Headers["streamrt.error"] != "bad" || first.Topic != "dlq" || first.SourcePartition != 2 {
		t.Errorf("oldest kept %+v, want offset 8's", first)
	}
	if long := got[len(got)-3]; !long.KeyTruncated || *long.Key != strings.Repeat("é", 512) || len(long.Headers["streamrt.error"]) != 1024 {
		t.Errorf("a long key and error kept as %d bytes (truncated %v) and %d bytes, want both cut at 1 KiB", len(*long.Key), long.KeyTruncated, len(long.Headers["streamrt.error"]))
	}
	if bin := got[len(got)-2]; bin.Key != nil || bin.KeyBase64 == nil || *bin.KeyBase64 != "/wA=" {
		t.Errorf("binary key kept as %+v, want base64 /wA=", bin)
	}
	if none := got[len(got)-1]; none.Key != nil || none.KeyBase64 != nil {
		t.Errorf("a record without a key kept as %+v, want no key", none)
	}
	got[0].Stage = "changed"
	if d.list()[0].Stage != "count" {
		t.Errorf("list shares the ring's entries")
	}
}
