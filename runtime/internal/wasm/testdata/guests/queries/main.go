// Command queries is a test guest: it counts records per key in store
// "counts", like counter, and serves query routes over the counts:
//
//	/count/{key}  {"key":..,"count":..,"partition":..}, or 404
//	/keys         the keys of the routed partition, one per line
//	/boom         panics (the SDK answers 500)
//	/loop         never returns (the host's deadline stops it)
//	/exit         exits the instance (a trap)
//	/echo         the request: method, path, query string and body
package main

import (
	"os"
	"strconv"

	streamrt "github.com/streamrt/streamrt/sdk/go"
)

var (
	counts = streamrt.OpenStore("counts")
	num    []byte
)

func init() {
	streamrt.HandleRecord(func(r *streamrt.Record) error {
		v, _, err := counts.Get(r.Key)
		if err != nil {
			return err
		}
		n, _ := strconv.ParseInt(string(v), 10, 64)
		num = strconv.AppendInt(num[:0], n+1, 10)
		if err := counts.Put(r.Key, num); err != nil {
			return err
		}
		return streamrt.Emit("out", r.Key, num)
	})
	streamrt.HandleQuery(serve)
}

var spin int

func serve(q *streamrt.Query) streamrt.Response {
	switch q.Route {
	case "/count/{key}":
		key := q.Param("key")
		v, found, err := counts.Get([]byte(key))
		if err != nil {
			return streamrt.Response{Status: 500, Body: []byte(err.Error())}
		}
		if !found {
			return streamrt.Response{Status: 404, ContentType: "application/json", Body: []byte(`{"error":"no count for ` + key + `"}`)}
		}
		if err := counts.Put([]byte(key), []byte("0")); err == nil {
			return streamrt.Response{Status: 500, Body: []byte("a query could write")}
		}
		body := `{"key":` + strconv.Quote(key) + `,"count":` + string(v) + `,"partition":` + strconv.Itoa(int(q.Partition)) + `}`
		return streamrt.Response{ContentType: "application/json", Body: []byte(body)}
	case "/keys/{part}":
		var out []byte
		it := counts.Range(nil, nil)
		for it.Next() {
			out = append(append(out, it.Key()...), '\n')
		}
		return streamrt.Response{ContentType: "text/plain", Body: out}
	case "/boom":
		panic("boom at " + q.Path)
	case "/loop":
		for {
			spin++
		}
	case "/exit":
		os.Exit(3)
	}
	return streamrt.Response{ContentType: "text/plain",
		Body: []byte(q.Method + " " + q.Path + "?" + q.Values().Encode() + " " + string(q.Body))}
}

func main() {}
