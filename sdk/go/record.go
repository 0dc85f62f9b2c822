package streamrt

import (
	"iter"

	"github.com/streamrt/streamrt/abi"
)

// Record is one input record.
//
// Key, Value and header values alias the batch the host wrote into guest
// memory, and the Record itself and its Headers slice are reused for the next
// record: all are valid only until the handler returns. Copy what you keep
// (bytes.Clone). Topic and header keys are strings and may be kept.
type Record struct {
	Topic     string // the input topic the record came from
	Partition int32
	Offset    int64
	Timestamp int64  // milliseconds since the Unix epoch
	Key       []byte // nil when the key is null; empty when it is empty
	Value     []byte // nil when the value is null (a tombstone)
	Headers   []Header

	index int
}

// Index returns the record's position in its batch, the index Batch.Fail
// takes.
func (r *Record) Index() int { return r.index }

// Header is a record header. A nil Value is null.
type Header = abi.Header

// Batch is the batch a batch handler receives. It and its records are valid
// only until the handler returns.
type Batch struct {
	records    []Record
	streamTime int64
}

// Len returns the number of records in the batch.
func (b *Batch) Len() int { return len(b.records) }

// StreamTime returns the batch's stream time: the highest record timestamp
// the task has seen, this batch included, or -1 when unknown.
func (b *Batch) StreamTime() int64 { return b.streamTime }

// Record returns record i. It does not change attribution: effects are
// attributed to a record only inside an All loop.
func (b *Batch) Record(i int) *Record { return &b.records[i] }

// All yields the records in order. Effects made in the loop body (Emit,
// Store.Put, Store.Delete) are attributed to the record at hand, so the host
// discards them if that record fails; effects made outside the loop belong
// to the batch as a whole. (A loop nested in another restores the outer
// loop's record when it ends.)
func (b *Batch) All() iter.Seq2[int, *Record] {
	return func(yield func(int, *Record) bool) {
		prev := inst.current
		defer func() { inst.current = prev }()
		for i := range b.records {
			inst.current = int32(i)
			if !yield(i, &b.records[i]) {
				return
			}
		}
	}
}

// Fail reports that record i failed with err; the host discards the record's
// effects and applies the stage's error policy to it, while the rest of the
// batch goes on; the record's emits that Emit still holds in its buffer are
// dropped. Call it when done with the record, before its successors'
// effects: a failure reported after another record's effects makes the host
// treat the batch as failed and run its records again one per batch (which
// is correct, only slower).
func (b *Batch) Fail(i int, err error) {
	if i < 0 || i >= len(b.records) {
		panic("streamrt: Batch.Fail: record index out of range")
	}
	dropEmits(int32(i), 0)
	recordError(int32(i), errText(err))
}
