package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Validate checks every value and returns all problems found, each an *Error,
// joined. Load and Parse call it; call it yourself only on a Config built or
// changed in code. It checks that each stage's module exists, so it touches
// the file system, and changes nothing.
func (c *Config) Validate() error {
	p := &problems{file: c.name, sources: c.sources}
	c.validate(p)
	return p.err()
}

func (c *Config) validate(p *problems) {
	if c.App == "" {
		p.add("app", "required")
	} else if why := validName(c.App); why != "" {
		p.add("app", why)
	}

	if len(c.Brokers) == 0 {
		p.add("brokers", "at least one broker is required")
	}
	for i, b := range c.Brokers {
		if why := hostPort(b); why != "" {
			p.add(fmt.Sprintf("brokers[%d]", i), why)
		}
	}
	if c.StateDir == "" && validName(c.App) == "" { // else it has no default
		p.add("state_dir", "required")
	}
	if why := hostPort(c.HTTP); why != "" {
		p.add("http", why)
	}
	if c.Guarantee != AtLeastOnce && c.Guarantee != ExactlyOnce {
		p.add("guarantee", fmt.Sprintf("must be %s or %s, got %q", AtLeastOnce, ExactlyOnce, c.Guarantee))
	}
	if c.StandbyReplicas < 0 || c.StandbyReplicas > MaxStandbyReplicas {
		p.add("standby_replicas", fmt.Sprintf("must be from 0 to %d, got %d", MaxStandbyReplicas, c.StandbyReplicas))
	}
	if c.SessionTimeout < MinSessionTimeout || c.SessionTimeout > MaxSessionTimeout {
		p.add("session_timeout", fmt.Sprintf("must be from %s to %s, got %s", MinSessionTimeout, MaxSessionTimeout, c.SessionTimeout))
	}
	if c.InstanceID != "" && !instanceID.MatchString(c.InstanceID) {
		p.add("instance_id", fmt.Sprintf("%q: 1 to 128 letters, digits, '.', '_', ':' or '-'", c.InstanceID))
	}
	if c.Partitions < 1 {
		p.add("partitions", fmt.Sprintf("must be at least 1, got %d", c.Partitions))
	}
	if c.ReplicationFactor < 1 && c.ReplicationFactor != -1 {
		p.add("replication_factor", fmt.Sprintf("must be at least 1, or -1 for the broker's default, got %d", c.ReplicationFactor))
	}
	if c.CommitInterval <= 0 {
		p.add("commit_interval", fmt.Sprintf("must be positive, got %s", c.CommitInterval))
	}
	if c.StartOffset != StartEarliest && c.StartOffset != StartLatest {
		p.add("start_offset", fmt.Sprintf("must be %s or %s, got %q", StartEarliest, StartLatest, c.StartOffset))
	}
	if c.StateRecovery != RecoveryRebuild && c.StateRecovery != RecoveryRefuse {
		p.add("state_recovery", fmt.Sprintf("must be %s or %s, got %q", RecoveryRebuild, RecoveryRefuse, c.StateRecovery))
	}
	if mf := c.StateMinFree; mf.Bytes < 0 || mf.Percent < 0 || mf.Percent >= 100 {
		p.add("state_min_free", fmt.Sprintf("must be a size of at least 0 and a percentage below 100%%, got %s", mf))
	}

	validateKafka(p, "kafka", &c.Kafka)
	validateHTTPTLS(p, "http_tls", &c.HTTPTLS)

	if len(c.Stages) == 0 {
		p.add("stages", "at least one stage is required")
	}
	stageAt := make(map[string]int)    // stage name -> index
	storeAt := make(map[string]string) // store or table name -> key that named it first
	tableAt := make(map[string]*Table)
	for i := range c.Tables {
		t := &c.Tables[i]
		path := fmt.Sprintf("tables[%d]", i)
		switch {
		case t.Name == "" || len(t.Name) > MaxStoreName:
			p.add(path+".name", fmt.Sprintf("table name must be 1 to %d bytes, got %d", MaxStoreName, len(t.Name)))
		case storeAt[t.Name] != "":
			p.add(path+".name", fmt.Sprintf("duplicate table %q (also %s)", t.Name, storeAt[t.Name]))
		default:
			storeAt[t.Name] = path + ".name"
			tableAt[t.Name] = t
		}
		if why := validTopic(t.Topic); why != "" {
			p.add(path+".topic", why)
		}
	}
	readBy := make(map[string]string) // co-partitioned table -> key of the stage that reads it
	for i := range c.Stages {
		s := &c.Stages[i]
		path := fmt.Sprintf("stages[%d]", i)
		switch why := validName(s.Name); {
		case s.Name == "":
			p.add(path+".name", "required")
		case why != "":
			p.add(path+".name", why)
		default:
			if j, dup := stageAt[s.Name]; dup {
				p.add(path+".name", fmt.Sprintf("duplicate stage name %q (also stages[%d])", s.Name, j))
			} else {
				stageAt[s.Name] = i
			}
		}
		s.validate(p, path, storeAt)
		for _, name := range sortedKeys(s.Repartition) {
			key := path + ".outputs." + name + ".repartition"
			if target := s.Repartition[name]; target == s.Name {
				p.add(key, fmt.Sprintf("stage %q cannot repartition into itself", target))
			} else if _, ok := c.Stage(target); !ok {
				p.add(key, fmt.Sprintf("no stage %q", target))
			}
		}
		for _, name := range sortedKeys(s.Latest) {
			if _, ok := s.Outputs[name]; !ok && s.Repartition[name] == "" {
				p.add(path+".outputs."+name, "keep: latest for an output that has no topic")
			}
		}
		for j, name := range s.Tables {
			key := fmt.Sprintf("%s.tables[%d]", path, j)
			t, ok := tableAt[name]
			switch {
			case !ok:
				p.add(key, fmt.Sprintf("no table %q is declared under tables", name))
			case !t.Global && readBy[name] != "":
				p.add(key, fmt.Sprintf("table %q is co-partitioned and already read by %s; a co-partitioned table is read by one stage (make it global to share it)", name, readBy[name]))
			case !t.Global:
				readBy[name] = path
			}
		}
	}
	c.validateQuery(p, storeAt)
	c.topology(p.add)
}

