package config

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/knadh/koanf/providers/file"
)

// Server is the configuration of a `streamrt server` instance, which hosts
// every app deployed through the control topics. It has its own file (or
// only flags and STREAMRT_ variables), validated once like an app's. The
// apps' own configurations come from the control topics; a server gives
// each of them its brokers, HTTP address and a state directory of its own.
type Server struct {
	// File is the absolute path of the configuration file; empty when
	// there is none.
	File string `koanf:"-"`

	Brokers []string `koanf:"brokers"`
	// HTTP is the address the server listens on for the apps' APIs, under
	// /apps/NAME, and for its admin API.
	HTTP string `koanf:"http"`
	// Advertise is the address other instances reach this one at; default
	// as for an app.
	Advertise string `koanf:"advertise"`
	// StateDir holds every app's state (apps/NAME/...) and the server's
	// identity; default .streamrt/server.
	StateDir string `koanf:"state_dir"`
	CacheDir string `koanf:"cache_dir"` // default <state_dir>/cache
	// InstanceID names this instance in the status it publishes; default
	// the advertised address.
	InstanceID string `koanf:"instance_id"`
	// AdminTokens are the bearer tokens of the admin API (deploy, rollback,
	// delete); the admin API refuses every request while there is none.
	AdminTokens []string `koanf:"admin_tokens"`
	// ReplicationFactor is that of the control topics the server creates;
	// -1 is the broker's default.
	ReplicationFactor int16 `koanf:"replication_factor"`
	// VersionsKept is how many versions of each app the apps topic keeps
	// for rollback.
	VersionsKept int     `koanf:"versions_kept"`
	Control      Control `koanf:"control"`
	// Kafka says how the server's Kafka clients connect, as an app's
	// kafka section does.
	Kafka Kafka `koanf:"kafka"`
	// HTTPTLS serves the server's HTTP (the apps' APIs, the admin API and
	// the probes) over HTTPS, as an app's http_tls section does; every app
	// the server hosts forwards queries over it.
	HTTPTLS HTTPTLS `koanf:"http_tls"`

	name    string
	sources map[string]string
	given   map[string]bool
}

// Control names the compacted topics through which apps are deployed.
type Control struct {
	// AppsTopic holds each app's versions: its configuration and the
	// content hashes of its modules.
	AppsTopic string `koanf:"apps_topic"`
	// ModulesTopic holds module bytes by content hash, chunked.
	ModulesTopic string `koanf:"modules_topic"`
	// StatusTopic holds what each instance runs of each app, and why not
	// when it cannot.
	StatusTopic string `koanf:"status_topic"`
	// TenantsTopic holds the tenants: their topic grants, quotas and
	// hashed tokens.
	TenantsTopic string `koanf:"tenants_topic"`
	// AuditTopic records every change made through the admin API.
	AuditTopic string `koanf:"audit_topic"`
}

// Defaults of a server's keys.
const (
	DefaultServerHTTP   = "127.0.0.1:7070"
	DefaultAppsTopic    = "_streamrt-apps"
	DefaultModulesTopic = "_streamrt-modules"
	DefaultStatusTopic  = "_streamrt-status"
	DefaultTenantsTopic = "_streamrt-tenants"
	DefaultAuditTopic   = "_streamrt-audit"
	DefaultVersionsKept = 10
	MaxVersionsKept     = 1000
)

var (
	serverKeys  = []string{"brokers", "http", "advertise", "state_dir", "cache_dir", "instance_id", "admin_tokens", "replication_factor", "versions_kept", "control", "kafka", "http_tls"}
	controlKeys = []string{"apps_topic", "modules_topic", "status_topic", "tenants_topic", "audit_topic"}
	// serverSettable are the keys the environment and flags can set.
	serverSettable = func() map[string]bool {
		m := map[string]bool{
			"brokers": true, "http": true, "advertise": true, "state_dir": true, "cache_dir": true,
			"instance_id": true, "admin_tokens": true, "replication_factor": true, "versions_kept": true,
			"control.apps_topic": true, "control.modules_topic": true, "control.status_topic": true,
			"control.tenants_topic": true, "control.audit_topic": true,
			"http_tls.cert_file": true, "http_tls.key_file": true, "http_tls.client_ca_file": true, "http_tls.ca_file": true,
		}
		kafkaSettable("kafka", m)
		return m
	}()
)

