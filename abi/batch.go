package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Record is one input record as the guest sees it. A nil Key or Value is null,
// which is distinct from an empty one.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp int64 // milliseconds since the Unix epoch
	Key       []byte
	Value     []byte
	Headers   []Header
}

// Header is one record header. A nil Value is null.
type Header struct {
	Key   string
	Value []byte
}

// Batch is the decoded form of the buffer the host passes to streamrt_process.
type Batch struct {
	// StreamTime is the highest record timestamp the task has seen, this batch
	// included; -1 when unknown.
	StreamTime int64
	// Topics is the batch's topic table; records name their topic by index.
	Topics  []string
	Records []Record
}

// Record flags.
const (
	flagKey   = 1 << 0
	flagValue = 1 << 1
)

// BatchHeaderSize is the size of a batch header with an empty topic table.
const BatchHeaderSize = 4 + 8 + 2

// RecordFixedSize is the size of a record's fixed part before its key.
const RecordFixedSize = 1 + 2 + 4 + 8 + 8

// TopicTableSize is the encoded size of a batch's topic table: a batch
// header takes BatchHeaderSize plus this.
func TopicTableSize(topics []string) int {
	n := 0
	for _, t := range topics {
		n += 2 + len(t)
	}
	return n
}

// RecordSize is the encoded size of one record without its header pairs
// (AppendRecord's output); each header adds HeaderSize.
func RecordSize(key, value []byte) int { return RecordFixedSize + 12 + len(key) + len(value) }

// HeaderSize is the encoded size of one header pair (AppendHeader's
// output).
func HeaderSize(key string, value []byte) int { return 8 + len(key) + len(value) }

// ErrTruncated reports an encoding that ends before its declared contents.
var ErrTruncated = errors.New("streamrt: abi: truncated encoding")

// DecodeError says where a decoding failed.
type DecodeError struct {
	What   string // what was being read, such as "record 3 value"
	Offset int    // byte offset into the encoding
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("streamrt: abi: decode %s at byte %d: %v", e.What, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// AppendBatchHeader appends a batch header: the record count, the stream time
// and the topic table.
func AppendBatchHeader(dst []byte, count int, streamTime int64, topics []string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(count))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(streamTime))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(topics)))
	for _, t := range topics {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(t)))
		dst = append(dst, t...)
	}
	return dst
}

// AppendRecord appends one record without its headers; headerCount headers
// must follow, each appended with AppendHeader.
func AppendRecord(dst []byte, topic uint16, partition int32, offset, timestamp int64, key, value []byte, headerCount int) []byte {
	var flags byte
	if key != nil {
		flags |= flagKey
	}
	if value != nil {
		flags |= flagValue
	}
	dst = append(dst, flags)
	dst = binary.LittleEndian.AppendUint16(dst, topic)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(partition))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(offset))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(timestamp))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(key)))
	dst = append(dst, key...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(value)))
	dst = append(dst, value...)
	return binary.LittleEndian.AppendUint32(dst, uint32(headerCount))
}

// AppendHeader appends one header pair.
func AppendHeader(dst []byte, key string, value []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(key)))
	dst = append(dst, key...)
	if value == nil {
		return binary.LittleEndian.AppendUint32(dst, uint32(0xFFFFFFFF))
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(value)))
	return append(dst, value...)
}

// AppendHeaders appends a header list as emit takes it: a count, then pairs.
func AppendHeaders(dst []byte, hs []Header) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(hs)))
	for _, h := range hs {
		dst = AppendHeader(dst, h.Key, h.Value)
	}
	return dst
}

// EncodeBatch appends the encoding of b. Each record's topic must be in
// b.Topics, or EncodeBatch adds it there.
func EncodeBatch(dst []byte, b *Batch) []byte {
	index := make(map[string]uint16, len(b.Topics))
	for i, t := range b.Topics {
		index[t] = uint16(i)
	}
	for _, r := range b.Records {
		if _, ok := index[r.Topic]; !ok {
			index[r.Topic] = uint16(len(b.Topics))
			b.Topics = append(b.Topics, r.Topic)
		}
	}
	dst = AppendBatchHeader(dst, len(b.Records), b.StreamTime, b.Topics)
	for _, r := range b.Records {
		dst = AppendRecord(dst, index[r.Topic], r.Partition, r.Offset, r.Timestamp, r.Key, r.Value, len(r.Headers))
		for _, h := range r.Headers {
			dst = AppendHeader(dst, h.Key, h.Value)
		}
	}
	return dst
}

