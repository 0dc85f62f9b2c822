package streamrt

import (
	"errors"
	"net/url"
	"runtime/debug"
	"strconv"

	"github.com/streamrt/streamrt/abi"
)

// Query is one HTTP request to a route the app declares under query.routes
// and names this stage for. The host has already routed it to the
// instance that owns its key's partition.
type Query struct {
	Method string
	// Route is the route's path pattern as configured, such as
	// /charts/genre/{genre}: a handler serving several routes tells them
	// apart by it.
	Route string
	Path  string
	// Partition is the store partition the request was routed to, or -1
	// for a route without a store.
	Partition int32
	Body      []byte

	rawQuery string
	params   []abi.Param
}

// Param returns the value of the path parameter name, or "".
func (q *Query) Param(name string) string {
	for _, p := range q.params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// Values parses the request's query string. Malformed pairs are dropped.
func (q *Query) Values() url.Values {
	v, _ := url.ParseQuery(q.rawQuery)
	return v
}

// Response is a query handler's answer. A zero Status means 200; a Status
// outside 200–599 is answered 500.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

// HandleQuery registers fn to answer the app's routes that name this
// stage. Call it at most once, from func init(), beside HandleRecord or
// HandleBatch; a second call panics.
//
// Inside fn, stores and tables opened with OpenStore and OpenTable are
// read-only views at the request's partition (global tables whole): Get,
// Range and Lookup work, Put and Delete fail with ErrReadOnly, and Emit
// fails with ErrNotAllowed. A panic in fn is answered 500 with the panic's
// text as a JSON error.
func HandleQuery(fn func(q *Query) Response) {
	if fn == nil {
		panic("streamrt: HandleQuery with a nil handler")
	}
	if inst.onQuery != nil {
		panic("streamrt: a query handler is already registered: call HandleQuery at most once, from func init()")
	}
	inst.onQuery = fn
}

var errNoQueryHandler = errors.New("this module registers no query handler (streamrt.HandleQuery)")

// query backs the streamrt_query export.
func query(buf []byte) int32 {
	req, err := abi.DecodeQueryRequest(buf)
	if err != nil {
		return respondError(500, err)
	}
	if inst.onQuery == nil {
		return respondError(501, errNoQueryHandler)
	}
	q := Query{Method: req.Method, Route: req.Route, Path: req.Path, Partition: req.Partition,
		Body: req.Body, rawQuery: req.RawQuery, params: req.Params}
	inst.values.reset()
	resp, err := callQuery(inst.onQuery, &q)
	inst.endIterators()
	if err != nil {
		return respondError(500, err)
	}
	if resp.Status == 0 {
		resp.Status = 200
	}
	if rc := respond(int32(resp.Status), resp.ContentType, resp.Body); rc < 0 {
		return respondError(500, hostError(abi.FuncRespond, "status "+strconv.Itoa(resp.Status), rc))
	}
	return 0
}

func callQuery(fn func(*Query) Response, q *Query) (resp Response, err error) {
	defer func() {
		if v := recover(); v != nil {
			pe := &PanicError{Value: v, Stack: debug.Stack()}
			logMessage(abi.LevelError, "streamrt: query handler: "+pe.Error()+"\n"+string(pe.Stack))
			err = pe
		}
	}()
	return fn(q), nil
}

// respondError answers status with {"error": err's text}.
func respondError(status int32, err error) int32 {
	body := append([]byte(`{"error":`), strconv.Quote(err.Error())...)
	body = append(body, '}')
	respond(status, "application/json", body)
	return 0
}
