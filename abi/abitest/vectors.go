// Package abitest reads the golden vectors in abi/testdata, so that the host,
// the Go SDK and any other implementation check their encoders and decoders
// against the same bytes.
//
// A vector file is line oriented. Blank lines and lines starting with # are
// ignored. Each vector starts with "vector NAME" and ends with "end":
//
//	vector two-records
//	kind batch                     # batch | headers | entries | query
//	stream_time 1700000000500      # batch only
//	topics clicks orders           # batch only: the topic table in order
//	record topic=0 partition=3 offset=42 timestamp=1700000000000 key=686f6d65 value=null
//	header key=7472616365 value=01ff
//	entry key=61 value=31          # entries only
//
// An emits vector holds an emit_batch buffer, one emit line per entry; the
// header lines after an emit line make up its header list, and
// headers=empty gives it an empty list (a count of 0) rather than none:
//
//	vector two-emits
//	kind emits
//	emit output=0 rec=3 ts=-1 key=6b value=null
//	header key=61 value=31
//	emit output=1 rec=-1 ts=1700000000000 key= value= headers=empty
//	encoded 0000000003000000...
//	end
//
// A query vector holds one query request:
//
//	vector genre-chart
//	kind query
//	partition 3
//	method GET
//	route /charts/genre/{genre}
//	path /charts/genre/rock
//	raw_query limit=5              # the rest of the line; may be empty
//	param name=67656e7265 value=726f636b
//	body 7b7d
//	encoded 0200000000...
//	end
//
// Bytes are lower-case hex; "null" is an absent value, and an empty hex string
// is an empty one. A header line belongs to the record before it (or, for kind
// headers, to the list itself).
package abitest

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/streamrt/streamrt/abi"
)

// Vector is one golden vector.
type Vector struct {
	File    string
	Line    int // line of the "vector" line
	Name    string
	Kind    string // "batch", "headers", "entries", "query" or "emits"
	Batch   abi.Batch
	Query   abi.QueryRequest
	Headers []abi.Header
	Entries [][2][]byte
	Emits   []abi.Emit
	Encoded []byte

	// emitHeaders are the header lines of each emit, and emptyList says
	// which emits have an empty header list; Parse encodes them into
	// Emits[i].Headers at the vector's end.
	emitHeaders [][]abi.Header
	emptyList   []bool
}

// Load reads every *.vec file in dir.
func Load(dir string) ([]Vector, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.vec"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("abitest: no *.vec files in %s", dir)
	}
	var all []Vector
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		vs, err := Parse(fh, f)
		fh.Close()
		if err != nil {
			return nil, err
		}
		all = append(all, vs...)
	}
	return all, nil
}

// Parse reads vectors from r; file names r in errors.
func Parse(r io.Reader, file string) ([]Vector, error) {
	var (
		out  []Vector
		cur  *Vector
		line int
	)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...))
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.Index(text, "#"); i >= 0 {
			text = text[:i]
		}
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		if cur == nil && fields[0] != "vector" {
			return nil, fail("%q outside a vector", fields[0])
		}
		switch fields[0] {
		case "vector":
			if cur != nil {
				return nil, fail("vector %q not ended", cur.Name)
			}
			if len(fields) != 2 {
				return nil, fail("want: vector NAME")
			}
			cur = &Vector{File: file, Line: line, Name: fields[1]}
		case "kind":
			cur.Kind = fields[1]
		case "partition":
			p, err := strconv.ParseInt(fields[1], 10, 32)
			if err != nil {
				return nil, fail("partition: %v", err)
			}
			cur.Query.Partition = int32(p)
		case "method", "route", "path", "raw_query":
			text := strings.Join(fields[1:], " ")
			switch fields[0] {
			case "method":
				cur.Query.Method = text
			case "route":
				cur.Query.Route = text
			case "path":
				cur.Query.Path = text
			default:
				cur.Query.RawQuery = text
			}
		case "param":
			kv, err := pairs(fields[1:])
			if err != nil {
				return nil, fail("%v", err)
			}
			name, err1 := bytesOf(kv["name"], false)
			value, err2 := bytesOf(kv["value"], false)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fail("param: %v", err)
			}
			cur.Query.Params = append(cur.Query.Params, abi.Param{Name: string(name), Value: string(value)})
		case "body":
			b, err := hex.DecodeString(strings.Join(fields[1:], ""))
			if err != nil {
				return nil, fail("body: %v", err)
			}
			cur.Query.Body = b
		case "stream_time":
			v, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return nil, fail("stream_time: %v", err)
			}
			cur.Batch.StreamTime = v
		case "topics":
			cur.Batch.Topics = append([]string(nil), fields[1:]...)
		case "record":
			kv, err := pairs(fields[1:])
			if err != nil {
				return nil, fail("%v", err)
			}
			rec, err := record(kv, cur.Batch.Topics)
			if err != nil {
				return nil, fail("%v", err)
			}
			cur.Batch.Records = append(cur.Batch.Records, rec)
		case "header":
			kv, err := pairs(fields[1:])
			if err != nil {
				return nil, fail("%v", err)
			}
			key, err := bytesOf(kv["key"], false)
			if err != nil {
				return nil, fail("header key: %v", err)
			}
			val, err := bytesOf(kv["value"], true)
			if err != nil {
				return nil, fail("header value: %v", err)
			}
			h := abi.Header{Key: string(key), Value: val}
			if cur.Kind == "emits" {
				n := len(cur.emitHeaders)
				if n == 0 {
					return nil, fail("header before any emit")
				}
				cur.emitHeaders[n-1] = append(cur.emitHeaders[n-1], h)
			} else if cur.Kind == "headers" {
				cur.Headers = append(cur.Headers, h)
			} else if n := len(cur.Batch.Records); n > 0 {
				cur.Batch.Records[n-1].Headers = append(cur.Batch.Records[n-1].Headers, h)
			} else {
				return nil, fail("header before any record")
			}
		case "entry":
			kv, err := pairs(fields[1:])
			if err != nil {
				return nil, fail("%v", err)
			}
			k, err := bytesOf(kv["key"], false)
			if err != nil {
				return nil, fail("entry key: %v", err)
			}
			v, err := bytesOf(kv["value"], false)
			if err != nil {
				return nil, fail("entry value: %v", err)
			}
			cur.Entries = append(cur.Entries, [2][]byte{k, v})
		case "emit":
			kv, err := pairs(fields[1:])
			if err != nil {
				return nil, fail("%v", err)
			}
			e, err := emitEntry(kv)
			if err != nil {
				return nil, fail("%v", err)
			}
			cur.Emits = append(cur.Emits, e)
			cur.emitHeaders = append(cur.emitHeaders, nil)
			cur.emptyList = append(cur.emptyList, kv["headers"] == "empty")
		case "encoded":
			enc := ""
			if len(fields) > 1 {
				enc = fields[1]
			}
			b, err := hex.DecodeString(enc)
			if err != nil {
				return nil, fail("encoded: %v", err)
			}
			cur.Encoded = b
		case "end":
			switch cur.Kind {
			case "batch", "headers", "entries", "query":
			case "emits":
				for i, hs := range cur.emitHeaders {
					if len(hs) > 0 || cur.emptyList[i] {
						cur.Emits[i].Headers = abi.AppendHeaders(nil, hs)
					}
				}
				cur.emitHeaders, cur.emptyList = nil, nil
			default:
				return nil, fail("vector %q: unknown kind %q", cur.Name, cur.Kind)
			}
			out = append(out, *cur)
			cur = nil
		default:
			return nil, fail("unknown directive %q", fields[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fail("vector %q not ended", cur.Name)
	}
	return out, nil
}

