//go:build !wasip1

package streamrt

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/streamrt/streamrt/abi"
)

func TestQueryHandlerReadsStoresAndAnswers(t *testing.T) {
	f := newFakeHost(FakeConfig{Stores: []string{"charts"}})
	f.Set("charts", "rock", `[{"name":"a"}]`)
	charts := OpenStore("charts")
	var putErr, emitErr error
	HandleQuery(func(q *Query) Response {
		putErr = charts.Put([]byte("x"), []byte("y"))
		emitErr = Emit("out", nil, nil)
		v, found, err := charts.Get([]byte(q.Param("genre")))
		if err != nil {
			return Response{Status: 500, Body: []byte(err.Error())}
		}
		if !found {
			return Response{Status: 404, ContentType: "application/json", Body: []byte(`{"error":"unknown genre"}`)}
		}
		if q.Values().Get("pretty") != "1" || q.Partition != 3 || q.Route != "/charts/genre/{genre}" {
			return Response{Status: 400, Body: []byte("unexpected request " + q.Path)}
		}
		return Response{ContentType: "application/json", Body: v}
	})
	req := &abi.QueryRequest{Partition: 3, Method: "GET", Route: "/charts/genre/{genre}", Path: "/charts/genre/rock",
		RawQuery: "pretty=1", Params: []abi.Param{{Name: "genre", Value: "rock"}}}
	rc, resp := f.Query(req)
	if rc != 0 || resp == nil {
		t.Fatalf("query = %d, %+v", rc, resp)
	}
	if resp.Status != 200 || resp.ContentType != "application/json" || resp.Body != `[{"name":"a"}]` {
		t.Fatalf("answer %+v", resp)
	}
	if !errors.Is(putErr, ErrReadOnly) {
		t.Errorf("Put in a query = %v, want ErrReadOnly", putErr)
	}
	if !errors.Is(emitErr, ErrNotAllowed) {
		t.Errorf("Emit in a query = %v, want ErrNotAllowed", emitErr)
	}
	if _, ok := f.Stored("charts", "x"); ok {
		t.Error("a query's Put reached the store")
	}

	req.Params[0].Value = "jazz"
	if _, resp := f.Query(req); resp.Status != 404 || !strings.Contains(resp.Body, "unknown genre") {
		t.Fatalf("unknown genre: %+v", resp)
	}
}

func TestQueryHandlerPanicIsA500(t *testing.T) {
	f := newFakeHost(FakeConfig{})
	HandleQuery(func(q *Query) Response { panic("no chart for " + q.Path) })
	rc, resp := f.Query(&abi.QueryRequest{Partition: -1, Method: "GET", Route: "/x", Path: "/x"})
	if rc != 0 || resp == nil || resp.Status != 500 {
		t.Fatalf("query = %d, %+v", rc, resp)
	}
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(resp.Body), &e); err != nil || e.Error != "panic: no chart for /x" {
		t.Fatalf("body %q (%v)", resp.Body, err)
	}
}

func TestQueryWithoutHandlerIs501(t *testing.T) {
	f := newFakeHost(FakeConfig{})
	HandleRecord(func(*Record) error { return nil })
	_, resp := f.Query(&abi.QueryRequest{Partition: -1, Method: "GET", Route: "/x", Path: "/x"})
	if resp == nil || resp.Status != 501 || !strings.Contains(resp.Body, "HandleQuery") {
		t.Fatalf("answer %+v", resp)
	}
}

func TestQueryStatusOutOfRange(t *testing.T) {
	f := newFakeHost(FakeConfig{})
	HandleQuery(func(*Query) Response { return Response{Status: 99} })
	_, resp := f.Query(&abi.QueryRequest{Partition: -1, Method: "GET", Route: "/x", Path: "/x"})
	if resp == nil || resp.Status != 500 || !strings.Contains(resp.Body, "status 99") {
		t.Fatalf("answer %+v", resp)
	}
}

func TestVectorQueries(t *testing.T) {
	for _, v := range loadVectors(t, "query") {
		t.Run(v.Name, func(t *testing.T) {
			f := newFakeHost(FakeConfig{})
			var got Query
			HandleQuery(func(q *Query) Response {
				got = *q
				got.Body = append([]byte{}, q.Body...)
				return Response{}
			})
			enc := v.Encoded
			buf := inputBuffer(int32(len(enc)))
			copy(buf, enc)
			f.querying = true
			rc := query(buf[:len(enc)])
			if rc != 0 || f.resp == nil || f.resp.Status != 200 {
				t.Fatalf("%s:%d: query = %d, %+v", v.File, v.Line, rc, f.resp)
			}
			w := v.Query
			if got.Partition != w.Partition || got.Method != w.Method || got.Route != w.Route || got.Path != w.Path ||
				got.rawQuery != w.RawQuery || string(got.Body) != string(w.Body) || len(got.params) != len(w.Params) {
				t.Fatalf("%s:%d: decoded %+v, want %+v", v.File, v.Line, got, w)
			}
			for _, p := range w.Params {
				if got.Param(p.Name) != p.Value {
					t.Errorf("Param(%q) = %q, want %q", p.Name, got.Param(p.Name), p.Value)
				}
			}
		})
	}
}
