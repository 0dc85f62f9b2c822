package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The keys each mapping accepts, in the order the schema documents them.
var (
	configKeys = []string{"app", "brokers", "state_dir", "cache_dir", "http", "http_tls", "advertise", "guarantee", "standby_replicas", "session_timeout", "instance_id", "partitions",
		"replication_factor", "commit_interval", "start_offset", "state_recovery", "state_min_free", "module_header", "generation", "kafka", "query", "tables", "stages"}
	tableKeys = []string{"name", "topic", "global"}
	queryKeys = []string{"max_key_bytes", "max_range_limit", "handler_deadline", "forward_timeout", "tokens", "content_types", "routes", "max_watches", "max_watches_per_client", "watch_buffer", "watch_coalesce_keys"}
	routeKeys = []string{"method", "path", "stage", "store", "key", "builtin"}
	stageKeys = []string{"name", "module", "inputs", "stores", "tables", "outputs", "error_policy",
		"dead_letter_topic", "batch_size", "memory_limit", "batch_deadline", "idle_release"}
)

// decoder turns the merged configuration map into a Config. Every key is
// checked, and a value of the wrong shape is reported and left at its zero
// value, so that decoding always finishes and reports every problem. Absent
// keys stay zero: EnsureDefaults gives them their defaults, and knows from
// given which zeros the configuration asked for.
//
// The map holds what the YAML parser and the environment produce: strings,
// ints, floats, bools, []any and map[string]any. Numbers, durations and sizes
// are accepted as strings too, since the environment and flags give nothing
// else.
type decoder struct {
	p     *problems
	given map[string]bool // YAML paths of the values present, for EnsureDefaults
}

func (d decoder) config(m map[string]any, c *Config) {
	d.unknown(m, "", configKeys)
	c.App = d.str(m, "", "app", "")
	c.Brokers = d.strList(m, "", "brokers", true)
	c.StateDir = d.str(m, "", "state_dir", "")
	c.CacheDir = d.str(m, "", "cache_dir", "")
	c.HTTP = d.str(m, "", "http", "")
	c.Advertise = d.str(m, "", "advertise", "")
	c.Guarantee = Guarantee(d.str(m, "", "guarantee", ""))
	c.StandbyReplicas = int(d.integer(m, "", "standby_replicas", 0, math.MinInt32, math.MaxInt32))
	c.SessionTimeout = d.duration(m, "", "session_timeout", 0)
	c.InstanceID = d.str(m, "", "instance_id", "")
	c.Partitions = int32(d.integer(m, "", "partitions", 0, math.MinInt32, math.MaxInt32))
	c.ReplicationFactor = int16(d.integer(m, "", "replication_factor", 0, math.MinInt16, math.MaxInt16))
	c.CommitInterval = d.duration(m, "", "commit_interval", 0)
	c.StartOffset = StartOffset(d.str(m, "", "start_offset", ""))
	c.StateRecovery = StateRecovery(d.str(m, "", "state_recovery", ""))
	c.StateMinFree = d.minFree(m, "", "state_min_free")
	c.ModuleHeader = d.boolean(m, "", "module_header")
	c.Generation = int(d.integer(m, "", "generation", 0, 0, math.MaxInt32))

	km, _ := d.mapping(m, "", "kafka")
	d.kafka(km, "kafka", &c.Kafka)
	hm, _ := d.mapping(m, "", "http_tls")
	d.httpTLS(hm, "http_tls", &c.HTTPTLS)

	q, _ := d.mapping(m, "", "query")
	d.query(q, &c.Query)

	if v, ok := m["tables"]; ok && v != nil {
		if list, ok := v.([]any); !ok {
			d.p.add("tables", "must be a list of tables, got "+describe(v))
		} else if len(list) > 0 {
			c.Tables = make([]Table, len(list))
			for i, item := range list {
				path := fmt.Sprintf("tables[%d]", i)
				tm, ok := item.(map[string]any)
				if !ok {
					d.p.add(path, "must be a mapping with name, topic and global, got "+describe(item))
					continue
				}
				d.unknown(tm, path, tableKeys)
				c.Tables[i] = Table{Name: d.str(tm, path, "name", ""), Topic: d.str(tm, path, "topic", ""), Global: d.boolean(tm, path, "global")}
			}
		}
	}

	v, ok := m["stages"]
	if !ok || v == nil {
		return
	}
	list, ok := v.([]any)
	if !ok {
		d.p.add("stages", "must be a list of stages, got "+describe(v))
		return
	}
	c.Stages = make([]Stage, len(list))
	for i, item := range list {
		path := fmt.Sprintf("stages[%d]", i)
		sm, ok := item.(map[string]any)
		if !ok {
			d.p.add(path, "must be a mapping with name, module, inputs…, got "+describe(item))
			continue
		}
		d.stage(sm, path, &c.Stages[i])
	}
}

