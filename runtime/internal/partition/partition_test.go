package partition

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The Kafka client's partitioner is the reference: franz-go's sticky key
// partitioner implements Kafka's default for keyed records.
func TestAgreesWithKafkaDefaultPartitioner(t *testing.T) {
	ref := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int{1, 3, 4, 12, 100} {
		for i := 0; i < 2000; i++ {
			key := []byte(fmt.Sprintf("key-%d-%x", i, i*7919))
			key = key[:len(key)-i%5] // every tail length of murmur2
			want := ref.Partition(&kgo.Record{Key: key}, n)
			if got := For(key, int32(n)); int(got) != want {
				t.Fatalf("key %q over %d partitions: got %d, Kafka's partitioner says %d", key, n, got, want)
			}
		}
	}
}

// Known values of Kafka's murmur2 (from its Utils test suite's inputs).
func TestMurmur2KnownValues(t *testing.T) {
	cases := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	for in, want := range cases {
		if got := int32(murmur2([]byte(in))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}
