package streamrttest

// The conformance guest's interpreter, run natively on the harness: the
// same program as runtime/internal/wasm/testdata/guests/conformance (Go SDK),
// which the host's conformance tests run as Wasm, with its raw host
// functions bound to the harness's host instead of Wasm imports. Keep the
// two in step; conformance.txt's header specifies the commands.

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"unsafe"

	"github.com/streamrt/streamrt/abi"
	streamrt "github.com/streamrt/streamrt/sdk/go"
)

// A session is one run of a script: for a record, whose results are
// emitted, or for a query, whose results make up the answer's body.
type session struct {
	r *streamrt.Record // nil in a query
	q *streamrt.Query  // nil for a record

	// A query's answer, as the script builds it.
	status   int
	ctype    string
	body     []byte
	answered bool // raw-respond answered the query: results go to the log
}

func conformanceHandle(r *streamrt.Record) error {
	s := &session{r: r}
	return s.script(string(r.Value))
}

// query runs the script on the request body's first line. The Go SDK's
// query handler cannot fail, so a failed script is answered here as the
// Rust SDK answers a handler's Err: 500 with a JSON error.
func conformanceQuery(q *streamrt.Query) streamrt.Response {
	s := &session{q: q, status: 200, ctype: "text/plain"}
	script, _, _ := strings.Cut(string(q.Body), "\n")
	if err := s.script(script); err != nil {
		body := append([]byte(`{"error":`), strconv.Quote(err.Error())...)
		return streamrt.Response{Status: 500, ContentType: "application/json", Body: append(body, '}')}
	}
	return streamrt.Response{Status: s.status, ContentType: s.ctype, Body: s.body}
}