// query decodes the query section; m is nil when it is absent.
func (d decoder) query(m map[string]any, q *Query) {
	d.unknown(m, "query", queryKeys)
	q.MaxKeyBytes = int(d.integer(m, "query", "max_key_bytes", 0, math.MinInt32, math.MaxInt32))
	q.MaxRangeLimit = int(d.integer(m, "query", "max_range_limit", 0, math.MinInt32, math.MaxInt32))
	q.HandlerDeadline = d.duration(m, "query", "handler_deadline", 0)
	q.ForwardTimeout = d.duration(m, "query", "forward_timeout", 0)
	q.Tokens = d.strList(m, "query", "tokens", true)
	q.MaxWatches = int(d.integer(m, "query", "max_watches", 0, math.MinInt32, math.MaxInt32))
	q.MaxWatchesPerClient = int(d.integer(m, "query", "max_watches_per_client", 0, math.MinInt32, math.MaxInt32))
	q.WatchBuffer = int(d.integer(m, "query", "watch_buffer", 0, math.MinInt32, math.MaxInt32))
	q.WatchCoalesceKeys = int(d.integer(m, "query", "watch_coalesce_keys", 0, math.MinInt32, math.MaxInt32))
	if cm, ok := d.mapping(m, "query", "content_types"); ok && len(cm) > 0 {
		q.ContentTypes = make(map[string]string, len(cm))
		for _, store := range sortedKeys(cm) {
			q.ContentTypes[store] = d.str(cm, "query.content_types", store, "")
		}
	}
	v, ok := m["routes"]
	if !ok || v == nil {
		return
	}
	list, ok := v.([]any)
	if !ok {
		d.p.add("query.routes", "must be a list of routes, got "+describe(v))
		return
	}
	q.Routes = make([]Route, len(list))
	for i, item := range list {
		path := fmt.Sprintf("query.routes[%d]", i)
		rm, ok := item.(map[string]any)
		if !ok {
			d.p.add(path, "must be a mapping with method, path, stage, store and key, got "+describe(item))
			continue
		}
		d.unknown(rm, path, routeKeys)
		q.Routes[i] = Route{
			Method:  d.str(rm, path, "method", ""),
			Path:    d.str(rm, path, "path", ""),
			Stage:   d.str(rm, path, "stage", ""),
			Store:   d.str(rm, path, "store", ""),
			Key:     d.str(rm, path, "key", ""),
			Builtin: d.str(rm, path, "builtin", ""),
		}
	}
}

