package apptest

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Event is one Server-Sent Event: its id, type and data.
type Event struct {
	ID, Kind, Data string
}

// Stream is an open event stream (a watch), read in the background.
type Stream struct {
	// Code is the answer's status; Body the answer when it is not 200.
	Code   int
	Body   string
	Header http.Header
	events chan Event
	cancel context.CancelFunc
}

// Watch opens an event stream at http://addr+path with headers given as
// name, value pairs (Last-Event-ID, Authorization, ...); Accept is
// text/event-stream. The stream closes when the test ends or Close is
// called.
func Watch(t testing.TB, addr, path string, header ...string) *Stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	s := &Stream{Code: resp.StatusCode, Header: resp.Header, events: make(chan Event, 4096), cancel: cancel}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s.Body = string(b)
		close(s.events)
		return s
	}
	go func() {
		defer resp.Body.Close()
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		var ev Event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[len("id: "):]
			case strings.HasPrefix(line, "event: "):
				ev.Kind = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.Data = line[len("data: "):]
			case line == "" && ev.Kind != "":
				s.events <- ev
				ev = Event{}
			}
		}
	}()
	return s
}

// Next returns the stream's next event, or fails the test when the stream
// ends or nothing comes within timeout.
func (s *Stream) Next(t testing.TB, timeout time.Duration) Event {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return ev
	case <-time.After(timeout):
		t.Fatalf("no event within %v", timeout)
	}
	return Event{}
}

// Close ends the stream.
func (s *Stream) Close() { s.cancel() }
