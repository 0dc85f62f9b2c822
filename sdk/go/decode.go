package streamrt

import (
	"encoding/binary"
	"errors"
	"io"

	"github.com/streamrt/streamrt/abi"
)

// reader decodes the batch in the streamrt_buffer straight into the SDK's
// Records. It accepts exactly what abi.BatchReader accepts, but it is built
// for the Go Wasm port, where every call and every taken branch is costly: a
// jump between basic blocks goes through the function's dispatch loop, and
// with a batch deadline wazero checks for termination there. So run decodes
// records in the loop that hands them to the handler, without calls and
// with its checks on the not-taken side, and it only says whether the batch
// is well formed; err asks abi.BatchReader why it is not, so that the error
// texts are abi's. FuzzReader holds the two decoders to the same verdicts
// and records.
type reader struct {
	buf        []byte
	pos        int // start of the next record
	count      int // records the batch header declares
	read       int // records decoded so far
	streamTime int64
	topics     []string
	// headers backs the decoded records' Headers, each a capped window of
	// it; it is reset once per batch.
	headers    []Header
	headerKeys map[string]string // interned header keys
}

// maxInternedKeys bounds the header key cache against batches whose every
// record carries a different key.
const maxInternedKeys = 256

// Record flags (abi/ABI.md).
const (
	flagKey   = 1 << 0
	flagValue = 1 << 1
)

// reset reads buf's batch header and reports whether it is well formed. It
// keeps the topic strings when a batch repeats the previous one's topics, so
// that decoding batch after batch allocates nothing.
func (r *reader) reset(buf []byte) bool {
	r.buf, r.pos, r.count, r.read = buf, 0, 0, 0
	r.headers = r.headers[:0]
	if len(buf) < abi.BatchHeaderSize {
		return false
	}
	r.count = int(binary.LittleEndian.Uint32(buf))
	r.streamTime = int64(binary.LittleEndian.Uint64(buf[4:]))
	n := int(binary.LittleEndian.Uint16(buf[12:]))
	if cap(r.topics) < n {
		r.topics = make([]string, n)
	}
	r.topics = r.topics[:n]
	b := buf[abi.BatchHeaderSize:]
	for i := range r.topics {
		if len(b) < 2 {
			return false
		}
		l := int(binary.LittleEndian.Uint16(b))
		b = b[2:]
		if l > len(b) {
			return false
		}
		if r.topics[i] != string(b[:l]) {
			r.topics[i] = string(b[:l])
		}
		b = b[l:]
	}
	r.pos = len(buf) - len(b)
	return true
}

// done reports whether the batch ended where its last record did.
func (r *reader) done() bool { return r.pos == len(r.buf) }

// run decodes the records that remain in the batch, one at a time, and
// hands each to fn before it decodes the next: a per-record handler's loop
// decodes every record into recs[0] and calls the handler; a batch
// handler's decoding has a Record per record of the batch in recs and a
// no-op fn. It returns false if a record is malformed, leaving the reader
// at that record. Between records the reader is up to date (read, pos), so
// that after a panic in fn, run may be called again to go on with the next
// record.
//
// A record without headers takes two branches, the write barrier check's
// and the loop's, and no call but fn. Each check fails out of the loop,
// which the compiler lays out of line; a null key or value, and the
// record's place in recs, are conditional selects; the fields that hold
// pointers are stored together so that they share one write barrier check;
// and a record with headers leaves the inner loop, which makes the compiler
// lay that path out of line too (as a branch within the loop it would be
// laid out inline, both paths calling a function).
func (r *reader) run(recs []Record, fn func(*Record) error) bool {
	last := len(recs) - 1
	for r.read < r.count {
		// A record with headers, decoded up to its header count, when the
		// inner loop breaks for one.
		var (
			rec        *Record
			topic      string
			key, value []byte
			rest       []byte
			nh         uint32
		)
		for r.read < r.count {
			i := r.read
			rec = &recs[min(i, last)]
			b := r.buf[r.pos:]
			// The fixed part and the key's length.
			if len(b) < abi.RecordFixedSize+4 {
				return false
			}
			flags := b[0]
			t := int(binary.LittleEndian.Uint16(b[1:]))
			if t >= len(r.topics) {
				return false
			}
			rec.Partition = int32(binary.LittleEndian.Uint32(b[3:]))
			rec.Offset = int64(binary.LittleEndian.Uint64(b[7:]))
			rec.Timestamp = int64(binary.LittleEndian.Uint64(b[15:]))
			rec.index = i
			n := uint64(binary.LittleEndian.Uint32(b[23:]))
			b = b[abi.RecordFixedSize+4:]
			// The key, and the value's length after it.
			if badLength(n, len(b), flags, flagKey) {
				return false
			}
			key = nullable(b[:n:n], flags&flagKey)
			b = b[n:]
			n = uint64(binary.LittleEndian.Uint32(b))
			b = b[4:]
			// The value, and the header count after it.
			if badLength(n, len(b), flags, flagValue) {
				return false
			}
			value = nullable(b[:n:n], flags&flagValue)
			b = b[n:]
			topic = r.topics[t]
			if nh = binary.LittleEndian.Uint32(b); nh != 0 {
				rest = b[4:]
				break
			}
			rec.Topic, rec.Key, rec.Value, rec.Headers = topic, key, value, nil
			r.pos = len(r.buf) - len(b) + 4
			r.read = i + 1
			// handle, inlined by hand.
			inst.current = int32(i)
			inst.emitMark = inst.emitLen
			inst.values.reset()
			err := fn(rec)
			inst.current = abi.NoRecord
			if err != nil {
				reportRecord(i, err)
			}
		}
		if nh != 0 && !r.runHeaders(rec, topic, key, value, rest, nh, fn) {
			return false
		}
	}
	return true
}