func (s *session) script(text string) error {
	for _, cmd := range strings.Split(text, ";") {
		cmd = strings.TrimSpace(cmd)
		if cmd == "" {
			continue
		}
		if inner, ok := strings.CutPrefix(cmd, "?"); ok {
			inner = strings.TrimSpace(inner)
			if err := s.run(inner); err != nil {
				if err := s.out(inner, []byte("error: "+err.Error())); err != nil {
					return err
				}
			}
			continue
		}
		if err := s.run(cmd); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) run(cmd string) error {
	args := strings.Fields(cmd)
	want := func(n int) error {
		if len(args) != n+1 {
			return fmt.Errorf("%s: want %d arguments, got %d", args[0], n, len(args)-1)
		}
		return nil
	}
	if strings.HasPrefix(args[0], "raw-") {
		// A raw command acts on the host directly: the records the SDK
		// holds in its emit buffer go first, so that the host sees the
		// script's effects in the order it made them.
		if err := streamrt.Flush(); err != nil {
			return err
		}
	}
	switch args[0] {
	case "put":
		if err := want(3); err != nil {
			return err
		}
		k, v, err := bytes2(args[2], args[3])
		if err != nil {
			return err
		}
		return streamrt.OpenStore(args[1]).Put(k, v)
	case "del":
		if err := want(2); err != nil {
			return err
		}
		k, err := bytesArg(args[2])
		if err != nil {
			return err
		}
		return streamrt.OpenStore(args[1]).Delete(k)
	case "get", "getsum":
		if err := want(2); err != nil {
			return err
		}
		k, err := bytesArg(args[2])
		if err != nil {
			return err
		}
		v, found, err := streamrt.OpenStore(args[1]).Get(k)
		if err != nil {
			return err
		}
		if args[0] == "get" {
			if !found {
				v = nil
			}
			return s.out(cmd, v)
		}
		text := "absent"
		if found {
			h := fnv.New32a()
			h.Write(v)
			text = fmt.Sprintf("len=%d fnv=%08x", len(v), h.Sum32())
		}
		return s.out(cmd, []byte(text))
	case "range", "scan":
		if err := want(3); err != nil {
			return err
		}
		start, err := arg(args[2])
		if err != nil {
			return err
		}
		end, err := arg(args[3])
		if err != nil {
			return err
		}
		it := streamrt.OpenStore(args[1]).Range(start, end)
		if args[0] == "range" {
			return s.listOut(cmd, it)
		}
		defer it.Close()
		n, size := 0, 0
		var first, last []byte
		for it.Next() {
			if n == 0 {
				first = append(first, it.Key()...)
			}
			last = append(last[:0], it.Key()...)
			n++
			size += len(it.Key()) + len(it.Value())
		}
		if err := it.Err(); err != nil {
			return err
		}
		text := fmt.Appendf(nil, "n=%d bytes=%d first=", n, size)
		text = append(append(append(text, first...), " last="...), last...)
		return s.out(cmd, text)
	case "prefix":
		if err := want(2); err != nil {
			return err
		}
		p, err := bytesArg(args[2])
		if err != nil {
			return err
		}
		return s.listOut(cmd, streamrt.OpenStore(args[1]).Prefix(p))
	case "fill":
		if err := want(4); err != nil {
			return err
		}
		prefix, err := bytesArg(args[2])
		if err != nil {
			return err
		}
		n, err1 := number(args[3])
		size, err2 := number(args[4])
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		st := streamrt.OpenStore(args[1])
		for i := range n {
			k := fmt.Appendf(append([]byte(nil), prefix...), "%04d", i)
			v := make([]byte, size)
			for j := range v {
				v[j] = byte('a' + (i+j)%26)
			}
			if err := st.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	case "rangeput":
		if err := want(3); err != nil {
			return err
		}
		st := streamrt.OpenStore(args[1])
		it := st.Range(nil, nil)
		if err := it.Err(); err != nil {
			return err
		}
		k, v, err := bytes2(args[2], args[3])
		if err != nil {
			return err
		}
		if err := st.Put(k, v); err != nil {
			return err
		}
		return s.listOut(cmd, it)
	case "emit":
		if len(args) < 4 {
			return fmt.Errorf("emit: want at least 3 arguments, got %d", len(args)-1)
		}
		key, err := arg(args[2])
		if err != nil {
			return err
		}
		value, err := arg(args[3])
		if err != nil {
			return err
		}
		var opts []streamrt.EmitOption
		var hs []streamrt.Header
		for _, a := range args[4:] {
			if h, ok := strings.CutPrefix(a, "h:"); ok {
				name, v, ok := strings.Cut(h, "=")
				if !ok {
					return fmt.Errorf("emit: bad header %s", a)
				}
				n, err := bytesArg(name)
				if err != nil {
					return err
				}
				hv, err := arg(v)
				if err != nil {
					return err
				}
				hs = append(hs, streamrt.Header{Key: string(n), Value: hv})
			} else if ts, ok := strings.CutPrefix(a, "ts="); ok {
				ms, err := strconv.ParseInt(ts, 10, 64)
				if err != nil {
					return fmt.Errorf("emit: bad timestamp %s", a)
				}
				opts = append(opts, streamrt.WithTimestamp(ms))
			} else {
				return fmt.Errorf("emit: bad argument %s", a)
			}
		}
		if len(hs) > 0 {
			opts = append(opts, streamrt.WithHeaders(hs...))
		}
		return streamrt.Emit(args[1], key, value, opts...)
	case "emitn":
		if err := want(4); err != nil {
			return err
		}
		prefix, err := bytesArg(args[2])
		if err != nil {
			return err
		}
		n, err1 := number(args[3])
		size, err2 := number(args[4])
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		for i := range n {
			k := fmt.Appendf(append([]byte(nil), prefix...), "%04d", i)
			if err := streamrt.Emit(args[1], k, bytes.Repeat([]byte{byte('a' + i%26)}, size)); err != nil {
				return err
			}
		}
		return nil
	case "echo":
		if err := want(0); err != nil {
			return err
		}
		r, err := s.record(cmd)
		if err != nil {
			return err
		}
		return streamrt.Emit("out", r.Key, r.Value, streamrt.WithHeaders(r.Headers...))
	case "meta":
		if err := want(0); err != nil {
			return err
		}
		r, err := s.record(cmd)
		if err != nil {
			return err
		}
		return s.out(cmd, fmt.Appendf(nil, "topic=%s partition=%d offset=%d ts=%d headers=%d", r.Topic, r.Partition, r.Offset, r.Timestamp, len(r.Headers)))
	case "time":
		if err := want(0); err != nil {
			return err
		}
		if _, err := s.record(cmd); err != nil {
			return err
		}
		return s.out(cmd, strconv.AppendInt(nil, streamrt.StreamTime(), 10))
	case "log":
		if len(args) < 2 {
			return errors.New("log: want a level")
		}
		level, err := strconv.ParseInt(args[1], 10, 32)
		if err != nil {
			return fmt.Errorf("log: bad level %s", args[1])
		}
		msg, err := text(args[2:])
		if err != nil {
			return err
		}
		streamrt.Log(streamrt.Level(level), msg)
		return nil
	case "fail":
		msg, err := text(args[1:])
		if err != nil {
			return err
		}
		return errors.New(msg)
	case "panic":
		msg, err := text(args[1:])
		if err != nil {
			return err
		}
		panic(msg)
	case "raw-store", "raw-output":
		if err := want(1); err != nil {
			return err
		}
		open := storeHandle
		if args[0] == "raw-output" {
			open = outputHandle
		}
		h, err := open(args[1])
		if err != nil {
			return err
		}
		if h >= 0 {
			return s.out(cmd, []byte("ok"))
		}
		return s.outCode(cmd, h)
	case "raw-get":
		if err := want(3); err != nil {
			return err
		}
		h, err := storeHandle(args[1])
		if err != nil {
			return err
		}
		key, err := arg(args[2])
		if err != nil {
			return err
		}
		n, err := number(args[3])
		if err != nil {
			return err
		}
		buf := []byte(strings.Repeat("*", n))
		kp, kl := rawArg(key)
		rc := hostStoreGet(h, kp, kl, unsafe.SliceData(buf), int32(len(buf)))
		return s.out(cmd, append(fmt.Appendf(nil, "rc=%d buf=", rc), buf...))
	case "raw-range":
		if err := want(4); err != nil {
			return err
		}
		h, err := storeHandle(args[1])
		if err != nil {
			return err
		}
		start, err1 := arg(args[2])
		end, err2 := arg(args[3])
		capacity, err3 := number(args[4])
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		sp, sl := rawArg(start)
		ep, el := rawArg(end)
		it := hostStoreRange(h, sp, sl, ep, el)
		if it < 0 {
			return s.out(cmd, fmt.Appendf(nil, "range=%d", it))
		}
		buf := []byte(strings.Repeat("*", capacity))
		var rcs []string
		for {
			rc := hostRangeNext(it, unsafe.SliceData(buf), int32(capacity))
			rcs = append(rcs, strconv.Itoa(int(rc)))
			if rc <= 0 || int(rc) > capacity || len(rcs) >= 10_000 {
				break
			}
		}
		closed := hostRangeClose(it)
		again := hostRangeClose(it)
		return s.out(cmd, fmt.Appendf(nil, "next=%s close=%d again=%d", strings.Join(rcs, ","), closed, again))
	case "raw-next":
		if err := want(1); err != nil {
			return err
		}
		h, err := integer(args[1])
		if err != nil {
			return err
		}
		var buf [16]byte
		return s.outCode(cmd, hostRangeNext(h, &buf[0], int32(len(buf))))
	case "raw-close":
		if err := want(1); err != nil {
			return err
		}
		h, err := integer(args[1])
		if err != nil {
			return err
		}
		return s.outCode(cmd, hostRangeClose(h))
	case "raw-put":
		if err := want(3); err != nil {
			return err
		}
		h, err := storeHandle(args[1])
		if err != nil {
			return err
		}
		key, err1 := arg(args[2])
		value, err2 := arg(args[3])
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		kp, kl := rawArg(key)
		vp, vl := rawArg(value)
		return s.outCode(cmd, hostStorePut(h, s.index(), kp, kl, vp, vl))
	case "raw-del":
		if err := want(2); err != nil {
			return err
		}
		h, err := storeHandle(args[1])
		if err != nil {
			return err
		}
		key, err := arg(args[2])
		if err != nil {
			return err
		}
		kp, kl := rawArg(key)
		return s.outCode(cmd, hostStoreDelete(h, s.index(), kp, kl))
	case "raw-emit", "raw-emit-hdr":
		if err := want(2); err != nil {
			return err
		}
		h, err := outputHandle(args[1])
		if err != nil {
			return err
		}
		rec, hdr := s.index(), []byte(nil)
		if args[0] == "raw-emit" {
			if rec, err = s.recordIndex(args[2]); err != nil {
				return err
			}
		} else if hdr, err = unhex(args[2]); err != nil {
			return err
		}
		k, v := []byte("k"), []byte("v")
		return s.outCode(cmd, hostEmit(h, rec, &k[0], 1, &v[0], 1, unsafe.SliceData(hdr), int32(len(hdr)), -1))
	case "raw-emits":
		buf, err := s.emitBuffer(args[1:])
		if err != nil {
			return err
		}
		return s.outCode(cmd, hostEmitBatch(unsafe.SliceData(buf), int32(len(buf))))
	case "raw-respond":
		if err := want(3); err != nil {
			return err
		}
		status, err1 := integer(args[1])
		ctype, err2 := arg(args[2])
		body, err3 := arg(args[3])
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		cp, cl := rawArg(ctype)
		bp, bl := rawArg(body)
		rc := hostRespond(status, cp, cl, bp, bl)
		err := s.outCode(cmd, rc)
		if rc == 0 && s.q != nil {
			s.answered = true
		}
		return err
	case "raw-error":
		if len(args) < 2 {
			return errors.New("raw-error: want a record")
		}
		rec, err := s.recordIndex(args[1])
		if err != nil {
			return err
		}
		msg, err := text(args[2:])
		if err != nil {
			return err
		}
		m := []byte(msg)
		return s.outCode(cmd, hostRecordError(rec, unsafe.SliceData(m), int32(len(m))))
	}
	if s.q != nil {
		return s.runQuery(cmd, args)
	}
	return fmt.Errorf("unknown command %s", args[0])
}

// runQuery runs the commands only a query has.
func (s *session) runQuery(cmd string, args []string) error {
	want := func(n int) error {
		if len(args) != n+1 {
			return fmt.Errorf("%s: want %d arguments, got %d", args[0], n, len(args)-1)
		}
		return nil
	}
	q := s.q
	switch args[0] {
	case "status":
		if err := want(1); err != nil {
			return err
		}
		// A u16, as the Rust SDK's Response has it.
		n, err := strconv.ParseUint(args[1], 10, 16)
		if err != nil {
			return fmt.Errorf("bad number %s", args[1])
		}
		s.status = int(n)
		return nil
	case "ctype":
		if err := want(1); err != nil {
			return err
		}
		b, err := bytesArg(args[1])
		if err != nil {
			return err
		}
		s.ctype = string(b)
		return nil
	case "request":
		if err := want(0); err != nil {
			return err
		}
		return s.out(cmd, fmt.Appendf(nil, "partition=%d method=%s route=%s path=%s", q.Partition, q.Method, q.Route, q.Path))
	case "body":
		if err := want(0); err != nil {
			return err
		}
		return s.out(cmd, append([]byte{}, q.Body...))
	case "param":
		if err := want(1); err != nil {
			return err
		}
		return s.out(cmd, []byte(q.Param(args[1])))
	case "query":
		if err := want(1); err != nil {
			return err
		}
		vs, ok := q.Values()[args[1]]
		if !ok {
			return s.out(cmd, []byte("absent"))
		}
		return s.out(cmd, []byte(strings.Join(vs, ",")))
	}
	return fmt.Errorf("unknown command %s", args[0])
}

// out gives a command's result: for a record, emitted to output "out",
// keyed by the command; in a query, the line "CMD: VALUE" ("CMD (null)"),
// added to the answer's body, or logged at info once raw-respond answered.
func (s *session) out(cmd string, value []byte) error {
	if s.q == nil {
		return streamrt.Emit("out", []byte(cmd), value)
	}
	line := []byte(cmd)
	if value == nil {
		line = append(line, " (null)"...)
	} else {
		line = append(append(line, ": "...), value...)
	}
	if s.answered {
		streamrt.Log(streamrt.LevelInfo, string(line))
		return nil
	}
	s.body = append(append(s.body, line...), '\n')
	return nil
}

func (s *session) outCode(cmd string, rc int32) error {
	return s.out(cmd, strconv.AppendInt(nil, int64(rc), 10))
}

// listOut gives a range as "k=v,k=v".
func (s *session) listOut(cmd string, it *streamrt.Iterator) error {
	defer it.Close()
	text := []byte{}
	for it.Next() {
		if len(text) > 0 {
			text = append(text, ',')
		}
		text = append(append(append(text, it.Key()...), '='), it.Value()...)
	}
	if err := it.Err(); err != nil {
		return err
	}
	return s.out(cmd, text)
}

func storeHandle(name string) (int32, error) {
	if n, ok := strings.CutPrefix(name, "#"); ok {
		return integer(n)
	}
	b, err := bytesArg(name)
	if err != nil {
		return 0, err
	}
	return hostStoreOpen(unsafe.SliceData(b), int32(len(b))), nil
}

func outputHandle(name string) (int32, error) {
	if n, ok := strings.CutPrefix(name, "#"); ok {
		return integer(n)
	}
	b, err := bytesArg(name)
	if err != nil {
		return 0, err
	}
	return hostOutputOpen(unsafe.SliceData(b), int32(len(b))), nil
}

// emitBuffer builds raw-emits' buffer from its SPEC arguments: O/REC or
// O/REC/HEX an entry (key "k", value "v", the inherited timestamp, the
// header list HEX or none), +HEX raw bytes, -N the last N bytes cut off.
func (s *session) emitBuffer(specs []string) ([]byte, error) {
	var buf []byte
	for _, spec := range specs {
		switch {
		case strings.HasPrefix(spec, "+"):
			b, err := unhex(spec[1:])
			if err != nil {
				return nil, err
			}
			buf = append(buf, b...)
		case strings.HasPrefix(spec, "-"):
			n, err := number(spec[1:])
			if err != nil {
				return nil, err
			}
			if n > len(buf) {
				return nil, fmt.Errorf("raw-emits: cannot cut %d of %d bytes", n, len(buf))
			}
			buf = buf[:len(buf)-n]
		default:
			parts := strings.Split(spec, "/")
			if len(parts) < 2 || len(parts) > 3 {
				return nil, fmt.Errorf("raw-emits: bad entry %s", spec)
			}
			h, err := outputHandle(parts[0])
			if err != nil {
				return nil, err
			}
			rec, err := s.recordIndex(parts[1])
			if err != nil {
				return nil, err
			}
			var hdr []byte
			if len(parts) == 3 {
				if hdr, err = unhex(parts[2]); err != nil {
					return nil, err
				}
			}
			buf = abi.AppendEmit(buf, &abi.Emit{Output: h, Rec: rec, Timestamp: abi.InheritTimestamp,
				Key: []byte("k"), Value: []byte("v"), Headers: hdr})
		}
	}
	return buf, nil
}

// recordIndex is a REC argument: "cur" is the record's own index (-1, no
// record, in a query).
func (s *session) recordIndex(a string) (int32, error) {
	if a == "cur" {
		return s.index(), nil
	}
	return integer(a)
}

func (s *session) index() int32 {
	if s.r == nil {
		return -1
	}
	return int32(s.r.Index())
}

// record is the session's record, for the commands that need one.
func (s *session) record(cmd string) (*streamrt.Record, error) {
	if s.r == nil {
		return nil, fmt.Errorf("%s: no record in a query", cmd)
	}
	return s.r, nil
}

// rawArg passes b as (ptr, len), with len -1 for nil (null).
func rawArg(b []byte) (*byte, int32) {
	if b == nil {
		return nil, -1
	}
	return unsafe.SliceData(b), int32(len(b))
}

// arg decodes an argument: "~" is null, "-" is empty, anything else is
// percent-decoded.
func arg(s string) ([]byte, error) {
	switch s {
	case "~":
		return nil, nil
	case "-":
		return []byte{}, nil
	}
	return unescape(s)
}

// bytesArg is arg where null is not possible: "~" is empty too.
func bytesArg(s string) ([]byte, error) {
	b, err := arg(s)
	if b == nil && err == nil {
		b = []byte{}
	}
	return b, err
}

func bytes2(a, b string) ([]byte, []byte, error) {
	x, err1 := bytesArg(a)
	y, err2 := bytesArg(b)
	return x, y, errors.Join(err1, err2)
}

// text is the rest of a command as one percent-decoded text.
func text(args []string) (string, error) {
	b, err := unescape(strings.Join(args, " "))
	return string(b), err
}

func unescape(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			out = append(out, s[i])
			continue
		}
		if i+3 > len(s) {
			return nil, fmt.Errorf("bad escape in %s", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("bad escape in %s", s)
		}
		out = append(out, byte(v))
		i += 2
	}
	return out, nil
}

func unhex(s string) ([]byte, error) {
	if len(s)%2 != 0 {
		return nil, fmt.Errorf("bad hex %s", s)
	}
	out := make([]byte, 0, len(s)/2)
	for i := 0; i < len(s); i += 2 {
		v, err := strconv.ParseUint(s[i:i+2], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("bad hex %s", s)
		}
		out = append(out, byte(v))
	}
	return out, nil
}

func number(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, fmt.Errorf("bad number %s", s)
	}
	return int(n), nil
}

