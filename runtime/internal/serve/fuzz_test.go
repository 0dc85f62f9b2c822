package serve

import (
	"bytes"
	"net/url"
	"testing"

	"github.com/streamrt/streamrt/runtime/config"
)

// Whatever a range query's parameters hold, parsing them never panics,
// and what it accepts is within bounds: a limit from 1 to the maximum,
// partitions of the store, and a prefix's keys inside the range it makes.
func FuzzParseRange(f *testing.F) {
	for _, seed := range []string{
		"prefix=page-", "from=a&to=b&limit=10", "prefix=&after=cGFnZS0x", "prefix=%FF%FF",
		"from=b&to=a", "prefix=x&partitions=0,3", "prefix=x&partitions=9", "limit=-1&prefix=",
		"after=%%%", "prefix=ab&from=abc&to=abz&after=YWJk",
	} {
		f.Add(seed)
	}
	s := &Server{query: config.Query{MaxKeyBytes: 64, MaxRangeLimit: 100}}
	st := Store{Name: "counts", Partitions: 4}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		rq, err := s.parseRange(q, st)
		if err != nil {
			return
		}
		if rq.limit < 1 || rq.limit > s.query.MaxRangeLimit {
			t.Fatalf("%q: limit %d outside 1 to %d", raw, rq.limit, s.query.MaxRangeLimit)
		}
		for _, p := range rq.partitions {
			if p < 0 || p >= st.Partitions {
				t.Fatalf("%q: partition %d accepted for a store of %d", raw, p, st.Partitions)
			}
		}
		prefix, ok := param(q, "prefix")
		if !ok || q.Has("from") || q.Has("to") || q.Has("after") {
			return
		}
		for _, k := range [][]byte{[]byte(prefix), append([]byte(prefix), 0), append([]byte(prefix), 0xff, 0xff)} {
			if bytes.Compare(k, rq.start) < 0 || rq.end != nil && bytes.Compare(k, rq.end) >= 0 {
				t.Fatalf("%q: key %q with the prefix falls outside [%q, %q)", raw, k, rq.start, rq.end)
			}
		}
	})
}
