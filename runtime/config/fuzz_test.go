package config

import (
	"errors"
	"path/filepath"
	"testing"
)

// Whatever a configuration file holds, parsing it never panics: it gives
// a configuration that passes Validate, or an error that says what is
// wrong. The same for a server's file and a size.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		minimal,
		minimal + "partitions: 9999999999\nsession_timeout: 100ms\n",
		minimal + "    stores: [counts]\nquery:\n  content_types: {counts: application/json}\n  routes:\n    - {method: GET, path: /top/{n}, stage: count, store: counts, key: '{n}'}\n",
		"app: [\n", "stages: 7\n", "app: a\nbrokers: [x:1]\nstages:\n  - {name: s, module: m.wasm, inputs: [t], outputs: {o: {repartition: s}}}\n",
		"kafka:\n  sasl: {mechanism: PLAIN, username: u, password: p}\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	file := filepath.Join(dir, "app.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, file, nil, nil)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a configuration Validate refuses: %v", verr)
			}
		} else if errors.Unwrap(err) == nil && err.Error() == "" {
			t.Fatal("an error with no message")
		}
		ParseServer(data, filepath.Join(dir, "server.yaml"), nil, nil)
		ParseByteSize(string(data))
	})
}
