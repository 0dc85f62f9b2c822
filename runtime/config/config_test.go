package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
)

// fixture lays out an app directory: app.yaml is not written, guest.wasm is
// a module file and guest/ a Go guest package.
func fixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "guest.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644))
	must(t, os.Mkdir(filepath.Join(dir, "guest"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "guest", "main.go"), []byte("package main\n"), 0o644))
	must(t, os.Mkdir(filepath.Join(dir, "empty"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hi"), 0o644))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

const minimal = `
app: clickcount
brokers: [127.0.0.1:9092]
stages:
  - name: count
    module: guest.wasm
    inputs: [clicks]
`

func TestDefaults(t *testing.T) {
	dir := fixture(t)
	file := filepath.Join(dir, "app.yaml")
	c, err := Parse([]byte(minimal), file, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File:              file,
		App:               "clickcount",
		Brokers:           []string{"127.0.0.1:9092"},
		StateDir:          filepath.Join(dir, ".streamrt", "clickcount"),
		CacheDir:          filepath.Join(dir, ".streamrt", "clickcount", "cache"),
		HTTP:              "127.0.0.1:7070",
		Guarantee:         AtLeastOnce,
		SessionTimeout:    DefaultSessionTimeout,
		Partitions:        4,
		ReplicationFactor: -1,
		CommitInterval:    100 * time.Millisecond,
		StartOffset:       StartEarliest,
		StateRecovery:     RecoveryRebuild,
		StateMinFree:      MinFree{Bytes: 1 << 30, Percent: 5},
		Query:             Query{MaxKeyBytes: 4096, MaxRangeLimit: 1000, HandlerDeadline: 2 * time.Second, ForwardTimeout: 5 * time.Second, MaxWatches: 1000, MaxWatchesPerClient: 16, WatchBuffer: 1024, WatchCoalesceKeys: 10_000},
		Stages: []Stage{{
			Name:          "count",
			Module:        filepath.Join(dir, "guest.wasm"),
			Inputs:        []string{"clicks"},
			ErrorPolicy:   PolicyFail,
			BatchSize:     500,
			MemoryLimit:   64 << 20,
			BatchDeadline: 5 * time.Second,
		}},
	}
	assertConfig(t, c, want)
}

const full = `
app: shop.orders_v2
brokers: [k1:9092, k2:9093]
state_dir: /var/lib/streamrt/orders
http: 0.0.0.0:8080
guarantee: exactly_once
standby_replicas: 2
session_timeout: 10s
partitions: 12
replication_factor: 3
commit_interval: 250ms
start_offset: latest
state_recovery: refuse
state_min_free: 256MiB+2.5%
advertise: orders-1.internal:8080
query:
  max_key_bytes: 1024
  max_range_limit: 500
  handler_deadline: 250ms
  forward_timeout: 2s
  tokens: [s3cret, other-token]
  max_watches: 50
  max_watches_per_client: 4
  watch_buffer: 64
  watch_coalesce_keys: 500
  routes:
    - {path: "/orders/{id}", stage: enrich, store: products, key: "p-{id}"}
    - {method: POST, path: /orders/, stage: fold}
    - {path: /instances, builtin: instances}
stages:
  - name: enrich
    module: ./guest
    inputs: [orders, order-updates]
    stores: [products, "customers by id"]
    outputs: {enriched: orders-enriched, audit: orders.audit, v2.enriched: orders-v2}
    error_policy: dead_letter
    dead_letter_topic: orders-bad
    batch_size: 1000
    memory_limit: 128MiB
    batch_deadline: 2s
  - name: fold
    module: guest.wasm
    inputs: [orders-enriched]
    stores: [orders]
    error_policy: dead_letter
    batch_size: 1
    memory_limit: 1GB
    batch_deadline: 1m30s
  - name: tally
    module: guest.wasm
    inputs: [orders.audit]
    error_policy: skip
    memory_limit: 1048576
`

func TestFullRoundTrip(t *testing.T) {
	dir := fixture(t)
	file := filepath.Join(dir, "app.yaml")
	c, err := Parse([]byte(full), file, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File:              file,
		App:               "shop.orders_v2",
		Brokers:           []string{"k1:9092", "k2:9093"},
		StateDir:          "/var/lib/streamrt/orders",
		CacheDir:          "/var/lib/streamrt/orders/cache",
		HTTP:              "0.0.0.0:8080",
		Guarantee:         ExactlyOnce,
		StandbyReplicas:   2,
		SessionTimeout:    10 * time.Second,
		Partitions:        12,
		ReplicationFactor: 3,
		CommitInterval:    250 * time.Millisecond,
		StartOffset:       StartLatest,
		StateRecovery:     RecoveryRefuse,
		StateMinFree:      MinFree{Bytes: 256 << 20, Percent: 2.5},
		Advertise:         "orders-1.internal:8080",
		Query: Query{MaxKeyBytes: 1024, MaxRangeLimit: 500, HandlerDeadline: 250 * time.Millisecond,
			ForwardTimeout: 2 * time.Second, Tokens: []string{"s3cret", "other-token"},
			MaxWatches: 50, MaxWatchesPerClient: 4, WatchBuffer: 64, WatchCoalesceKeys: 500,
			Routes: []Route{
				{Method: "GET", Path: "/orders/{id}", Stage: "enrich", Store: "products", Key: "p-{id}"},
				{Method: "POST", Path: "/orders/", Stage: "fold"},
				{Method: "GET", Path: "/instances", Builtin: "instances"},
			}},
		Stages: []Stage{{
			Name:            "enrich",
			Module:          filepath.Join(dir, "guest"),
			Inputs:          []string{"orders", "order-updates"},
			Stores:          []string{"products", "customers by id"},
			Outputs:         map[string]string{"enriched": "orders-enriched", "audit": "orders.audit", "v2.enriched": "orders-v2"},
			ErrorPolicy:     PolicyDeadLetter,
			DeadLetterTopic: "orders-bad",
			BatchSize:       1000,
			MemoryLimit:     128 << 20,
			BatchDeadline:   2 * time.Second,
		}, {
			Name:            "fold",
			Module:          filepath.Join(dir, "guest.wasm"),
			Inputs:          []string{"orders-enriched"},
			Stores:          []string{"orders"},
			ErrorPolicy:     PolicyDeadLetter,
			DeadLetterTopic: "shop.orders_v2-fold-dlq",
			BatchSize:       1,
			MemoryLimit:     1e9,
			BatchDeadline:   90 * time.Second,
		}, {
			Name:          "tally",
			Module:        filepath.Join(dir, "guest.wasm"),
			Inputs:        []string{"orders.audit"},
			ErrorPolicy:   PolicySkip,
			BatchSize:     500,
			MemoryLimit:   1 << 20,
			BatchDeadline: 5 * time.Second,
		}},
	}
	assertConfig(t, c, want)

	// Writing the Config back out under its koanf tags and parsing that gives
	// the same Config: the tags and the decoder agree on every key.
	out, err := yaml.Parser().Marshal(encode(reflect.ValueOf(*c)).(map[string]any))
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out, file, nil, nil)
	if err != nil {
		t.Fatalf("parse re-encoded config: %v\n%s", err, out)
	}
	assertConfig(t, again, c)
}

// encode turns a value into what a YAML file would hold, keyed by koanf tags.
func encode(v reflect.Value) any {
	switch v.Type() {
	case reflect.TypeFor[time.Duration]():
		return time.Duration(v.Int()).String()
	case reflect.TypeFor[MinFree]():
		return v.Interface().(MinFree).String()
	}
	switch v.Kind() {
	case reflect.Struct:
		m := make(map[string]any)
		for i := range v.NumField() {
			f := v.Type().Field(i)
			tag := f.Tag.Get("koanf")
			if !f.IsExported() || tag == "" || tag == "-" {
				continue
			}
			m[tag] = encode(v.Field(i))
		}
		return m
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = encode(v.Index(i))
		}
		return out
	case reflect.Map:
		m := make(map[string]any)
		for _, k := range v.MapKeys() {
			m[k.String()] = encode(v.MapIndex(k))
		}
		return m
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	}
	panic("cannot encode " + v.Type().String())
}

func assertConfig(t *testing.T, got, want *Config) {
	t.Helper()
	g, w := *got, *want
	g.name, g.sources, g.given, w.name, w.sources, w.given = "", nil, nil, "", nil, nil
	if !reflect.DeepEqual(g, w) {
		t.Errorf("config mismatch\n got: %+v\nwant: %+v", g, w)
	}
}

// problem is one expected *Error: its exact key and a part of its reason.
type problem struct{ key, reason string }

func TestErrors(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string // replaces minimal when set
		env       []string
		overrides map[string]string
		want      []problem
	}{
		{name: "malformed YAML", yaml: "app: [x\nbrokers: y\n",
			want: []problem{{"", "invalid YAML: line"}}},
		{name: "not a mapping", yaml: "- a\n- b\n",
			want: []problem{{"", "invalid YAML: line 1: the document must be a mapping of keys, got !!seq"}}},
		{name: "duplicate key", yaml: minimal + "app: again\n",
			want: []problem{{"", `invalid YAML: line 8: mapping key "app" already defined at line 2`}}},
		{name: "unknown key", yaml: minimal + "partitons: 3\n",
			want: []problem{{"partitons", "unknown key (did you mean partitions?)"}}},
		{name: "unknown key in stage", yaml: minimal + "    batchsize: 3\n    colour: red\n",
			want: []problem{
				{"stages[0].batchsize", "unknown key (did you mean batch_size?)"},
				{"stages[0].colour", "unknown key"},
			}},
		{name: "unknown key in query", yaml: minimal + "query: {max_keys: 3}\n",
			want: []problem{{"query.max_keys", "unknown key"}}},
		{name: "missing module", yaml: strings.Replace(minimal, "guest.wasm", "./nope.wasm", 1),
			want: []problem{{"stages[0].module", "nope.wasm: no such file or directory"}}},
		{name: "module not wasm", yaml: strings.Replace(minimal, "guest.wasm", "notes.txt", 1),
			want: []problem{{"stages[0].module", "is neither a .wasm file nor a Go package directory"}}},
		{name: "module dir without Go", yaml: strings.Replace(minimal, "guest.wasm", "empty", 1),
			want: []problem{{"stages[0].module", "holds no Go package"}}},
		{name: "module required", yaml: strings.Replace(minimal, "module: guest.wasm", "module: ''", 1),
			want: []problem{{"stages[0].module", "required"}}},
		{name: "duration without unit", yaml: minimal + "commit_interval: 100\n",
			want: []problem{{"commit_interval", "must be a duration with a unit, such as 100ms or 5s, got 100"}}},
		{name: "bad duration", yaml: minimal + "    batch_deadline: 5 parsecs\n",
			want: []problem{{"stages[0].batch_deadline", `got "5 parsecs"`}}},
		{name: "zero duration", yaml: "commit_interval: 0s\n" + minimal + "    batch_deadline: -1s\n",
			want: []problem{
				{"commit_interval", "must be positive, got 0s"},
				{"stages[0].batch_deadline", "must be positive, or 0 for no deadline, got -1s"},
			}},
		{name: "negative batch size", yaml: minimal + "    batch_size: -3\n",
			want: []problem{{"stages[0].batch_size", "must be between 1 and 100000, got -3"}}},
		{name: "batch size too large", yaml: minimal + "    batch_size: 100001\n",
			want: []problem{{"stages[0].batch_size", "must be between 1 and 100000, got 100001"}}},
		{name: "batch size not a number, reported once", yaml: minimal + "    batch_size: lots\n",
			want: []problem{{"stages[0].batch_size", `must be an integer, got "lots"`}}},
		{name: "batch size fractional", yaml: minimal + "    batch_size: 2.5\n",
			want: []problem{{"stages[0].batch_size", "must be an integer, got 2.5"}}},
		{name: "unknown policy", yaml: minimal + "    error_policy: retry\n",
			want: []problem{{"stages[0].error_policy", `must be fail, skip or dead_letter, got "retry"`}}},
		{name: "duplicate stage", yaml: minimal + "  - {name: count, module: guest, inputs: [x]}\n",
			want: []problem{{"stages[1].name", `duplicate stage name "count" (also stages[0])`}}},
		{name: "dead letter topic without policy", yaml: minimal + "    error_policy: skip\n    dead_letter_topic: bad\n",
			want: []problem{{"stages[0].dead_letter_topic", "only allowed with error_policy dead_letter, not skip"}}},
		{name: "dead letter topic with default policy", yaml: minimal + "    dead_letter_topic: bad\n",
			want: []problem{{"stages[0].dead_letter_topic", "only allowed with error_policy dead_letter, not fail"}}},
		{name: "bad memory unit", yaml: minimal + "    memory_limit: 64XB\n",
			want: []problem{{"stages[0].memory_limit", `must be a size such as 64MiB (units B, KiB, MiB, GiB, KB, MB, GB), got "64XB"`}}},
		{name: "memory too small", yaml: minimal + "    memory_limit: 512KiB\n",
			want: []problem{{"stages[0].memory_limit", "must be between 1MiB and 4GiB, got 512KiB"}}},
		{name: "memory too large", yaml: minimal + "    memory_limit: 5GiB\n",
			want: []problem{{"stages[0].memory_limit", "must be between 1MiB and 4GiB, got 5GiB"}}},
		{name: "app required", yaml: strings.Replace(minimal, "app: clickcount", "", 1),
			want: []problem{{"app", "required"}}},
		{name: "app charset", yaml: strings.Replace(minimal, "app: clickcount", "app: click count", 1),
			want: []problem{{"app", `"click count": only letters, digits, '.', '_' and '-' are allowed`}}},
		{name: "app not a string", yaml: strings.Replace(minimal, "app: clickcount", "app: 2024", 1),
			want: []problem{{"app", "must be a string, got 2024 (quote it)"}}},
		{name: "brokers required", yaml: strings.Replace(minimal, "brokers: [127.0.0.1:9092]", "", 1),
			want: []problem{{"brokers", "at least one broker is required"}}},
		{name: "broker without port", yaml: strings.Replace(minimal, "[127.0.0.1:9092]", "[a:1, kafka]", 1),
			want: []problem{{"brokers[1]", `must be host:port, got "kafka"`}}},
		{name: "bad http", yaml: minimal + "http: localhost:http\n",
			want: []problem{{"http", "port must be a number from 0 to 65535"}}},
		{name: "bad guarantee", yaml: minimal + "guarantee: exactly-once\n",
			want: []problem{{"guarantee", `must be at_least_once or exactly_once, got "exactly-once"`}}},
		{name: "bad standby replicas and session timeout", yaml: minimal + "standby_replicas: -1\nsession_timeout: 100ms\n",
			want: []problem{
				{"standby_replicas", "must be from 0 to 8, got -1"},
				{"session_timeout", "must be from 1s to 30m0s, got 100ms"},
			}},
		{name: "bad instance id", yaml: minimal + "instance_id: a b\n",
			want: []problem{{"instance_id", `"a b": 1 to 128 letters, digits, '.', '_', ':' or '-'`}}},
		{name: "content type of an unknown store, and a bad one", yaml: minimal + "    stores: [counts]\nquery:\n  content_types: {counts: 'json?', nothing: application/json}\n",
			want: []problem{
				{"query.content_types.counts", `"json?" is not a media type such as application/json: mime: expected slash after first token`},
				{"query.content_types.nothing", `no store or table "nothing" in the app`},
			}},
		{name: "bad start offset", yaml: minimal + "start_offset: newest\n",
			want: []problem{{"start_offset", `must be earliest or latest, got "newest"`}}},
		{name: "bad state min free", yaml: minimal + "state_min_free: 5 percent\n",
			want: []problem{{"state_min_free", `must be a size such as 512MiB, a percentage of the filesystem such as 5%, or the larger of both such as 1GiB+5%, got "5 percent"`}}},
		{name: "state min free over 100%", yaml: minimal + "state_min_free: 120%\n",
			want: []problem{{"state_min_free", `must be a size such as 512MiB, a percentage of the filesystem such as 5%, or the larger of both such as 1GiB+5%, got "120%"`}}},
		{name: "bad state recovery", yaml: minimal + "state_recovery: wipe\n",
			want: []problem{{"state_recovery", `must be rebuild or refuse, got "wipe"`}}},
		{name: "bad partitions and replication", yaml: minimal + "partitions: 0\nreplication_factor: 0\n",
			want: []problem{
				{"partitions", "must be at least 1, got 0"},
				{"replication_factor", "must be at least 1, or -1 for the broker's default, got 0"},
			}},
		{name: "partitions overflow", yaml: minimal + "partitions: 9999999999\n",
			want: []problem{{"partitions", "must be between -2147483648 and 2147483647, got 9999999999"}}},
		{name: "bad max key bytes", yaml: minimal + "query: {max_key_bytes: 0}\n",
			want: []problem{{"query.max_key_bytes", "must be between 1 and 1048576, got 0"}}},
		{name: "bad query limits", yaml: minimal + "query: {max_range_limit: 0, handler_deadline: 0s, forward_timeout: -1s, tokens: ['a b'], watch_buffer: 0}\nadvertise: nohost\n",
			want: []problem{
				{"query.max_range_limit", "must be between 1 and 100000, got 0"},
				{"query.handler_deadline", "must be positive, got 0s"},
				{"query.forward_timeout", "must be positive, got -1s"},
				{"query.watch_buffer", "must be at least 1, got 0"},
				{"query.tokens[0]", "a token must be non-empty and contain no white space"},
				{"advertise", `must be host:port, got "nohost"`},
			}},
		{name: "bad routes", yaml: minimal + `    stores: [counts]
query:
  routes:
    - {path: "/a/{id}", stage: count, store: counts, key: "{name}"}
    - {path: /b, stage: nope}
    - {path: /c, builtin: everything}
    - {path: /v1/mine, stage: count}
    - {method: FETCH, path: /d, stage: count}
    - {path: e, stage: count}
    - {path: "/f/{id}", stage: count, store: counts}
    - {path: /g, stage: count, builtin: instances}
    - {path: "/h/{id}", stage: count, store: missing, key: "{id}"}
    - {path: "/a/{id}", stage: count}
`,
			want: []problem{
				{"query.routes[0].key", `uses {name}, which is not a parameter of path "/a/{id}"`},
				{"query.routes[1].stage", `no stage "nope"`},
				{"query.routes[2].builtin", `must be "instances", got "everything"`},
				{"query.routes[3].path", `"/v1/mine" is reserved for the host's own API (/v1/)`},
				{"query.routes[4].method", `must be one of GET, HEAD, POST, PUT, PATCH, DELETE, got "FETCH"`},
				{"query.routes[5].path", `must start with /, got "e"`},
				{"query.routes[6].key", `required with store "counts"`},
				{"query.routes[7]", `has both stage "count" and builtin "instances"; give one`},
				{"query.routes[8].store", `no store or table "missing"`},
				{"query.routes[9].path", `pattern "GET /a/{id}" conflicts with pattern "GET /a/{id}": GET /a/{id} matches the same requests`},
			}},
		{name: "query not a mapping", yaml: minimal + "query: 5\n",
			want: []problem{{"query", "must be a mapping, got 5"}}},
		{name: "stages required", yaml: "app: a\nbrokers: [b:1]\n",
			want: []problem{{"stages", "at least one stage is required"}}},
		{name: "stages not a list", yaml: "app: a\nbrokers: [b:1]\nstages: {name: x}\n",
			want: []problem{{"stages", "must be a list of stages, got a mapping"}}},
		{name: "stage not a mapping", yaml: minimal + "  - count\n",
			want: []problem{{"stages[1]", "must be a mapping"}}},
		{name: "stage name and inputs", yaml: minimal + "  - {module: guest.wasm}\n  - {name: a/b, module: guest.wasm, inputs: [x, 3]}\n",
			want: []problem{
				{"stages[2].inputs[1]", "must be a string, got 3"}, // decoding comes first
				{"stages[1].name", "required"},
				{"stages[1].inputs", "at least one input topic is required"},
				{"stages[2].name", `"a/b": only letters`},
			}},
		{name: "input topics", yaml: minimal + "  - {name: b, module: guest.wasm, inputs: [x, 'y z', x]}\n",
			want: []problem{
				{"stages[1].inputs[1]", `invalid topic name "y z"`},
				{"stages[1].inputs[2]", `duplicate input topic "x"`},
			}},
		{name: "stores", yaml: minimal + "    stores: [s, '']\n  - {name: b, module: guest.wasm, inputs: [x], stores: [s, " + strings.Repeat("x", 256) + "]}\n",
			want: []problem{
				{"stages[0].stores[1]", "store name must be 1 to 255 bytes, got 0"},
				{"stages[1].stores[0]", `duplicate store "s" (also stages[0].stores[0])`},
				{"stages[1].stores[1]", "store name must be 1 to 255 bytes, got 256"},
			}},
		{name: "outputs", yaml: minimal + "    outputs: {good: t, bad: 'no way', num: 7}\n",
			want: []problem{
				{"stages[0].outputs.num", "must be a topic name or a mapping with topic or repartition, and keep, got 7"},
				{"stages[0].outputs.bad", `invalid topic name "no way"`},
			}},
		{name: "several problems at once", yaml: "partitions: -1\n" + strings.Replace(minimal, "app: clickcount", "", 1) + "    batch_size: 0\n    bogus: 1\n",
			want: []problem{
				{"stages[0].bogus", "unknown key"},
				{"app", "required"},
				{"partitions", "must be at least 1, got -1"},
				{"stages[0].batch_size", "must be between 1 and 100000, got 0"},
			}},
		{name: "env value not a number", env: []string{"STREAMRT_PARTITIONS=many"},
			want: []problem{{"STREAMRT_PARTITIONS", `must be an integer, got "many"`}}},
		{name: "env value out of range", env: []string{"STREAMRT_PARTITIONS=0", "STREAMRT_QUERY__MAX_KEY_BYTES=0"},
			want: []problem{
				{"STREAMRT_PARTITIONS", "must be at least 1, got 0"},
				{"STREAMRT_QUERY__MAX_KEY_BYTES", "must be between 1 and 1048576, got 0"},
			}},
		{name: "env broker", env: []string{"STREAMRT_BROKERS=a:1,kafka"},
			want: []problem{{"STREAMRT_BROKERS", `must be host:port, got "kafka"`}}},
		{name: "env duration", env: []string{"STREAMRT_COMMIT_INTERVAL=soon"},
			want: []problem{{"STREAMRT_COMMIT_INTERVAL", `got "soon"`}}},
		{name: "flag value", overrides: map[string]string{"http": "nowhere"},
			want: []problem{{"--http", `must be host:port, got "nowhere"`}}},
		{name: "flag beats env in errors too", env: []string{"STREAMRT_HTTP=a:1"}, overrides: map[string]string{"http": "b"},
			want: []problem{{"--http", `must be host:port, got "b"`}}},
		{name: "unknown flag key", overrides: map[string]string{"stage_dir": "x"},
			want: []problem{{"--stage-dir", `unknown key "stage_dir"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fixture(t)
			data := tt.yaml
			if data == "" {
				data = minimal
			}
			file := filepath.Join(dir, "app.yaml")
			c, err := Parse([]byte(data), file, tt.env, tt.overrides)
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if c != nil {
				t.Errorf("config returned with an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
			got := problemsOf(err)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(got), len(tt.want), err)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.File != file || g.Key != w.key || !strings.Contains(g.Reason, w.reason) {
					t.Errorf("problem %d = %q (file %q, key %q)\nwant key %q, reason containing %q", i, g.Error(), g.File, g.Key, w.key, w.reason)
				}
			}
		})
	}
}

// problemsOf unpacks the *Errors of a joined error, in order.
func problemsOf(err error) []*Error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []*Error
	for _, e := range errs {
		var ce *Error
		if !errors.As(e, &ce) {
			panic("not a *config.Error: " + e.Error())
		}
		out = append(out, ce)
	}
	return out
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{File: "clickcount.yaml", Key: "stages[0].batch_size", Reason: "must be between 1 and 100000, got -3"},
			"clickcount.yaml: stages[0].batch_size: must be between 1 and 100000, got -3"},
		{&Error{File: "clickcount.yaml", Reason: "invalid YAML: line 2: did not find expected key"},
			"clickcount.yaml: invalid YAML: line 2: did not find expected key"},
		{&Error{Key: "STREAMRT_PARTITIONS", Reason: "must be at least 1, got 0"},
			"STREAMRT_PARTITIONS: must be at least 1, got 0"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}

	// The joined message puts one problem on each line.
	_, err := Parse([]byte("app: ''\nbrokers: []\nstages: []\n"), "clickcount.yaml", nil, nil)
	want := "clickcount.yaml: app: required\n" +
		"clickcount.yaml: brokers: at least one broker is required\n" +
		"clickcount.yaml: stages: at least one stage is required"
	if err == nil || err.Error() != want {
		t.Errorf("joined error:\n%v\nwant:\n%s", err, want)
	}
}

func TestEnvOverride(t *testing.T) {
	dir := fixture(t)
	env := []string{
		"STREAMRT_BROKERS=a:9092, b:9092",
		"STREAMRT_HTTP=127.0.0.1:9999",
		"STREAMRT_PARTITIONS=8",
		"STREAMRT_REPLICATION_FACTOR=3",
		"STREAMRT_GUARANTEE=exactly_once",
		"STREAMRT_COMMIT_INTERVAL=1s",
		"STREAMRT_START_OFFSET=latest",
		"STREAMRT_QUERY__MAX_KEY_BYTES=128",
		"STREAMRT_STATE_DIR=/srv/state",
		"STREAMRT_TEST_BROKERS=ignored:1", // shares the prefix, names no key
		"STREAMRT_APP=",                   // empty: ignored
		"OTHER_PARTITIONS=99",
	}
	c, err := Parse([]byte(minimal), filepath.Join(dir, "app.yaml"), env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.App != "clickcount" ||
		!reflect.DeepEqual(c.Brokers, []string{"a:9092", "b:9092"}) ||
		c.HTTP != "127.0.0.1:9999" || c.Partitions != 8 || c.ReplicationFactor != 3 ||
		c.Guarantee != ExactlyOnce || c.CommitInterval != time.Second || c.StartOffset != StartLatest ||
		c.Query.MaxKeyBytes != 128 || c.StateDir != "/srv/state" {
		t.Errorf("env not applied: %+v", c)
	}
}

func TestPrecedence(t *testing.T) {
	dir := fixture(t)
	file := filepath.Join(dir, "app.yaml")
	data := []byte(minimal + "http: file:1\n")
	tests := []struct {
		name      string
		env       []string
		overrides map[string]string
		brokers   []string
		http      string
	}{
		{name: "file", brokers: []string{"127.0.0.1:9092"}, http: "file:1"},
		{name: "env over file", env: []string{"STREAMRT_BROKERS=env:1", "STREAMRT_HTTP=env:2"},
			brokers: []string{"env:1"}, http: "env:2"},
		{name: "flag over env", env: []string{"STREAMRT_BROKERS=env:1", "STREAMRT_HTTP=env:2"},
			overrides: map[string]string{"brokers": "flag:1,flag:2"},
			brokers:   []string{"flag:1", "flag:2"}, http: "env:2"},
		{name: "flag over file", overrides: map[string]string{"http": "flag:3"},
			brokers: []string{"127.0.0.1:9092"}, http: "flag:3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(data, file, tt.env, tt.overrides)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Brokers, tt.brokers) || c.HTTP != tt.http {
				t.Errorf("brokers %q http %q, want %q %q", c.Brokers, c.HTTP, tt.brokers, tt.http)
			}
		})
	}
}

func TestRelativePaths(t *testing.T) {
	dir := fixture(t)
	sub := filepath.Join(dir, "apps", "clicks")
	must(t, os.MkdirAll(sub, 0o755))
	file := filepath.Join(sub, "app.yaml")
	wd, err := os.Getwd()
	must(t, err)
	tests := []struct {
		name      string
		yaml      string
		env       []string
		overrides map[string]string
		stateDir  string
	}{
		{name: "default state dir beside the file", stateDir: filepath.Join(sub, ".streamrt", "clickcount")},
		{name: "relative to the file", yaml: "state_dir: ../../data\n", stateDir: filepath.Join(dir, "data")},
		{name: "absolute", yaml: "state_dir: /abs/state\n", stateDir: "/abs/state"},
		{name: "env relative to the working directory", env: []string{"STREAMRT_STATE_DIR=st"}, stateDir: filepath.Join(wd, "st")},
		{name: "flag relative to the working directory", overrides: map[string]string{"state_dir": "fl"}, stateDir: filepath.Join(wd, "fl")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := strings.Replace(minimal, "guest.wasm", "../../guest", 1) + tt.yaml
			c, err := Parse([]byte(data), file, tt.env, tt.overrides)
			if err != nil {
				t.Fatal(err)
			}
			if c.StateDir != tt.stateDir {
				t.Errorf("StateDir = %q, want %q", c.StateDir, tt.stateDir)
			}
			if want := filepath.Join(dir, "guest"); c.Stages[0].Module != want {
				t.Errorf("Module = %q, want %q", c.Stages[0].Module, want)
			}
			if c.File != file {
				t.Errorf("File = %q, want %q", c.File, file)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := fixture(t)
	file := filepath.Join(dir, "app.yaml")
	must(t, os.WriteFile(file, []byte(minimal), 0o644))
	t.Setenv("STREAMRT_PARTITIONS", "6")

	c, err := Load(file, map[string]string{"brokers": "x:1", "query.max_key_bytes": "99"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Partitions != 6 || !reflect.DeepEqual(c.Brokers, []string{"x:1"}) || c.Query.MaxKeyBytes != 99 {
		t.Errorf("overrides not applied: %+v", c)
	}
	if s, ok := c.Stage("count"); !ok || s.Inputs[0] != "clicks" {
		t.Errorf("Stage(count) = %+v, %v", s, ok)
	}
	if _, ok := c.Stage("nope"); ok {
		t.Errorf("Stage(nope) found")
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate on a loaded config: %v", err)
	}

	// Validate names the flag that set a value even after Load.
	c.HTTP = "bad"
	c.Query.MaxKeyBytes = 0
	err = c.Validate()
	got := problemsOf(err)
	if len(got) != 2 || got[0].Key != "http" || got[1].Key != "--query.max-key-bytes" || got[0].File != file {
		t.Errorf("Validate after change: %v", err)
	}

	missing := filepath.Join(dir, "missing.yaml")
	_, err = Load(missing, nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.File != missing || !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("Load(missing) = %v", err)
	}
	if want := missing + ": cannot read: no such file or directory"; err.Error() != want {
		t.Errorf("Load(missing) = %q, want %q", err, want)
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"64MiB", 64 << 20, true},
		{"1GiB", 1 << 30, true},
		{"512KiB", 512 << 10, true},
		{"100B", 100, true},
		{"1048576", 1 << 20, true},
		{"2 MB", 2e6, true},
		{"3kB", 3000, true},
		{"1GB", 1e9, true},
		{"64XB", 0, false},
		{"MiB", 0, false},
		{"1.5GiB", 0, false},
		{"-1MiB", 0, false},
		{"99999999999999GiB", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestTables(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "guest.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	base := `app: shop
brokers: [k:9092]
tables:
  - {name: products, topic: products, global: true}
  - {name: orders-view, topic: enriched-orders}
stages:
  - name: enrich
    module: guest.wasm
    inputs: [orders]
    tables: [products, orders-view]
`
	c, err := Parse([]byte(base), filepath.Join(dir, "app.yaml"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb, ok := c.Table("products"); !ok || !tb.Global || tb.Topic != "products" {
		t.Fatalf("table products: %+v", tb)
	}
	if tb, _ := c.Table("orders-view"); tb.Global {
		t.Fatal("orders-view should be co-partitioned")
	}
	for _, tc := range []struct{ name, yaml, key, want string }{
		{"undeclared table", base + "    stores: [x]\n  - {name: other, module: guest.wasm, inputs: [o2], tables: [nope]}\n", "stages[1].tables[0]", `no table "nope" is declared`},
		{"co-partitioned table read twice", base + "  - {name: other, module: guest.wasm, inputs: [o2], tables: [orders-view, products]}\n", "stages[1].tables[0]", "already read by stages[0]"},
		{"table named like a store", base + "    stores: [products]\n", "stages[0].stores[0]", `duplicate store "products"`},
		{"bad global", strings.Replace(base, "global: true", "global: yes-please", 1), "tables[0].global", "must be true or false"},
		{"unknown table key", strings.Replace(base, "global: true", "glbal: true", 1), "tables[0].glbal", "did you mean global?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), filepath.Join(dir, "app.yaml"), nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.key+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %s: …%s…", err, tc.key, tc.want)
			}
		})
	}
}

func TestRepartitionOutputs(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "guest.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	base := `app: music
brokers: [k:9092]
stages:
  - name: by-song
    module: guest.wasm
    inputs: [play-events]
    outputs: {plays: {repartition: count}}
  - name: count
    module: guest.wasm
    inputs: [extra]
`
	c, err := Parse([]byte(base), filepath.Join(dir, "app.yaml"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Stages[0].Outputs["plays"]; got != "music-count-repartition" {
		t.Fatalf("output plays → %q, want music-count-repartition", got)
	}
	if got := c.Stages[1].Inputs; !slices.Equal(got, []string{"extra", "music-count-repartition"}) {
		t.Fatalf("count's inputs %v, want extra and the repartition topic", got)
	}
	for _, tc := range []struct{ name, yaml, key, want string }{
		{"no such stage", strings.Replace(base, "repartition: count", "repartition: nope", 1), "stages[0].outputs.plays.repartition", `no stage "nope"`},
		{"into itself", strings.Replace(base, "repartition: count", "repartition: by-song", 1), "stages[0].outputs.plays.repartition", "cannot repartition into itself"},
		{"missing target", strings.Replace(base, "{repartition: count}", "{}", 1), "stages[0].outputs.plays.repartition", "required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), filepath.Join(dir, "app.yaml"), nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.key+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %s: …%s…", err, tc.key, tc.want)
			}
		})
	}
}

// An output with keep: latest is marked in Latest, with its topic or its
// repartition; anything but all or latest, or a topic and a repartition
// together, is refused by key.
func TestKeepLatestOutputs(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "guest.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	base := `app: music
brokers: [k:9092]
stages:
  - name: count
    module: guest.wasm
    inputs: [plays]
    stores: [counts]
    outputs:
      counts: {topic: song-counts, keep: latest}
      all: {topic: every-count, keep: all}
      again: {repartition: top}
  - name: top
    module: guest.wasm
    inputs: [extra]
`
	c, err := Parse([]byte(base), filepath.Join(dir, "app.yaml"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Stages[0]
	if s.Outputs["counts"] != "song-counts" || s.Outputs["all"] != "every-count" || s.Outputs["again"] != "music-top-repartition" {
		t.Fatalf("outputs %v", s.Outputs)
	}
	if !s.Latest["counts"] || s.Latest["all"] || s.Latest["again"] {
		t.Fatalf("latest %v, want counts only", s.Latest)
	}
	topo, err := c.Topology()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range topo.Stage("count").Outputs {
		if o.Latest != (o.Name == "counts") {
			t.Errorf("topology output %s: latest %v", o.Name, o.Latest)
		}
	}
	for _, tc := range []struct{ name, yaml, key, want string }{
		{"bad keep", strings.Replace(base, "keep: latest", "keep: last", 1), "stages[0].outputs.counts.keep", `must be all or latest, got "last"`},
		{"topic and repartition", strings.Replace(base, "{topic: song-counts, keep: latest}", "{topic: song-counts, repartition: top}", 1), "stages[0].outputs.counts", "give one"},
		{"unknown key", strings.Replace(base, "keep: latest", "kep: latest", 1), "stages[0].outputs.counts.kep", "did you mean keep?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), filepath.Join(dir, "app.yaml"), nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.key+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %s: …%s…", err, tc.key, tc.want)
			}
		})
	}
}

func TestRoutingKey(t *testing.T) {
	params := map[string]string{"genre": "Punk", "id": "7"}
	for _, c := range []struct{ key, want string }{
		{"{genre}", "Punk"},
		{"genre:{genre|lower}", "genre:punk"},
		{"top-five", "top-five"},
		{"{genre}/{id}", "Punk/7"},
	} {
		r := Route{Key: c.key}
		if got := r.RoutingKey(func(n string) string { return params[n] }); got != c.want {
			t.Errorf("RoutingKey(%q) = %q, want %q", c.key, got, c.want)
		}
	}
}

func TestMinFree(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  MinFree
		total uint64
		of    uint64
	}{
		{"512MiB", MinFree{Bytes: 512 << 20}, 100 << 30, 512 << 20},
		{"10%", MinFree{Percent: 10}, 100 << 30, 10 << 30},
		{"1GiB+5%", MinFree{Bytes: 1 << 30, Percent: 5}, 100 << 30, 5 << 30},
		{"1GiB + 5%", MinFree{Bytes: 1 << 30, Percent: 5}, 10 << 30, 1 << 30},
		{"0", MinFree{}, 10 << 30, 0},
	} {
		got, err := ParseMinFree(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseMinFree(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if of := got.Of(tc.total); of != tc.of {
			t.Errorf("%q of %d bytes = %d, want %d", tc.in, tc.total, of, tc.of)
		}
		if again, err := ParseMinFree(got.String()); err != nil || again != got {
			t.Errorf("%q renders as %q, which parses as %+v, %v", tc.in, got.String(), again, err)
		}
	}
	for _, bad := range []string{"", "%", "5%+6%", "1GiB+2GiB", "-1%", "101%", "lots"} {
		if got, err := ParseMinFree(bad); err == nil {
			t.Errorf("ParseMinFree(%q) = %+v, want an error", bad, got)
		}
	}
}
