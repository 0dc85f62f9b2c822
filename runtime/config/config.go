// Package config loads and validates the configuration of one streamrt app.
//
// A configuration is a YAML file, overridden by environment variables
// (STREAMRT_<KEY>, nested keys joined by a double underscore:
// STREAMRT_QUERY__MAX_KEY_BYTES), overridden in turn by flags that the CLI
// passes to Load. The layers are merged with koanf, decoded into Config with
// every key checked, given their defaults and validated once; every problem
// found is reported, each as an *Error naming the file, the key and the
// reason.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
)

// Guarantee is the delivery guarantee of an app.
type Guarantee string

// Delivery guarantees.
const (
	AtLeastOnce Guarantee = "at_least_once"
	ExactlyOnce Guarantee = "exactly_once"
)

// StartOffset is where a consumer group with no committed offset starts.
type StartOffset string

// Start offsets.
const (
	StartEarliest StartOffset = "earliest"
	StartLatest   StartOffset = "latest"
)

// StateRecovery is what an instance does with local state that is corrupt
// when it starts.
type StateRecovery string

// State recoveries.
const (
	// RecoveryRebuild moves the corrupt state aside and restores it from
	// the changelogs, as for a new state directory.
	RecoveryRebuild StateRecovery = "rebuild"
	// RecoveryRefuse stops the instance with an error naming the state.
	RecoveryRefuse StateRecovery = "refuse"
)

// MinFree is a free-space watermark: the larger of a number of bytes and a
// percentage of the filesystem's size. The zero MinFree is no watermark.
type MinFree struct {
	Bytes   int64
	Percent float64
}

// Of is the watermark on a filesystem of total bytes.
func (m MinFree) Of(total uint64) uint64 {
	return max(uint64(max(m.Bytes, 0)), uint64(m.Percent/100*float64(total)))
}

// String renders m as state_min_free takes it: "1GiB", "5%" or
// "1GiB+5%" for the larger of both.
func (m MinFree) String() string {
	pct := strconv.FormatFloat(m.Percent, 'f', -1, 64) + "%"
	switch {
	case m.Percent == 0:
		return FormatByteSize(m.Bytes)
	case m.Bytes == 0:
		return pct
	}
	return FormatByteSize(m.Bytes) + "+" + pct
}

// ParseMinFree parses a watermark: a size ("512MiB"), a percentage of the
// filesystem ("5%"), or both joined by "+", meaning the larger ("1GiB+5%").
func ParseMinFree(s string) (MinFree, error) {
	var m MinFree
	for part := range strings.SplitSeq(s, "+") {
		part = strings.TrimSpace(part)
		if p, ok := strings.CutSuffix(part, "%"); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil || f < 0 || f > 100 || m.Percent != 0 {
				return MinFree{}, strconv.ErrSyntax
			}
			m.Percent = f
			continue
		}
		n, err := ParseByteSize(part)
		if err != nil || m.Bytes != 0 {
			return MinFree{}, strconv.ErrSyntax
		}
		m.Bytes = n
	}
	return m, nil
}

// ErrorPolicy says what a stage does with a record its module fails on.
type ErrorPolicy string

// Error policies.
const (
	PolicyFail       ErrorPolicy = "fail"        // stop the stage
	PolicySkip       ErrorPolicy = "skip"        // log the error and go on
	PolicyDeadLetter ErrorPolicy = "dead_letter" // produce the record to the dead-letter topic and go on
)

// Defaults for keys absent from every source.
const (
	DefaultHTTP                = "127.0.0.1:7070"
	DefaultGuarantee           = AtLeastOnce
	DefaultStandbyReplicas     = 0
	DefaultSessionTimeout      = 45 * time.Second // Kafka's default
	DefaultPartitions          = 4
	DefaultReplicationFactor   = -1 // the broker's default
	DefaultCommitInterval      = 100 * time.Millisecond
	DefaultStartOffset         = StartEarliest
	DefaultStateRecovery       = RecoveryRebuild
	DefaultMaxKeyBytes         = 4096
	DefaultErrorPolicy         = PolicyFail
	DefaultBatchSize           = 500
	DefaultMemoryLimit         = 64 << 20
	DefaultBatchDeadline       = 5 * time.Second
	DefaultMaxRangeLimit       = 1000
	DefaultHandlerDeadline     = 2 * time.Second
	DefaultForwardTimeout      = 5 * time.Second
	DefaultMaxWatches          = 1000
	DefaultMaxWatchesPerClient = 16
	DefaultWatchBuffer         = 1024
	DefaultWatchCoalesceKeys   = 10_000
)