// LoadServer reads a server's configuration from the YAML file at path
// (none when path is empty), the environment's STREAMRT_ variables and
// overrides, as Load does for an app.
func LoadServer(path string, overrides map[string]string) (*Server, error) {
	var data []byte
	if path != "" {
		b, err := file.Provider(path).ReadBytes()
		if err != nil {
			return nil, &Error{File: path, Reason: "cannot read: " + pathErrText(err), Err: err}
		}
		data = b
	}
	return ParseServer(data, path, os.Environ(), overrides)
}

// ParseServer is LoadServer for a file already read.
func ParseServer(data []byte, file string, environ []string, overrides map[string]string) (*Server, error) {
	ko, p, err := layers(data, file, environ, overrides, serverSettable)
	if ko == nil {
		return nil, err
	}
	s := &Server{name: file, sources: p.sources}
	if file != "" {
		abs, err := filepath.Abs(file)
		if err != nil {
			return nil, fmt.Errorf("streamrt: config file %s: %w", file, err)
		}
		s.File = abs
	}
	d := decoder{p: p, given: map[string]bool{}}
	m := ko.Raw()
	d.unknown(m, "", serverKeys)
	s.Brokers = d.strList(m, "", "brokers", true)
	s.HTTP = d.str(m, "", "http", "")
	s.Advertise = d.str(m, "", "advertise", "")
	s.StateDir = d.str(m, "", "state_dir", "")
	s.CacheDir = d.str(m, "", "cache_dir", "")
	s.InstanceID = d.str(m, "", "instance_id", "")
	s.AdminTokens = d.strList(m, "", "admin_tokens", true)
	s.ReplicationFactor = int16(d.integer(m, "", "replication_factor", 0, math.MinInt16, math.MaxInt16))
	s.VersionsKept = int(d.integer(m, "", "versions_kept", 0, math.MinInt32, math.MaxInt32))
	cm, _ := d.mapping(m, "", "control")
	d.unknown(cm, "control", controlKeys)
	s.Control.AppsTopic = d.str(cm, "control", "apps_topic", "")
	s.Control.ModulesTopic = d.str(cm, "control", "modules_topic", "")
	s.Control.StatusTopic = d.str(cm, "control", "status_topic", "")
	s.Control.TenantsTopic = d.str(cm, "control", "tenants_topic", "")
	s.Control.AuditTopic = d.str(cm, "control", "audit_topic", "")
	km, _ := d.mapping(m, "", "kafka")
	d.kafka(km, "kafka", &s.Kafka)
	hm, _ := d.mapping(m, "", "http_tls")
	d.httpTLS(hm, "http_tls", &s.HTTPTLS)
	s.given = d.given
	s.EnsureDefaults()
	s.resolve()
	s.validate(p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// EnsureDefaults gives every unset key its default.
func (s *Server) EnsureDefaults() {
	unset := func(key string) bool { return !s.given[key] }
	if s.HTTP == "" && unset("http") {
		s.HTTP = DefaultServerHTTP
	}
	if s.StateDir == "" && unset("state_dir") {
		s.StateDir = filepath.Join(".streamrt", "server")
	}
	if s.CacheDir == "" && s.StateDir != "" {
		s.CacheDir = filepath.Join(s.StateDir, "cache")
	}
	if s.ReplicationFactor == 0 && unset("replication_factor") {
		s.ReplicationFactor = DefaultReplicationFactor
	}
	if s.VersionsKept == 0 && unset("versions_kept") {
		s.VersionsKept = DefaultVersionsKept
	}
	if s.Control.AppsTopic == "" && unset("control.apps_topic") {
		s.Control.AppsTopic = DefaultAppsTopic
	}
	if s.Control.ModulesTopic == "" && unset("control.modules_topic") {
		s.Control.ModulesTopic = DefaultModulesTopic
	}
	if s.Control.StatusTopic == "" && unset("control.status_topic") {
		s.Control.StatusTopic = DefaultStatusTopic
	}
	if s.Control.TenantsTopic == "" && unset("control.tenants_topic") {
		s.Control.TenantsTopic = DefaultTenantsTopic
	}
	if s.Control.AuditTopic == "" && unset("control.audit_topic") {
		s.Control.AuditTopic = DefaultAuditTopic
	}
}

// resolve makes the directories absolute, against the file's directory
// when the file set them.
func (s *Server) resolve() {
	base := "."
	if s.File != "" {
		base = filepath.Dir(s.File)
	}
	for key, dir := range map[string]*string{"state_dir": &s.StateDir, "cache_dir": &s.CacheDir} {
		if *dir == "" {
			continue
		}
		b := base
		if _, ok := s.sources[key]; ok || !s.given[key] {
			b = "."
		}
		*dir = absPath(b, *dir)
	}
	resolveKafka(&s.Kafka, "kafka", base, s.sources)
	resolveHTTPTLS(&s.HTTPTLS, "http_tls", base, s.sources)
}

// Validate checks every value and returns all problems found.
func (s *Server) Validate() error {
	p := &problems{file: s.name, sources: s.sources}
	s.validate(p)
	return p.err()
}

func (s *Server) validate(p *problems) {
	if len(s.Brokers) == 0 {
		p.add("brokers", "at least one broker is required")
	}
	for i, b := range s.Brokers {
		if why := hostPort(b); why != "" {
			p.add(fmt.Sprintf("brokers[%d]", i), why)
		}
	}
	if why := hostPort(s.HTTP); why != "" {
		p.add("http", why)
	}
	if s.Advertise != "" {
		if why := hostPort(s.Advertise); why != "" {
			p.add("advertise", why)
		}
	}
	if s.StateDir == "" {
		p.add("state_dir", "required")
	}
	if s.InstanceID != "" && !instanceID.MatchString(s.InstanceID) {
		p.add("instance_id", fmt.Sprintf("%q: 1 to 128 letters, digits, '.', '_', ':' or '-'", s.InstanceID))
	}
	for i, t := range s.AdminTokens {
		if t == "" || strings.ContainsAny(t, " \t\r\n") {
			p.add(fmt.Sprintf("admin_tokens[%d]", i), "a token must be non-empty and contain no white space")
		}
	}
	if s.ReplicationFactor < 1 && s.ReplicationFactor != -1 {
		p.add("replication_factor", fmt.Sprintf("must be at least 1, or -1 for the broker's default, got %d", s.ReplicationFactor))
	}
	if s.VersionsKept < 1 || s.VersionsKept > MaxVersionsKept {
		p.add("versions_kept", fmt.Sprintf("must be from 1 to %d, got %d", MaxVersionsKept, s.VersionsKept))
	}
	validateHTTPTLS(p, "http_tls", &s.HTTPTLS)
	validateKafka(p, "kafka", &s.Kafka)
	topics := map[string]string{}
	for _, kt := range [][2]string{{"control.apps_topic", s.Control.AppsTopic}, {"control.modules_topic", s.Control.ModulesTopic}, {"control.status_topic", s.Control.StatusTopic},
		{"control.tenants_topic", s.Control.TenantsTopic}, {"control.audit_topic", s.Control.AuditTopic}} {
		key, t := kt[0], kt[1]
		if why := validTopic(t); why != "" {
			p.add(key, why)
		} else if other, dup := topics[t]; dup {
			p.add(key, fmt.Sprintf("topic %q is also %s", t, other))
		}
		topics[t] = key
	}
}

var instanceID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// ValidInstanceID reports whether id may name an instance (instance_id):
// 1 to 128 letters, digits, '.', '_', ':' or '-'.
func ValidInstanceID(id string) bool { return instanceID.MatchString(id) }