func integer(s string) (int32, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("bad number %s", s)
	}
	return int32(n), nil
}

// The raw host functions, bound to the host of the harness that runs the
// transcript, with the Wasm imports' signatures: a length of -1 is null.

var rawHost *host

func rawSlice(p *byte, n int32) []byte {
	switch {
	case n < 0:
		return nil
	case n == 0:
		return []byte{}
	}
	return unsafe.Slice(p, n)
}

func rawBuf(p *byte, n int32) []byte {
	if n <= 0 {
		return []byte{}
	}
	return unsafe.Slice(p, n)[:0]
}

func hostStoreOpen(name *byte, nameLen int32) int32 {
	return rawHost.StoreOpen(string(rawSlice(name, nameLen)))
}

func hostStoreGet(store int32, key *byte, keyLen int32, buf *byte, bufCap int32) int32 {
	return rawHost.StoreGet(store, rawSlice(key, keyLen), rawBuf(buf, bufCap))
}

func hostStorePut(store, rec int32, key *byte, keyLen int32, val *byte, valLen int32) int32 {
	return rawHost.StorePut(store, rec, rawSlice(key, keyLen), rawSlice(val, valLen))
}

func hostStoreDelete(store, rec int32, key *byte, keyLen int32) int32 {
	return rawHost.StoreDelete(store, rec, rawSlice(key, keyLen))
}