// state_min_free's default: the larger of 1 GiB and 5% of the filesystem.
const (
	DefaultStateMinFreeBytes   = 1 << 30
	DefaultStateMinFreePercent = 5
)

// Limits checked by Validate.
const (
	MaxBatchSize     = 100_000
	MinMemoryLimit   = 1 << 20
	MaxMemoryLimit   = 4 << 30
	MaxQueryKeyBytes = 1 << 20 // upper bound of query.max_key_bytes
	MaxRangeLimit    = 100_000 // upper bound of query.max_range_limit
	MaxStoreName     = 255     // bytes
	maxTopicName     = 249     // Kafka's limit
)

// Bounds of standby_replicas and session_timeout, checked by Validate.
//
// standby_replicas (Config.StandbyReplicas) is how many other instances keep
// a warm copy of each task's stores by tailing its changelogs, so that a
// task taken over after a failure replays only the changelog's tail. Each
// replica is a full copy of the app's state on one more instance.
//
// session_timeout (Config.SessionTimeout) is how long the group waits for a
// silent instance before moving its tasks; heartbeats go every third of it,
// at most every 3s. Lower it for faster failover; the broker bounds it
// (group.min.session.timeout.ms, 6s by default on Kafka).
const (
	MaxStandbyReplicas = 8
	MinSessionTimeout  = time.Second
	MaxSessionTimeout  = 30 * time.Minute // Kafka's group.max.session.timeout.ms
)

// EnvPrefix starts the name of every environment variable that overrides a
// key: STREAMRT_BROKERS overrides brokers.
const EnvPrefix = "STREAMRT_"

// Config is the configuration of one app. Parse and Load return it with
// defaults applied, Module and StateDir absolute, and validated.
type Config struct {
	// File is the absolute path of the configuration file; empty when the
	// configuration was parsed from bytes with no file name.
	File string `koanf:"-"`

	App      string   `koanf:"app"`
	Brokers  []string `koanf:"brokers"`
	StateDir string   `koanf:"state_dir"`
	// CacheDir keeps compiled modules and Go guest builds, keyed by content,
	// so they can be shared by the apps of one machine; default
	// <state_dir>/cache.
	CacheDir string `koanf:"cache_dir"`
	HTTP     string `koanf:"http"`
	// HTTPTLS serves the HTTP API over HTTPS and forwards over it.
	HTTPTLS HTTPTLS `koanf:"http_tls"`
	// Advertise is the query address (host:port) other instances forward
	// queries to; default: the address the HTTP server bound, with an
	// unspecified host (0.0.0.0, ::) replaced by the machine's host name.
	Advertise       string        `koanf:"advertise"`
	Guarantee       Guarantee     `koanf:"guarantee"`
	StandbyReplicas int           `koanf:"standby_replicas"` // warm copies of each task elsewhere; see MaxStandbyReplicas
	SessionTimeout  time.Duration `koanf:"session_timeout"`  // see MaxSessionTimeout
	// InstanceID is this instance's static member id in the app's
	// consumer group: restarted after a crash, it takes its partitions
	// back at once instead of after the session timeout. Default: an id
	// kept in the state dir (file instance-id), made at first start.
	InstanceID        string        `koanf:"instance_id"`
	Partitions        int32         `koanf:"partitions"`
	ReplicationFactor int16         `koanf:"replication_factor"`
	CommitInterval    time.Duration `koanf:"commit_interval"`
	StartOffset       StartOffset   `koanf:"start_offset"`
	// StateRecovery says what to do when the local state does not open
	// because it is corrupt: rebuild it from the changelogs (moving the
	// corrupt copy aside) or refuse to start.
	StateRecovery StateRecovery `koanf:"state_recovery"`
	// StateMinFree is the free space below which processing pauses, so
	// that the state never fills its filesystem; it resumes once there is
	// more. Zero (given as 0) turns the watermark off.
	StateMinFree MinFree `koanf:"state_min_free"`
	// Generation numbers the app's state: a server rebuilding an app from
	// its inputs runs the next generation beside the one serving, with a
	// consumer group, changelogs and repartition topics of its own (named
	// after Internal). 0 in run mode.
	Generation int `koanf:"generation"`
	// ModuleHeader makes every output record carry the version (the
	// sha256) of the module that produced it, in the header
	// streamrt.module.version, as dead letters always do. Servers turn it
	// on for the apps they run.
	ModuleHeader bool `koanf:"module_header"`
	// Kafka says how every Kafka client of the app connects: TLS and SASL.
	Kafka  Kafka   `koanf:"kafka"`
	Query  Query   `koanf:"query"`
	Tables []Table `koanf:"tables"`
	Stages []Stage `koanf:"stages"`

	name    string            // File as the caller named it, for errors
	sources map[string]string // YAML path -> env var or flag that set it
	given   map[string]bool   // YAML paths some source set; nil for a Config built in code
}

