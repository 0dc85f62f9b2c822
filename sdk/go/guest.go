package streamrt

import (
	"errors"
	"runtime/debug"
	"strconv"

	"github.com/streamrt/streamrt/abi"
)

// instance is the guest's state. A Wasm instance runs one call at a time, so
// this is plain package state with no locking; the host gives every task its
// own instance.
type instance struct {
	onRecord func(*Record) error
	onBatch  func(*Batch) error
	onQuery  func(*Query) Response

	input  []byte // the streamrt_buffer: grow-only, reused for every batch
	reader reader
	rec    [1]Record // the record given to a per-record handler, reused
	batch  Batch     // the batch given to a batch handler, reused

	current    int32 // record index stamped on effects, or abi.NoRecord
	streamTime int64

	stores     map[string]*Store
	outputs    map[string]*output
	outputList []*output // the outputs in the order opened
	lastOutput *output
	// emits is the buffer in which Emit collects entries for emit_batch
	// during a streamrt_process call: emitArea, of which the first
	// emitLen bytes are in use. Outside a call it is nil, so that no entry
	// fits and Emit hands each to the host at once. emitMark is where the
	// entries of the record being handled start, and emitErr a flush the
	// host refused, which fails the batch.
	emits    []byte
	emitArea []byte
	emitLen  int
	emitMark int
	emitErr  error
	values   arena       // Store.Get results
	headers  []byte      // scratch for emit's header list
	bound    []byte      // scratch for Prefix's end bound
	iters    []*Iterator // open iterators
	bufs     [][]byte    // range buffers returned by closed iterators
}

var inst = instance{current: abi.NoRecord, streamTime: -1}

// maxInput bounds streamrt_buffer; a request over it gets 0 rather than a
// crash in make.
const maxInput = 1 << 30

var (
	errNoHandler          = errors.New("streamrt: no handler: call streamrt.HandleRecord or streamrt.HandleBatch from func init()")
	errBatchOutsideBuffer = errors.New("streamrt: streamrt_process: batch lies outside the streamrt_buffer")
)

// HandleRecord registers fn to be called once per input record, in batch
// order. Call it exactly once per program, from func init(): a guest built
// with -buildmode=c-shared runs init functions when the host initialises it
// and never calls main. A second registration, of either kind, panics.
//
// fn's *Record and everything it refers to are valid only until fn returns.
// Effects fn makes (Emit, Store.Put, Store.Delete) are attributed to the
// record. A non-nil error, or a panic, fails the record: the SDK reports
// the error's text (a panic's as "panic: " and its value) to the host, which
// discards the record's effects and applies the stage's error policy; the
// rest of the batch goes on.
func HandleRecord(fn func(r *Record) error) {
	if fn == nil {
		panic("streamrt: HandleRecord with a nil handler")
	}
	register()
	inst.onRecord = fn
}

// HandleBatch registers fn to be called once per batch. Call it exactly once
// per program, from func init(), instead of HandleRecord; a second
// registration panics.
//
// The *Batch and the records in it are valid only until fn returns. Effects
// made while iterating with Batch.All are attributed to the record at hand;
// all others to the batch as a whole. Fail one record with Batch.Fail. A
// non-nil error, or a panic, fails the whole batch: the host discards its
// effects and runs its records again one per batch to find the bad ones.
func HandleBatch(fn func(b *Batch) error) {
	if fn == nil {
		panic("streamrt: HandleBatch with a nil handler")
	}
	register()
	inst.onBatch = fn
}

func register() {
	if inst.onRecord != nil || inst.onBatch != nil {
		panic("streamrt: a handler is already registered: call HandleRecord or HandleBatch exactly once, from func init()")
	}
}

// StreamTime returns the stream time of the batch being processed: the
// highest record timestamp the task has seen, in milliseconds since the Unix
// epoch, or -1 when unknown. It is the guest's clock; there is no other.
func StreamTime() int64 { return inst.streamTime }

// initInstance backs the streamrt_init export: an instance without a handler
// is refused when it is created rather than failing every batch.
func initInstance() int32 {
	if inst.onRecord == nil && inst.onBatch == nil && inst.onQuery == nil {
		logMessage(abi.LevelError, errNoHandler.Error())
		return 1
	}
	return 0
}

// inputBuffer backs the streamrt_buffer export. It returns a buffer of at
// least size bytes (and at least one), or nil if size is out of range.
func inputBuffer(size int32) []byte {
	if size < 0 || size > maxInput {
		return nil
	}
	if int(size) > cap(inst.input) || cap(inst.input) == 0 {
		// Grow with headroom, so that slowly growing batches do not
		// reallocate every time.
		n := max(int(size), 2*cap(inst.input), 64<<10)
		n = min(n, maxInput)
		inst.input = make([]byte, n)
	}
	return inst.input[:cap(inst.input)]
}

