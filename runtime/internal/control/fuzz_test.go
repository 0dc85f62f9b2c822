package control

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Whatever the control topics hold, reading them never panics and never
// allocates what a record merely claims: every record is applied or
// refused with an error, and the view answers after it. A module put
// together from its chunks is the one its hash names, or an error.
func FuzzLogApply(f *testing.F) {
	topics := Topics{Apps: "apps", Modules: "modules", Status: "status", Tenants: "tenants", Audit: "audit"}
	names := []string{topics.Apps, topics.Modules, topics.Status, topics.Tenants, topics.Audit}
	spec, _ := json.Marshal(Spec{App: "acme.orders", Version: 3, Config: "app: acme.orders\n"})
	mf, _ := json.Marshal(manifest{Size: 5, Chunks: 1})
	for _, seed := range []struct {
		topic      byte
		key, value string
	}{
		{0, "acme.orders", string(spec)},
		{0, "acme.orders@3", string(spec)},
		{0, "acme.orders@x", ""},
		{1, Hash([]byte("hello")), string(mf)},
		{1, Hash([]byte("hello")) + "#0", "hello"},
		{1, "h", `{"size":-1,"chunks":1}`},
		{1, "h", `{"size":9000000000,"chunks":1}`},
		{1, "h#-3", "x"},
		{2, "acme.orders/i1", `{"version":3,"state":"running"}`},
		{3, "acme", `{"prefixes":["acme."],"quotas":{"cpu":0.5}}`},
		{4, "", `{"kind":"deploy","app":"acme.orders"}`},
		{2, "x", "{"},
	} {
		f.Add(seed.topic, []byte(seed.key), []byte(seed.value))
	}
	f.Fuzz(func(t *testing.T, topic byte, key, value []byte) {
		l := newLog(topics, slog.New(slog.NewTextHandler(io.Discard, nil)))
		// The record, then the same as a deletion where the topic has
		// them, so that both paths run on whatever the first left.
		for _, v := range [][]byte{value, nil} {
			r := &kgo.Record{Topic: names[int(topic)%len(names)], Key: key, Value: v}
			l.mu.Lock()
			l.apply(r)
			l.mu.Unlock()
			l.Apps()
			l.Tenants()
			app, _, _ := strings.Cut(string(key), "@")
			l.Versions(app)
			l.Statuses(app)
			hash, _, _ := strings.Cut(string(key), "#")
			if b, err := l.Module(context.Background(), hash, 0); err == nil && Hash(b) != hash {
				t.Fatalf("module %s put together as bytes hashing to %s", hash, Hash(b))
			}
		}
	})
}
