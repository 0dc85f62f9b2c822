// Package streamrttest runs a Go stage's handlers natively, in go test,
// without a broker, a Wasm build or the streamrt host: records fed to the
// stage's inputs go through the same SDK code as in a guest, and the
// outputs, dead letters, store contents and query answers they produce can
// be read back. The harness models the host's side of the ABI (which record
// an effect belongs to, what a failed record undoes, the error policies,
// read-only queries); the conformance transcript the host and every SDK
// are held to holds it to the same behaviour (conformance_test.go).
//
// A stage registers its handlers from func init(); a test in the stage's
// package gets them with New:
//
//	h := streamrttest.New(t, streamrttest.Config{
//		Stores:  []string{"click-counts"},
//		Outputs: []string{"counts"},
//	})
//	h.Feed("clicks", []byte("home"), nil, 1000)
//	got := h.Output("counts") // [{Key: "home", Value: "1", Timestamp: 1000}]
//
// The SDK keeps its state in package variables, as a guest instance does,
// so one harness runs at a time in a test binary: do not use t.Parallel
// with it.
package streamrttest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/streamrt/streamrt/abi"
	streamrt "github.com/streamrt/streamrt/sdk/go"
	"github.com/streamrt/streamrt/sdk/go/internal/native"
)

// Policy is what the host does with a record the stage fails on: the
// app config's error_policy.
type Policy int

const (
	// DeadLetter sends the record, with the error in headers, to the
	// dead-letter topic and goes on (error_policy: dead_letter, the
	// default).
	DeadLetter Policy = iota
	// Skip counts the record as failed and goes on (error_policy: skip).
	Skip
	// Fail stops the task at the record: the batch's effects are dropped
	// and the harness runs nothing more (error_policy: fail).
	Fail
)

func (p Policy) String() string {
	switch p {
	case DeadLetter:
		return "dead_letter"
	case Skip:
		return "skip"
	case Fail:
		return "fail"
	}
	return "Policy(" + strconv.Itoa(int(p)) + ")"
}

// Config declares the stage the harness runs, as the app config would.
type Config struct {
	// Stage is the stage's name, which dead letters carry in the
	// streamrt.stage header; "stage" when empty.
	Stage string
	// Stores are the stage's stores, read and written by the handlers.
	Stores []string
	// Tables are the tables and global tables the stage reads: read-only
	// to the handlers, filled by the test with Set.
	Tables []string
	// Outputs are the stage's output names.
	Outputs []string
	// Policy is the stage's error policy.
	Policy Policy

	// Record, Batch and Query are handlers to run instead of those the
	// program registered from func init(). When all three are nil the
	// registered ones run. Record and Batch are exclusive.
	Record func(*streamrt.Record) error
	Batch  func(*streamrt.Batch) error
	Query  func(*streamrt.Query) streamrt.Response
}

// Input is one record fed to the stage.
type Input struct {
	Topic     string
	Partition int32
	Timestamp int64  // ms since the Unix epoch
	Key       []byte // nil = null
	Value     []byte // nil = null
	Headers   []streamrt.Header
}

// Message is one record the stage produced.
type Message struct {
	Key       []byte // nil = null
	Value     []byte // nil = null; a nil value is a tombstone
	Headers   []streamrt.Header
	Timestamp int64
}

