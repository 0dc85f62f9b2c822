package abi

import (
	"encoding/binary"
	"errors"
)

// Query handlers (optional). A guest that serves HTTP routes exports
// ExportQuery; the host writes one request into the guest's buffer (from
// ExportBuffer), calls ExportQuery, and the guest answers through
// FuncRespond before it returns.
const (
	// ExportQuery is func(ptr, len i32) i32: handle the query request
	// encoded at ptr..ptr+len. 0 means the guest answered (or, if it never
	// called respond, that it has no answer: the host replies 500); any
	// other value is a failed handler, answered 500.
	ExportQuery = "streamrt_query"
	// FuncRespond is (status, ctype_ptr, ctype_len, body_ptr, body_len) ->
	// i32: the query's HTTP answer. Allowed once per streamrt_query call,
	// and only there (else ERR_NOT_ALLOWED).
	FuncRespond = "respond"
)

// MinStatus and MaxStatus bound the HTTP status a guest may respond with.
const (
	MinStatus = 200
	MaxStatus = 599
)

// Param is one path parameter of a query request.
type Param struct {
	Name, Value string
}

// QueryRequest is one HTTP request for a guest query handler:
//
//	request := partition:i32 method:str route:str path:str raw_query:str
//	           nparams:u32 param{nparams} body_len:u32 body
//	param   := name:str value:str
//	str     := len:u32 bytes
//
// Partition is the store partition the host routed the request to, or -1
// for a route without a store.
type QueryRequest struct {
	Partition int32
	Method    string
	Route     string // the route's path pattern, as configured
	Path      string // the request's path
	RawQuery  string // the query string, without '?'
	Params    []Param
	Body      []byte
}

// AppendQueryRequest appends q's encoding to dst.
func AppendQueryRequest(dst []byte, q *QueryRequest) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(q.Partition))
	for _, s := range []string{q.Method, q.Route, q.Path, q.RawQuery} {
		dst = appendStr(dst, s)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(q.Params)))
	for _, p := range q.Params {
		dst = appendStr(dst, p.Name)
		dst = appendStr(dst, p.Value)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(q.Body)))
	return append(dst, q.Body...)
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// DecodeQueryRequest decodes a query request. Body aliases buf.
func DecodeQueryRequest(buf []byte) (*QueryRequest, error) {
	r := &BatchReader{buf: buf}
	q := &QueryRequest{}
	fail := func(what string, err error) (*QueryRequest, error) {
		return nil, &DecodeError{What: "query " + what, Offset: r.pos, Err: err}
	}
	p, err := r.u32()
	if err != nil {
		return fail("partition", err)
	}
	q.Partition = int32(p)
	for _, f := range []struct {
		what string
		dst  *string
	}{{"method", &q.Method}, {"route", &q.Route}, {"path", &q.Path}, {"raw query", &q.RawQuery}} {
		b, err := r.bytes32(true)
		if err != nil {
			return fail(f.what, err)
		}
		*f.dst = string(b)
	}
	n, err := r.u32()
	if err != nil {
		return fail("parameter count", err)
	}
	if int64(n)*8 > int64(len(buf)-r.pos) {
		return fail("parameters", ErrTruncated)
	}
	for i := uint32(0); i < n; i++ {
		name, err := r.bytes32(true)
		if err != nil {
			return fail("parameter name", err)
		}
		value, err := r.bytes32(true)
		if err != nil {
			return fail("parameter value", err)
		}
		q.Params = append(q.Params, Param{Name: string(name), Value: string(value)})
	}
	if q.Body, err = r.bytes32(true); err != nil {
		return fail("body", err)
	}
	if r.pos != len(buf) {
		return fail("end", errTrailing)
	}
	return q, nil
}

var errTrailing = errors.New("trailing bytes")