// Encode returns the encoding of v's decoded form, to compare with v.Encoded.
func (v *Vector) Encode() []byte {
	switch v.Kind {
	case "batch":
		b := v.Batch
		b.Topics = append([]string(nil), b.Topics...)
		return abi.EncodeBatch(nil, &b)
	case "headers":
		return abi.AppendHeaders(nil, v.Headers)
	case "query":
		return abi.AppendQueryRequest(nil, &v.Query)
	case "emits":
		var out []byte
		for i := range v.Emits {
			out = abi.AppendEmit(out, &v.Emits[i])
		}
		return out
	default:
		var out []byte
		for _, e := range v.Entries {
			out = abi.AppendEntry(out, e[0], e[1])
		}
		return out
	}
}

func pairs(fields []string) (map[string]string, error) {
	kv := make(map[string]string, len(fields))
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("want key=value, got %q", f)
		}
		kv[k] = v
	}
	return kv, nil
}

func record(kv map[string]string, topics []string) (abi.Record, error) {
	var r abi.Record
	ti, err := strconv.Atoi(kv["topic"])
	if err != nil || ti < 0 || ti >= len(topics) {
		return r, fmt.Errorf("record topic %q: not an index into topics %v", kv["topic"], topics)
	}
	r.Topic = topics[ti]
	p, err := strconv.ParseInt(kv["partition"], 10, 32)
	if err != nil {
		return r, fmt.Errorf("record partition: %v", err)
	}
	r.Partition = int32(p)
	if r.Offset, err = strconv.ParseInt(kv["offset"], 10, 64); err != nil {
		return r, fmt.Errorf("record offset: %v", err)
	}
	if r.Timestamp, err = strconv.ParseInt(kv["timestamp"], 10, 64); err != nil {
		return r, fmt.Errorf("record timestamp: %v", err)
	}
	if r.Key, err = bytesOf(kv["key"], true); err != nil {
		return r, fmt.Errorf("record key: %v", err)
	}
	if r.Value, err = bytesOf(kv["value"], true); err != nil {
		return r, fmt.Errorf("record value: %v", err)
	}
	return r, nil
}

func emitEntry(kv map[string]string) (abi.Emit, error) {
	var e abi.Emit
	for _, f := range []struct {
		name string
		bits int
		dst  func(int64)
	}{
		{"output", 32, func(v int64) { e.Output = int32(v) }},
		{"rec", 32, func(v int64) { e.Rec = int32(v) }},
		{"ts", 64, func(v int64) { e.Timestamp = v }},
	} {
		v, err := strconv.ParseInt(kv[f.name], 10, f.bits)
		if err != nil {
			return e, fmt.Errorf("emit %s: %v", f.name, err)
		}
		f.dst(v)
	}
	var err error
	if e.Key, err = bytesOf(kv["key"], true); err != nil {
		return e, fmt.Errorf("emit key: %v", err)
	}
	if e.Value, err = bytesOf(kv["value"], true); err != nil {
		return e, fmt.Errorf("emit value: %v", err)
	}
	if h, ok := kv["headers"]; ok && h != "empty" {
		return e, fmt.Errorf("emit headers=%s: only headers=empty is known", h)
	}
	return e, nil
}

func bytesOf(s string, nullable bool) ([]byte, error) {
	if s == "null" {
		if !nullable {
			return nil, fmt.Errorf("null not allowed here")
		}
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}