func (s *Stage) validate(p *problems, path string, storeAt map[string]string) {
	if s.Module == "" {
		p.add(path+".module", "required")
	} else if why, err := checkModule(s.Module); why != "" {
		p.addErr(path+".module", why, err)
	}

	if len(s.Inputs) == 0 {
		p.add(path+".inputs", "at least one input topic is required")
	}
	seen := make(map[string]bool)
	for i, t := range s.Inputs {
		key := fmt.Sprintf("%s.inputs[%d]", path, i)
		if why := validTopic(t); why != "" {
			p.add(key, why)
		} else if seen[t] {
			p.add(key, fmt.Sprintf("duplicate input topic %q", t))
		}
		seen[t] = true
	}

	for i, name := range s.Stores {
		key := fmt.Sprintf("%s.stores[%d]", path, i)
		switch {
		case name == "" || len(name) > MaxStoreName:
			p.add(key, fmt.Sprintf("store name must be 1 to %d bytes, got %d", MaxStoreName, len(name)))
		case storeAt[name] != "":
			p.add(key, fmt.Sprintf("duplicate store %q (also %s)", name, storeAt[name]))
		default:
			storeAt[name] = key
		}
	}

	for _, name := range sortedKeys(s.Outputs) {
		key := path + ".outputs." + name
		if name == "" {
			p.add(key, "output name must not be empty")
		} else if why := validTopic(s.Outputs[name]); why != "" {
			p.add(key, why)
		}
	}

	switch s.ErrorPolicy {
	case PolicyDeadLetter:
		if why := validTopic(s.DeadLetterTopic); why != "" {
			p.add(path+".dead_letter_topic", why)
		}
	case PolicyFail, PolicySkip:
		if s.DeadLetterTopic != "" {
			p.add(path+".dead_letter_topic", fmt.Sprintf("only allowed with error_policy %s, not %s", PolicyDeadLetter, s.ErrorPolicy))
		}
	default:
		p.add(path+".error_policy", fmt.Sprintf("must be %s, %s or %s, got %q", PolicyFail, PolicySkip, PolicyDeadLetter, s.ErrorPolicy))
	}

	if s.BatchSize < 1 || s.BatchSize > MaxBatchSize {
		p.add(path+".batch_size", fmt.Sprintf("must be between 1 and %d, got %d", MaxBatchSize, s.BatchSize))
	}
	if s.MemoryLimit < MinMemoryLimit || s.MemoryLimit > MaxMemoryLimit {
		p.add(path+".memory_limit", fmt.Sprintf("must be between %s and %s, got %s",
			FormatByteSize(MinMemoryLimit), FormatByteSize(MaxMemoryLimit), FormatByteSize(s.MemoryLimit)))
	}
	// Zero turns the deadline off: guest code runs faster without wazero's
	// termination checks, but a guest that never returns stalls its task.
	if s.BatchDeadline < 0 {
		p.add(path+".batch_deadline", fmt.Sprintf("must be positive, or 0 for no deadline, got %s", s.BatchDeadline))
	}
	if s.IdleRelease < 0 {
		p.add(path+".idle_release", fmt.Sprintf("must be positive, or 0 to keep instances, got %s", s.IdleRelease))
	}
}