// Query configures interactive queries.
type Query struct {
	MaxKeyBytes int `koanf:"max_key_bytes"`
	// MaxRangeLimit caps the limit of one range or prefix query page.
	MaxRangeLimit int `koanf:"max_range_limit"`
	// HandlerDeadline bounds the CPU time of one guest query handler call.
	HandlerDeadline time.Duration `koanf:"handler_deadline"`
	// ForwardTimeout bounds a query forwarded to the instance that owns its
	// key.
	ForwardTimeout time.Duration `koanf:"forward_timeout"`
	// Tokens, when any, are the bearer tokens the query API accepts; a
	// request without one of them is answered 401. Probes (/healthz,
	// /readyz) and /metrics stay open.
	Tokens []string `koanf:"tokens"`
	// ContentTypes declares, per store, the media type of its values, sent
	// as the Content-Type of key lookups (application/octet-stream for a
	// store not named).
	ContentTypes map[string]string `koanf:"content_types"`
	// Routes are the app's own HTTP routes, served by guest query handlers
	// or by the host's built-in answers.
	Routes []Route `koanf:"routes"`
	// MaxWatches caps the watches (push queries) open on an instance at
	// once, relayed ones included; MaxWatchesPerClient caps those of one
	// client (its token, or its address when the API has no tokens).
	MaxWatches          int `koanf:"max_watches"`
	MaxWatchesPerClient int `koanf:"max_watches_per_client"`
	// WatchBuffer is how many changes a watch queues for a client that
	// reads slowly before it sends only the latest per key;
	// WatchCoalesceKeys how many keys it then holds before it ends the
	// watch with the reason.
	WatchBuffer       int `koanf:"watch_buffer"`
	WatchCoalesceKeys int `koanf:"watch_coalesce_keys"`
}

// Route is one HTTP route of the app.
type Route struct {
	Method string `koanf:"method"` // default GET
	// Path is a net/http ServeMux path pattern, such as
	// /charts/genre/{genre}; a trailing slash matches the whole subtree.
	Path string `koanf:"path"`
	// Stage names the stage whose module serves the route through its
	// streamrt_query export.
	Stage string `koanf:"stage"`
	// Store is the store or table the request routes by: it is answered by
	// the instance that owns Key's partition of Store. Without a store the
	// route is answered by whichever instance receives it.
	Store string `koanf:"store"`
	// Key is the routing key: path parameters in braces, the rest literal,
	// such as "{genre}" or "top-five"; "{genre|lower}" lower-cases the
	// parameter.
	Key string `koanf:"key"`
	// Builtin names a host-provided answer instead of a stage: "instances"
	// lists the instances (optionally those holding the {store} path
	// parameter's store) as [{"host","port","storeNames"}].
	Builtin string `koanf:"builtin"`
}

// Route builtins.
const BuiltinInstances = "instances"

// Table is a store the host materialises from a topic, with no guest code:
// each record puts its value under its key, and a null value (tombstone)
// deletes the key. The topic is the table's changelog.
type Table struct {
	Name  string `koanf:"name"`  // the store name guests open
	Topic string `koanf:"topic"` // the source topic
	// Global tables are held whole by every instance, for lookups by any
	// key; other tables are partitioned like the stage that reads them.
	Global bool `koanf:"global"`
}

// Table returns the table named name.
func (c *Config) Table(name string) (*Table, bool) {
	for i := range c.Tables {
		if c.Tables[i].Name == name {
			return &c.Tables[i], true
		}
	}
	return nil, false
}

