//go:build !wasip1

package streamrt

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/streamrt/streamrt/abi"
)

// decodeAll runs the SDK's reader over enc as processRecords does (one
// Record, reused) or as processBatch does (a Record per record), and returns
// copies of the records, or the error err reports.
func decodeAll(enc []byte, perRecord bool) (int64, []abi.Record, error) {
	var r reader
	if !r.reset(enc) {
		return 0, nil, r.err()
	}
	var out []abi.Record
	recs := make([]Record, 1)
	if !perRecord {
		// As processBatch does, refuse a count the batch cannot hold.
		if r.count > len(enc)/(abi.RecordFixedSize+12) {
			return 0, nil, r.err()
		}
		recs = make([]Record, r.count)
	}
	fail := errors.New("fail")
	ok := r.run(recs, func(rec *Record) error {
		if rec.index != len(out) || inst.current != int32(rec.index) {
			return fail
		}
		out = append(out, cloneRecord(rec))
		return nil
	})
	if !ok || !r.done() {
		return 0, nil, r.err()
	}
	if inst.current != abi.NoRecord {
		return 0, nil, errors.New("current record not reset")
	}
	return r.streamTime, out, nil
}

// The SDK's reader must accept exactly the batches abi.DecodeBatch accepts,
// decode them to the same records, and report abi's error for the others.
func FuzzReader(f *testing.F) {
	seed := []*abi.Batch{
		batchOf(),
		batchOf("a", "", "ccc"),
		{StreamTime: -1, Records: []abi.Record{
			{Topic: "x", Key: nil, Value: []byte{}},
			{Topic: "y", Key: []byte{}, Value: nil, Headers: []abi.Header{{Key: "h", Value: nil}, {Key: "", Value: []byte{}}}},
			{Topic: "x", Partition: -1, Offset: 1 << 40, Timestamp: -5, Key: []byte("k"), Value: []byte("v"),
				Headers: []abi.Header{{Key: "a", Value: []byte("b")}}},
		}},
	}
	for _, b := range seed {
		enc := abi.EncodeBatch(nil, b)
		f.Add(enc, true)
		f.Add(enc, false)
		for _, cut := range []int{1, 3, 9, 30} {
			if cut < len(enc) {
				f.Add(enc[:len(enc)-cut], true)
			}
		}
		f.Add(append(bytes.Clone(enc), 0), false)
		// A null key with a length, and flags with unknown bits.
		if len(b.Records) > 0 {
			bad := bytes.Clone(enc)
			bad[abi.BatchHeaderSize+2+len(b.Records[0].Topic)] ^= 0x01
			f.Add(bad, true)
			odd := bytes.Clone(enc)
			odd[abi.BatchHeaderSize+2+len(b.Records[0].Topic)] |= 0xf0
			f.Add(odd, false)
		}
	}
	f.Fuzz(func(t *testing.T, enc []byte, perRecord bool) {
		newFakeHost(FakeConfig{})
		want, wantErr := abi.DecodeBatch(enc)
		streamTime, got, err := decodeAll(enc, perRecord)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("reader error %v, abi error %v", err, wantErr)
		}
		if err != nil {
			if err.Error() != wantErr.Error() {
				t.Fatalf("reader error %q, abi error %q", err, wantErr)
			}
			return
		}
		if streamTime != want.StreamTime {
			t.Errorf("stream time %d, want %d", streamTime, want.StreamTime)
		}
		if w := wantRecords(*want); !reflect.DeepEqual(got, w) {
			t.Fatalf("records\n got %+v\nwant %+v", got, w)
		}
	})
}

// A batch whose records have headers, many of them, so that the header
// storage grows while earlier records refer to it.
func TestReaderHeaders(t *testing.T) {
	newFakeHost(FakeConfig{})
	b := batchOf()
	for i := range 1000 {
		r := abi.Record{Topic: []string{"a", "b"}[i%2], Offset: int64(i), Key: []byte{byte(i)}}
		for j := range i % 4 {
			r.Headers = append(r.Headers, abi.Header{Key: []string{"k1", "k2", "k3"}[j], Value: []byte{byte(i), byte(j)}})
		}
		b.Records = append(b.Records, r)
	}
	for _, perRecord := range []bool{true, false} {
		_, got, err := decodeAll(abi.EncodeBatch(nil, b), perRecord)
		if err != nil {
			t.Fatal(err)
		}
		if want := wantRecords(*b); !reflect.DeepEqual(got, want) {
			t.Fatalf("perRecord=%v: records differ", perRecord)
		}
	}
}