func hostStoreRange(store int32, start *byte, startLen int32, end *byte, endLen int32) int32 {
	return rawHost.StoreRange(store, rawSlice(start, startLen), rawSlice(end, endLen))
}

func hostRangeNext(iter int32, buf *byte, bufCap int32) int32 {
	return rawHost.RangeNext(iter, rawBuf(buf, bufCap))
}

func hostRangeClose(iter int32) int32 { return rawHost.RangeClose(iter) }

func hostOutputOpen(name *byte, nameLen int32) int32 {
	return rawHost.OutputOpen(string(rawSlice(name, nameLen)))
}

func hostEmit(output, rec int32, key *byte, keyLen int32, val *byte, valLen int32, hdr *byte, hdrLen int32, ts int64) int32 {
	return rawHost.Emit(output, rec, rawSlice(key, keyLen), rawSlice(val, valLen), rawSlice(hdr, hdrLen), ts)
}

func hostEmitBatch(buf *byte, bufLen int32) int32 { return rawHost.EmitBatch(rawSlice(buf, bufLen)) }

func hostRecordError(rec int32, msg *byte, msgLen int32) int32 {
	return rawHost.RecordError(rec, string(rawSlice(msg, msgLen)))
}

func hostRespond(status int32, ctype *byte, ctypeLen int32, body *byte, bodyLen int32) int32 {
	return rawHost.Respond(status, string(rawSlice(ctype, ctypeLen)), rawSlice(body, bodyLen))
}