// Stage configures one stage: a module, its input topics, its stores and its
// named outputs.
type Stage struct {
	Name    string            `koanf:"name"`
	Module  string            `koanf:"module"` // a .wasm file or a Go guest package directory
	Inputs  []string          `koanf:"inputs"`
	Stores  []string          `koanf:"stores"`
	Tables  []string          `koanf:"tables"`  // tables the stage may read
	Outputs map[string]string `koanf:"outputs"` // output name -> topic
	// Repartition maps output names to the stages they feed through an
	// internal topic, RepartitionTopic(app, stage), keyed by whatever the
	// guest emits: written in YAML as outputs: {name: {repartition: stage}}.
	// Resolving the configuration adds the topic to Outputs and to the
	// target stage's Inputs.
	Repartition map[string]string `koanf:"-"`
	// Latest names the outputs that keep only the latest record per key
	// within a commit cycle, written in YAML as outputs: {name: {topic: T,
	// keep: latest}}: such an output is produced at the commit, with the
	// last record the cycle emitted for each key (records with a null key
	// are all kept), in the order of those last records. A count's output
	// then carries each key's count once per commit instead of once per
	// input record. The default, keep: all, produces every record as its
	// batch ends.
	Latest          map[string]bool `koanf:"-"`
	ErrorPolicy     ErrorPolicy     `koanf:"error_policy"`
	DeadLetterTopic string          `koanf:"dead_letter_topic"`
	BatchSize       int             `koanf:"batch_size"`
	MemoryLimit     int64           `koanf:"memory_limit"`   // bytes
	BatchDeadline   time.Duration   `koanf:"batch_deadline"` // 0: none
	// IdleRelease, when set, releases a task's guest instance once the
	// task has had no record for that long; the next record makes a new
	// one (its _initialize runs again). An idle app then holds no guest
	// memory. 0 keeps instances for the task's life.
	IdleRelease time.Duration `koanf:"idle_release"`
}

// Keep says which of an output's records a commit cycle produces.
type Keep string

// What an output keeps.
const (
	KeepAll    Keep = "all"    // every record, as its batch ends
	KeepLatest Keep = "latest" // the latest record per key, at the commit
)

// Internal is the name the app's consumer group and internal topics
// (changelogs, repartition topics) start with: the app's name, and from
// the second generation on its name and -gN.
func (c *Config) Internal() string {
	if c.Generation == 0 {
		return c.App
	}
	return fmt.Sprintf("%s-g%d", c.App, c.Generation)
}

// RepartitionTopic names the internal topic that feeds stage: created by
// the runtime with the app's partition count and partitioned by Kafka's
// default partitioner (murmur2 of the key), so that records land with the
// task that owns their new key.
func RepartitionTopic(app, stage string) string { return app + "-" + stage + "-repartition" }

// Stage returns the stage named name.
func (c *Config) Stage(name string) (*Stage, bool) {
	for i := range c.Stages {
		if c.Stages[i].Name == name {
			return &c.Stages[i], true
		}
	}
	return nil, false
}

// Load reads the YAML file at path, applies the environment's STREAMRT_*
// variables and then overrides, and returns the validated configuration.
//
// overrides maps dotted keys to values as a flag would give them, for example
// "brokers" to "a:9092,b:9092" or "state_dir" to "/tmp/s"; problems with them
// are reported under the flag's name (--state-dir). Relative paths from the
// file are resolved against the file's directory, those from the environment
// and overrides against the working directory.
func Load(path string, overrides map[string]string) (*Config, error) {
	data, err := file.Provider(path).ReadBytes()
	if err != nil {
		return nil, &Error{File: path, Reason: "cannot read: " + pathErrText(err), Err: err}
	}
	return Parse(data, path, os.Environ(), overrides)
}