// checkModule checks that path is a .wasm file, a directory holding a Go
// package, a Rust crate or an AssemblyScript project, or a module's content
// address, and says why not.
func checkModule(path string) (string, error) {
	if hash, ok := strings.CutPrefix(path, ModulePrefix); ok {
		if !moduleHash.MatchString(hash) {
			return fmt.Sprintf("%q: a content address is %s and 64 lowercase hex digits", path, ModulePrefix), nil
		}
		return "", nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Sprintf("cannot use %s: %s", path, pathErrText(err)), err
	}
	if !fi.IsDir() {
		if filepath.Ext(path) != ".wasm" {
			return fmt.Sprintf("%s is neither a .wasm file nor a Go package directory", path), nil
		}
		return "", nil
	}
	if _, err := os.Stat(filepath.Join(path, "Cargo.toml")); err == nil {
		return "", nil // a Rust crate
	}
	if _, err := os.Stat(filepath.Join(path, "package.json")); err == nil {
		return "", nil // an AssemblyScript project
	}
	gofiles, err := filepath.Glob(filepath.Join(path, "*.go"))
	if err != nil {
		return "", nil
	}
	for _, f := range gofiles {
		if !strings.HasSuffix(f, "_test.go") {
			return "", nil
		}
	}
	return fmt.Sprintf("directory %s holds no Go package (no .go files), no Rust crate (no Cargo.toml) and no AssemblyScript project (no package.json); want a .wasm file, a Go guest package, a Rust crate or an AssemblyScript project directory", path), nil
}

// ModulePrefix starts a module named by its content address, the hex
// sha256 of its bytes, as the apps a server runs name their modules.
const ModulePrefix = "sha256:"

var moduleHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ModuleHash returns the content hash a module reference names, if it is a
// content address.
func ModuleHash(module string) (string, bool) {
	hash, ok := strings.CutPrefix(module, ModulePrefix)
	return hash, ok && moduleHash.MatchString(hash)
}

// validName checks an app or stage name, which becomes part of consumer
// group, topic and directory names; it returns why the name is refused.
func validName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case s == "." || s == "..":
		return fmt.Sprintf("must not be %q", s)
	case len(s) > maxTopicName:
		return fmt.Sprintf("must be at most %d characters, got %d", maxTopicName, len(s))
	}
	for _, r := range s {
		if !nameChar(r) {
			return fmt.Sprintf("%q: only letters, digits, '.', '_' and '-' are allowed", s)
		}
	}
	return ""
}

// validTopic checks a Kafka topic name; it returns why the name is refused.
// ValidTopicName says why s is not a valid Kafka topic name, or "".
func ValidTopicName(s string) string { return validTopic(s) }

// ValidTopicPrefix says why s cannot start topic names, or "".
func ValidTopicPrefix(s string) string {
	if s == "" {
		return "a prefix must not be empty"
	}
	return validTopic(s)
}

func validTopic(s string) string {
	switch {
	case s == "":
		return "topic name must not be empty"
	case s == "." || s == "..":
		return fmt.Sprintf("topic name must not be %q", s)
	case len(s) > maxTopicName:
		return fmt.Sprintf("topic name must be at most %d characters, got %d", maxTopicName, len(s))
	}
	for _, r := range s {
		if !nameChar(r) {
			return fmt.Sprintf("invalid topic name %q: only letters, digits, '.', '_' and '-' are allowed", s)
		}
	}
	return ""
}

func nameChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
		r == '.' || r == '_' || r == '-'
}

// hostPort checks a host:port address; it returns why it is refused.
func hostPort(addr string) string {
	if addr == "" {
		return "must be host:port, got \"\""
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("must be host:port, got %q", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("port must be a number from 0 to 65535, got %q", addr)
	}
	return ""
}

// pathErrText is the cause of a file system error without the path, which
// the message already names.
func pathErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// yamlErrText is a YAML parser's message without its "yaml: " prefix, on one
// line.
func yamlErrText(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = strings.TrimPrefix(s, "unmarshal errors:\n  ")
	s = notMapping.ReplaceAllString(s, "the document must be a mapping of keys, got !!$1")
	return strings.ReplaceAll(s, "\n  ", "; ")
}

var notMapping = regexp.MustCompile(`cannot unmarshal !!(\w+) into map\[string\]interface \{\}`)