// DecodeBatch decodes a whole batch, copying nothing: the records' byte slices
// alias buf.
func DecodeBatch(buf []byte) (*Batch, error) {
	r, err := NewBatchReader(buf)
	if err != nil {
		return nil, err
	}
	// The count comes from the buffer: bound it by what the buffer can hold
	// before allocating for it.
	b := &Batch{StreamTime: r.StreamTime(), Topics: r.Topics(), Records: make([]Record, 0, min(r.Len(), len(buf)/RecordFixedSize))}
	for {
		var rec Record
		err := r.Next(&rec)
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		b.Records = append(b.Records, rec)
	}
}

// BatchReader decodes a batch one record at a time without copying.
type BatchReader struct {
	buf        []byte
	pos        int
	count      int
	read       int
	streamTime int64
	topics     []string
	headerKeys map[string]string // interned header keys, so records with headers allocate nothing
}

// NewBatchReader reads buf's header. The reader and the records it returns
// alias buf, which must not change while they are in use.
func NewBatchReader(buf []byte) (*BatchReader, error) {
	r := &BatchReader{}
	return r, r.Reset(buf)
}

// Reset makes r read a new batch, reusing r's topic table when the new one is
// the same, so that a guest decoding batch after batch allocates nothing.
func (r *BatchReader) Reset(buf []byte) error {
	r.buf, r.pos, r.read = buf, 0, 0
	if len(buf) < BatchHeaderSize {
		return &DecodeError{What: "batch header", Offset: 0, Err: ErrTruncated}
	}
	r.count = int(binary.LittleEndian.Uint32(buf))
	r.streamTime = int64(binary.LittleEndian.Uint64(buf[4:]))
	n := int(binary.LittleEndian.Uint16(buf[12:]))
	r.pos = BatchHeaderSize
	if cap(r.topics) < n {
		r.topics = make([]string, n)
	}
	r.topics = r.topics[:n]
	for i := 0; i < n; i++ {
		t, err := r.bytes16()
		if err != nil {
			return &DecodeError{What: fmt.Sprintf("topic %d", i), Offset: r.pos, Err: err}
		}
		if r.topics[i] != string(t) {
			r.topics[i] = string(t)
		}
	}
	return nil
}

// Len returns the number of records in the batch.
func (r *BatchReader) Len() int { return r.count }

// StreamTime returns the batch's stream time.
func (r *BatchReader) StreamTime() int64 { return r.streamTime }

// Topics returns the batch's topic table. The caller must not modify it.
func (r *BatchReader) Topics() []string { return r.topics }

// Next decodes the next record into rec, reusing rec.Headers' storage. It
// returns io.EOF after the last record.
func (r *BatchReader) Next(rec *Record) error {
	if r.read == r.count {
		if r.pos != len(r.buf) {
			return &DecodeError{What: "end of batch", Offset: r.pos, Err: fmt.Errorf("%d trailing bytes", len(r.buf)-r.pos)}
		}
		return io.EOF
	}
	i := r.read
	start := r.pos
	if len(r.buf)-r.pos < RecordFixedSize {
		return &DecodeError{What: fmt.Sprintf("record %d", i), Offset: start, Err: ErrTruncated}
	}
	b := r.buf[r.pos:]
	flags := b[0]
	ti := int(binary.LittleEndian.Uint16(b[1:]))
	if ti >= len(r.topics) {
		return &DecodeError{What: fmt.Sprintf("record %d topic", i), Offset: start, Err: fmt.Errorf("topic index %d outside a table of %d", ti, len(r.topics))}
	}
	rec.Topic = r.topics[ti]
	rec.Partition = int32(binary.LittleEndian.Uint32(b[3:]))
	rec.Offset = int64(binary.LittleEndian.Uint64(b[7:]))
	rec.Timestamp = int64(binary.LittleEndian.Uint64(b[15:]))
	r.pos += RecordFixedSize
	var err error
	if rec.Key, err = r.bytes32(flags&flagKey != 0); err != nil {
		return &DecodeError{What: fmt.Sprintf("record %d key", i), Offset: r.pos, Err: err}
	}
	if rec.Value, err = r.bytes32(flags&flagValue != 0); err != nil {
		return &DecodeError{What: fmt.Sprintf("record %d value", i), Offset: r.pos, Err: err}
	}
	if rec.Headers, err = r.headers(rec.Headers[:0]); err != nil {
		return &DecodeError{What: fmt.Sprintf("record %d headers", i), Offset: r.pos, Err: err}
	}
	r.read++
	return nil
}