func (d decoder) stage(m map[string]any, path string, s *Stage) {
	d.unknown(m, path, stageKeys)
	s.Name = d.str(m, path, "name", "")
	s.Module = d.str(m, path, "module", "")
	s.Inputs = d.strList(m, path, "inputs", false)
	s.Stores = d.strList(m, path, "stores", false)
	s.Tables = d.strList(m, path, "tables", false)
	if om, ok := d.mapping(m, path, "outputs"); ok && len(om) > 0 {
		s.Outputs = make(map[string]string, len(om))
		for _, name := range sortedKeys(om) {
			key := path + ".outputs." + name
			switch t := om[name].(type) {
			case string:
				s.Outputs[name] = t
			case map[string]any:
				d.unknown(t, key, []string{"topic", "repartition", "keep"})
				topic, target := d.str(t, key, "topic", ""), d.str(t, key, "repartition", "")
				switch {
				case topic != "" && target != "":
					d.p.add(key, fmt.Sprintf("has both topic %q and repartition %q; give one", topic, target))
				case topic != "":
					s.Outputs[name] = topic
				case target != "":
					if s.Repartition == nil {
						s.Repartition = map[string]string{}
					}
					s.Repartition[name] = target
				default:
					d.p.add(key+".repartition", "required: the stage this output feeds (or give a topic)")
				}
				switch keep := Keep(d.str(t, key, "keep", "")); keep {
				case "", KeepAll:
				case KeepLatest:
					if s.Latest == nil {
						s.Latest = map[string]bool{}
					}
					s.Latest[name] = true
				default:
					d.p.add(key+".keep", fmt.Sprintf("must be %s or %s, got %q", KeepAll, KeepLatest, keep))
				}
			default:
				d.p.add(key, "must be a topic name or a mapping with topic or repartition, and keep, got "+describe(t))
			}
		}
	}
	s.ErrorPolicy = ErrorPolicy(d.str(m, path, "error_policy", ""))
	s.DeadLetterTopic = d.str(m, path, "dead_letter_topic", "")
	s.BatchSize = int(d.integer(m, path, "batch_size", 0, math.MinInt32, math.MaxInt32))
	s.MemoryLimit = d.byteSize(m, path, "memory_limit", 0)
	s.BatchDeadline = d.duration(m, path, "batch_deadline", 0)
	s.IdleRelease = d.duration(m, path, "idle_release", 0)
}

// unknown reports the keys of m that are not in known, suggesting the known
// key closest to a misspelt one.
func (d decoder) unknown(m map[string]any, path string, known []string) {
	for _, k := range sortedKeys(m) {
		if slices.Contains(known, k) {
			continue
		}
		reason := "unknown key"
		if s := closest(k, known); s != "" {
			reason += fmt.Sprintf(" (did you mean %s?)", s)
		}
		d.p.add(join(path, k), reason)
	}
}

// value returns m[key] and its path, and notes the path as given; ok is
// false if the key is absent or null.
func (d decoder) value(m map[string]any, path, key string) (v any, full string, ok bool) {
	v, ok = m[key]
	full = join(path, key)
	if ok && v != nil {
		d.given[full] = true
	}
	return v, full, ok && v != nil
}

func (d decoder) mapping(m map[string]any, path, key string) (map[string]any, bool) {
	v, full, ok := d.value(m, path, key)
	if !ok {
		return nil, false
	}
	mm, ok := v.(map[string]any)
	if !ok {
		d.p.add(full, "must be a mapping, got "+describe(v))
	}
	return mm, ok
}

func (d decoder) str(m map[string]any, path, key, def string) string {
	v, full, ok := d.value(m, path, key)
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		d.p.add(full, "must be a string, got "+describe(v)+" (quote it)")
		return def
	}
	return s
}

// boolean decodes true or false (also as a string, from the environment).
func (d decoder) boolean(m map[string]any, path, key string) bool {
	v, full, ok := d.value(m, path, key)
	if !ok {
		return false
	}
	switch b := v.(type) {
	case bool:
		return b
	case string:
		switch b {
		case "true":
			return true
		case "false":
			return false
		}
	}
	d.p.add(full, "must be true or false, got "+describe(v))
	return false
}

