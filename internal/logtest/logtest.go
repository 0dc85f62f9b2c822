// Package logtest captures log records for tests that assert on what was
// logged.
package logtest

import (
	"context"
	"log/slog"
	"slices"
	"sync"
)

// Record is one captured log record, with its attributes as text.
type Record struct {
	Level   slog.Level
	Message string
	Attrs   map[string]string
}

// Capture is a slog.Handler that keeps every record it is given. Attributes
// added with WithAttrs or WithGroup are not kept: tests assert on the
// attributes of each call.
type Capture struct {
	mu   sync.Mutex
	recs []Record
}

func (c *Capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *Capture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *Capture) WithGroup(string) slog.Handler            { return c }

func (c *Capture) Handle(_ context.Context, r slog.Record) error {
	rec := Record{Level: r.Level, Message: r.Message, Attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.String()
		return true
	})
	c.mu.Lock()
	c.recs = append(c.recs, rec)
	c.mu.Unlock()
	return nil
}

// Len returns the number of records so far.
func (c *Capture) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

// Since returns the records from the i-th on.
func (c *Capture) Since(i int) []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs[i:])
}

// Has reports whether any record so far satisfies f.
func (c *Capture) Has(f func(Record) bool) bool { return slices.ContainsFunc(c.Since(0), f) }