// runHeaders ends run's loop body for a record with nh headers, which
// start at b.
func (r *reader) runHeaders(rec *Record, topic string, key, value, b []byte, nh uint32, fn func(*Record) error) bool {
	b, hs, ok := r.readHeaders(b, nh)
	if !ok {
		return false
	}
	rec.Topic, rec.Key, rec.Value, rec.Headers = topic, key, value, hs
	r.pos = len(r.buf) - len(b)
	r.read = rec.index + 1
	handle(rec.index, rec, fn)
	return true
}

// badLength reports whether a field of length n, followed by a four-byte
// length, overruns the rest bytes left, or is marked null by flags and has a
// length other than 0. It computes the answer without branches, so that the
// caller has a single check.
func badLength(n uint64, rest int, flags, flag byte) bool {
	// n is under 1<<32: rest-4-n wraps around, setting the top bit, exactly
	// when the field overruns.
	return (uint64(rest)-4-n)>>63|n*uint64(^flags&flag) != 0
}

// nullable returns b, or nil when flag is 0, as a conditional select rather
// than a branch.
func nullable(b []byte, flag byte) []byte {
	if flag == 0 {
		return nil
	}
	return b
}

// readHeaders decodes n header pairs at the start of b, appending them to
// r.headers, and returns the rest of b and the headers.
func (r *reader) readHeaders(b []byte, n uint32) (rest []byte, hs []Header, ok bool) {
	// Each pair takes at least 8 bytes, which bounds n before appending.
	if uint64(n) > uint64(len(b)/8) {
		return b, nil, false
	}
	start := len(r.headers)
	for range n {
		if len(b) < 4 {
			return b, nil, false
		}
		kl := uint64(binary.LittleEndian.Uint32(b))
		b = b[4:]
		if kl+4 > uint64(len(b)) {
			return b, nil, false
		}
		key := r.intern(b[:kl])
		b = b[kl:]
		vl := binary.LittleEndian.Uint32(b)
		b = b[4:]
		var val []byte
		if vl != 0xFFFFFFFF {
			if uint64(vl) > uint64(len(b)) {
				return b, nil, false
			}
			val = b[:vl:vl]
			b = b[vl:]
		}
		r.headers = append(r.headers, Header{Key: key, Value: val})
	}
	end := len(r.headers)
	return b, r.headers[start:end:end], true
}

func (r *reader) intern(b []byte) string {
	if s, ok := r.headerKeys[string(b)]; ok {
		return s
	}
	s := string(b)
	if r.headerKeys == nil {
		r.headerKeys = make(map[string]string)
	}
	if len(r.headerKeys) < maxInternedKeys {
		r.headerKeys[s] = s
	}
	return s
}

var errMalformed = errors.New("streamrt: malformed batch")

// err explains why the batch is malformed: it decodes the batch again with
// abi.BatchReader, whose errors say what was being read and where.
func (r *reader) err() error {
	ar, err := abi.NewBatchReader(r.buf)
	if err != nil {
		return err
	}
	var rec abi.Record
	for {
		switch err := ar.Next(&rec); err {
		case nil:
		case io.EOF:
			// Unreachable while the decoders agree, as FuzzReader checks.
			return errMalformed
		default:
			return err
		}
	}
}