// strList decodes a list of strings. With commas, a single string is split at
// commas, as the environment and flags give lists.
func (d decoder) strList(m map[string]any, path, key string, commas bool) []string {
	v, full, ok := d.value(m, path, key)
	if !ok {
		return nil
	}
	switch t := v.(type) {
	case string:
		if !commas {
			break
		}
		var out []string
		for s := range strings.SplitSeq(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	case []any:
		if len(t) == 0 {
			return nil
		}
		// A bad item is reported and kept as "", so that later items keep
		// their index and Validate finds the list's length unchanged.
		out := make([]string, len(t))
		for i, item := range t {
			s, ok := item.(string)
			if !ok {
				d.p.add(fmt.Sprintf("%s[%d]", full, i), "must be a string, got "+describe(item))
			}
			out[i] = s
		}
		return out
	}
	if commas {
		d.p.add(full, "must be a list or a comma-separated string, got "+describe(v))
	} else {
		d.p.add(full, "must be a list, got "+describe(v))
	}
	return nil
}

// integer decodes an integer that must fit in [lo, hi], the bounds of the
// field's type; Validate checks the narrower bounds of the key.
func (d decoder) integer(m map[string]any, path, key string, def, lo, hi int64) int64 {
	v, full, ok := d.value(m, path, key)
	if !ok {
		return def
	}
	var n int64
	var err error
	switch t := v.(type) {
	case int:
		n = int64(t)
	case int64:
		n = t
	case uint64:
		if t > math.MaxInt64 {
			err = strconv.ErrRange
		}
		n = int64(t)
	case float64:
		if t != math.Trunc(t) || t < math.MinInt64 || t >= math.MaxInt64 {
			err = strconv.ErrSyntax
		}
		n = int64(t)
	case string:
		n, err = strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	default:
		err = strconv.ErrSyntax
	}
	switch {
	case errors.Is(err, strconv.ErrRange) || err == nil && (n < lo || n > hi):
		d.p.add(full, fmt.Sprintf("must be between %d and %d, got %s", lo, hi, describe(v)))
		return def
	case err != nil:
		d.p.add(full, "must be an integer, got "+describe(v))
		return def
	}
	return n
}

func (d decoder) duration(m map[string]any, path, key string, def time.Duration) time.Duration {
	v, full, ok := d.value(m, path, key)
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		d.p.add(full, "must be a duration with a unit, such as 100ms or 5s, got "+describe(v))
		return def
	}
	dur, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		d.p.add(full, "must be a duration with a unit, such as 100ms or 5s, got "+describe(v))
		return def
	}
	return dur
}

func (d decoder) byteSize(m map[string]any, path, key string, def int64) int64 {
	v, full, ok := d.value(m, path, key)
	if !ok {
		return def
	}
	var n int64
	var err error
	switch t := v.(type) {
	case int:
		n = int64(t)
	case int64:
		n = t
	case string:
		n, err = ParseByteSize(t)
	default:
		err = errors.New("not a size")
	}
	if err != nil {
		d.p.add(full, "must be a size such as 64MiB (units B, KiB, MiB, GiB, KB, MB, GB), got "+describe(v))
		return def
	}
	return n
}

func (d decoder) minFree(m map[string]any, path, key string) MinFree {
	v, full, ok := d.value(m, path, key)
	if !ok {
		return MinFree{}
	}
	var mf MinFree
	var err error
	switch t := v.(type) {
	case int:
		mf.Bytes = int64(t)
	case int64:
		mf.Bytes = t
	case string:
		mf, err = ParseMinFree(t)
	default:
		err = errors.New("not a size")
	}
	if err != nil || mf.Bytes < 0 {
		d.p.add(full, "must be a size such as 512MiB, a percentage of the filesystem such as 5%, or the larger of both such as 1GiB+5%, got "+describe(v))
		return MinFree{}
	}
	return mf
}

// byteUnits maps size suffixes to their multipliers.
var byteUnits = map[string]int64{
	"": 1, "B": 1,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
	"KB": 1e3, "kB": 1e3, "MB": 1e6, "GB": 1e9,
}

// ParseByteSize parses a whole number of bytes with an optional unit:
// "64MiB", "512 KB", "1048576".
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(s)
	}
	if i == 0 {
		return 0, strconv.ErrSyntax
	}
	mult, ok := byteUnits[strings.TrimSpace(s[i:])]
	if !ok {
		return 0, strconv.ErrSyntax
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt64/mult {
		return 0, strconv.ErrRange
	}
	return n * mult, nil
}

// FormatByteSize renders n in the largest binary unit that divides it.
func FormatByteSize(n int64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n != 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n != 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// describe renders a decoded value for an error message.
func describe(v any) string {
	switch t := v.(type) {
	case string:
		return strconv.Quote(t)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// closest returns the key of known nearest to k if it is a plausible typo
// (at most two edits away), else "".
func closest(k string, known []string) string {
	best, bestDist := "", 3
	for _, c := range known {
		if dist := editDistance(k, c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