// process backs the streamrt_process export.
func process(buf []byte) int32 {
	r := &inst.reader
	if !r.reset(buf) {
		return failBatch(r.err())
	}
	inst.streamTime = r.streamTime
	beginEmits()
	var rc int32
	switch {
	case inst.onRecord != nil:
		rc = processRecords()
	case inst.onBatch != nil:
		rc = processBatch(len(buf))
	default:
		rc = failBatch(errNoHandler)
	}
	rc = endEmits(rc)
	inst.current = abi.NoRecord
	inst.endIterators()
	return rc
}

// processRecords calls the record handler on every record of the batch. It
// has one deferred recover per batch rather than one per record, which the
// Go Wasm port makes costly: runRecords runs the records until the batch
// ends or a handler panics, and after a panic, which fails only the record
// at hand, processRecords calls it again to go on with the next record.
func processRecords() int32 {
	for {
		if rc, done := runRecords(); done {
			return rc
		}
	}
}

// runRecords decodes and handles the records from the reader's position on.
// It returns done false only after a handler panicked and the panic was
// reported as its record's failure.
func runRecords() (rc int32, done bool) {
	defer func() {
		if v := recover(); v != nil {
			rc, done = recordPanic(&PanicError{Value: v, Stack: debug.Stack()})
		}
	}()
	r := &inst.reader
	if !r.run(inst.rec[:], inst.onRecord) || !r.done() {
		return failBatch(r.err()), true
	}
	return 0, true
}

// handle calls fn on record i, with the effects attributed to it, and
// reports the error fn returns. A panic goes up to runRecords.
func handle(i int, rec *Record, fn func(*Record) error) {
	inst.current = int32(i)
	inst.emitMark = inst.emitLen
	inst.values.reset()
	err := fn(rec)
	inst.current = abi.NoRecord
	if err != nil {
		reportRecord(i, err)
	}
}

// recordPanic reports a panic that runRecords recovered. A panic in a
// handler fails its record, and the batch goes on with the next one; a panic
// anywhere else (which would be a bug in the SDK) fails the batch.
func recordPanic(pe *PanicError) (rc int32, done bool) {
	i := inst.current
	inst.current = abi.NoRecord
	if i < 0 {
		return failBatch(pe), true
	}
	reportRecord(int(i), pe)
	return 0, false
}

func processBatch(size int) int32 {
	r := &inst.reader
	b := &inst.batch
	n := r.count
	// A record takes at least its fixed part and three length words, which
	// bounds the count before allocating for it.
	if n > size/(abi.RecordFixedSize+12) {
		return failBatch(errors.New("streamrt: batch header claims " + strconv.Itoa(n) + " records, more than its size allows"))
	}
	if cap(b.records) < n {
		b.records = append(b.records[:cap(b.records)], make([]Record, n-cap(b.records))...)
	}
	b.records = b.records[:n]
	if !r.run(b.records, nop) || !r.done() {
		return failBatch(r.err())
	}
	b.streamTime = inst.streamTime
	inst.values.reset()
	if err := callBatch(inst.onBatch, b); err != nil {
		var re *RecordError
		if errors.As(err, &re) && re.Index >= 0 && re.Index < n {
			recordError(int32(re.Index), errText(re.Err))
		}
		return failBatch(err)
	}
	return 0
}

// nop is the record "handler" of a batch handler's decoding.
func nop(*Record) error { return nil }

func callBatch(fn func(*Batch) error, b *Batch) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn(b)
}

// reportRecord tells the host that record i, the one a per-record handler
// was handling, failed with err. The record's buffered emits go first.
func reportRecord(i int, err error) {
	var pe *PanicError
	if errors.As(err, &pe) {
		logMessage(abi.LevelError, "streamrt: record "+strconv.Itoa(i)+": "+pe.Error()+"\n"+string(pe.Stack))
	}
	dropEmits(int32(i), inst.emitMark)
	recordError(int32(i), err.Error())
}

// failBatch reports err as the reason the batch failed and returns the
// non-zero result of streamrt_process.
func failBatch(err error) int32 {
	var pe *PanicError
	if errors.As(err, &pe) {
		logMessage(abi.LevelError, "streamrt: batch handler: "+pe.Error()+"\n"+string(pe.Stack))
	}
	recordError(abi.NoRecord, err.Error())
	return 1
}