func (r *BatchReader) headers(dst []Header) ([]Header, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	rest, hs, err := readHeaderPairs(r.buf[r.pos:], int(n), dst, r.intern)
	r.pos = len(r.buf) - len(rest)
	return hs, err
}

// maxInternedKeys bounds the header key cache against batches whose every
// record carries a different key.
const maxInternedKeys = 256

func (r *BatchReader) intern(b []byte) string {
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

// DecodeHeaders decodes a header list as emit takes it. Header values alias b.
func DecodeHeaders(b []byte, dst []Header) ([]Header, error) {
	if len(b) < 4 {
		return nil, &DecodeError{What: "header count", Offset: 0, Err: ErrTruncated}
	}
	n := int(binary.LittleEndian.Uint32(b))
	rest, hs, err := readHeaderPairs(b[4:], n, dst, func(b []byte) string { return string(b) })
	if err != nil {
		return nil, &DecodeError{What: "headers", Offset: len(b) - len(rest), Err: err}
	}
	if len(rest) != 0 {
		return nil, &DecodeError{What: "headers", Offset: len(b) - len(rest), Err: fmt.Errorf("%d trailing bytes", len(rest))}
	}
	return hs, nil
}

func readHeaderPairs(b []byte, n int, dst []Header, str func([]byte) string) (rest []byte, hs []Header, err error) {
	// Each pair takes at least 8 bytes, which bounds n before allocating.
	if n > len(b)/8 {
		return b, dst, ErrTruncated
	}
	for j := 0; j < n; j++ {
		if len(b) < 4 {
			return b, dst, ErrTruncated
		}
		kl := int(binary.LittleEndian.Uint32(b))
		if kl > len(b)-4 {
			return b, dst, ErrTruncated
		}
		key := str(b[4 : 4+kl])
		b = b[4+kl:]
		if len(b) < 4 {
			return b, dst, ErrTruncated
		}
		vl := binary.LittleEndian.Uint32(b)
		b = b[4:]
		var val []byte
		if vl != 0xFFFFFFFF {
			if int(vl) > len(b) {
				return b, dst, ErrTruncated
			}
			val = b[:vl:vl]
			b = b[vl:]
		}
		dst = append(dst, Header{Key: key, Value: val})
	}
	return b, dst, nil
}

func (r *BatchReader) u32() (uint32, error) {
	if len(r.buf)-r.pos < 4 {
		return 0, ErrTruncated
	}
	v := binary.LittleEndian.Uint32(r.buf[r.pos:])
	r.pos += 4
	return v, nil
}

func (r *BatchReader) bytes32(present bool) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	if int64(n) > int64(len(r.buf)-r.pos) {
		return nil, ErrTruncated
	}
	if !present {
		if n != 0 {
			return nil, fmt.Errorf("null field with length %d", n)
		}
		return nil, nil
	}
	b := r.buf[r.pos : r.pos+int(n) : r.pos+int(n)]
	r.pos += int(n)
	return b, nil
}

func (r *BatchReader) bytes16() ([]byte, error) {
	if len(r.buf)-r.pos < 2 {
		return nil, ErrTruncated
	}
	n := int(binary.LittleEndian.Uint16(r.buf[r.pos:]))
	r.pos += 2
	if n > len(r.buf)-r.pos {
		return nil, ErrTruncated
	}
	b := r.buf[r.pos : r.pos+n]
	r.pos += n
	return b, nil
}

// AppendEntry appends one key/value entry as range_next writes them.
func AppendEntry(dst, key, value []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(key)))
	dst = append(dst, key...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(value)))
	return append(dst, value...)
}

// EntrySize is the encoded size of one range entry.
func EntrySize(key, value []byte) int { return 8 + len(key) + len(value) }

// NextEntry decodes the first entry of b, as written by range_next, and
// returns the rest. The key and value alias b.
func NextEntry(b []byte) (key, value, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, b, ErrTruncated
	}
	kl := int(binary.LittleEndian.Uint32(b))
	if kl > len(b)-8 {
		return nil, nil, b, ErrTruncated
	}
	key = b[4 : 4+kl : 4+kl]
	b = b[4+kl:]
	vl := int(binary.LittleEndian.Uint32(b))
	if vl > len(b)-4 {
		return nil, nil, b, ErrTruncated
	}
	return key, b[4 : 4+vl : 4+vl], b[4+vl:], nil
}