// Parse is Load for a file already read. data is the YAML; file names it for
// errors and anchors its relative paths (the working directory if empty);
// environ lists environment variables as os.Environ does (nil for none).
func Parse(data []byte, file string, environ []string, overrides map[string]string) (*Config, error) {
	ko, p, err := layers(data, file, environ, overrides, overridable)
	if ko == nil {
		return nil, err
	}
	c := &Config{name: file, sources: p.sources}
	if file != "" {
		abs, err := filepath.Abs(file)
		if err != nil {
			return nil, fmt.Errorf("streamrt: config file %s: %w", file, err)
		}
		c.File = abs
	}
	d := decoder{p: p, given: map[string]bool{}}
	d.config(ko.Raw(), c)
	c.given = d.given
	c.EnsureDefaults()
	c.resolve()
	c.validate(p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Given reports whether the file, the environment or an override set key
// (a YAML path such as "state_dir"), rather than its default.
func (c *Config) Given(key string) bool {
	_, overridden := c.sources[key]
	return overridden || c.given[key]
}

// layers merges a configuration's sources, later ones winning: the YAML,
// the environment's STREAMRT_ variables and the overrides of flags, each
// of the last two limited to the keys in settable. Problems with the
// YAML end it (nil koanf); problems with keys are collected in p.
func layers(data []byte, file string, environ []string, overrides map[string]string, settable map[string]bool) (*koanf.Koanf, *problems, error) {
	p := &problems{file: file, sources: make(map[string]string)}
	ko := koanf.New(".")
	if err := ko.Load(rawbytes.Provider(data), yaml.Parser()); err != nil {
		p.errs = append(p.errs, &Error{File: file, Reason: "invalid YAML: " + yamlErrText(err), Err: err})
		return nil, p, p.err()
	}
	envProvider := env.Provider(".", env.Opt{
		Prefix:        EnvPrefix,
		EnvironFunc:   func() []string { return environ },
		TransformFunc: envKey(p.sources, settable),
	})
	if err := ko.Load(envProvider, nil); err != nil {
		return nil, p, fmt.Errorf("streamrt: read environment: %w", err)
	}
	for _, k := range sortedKeys(overrides) {
		flag := "--" + strings.ReplaceAll(k, "_", "-")
		p.sources[k] = flag
		if !settable[k] {
			p.add(k, fmt.Sprintf("unknown key %q", k))
			continue
		}
		if err := ko.Set(k, overrides[k]); err != nil {
			return nil, p, fmt.Errorf("streamrt: override %s: %w", k, err)
		}
	}
	return ko, p, nil
}

// overridable lists the keys that the environment and flags can set: every
// scalar, not the stages.
var overridable = func() map[string]bool {
	m := map[string]bool{
		"app": true, "brokers": true, "state_dir": true, "cache_dir": true, "http": true, "advertise": true,
		"guarantee": true, "partitions": true, "replication_factor": true,
		"commit_interval": true, "start_offset": true, "state_recovery": true, "state_min_free": true, "module_header": true, "generation": true, "query.max_key_bytes": true,
		"query.max_range_limit": true, "query.handler_deadline": true, "query.forward_timeout": true,
		"query.tokens": true, "query.max_watches": true, "query.max_watches_per_client": true, "query.watch_buffer": true, "query.watch_coalesce_keys": true,
		"http_tls.cert_file": true, "http_tls.key_file": true, "http_tls.client_ca_file": true, "http_tls.ca_file": true,
	}
	kafkaSettable("kafka", m)
	return m
}()

// envKey maps STREAMRT_QUERY__MAX_KEY_BYTES to query.max_key_bytes, recording
// the variable's name in sources. Variables that name no overridable key are
// ignored rather than refused, since other tools share the prefix
// (STREAMRT_TEST_BROKERS); so are empty ones, so that VAR= unsets a key.
func envKey(sources map[string]string, settable map[string]bool) func(k, v string) (string, any) {
	return func(k, v string) (string, any) {
		key := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, EnvPrefix)), "__", ".")
		if !settable[key] || v == "" {
			return "", nil
		}
		sources[key] = k
		return key, v
	}
}

// resolve makes paths absolute: those from the file against its
// directory, those from the environment and flags against the working
// directory, and a cache directory derived from the state directory against
// the state directory's base.
func (c *Config) resolve() {
	fileDir := "."
	if c.File != "" {
		fileDir = filepath.Dir(c.File)
	}
	stateBase := fileDir
	if _, ok := c.sources["state_dir"]; ok {
		stateBase = "."
	}
	cacheBase := fileDir
	if _, ok := c.sources["cache_dir"]; ok {
		cacheBase = "."
	} else if !c.given["cache_dir"] {
		cacheBase = stateBase
	}
	if c.StateDir != "" {
		c.StateDir = absPath(stateBase, c.StateDir)
	}
	if c.CacheDir != "" {
		c.CacheDir = absPath(cacheBase, c.CacheDir)
	}
	resolveKafka(&c.Kafka, "kafka", fileDir, c.sources)
	resolveHTTPTLS(&c.HTTPTLS, "http_tls", fileDir, c.sources)
	for i := range c.Stages {
		if s := &c.Stages[i]; s.Module != "" && !strings.HasPrefix(s.Module, ModulePrefix) {
			s.Module = absPath(fileDir, s.Module)
		}
	}
}

// absPath resolves p against base and cleans it. An error of filepath.Abs
// (the working directory is gone) leaves the path relative; Validate then
// reports whatever fails to open.
func absPath(base, p string) string {
	if !filepath.IsAbs(p) {
		p = filepath.Join(base, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}