// Header returns the value of the first header named key.
func (m Message) Header(key string) (value []byte, ok bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// Entry is one key and value of a store.
type Entry struct {
	Key, Value []byte
}

// Failure is one record the error policy handled.
type Failure struct {
	Topic     string
	Partition int32
	Offset    int64
	// Kind is "record" (the handler's error or panic, reported by the
	// SDK), "batch" (the guest failed a one-record batch) or "trap".
	Kind  string
	Error string
}

// Log is one message the stage logged.
type Log struct {
	Level streamrt.Level
	Msg   string
}

// StoppedError is what Run returns once the Fail policy stopped the task.
type StoppedError struct {
	Topic     string
	Partition int32
	Offset    int64
	Reason    string
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("streamrt: stage stopped at %s/%d offset %d: %s", e.Topic, e.Partition, e.Offset, e.Reason)
}

// QueryRequest is an HTTP request routed to the stage's query handler.
type QueryRequest struct {
	Method    string // "GET" when empty
	Route     string // the configured route pattern
	Path      string
	RawQuery  string // without '?'
	Params    map[string]string
	Partition int32
	Body      []byte
}

// Harness runs one stage. It is not safe for concurrent use.
type Harness struct {
	tb      testing.TB
	h       *host
	offsets map[string]int64 // next offset per topic/partition
	failed  []Failure

	// The handlers of Config, if any.
	record func(*streamrt.Record) error
	batch  func(*streamrt.Batch) error
	query  func(*streamrt.Query) streamrt.Response
}

// active guards the SDK's process-wide state: one harness at a time.
var active struct {
	sync.Mutex
	h *Harness
}

// New attaches a harness to the stage's handlers, with empty stores, and
// detaches it when the test ends. It fails the test if the config is
// invalid, if another harness is in use, or if no handler is registered.
func New(tb testing.TB, cfg Config) *Harness {
	tb.Helper()
	if err := cfg.validate(); err != nil {
		tb.Fatalf("streamrttest: %v", err)
	}
	active.Lock()
	if active.h != nil {
		active.Unlock()
		tb.Fatalf("streamrttest: another harness is in use: the SDK's state is process-wide, so one test at a time may run a stage (no t.Parallel)")
	}
	x := &Harness{tb: tb, offsets: map[string]int64{}}
	active.h = x
	active.Unlock()

	h := &host{outputs: slices.Clone(cfg.Outputs), policy: cfg.Policy, stage: cfg.Stage, streamTime: -1}
	if h.stage == "" {
		h.stage = "stage"
	}
	for _, name := range cfg.Stores {
		h.stores = append(h.stores, &store{name: name, data: map[string][]byte{}})
	}
	for _, name := range cfg.Tables {
		h.stores = append(h.stores, &store{name: name, readOnly: true, data: map[string][]byte{}})
	}
	x.h = h
	x.record, x.batch, x.query = cfg.Record, cfg.Batch, cfg.Query
	x.attach()
	tb.Cleanup(x.Close)
	h.inCall = true // streamrt_init may open handles, as on the host
	rc := native.Guest.Init()
	h.end()
	if rc != 0 {
		x.Close()
		tb.Fatalf("streamrttest: the stage refused to start (streamrt_init returned %d): %s", rc, x.lastLog())
	}
	return x
}

// Close detaches the harness from the SDK, so that another can be made.
// The test's cleanup calls it; calling it again does nothing.
func (x *Harness) Close() {
	active.Lock()
	defer active.Unlock()
	if active.h == x {
		native.Guest.Attach(nil, false)
		active.h = nil
	}
}

// attach resets the SDK to a new instance's state, with the handlers the
// harness runs: at New, and after a trap, as the host replaces a trapped
// instance.
func (x *Harness) attach() {
	own := x.record != nil || x.batch != nil || x.query != nil
	native.Guest.Attach(x.h, own)
	if x.record != nil {
		streamrt.HandleRecord(x.record)
	}
	if x.batch != nil {
		streamrt.HandleBatch(x.batch)
	}
	if x.query != nil {
		streamrt.HandleQuery(x.query)
	}
}

func (c *Config) validate() error {
	if c.Record != nil && c.Batch != nil {
		return errors.New("Config.Record and Config.Batch are exclusive")
	}
	if c.Policy < DeadLetter || c.Policy > Fail {
		return fmt.Errorf("unknown policy %d", int(c.Policy))
	}
	seen := map[string]bool{}
	for _, n := range slices.Concat(c.Stores, c.Tables) {
		if n == "" || seen[n] {
			return fmt.Errorf("store %q declared twice or empty", n)
		}
		seen[n] = true
	}
	clear(seen)
	for _, n := range c.Outputs {
		if n == "" || seen[n] {
			return fmt.Errorf("output %q declared twice or empty", n)
		}
		seen[n] = true
	}
	return nil
}

func (x *Harness) lastLog() string {
	if n := len(x.h.logs); n > 0 {
		return x.h.logs[n-1].Msg
	}
	return "(no log)"
}

// Feed runs one record, on partition 0 of topic, as a batch of its own.
// It fails the test if the Fail policy stopped the task; use Run to see
// the stop.
func (x *Harness) Feed(topic string, key, value []byte, timestamp int64) {
	x.tb.Helper()
	if err := x.Run(Input{Topic: topic, Key: key, Value: value, Timestamp: timestamp}); err != nil {
		x.tb.Fatal(err)
	}
}

// Run gives records to the stage as one batch, as a task does: the stream
// time moves to the highest timestamp; a record the handler fails has its
// effects dropped and the error policy applied; a batch the guest fails as
// a whole is undone and run again one record per batch. Offsets count from
// 0 per topic and partition. Run copies the records.
//
// With the Fail policy, a failed record drops the batch's effects and Run
// returns a *StoppedError, as does every later Run.
func (x *Harness) Run(records ...Input) error {
	h := x.h
	if h.stopped != nil {
		return h.stopped
	}
	recs := make([]abi.Record, len(records))
	for i, in := range records {
		id := in.Topic + "/" + strconv.Itoa(int(in.Partition))
		recs[i] = abi.Record{Topic: in.Topic, Partition: in.Partition, Offset: x.offsets[id], Timestamp: in.Timestamp,
			Key: bytes.Clone(in.Key), Value: bytes.Clone(in.Value), Headers: slices.Clone(in.Headers)}
		x.offsets[id]++
		h.streamTime = max(h.streamTime, in.Timestamp)
	}
	mark, emitMark := h.marks()
	err := x.runBatch(recs)
	if err != nil {
		h.rollback(mark)
		h.emitted = h.emitted[:emitMark]
		h.stopped = err
	}
	h.journal = h.journal[:0] // committed
	if err != nil {
		return err // not a nil *StoppedError in an error
	}
	return nil
}

// runBatch is the engine's batch logic around one guest call.
func (x *Harness) runBatch(recs []abi.Record) *StoppedError {
	h := x.h
	if len(recs) == 0 {
		return nil
	}
	mark, emitMark := h.marks()
	b := abi.Batch{StreamTime: h.streamTime}
	ts := make([]int64, len(recs))
	for i, r := range recs {
		if !slices.Contains(b.Topics, r.Topic) {
			b.Topics = append(b.Topics, r.Topic)
		}
		ts[i] = r.Timestamp
	}
	b.Records = recs
	rc, trap := x.call(ts, abi.EncodeBatch(nil, &b))
	if rc == 0 && trap == "" && !h.interleaved {
		for i := range recs {
			if msg, ok := h.failed[int32(i)]; ok {
				if err := x.recordFailed(&recs[i], "record", msg); err != nil {
					return err
				}
			}
		}
		return nil
	}
	h.rollback(mark)
	h.emitted = h.emitted[:emitMark]
	kind, why := "batch", ""
	switch {
	case trap != "":
		kind, why = "trap", "streamrt: guest trapped: "+trap
	case rc != 0:
		why = fmt.Sprintf("streamrt: guest failed the batch: %s returned %d", abi.ExportProcess, rc)
	}
	if len(recs) > 1 {
		for i := range recs {
			if err := x.runBatch(recs[i : i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	msg, ok := h.failed[0]
	if !ok {
		msg = h.batchMsg
	}
	switch {
	case why == "":
	case msg == "":
		msg = why
	default:
		msg += " (" + why + ")"
	}
	return x.recordFailed(&recs[0], kind, msg)
}

// call runs streamrt_process on enc. A panic that escapes the SDK, which
// on the host would trap the instance, is returned as trap, and the SDK is
// reset as the host replaces a trapped instance.
func (x *Harness) call(timestamps []int64, enc []byte) (rc int32, trap string) {
	h := x.h
	h.begin(timestamps)
	defer h.end()
	defer func() {
		if v := recover(); v != nil {
			trap = x.trapped(v)
		}
	}()
	buf := native.Guest.Buffer(int32(len(enc)))
	copy(buf, enc)
	return native.Guest.Process(buf[:len(enc)]), ""
}

// trapped logs a panic that escaped the SDK, which on the host traps the
// instance, and replaces the instance. It returns the trap's text.
func (x *Harness) trapped(v any) string {
	msg := fmt.Sprintf("panic: %v", v)
	x.h.Log(int32(streamrt.LevelError), "streamrttest: the guest trapped: "+msg+"\n"+string(debug.Stack()))
	x.attach()
	return msg
}

func (x *Harness) recordFailed(r *abi.Record, kind, msg string) *StoppedError {
	h := x.h
	x.failed = append(x.failed, Failure{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Kind: kind, Error: msg})
	switch h.policy {
	case Skip:
		return nil
	case Fail:
		return &StoppedError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Reason: msg}
	}
	hs := append(slices.Clone(r.Headers),
		streamrt.Header{Key: "streamrt.error", Value: []byte(msg)},
		streamrt.Header{Key: "streamrt.error.kind", Value: []byte(kind)},
		streamrt.Header{Key: "streamrt.stage", Value: []byte(h.stage)},
		streamrt.Header{Key: "streamrt.module.version", Value: []byte("streamrttest")},
		streamrt.Header{Key: "streamrt.source.topic", Value: []byte(r.Topic)},
		streamrt.Header{Key: "streamrt.source.partition", Value: []byte(strconv.Itoa(int(r.Partition)))},
		streamrt.Header{Key: "streamrt.source.offset", Value: []byte(strconv.FormatInt(r.Offset, 10))},
	)
	h.emitted = append(h.emitted, emitted{out: -1, msg: Message{Key: r.Key, Value: r.Value, Headers: hs, Timestamp: r.Timestamp}})
	return nil
}

// Output returns the records produced to output so far, in order. The
// messages' slices are the harness's: read them, do not modify them.
func (x *Harness) Output(output string) []Message {
	x.tb.Helper()
	i := slices.Index(x.h.outputs, output)
	if i < 0 {
		x.tb.Fatalf("streamrttest: no output %q declared", output)
	}
	return x.messages(i)
}

// DeadLetters returns the records the DeadLetter policy produced so far:
// each failed input record with its headers and, after them,
// streamrt.error, streamrt.error.kind, streamrt.stage,
// streamrt.module.version ("streamrttest"), streamrt.source.topic,
// streamrt.source.partition and streamrt.source.offset.
func (x *Harness) DeadLetters() []Message { return x.messages(-1) }

func (x *Harness) messages(out int) []Message {
	var ms []Message
	for _, e := range x.h.emitted {
		if e.out == out {
			ms = append(ms, e.msg)
		}
	}
	return ms
}

// Failures returns the records the error policy handled so far, whatever
// the policy.
func (x *Harness) Failures() []Failure { return slices.Clone(x.failed) }

// Logs returns what the stage logged so far, SDK messages included.
func (x *Harness) Logs() []Log { return slices.Clone(x.h.logs) }

// StreamTime returns the task's stream time: the highest timestamp fed so
// far, or -1.
func (x *Harness) StreamTime() int64 { return x.h.streamTime }

func (x *Harness) store(name string) *store {
	x.tb.Helper()
	s, _ := x.h.store(name)
	if s == nil {
		x.tb.Fatalf("streamrttest: no store or table %q declared", name)
	}
	return s
}

// Get returns the value under key in a store or table, or found false.
// The value is a copy.
func (x *Harness) Get(store string, key []byte) (value []byte, found bool) {
	x.tb.Helper()
	v, ok := x.store(store).data[string(key)]
	return bytes.Clone(v), ok
}

// Entries returns a store's or table's entries in key order, copied.
func (x *Harness) Entries(store string) []Entry {
	x.tb.Helper()
	return x.store(store).entries()
}

// Set puts value under key in a store or table, as earlier records or the
// table's topic would have: it is how a test fills a table. A nil value
// deletes the key. Set copies its arguments.
func (x *Harness) Set(store string, key, value []byte) {
	x.tb.Helper()
	s := x.store(store)
	if value == nil {
		delete(s.data, string(key))
		return
	}
	s.data[string(key)] = bytes.Clone(value)
}

// Query calls the stage's query handler, as the host does once it has
// routed req: every store and table is readable, writes fail with
// streamrt.ErrReadOnly and emits with streamrt.ErrNotAllowed. The
// harness's stores are not partitioned: every partition sees all of them.
// A module without a query handler answers 501. A handler that gives no
// answer gets the host's 500 with a JSON error.
func (x *Harness) Query(req QueryRequest) streamrt.Response {
	h := x.h
	q := abi.QueryRequest{Partition: req.Partition, Method: req.Method, Route: req.Route, Path: req.Path,
		RawQuery: req.RawQuery, Body: req.Body}
	if q.Method == "" {
		q.Method = "GET"
	}
	for _, k := range slices.Sorted(maps.Keys(req.Params)) {
		q.Params = append(q.Params, abi.Param{Name: k, Value: req.Params[k]})
	}
	enc := abi.AppendQueryRequest(nil, &q)
	h.begin(nil)
	h.querying, h.response = true, nil
	rc, trap := func() (rc int32, trap string) {
		defer func() {
			if v := recover(); v != nil {
				trap = x.trapped(v)
			}
		}()
		buf := native.Guest.Buffer(int32(len(enc)))
		copy(buf, enc)
		return native.Guest.Query(buf[:len(enc)]), ""
	}()
	h.querying = false
	h.end()
	if h.response != nil && trap == "" {
		return *h.response
	}
	why := "returned without responding"
	switch {
	case trap != "":
		why = "streamrt: guest trapped: " + trap
	case rc != 0:
		why = fmt.Sprintf("%s returned %d", abi.ExportQuery, rc)
	}
	// The host's answer to a query that fails: 500, its error in JSON.
	msg := fmt.Sprintf("query handler of stage %q: %s", h.stage, why)
	return streamrt.Response{Status: 500, ContentType: "application/json",
		Body: append(append([]byte(`{"error":`), strconv.Quote(msg)...), '}')}
}
