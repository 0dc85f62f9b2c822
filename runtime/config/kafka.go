package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/knadh/koanf/providers/file"
)

// Kafka says how the host's Kafka clients connect: over TLS, with SASL, or
// neither (the zero value: plaintext without authentication). Every client
// the host creates uses it: the consumer group's, the admin one, restores,
// standby copies, global tables and topic creation, and the CLI's produce
// and consume.
//
// Secrets never sit in the configuration: a password comes from an
// environment variable or a file, a token from a file, and both are read
// when a connection authenticates, so a rotated file is picked up by the
// next connection. No error, log line, metric or probe shows them.
type Kafka struct {
	TLS  KafkaTLS  `koanf:"tls"`
	SASL KafkaSASL `koanf:"sasl"`
}

// KafkaTLS configures TLS to the brokers. It is on when the configuration
// has a tls section (even an empty one, which trusts the system roots) or
// sets enabled.
type KafkaTLS struct {
	Enabled bool `koanf:"enabled"`
	// CAFile holds the PEM certificates of the CAs trusted to sign the
	// brokers' certificates; none: the system roots.
	CAFile string `koanf:"ca_file"`
	// CertFile and KeyFile, given together, are the client's certificate
	// chain and private key in PEM, for brokers that require mutual TLS.
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
	// ServerName is the name the brokers' certificates must carry; none:
	// the host of the address dialled.
	ServerName string `koanf:"server_name"`
	// InsecureSkipVerify accepts any broker certificate. For tests only:
	// the runtime logs a warning when it starts with it.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

// KafkaSASL configures SASL authentication to the brokers. An empty
// Mechanism turns it off.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
	Mechanism string `koanf:"mechanism"`
	// Username, with the password read from the environment variable
	// PasswordEnv or the file PasswordFile (one of them), for PLAIN and
	// SCRAM.
	Username     string `koanf:"username"`
	PasswordEnv  string `koanf:"password_env"`
	PasswordFile string `koanf:"password_file"`
	// TokenFile holds the bearer token for OAUTHBEARER; it is read again
	// at every authentication, so replacing the file rotates the token.
	TokenFile string `koanf:"token_file"`
	// AllowCleartext lets PLAIN and OAUTHBEARER, which send the password
	// or token as it is, run without TLS; they are refused otherwise.
	AllowCleartext bool `koanf:"allow_cleartext"`
}

// SASL mechanisms.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
	SASLOAuthBearer = "OAUTHBEARER"
)

var saslMechanisms = []string{SASLPlain, SASLScramSHA256, SASLScramSHA512, SASLOAuthBearer}

var (
	kafkaKeys     = []string{"tls", "sasl"}
	kafkaTLSKeys  = []string{"enabled", "ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify"}
	kafkaSASLKeys = []string{"mechanism", "username", "password_env", "password_file", "token_file", "allow_cleartext"}
)

// kafkaSettable lists the kafka keys, under prefix, that the environment
// and flags can set: all of them.
func kafkaSettable(prefix string, into map[string]bool) {
	for _, k := range kafkaTLSKeys {
		into[prefix+".tls."+k] = true
	}
	for _, k := range kafkaSASLKeys {
		into[prefix+".sasl."+k] = true
	}
}

// kafka decodes a kafka section at path; m is nil when it is absent.
func (d decoder) kafka(m map[string]any, path string, k *Kafka) {
	d.unknown(m, path, kafkaKeys)
	tp := path + ".tls"
	if tm, ok := d.mapping(m, path, "tls"); ok {
		d.unknown(tm, tp, kafkaTLSKeys)
		k.TLS = KafkaTLS{
			Enabled:            d.boolean(tm, tp, "enabled"),
			CAFile:             d.str(tm, tp, "ca_file", ""),
			CertFile:           d.str(tm, tp, "cert_file", ""),
			KeyFile:            d.str(tm, tp, "key_file", ""),
			ServerName:         d.str(tm, tp, "server_name", ""),
			InsecureSkipVerify: d.boolean(tm, tp, "insecure_skip_verify"),
		}
		if !d.given[tp+".enabled"] {
			k.TLS.Enabled = true // a tls section turns TLS on
		}
	}
	sp := path + ".sasl"
	if sm, ok := d.mapping(m, path, "sasl"); ok {
		d.unknown(sm, sp, kafkaSASLKeys)
		k.SASL = KafkaSASL{
			Mechanism:      strings.ToUpper(strings.TrimSpace(d.str(sm, sp, "mechanism", ""))),
			Username:       d.str(sm, sp, "username", ""),
			PasswordEnv:    d.str(sm, sp, "password_env", ""),
			PasswordFile:   d.str(sm, sp, "password_file", ""),
			TokenFile:      d.str(sm, sp, "token_file", ""),
			AllowCleartext: d.boolean(sm, sp, "allow_cleartext"),
		}
	}
}

// resolveKafka makes k's file paths absolute: those a file gave against
// fileDir, those from the environment or flags against the working
// directory.
func resolveKafka(k *Kafka, path, fileDir string, sources map[string]string) {
	for key, p := range map[string]*string{
		"tls.ca_file": &k.TLS.CAFile, "tls.cert_file": &k.TLS.CertFile, "tls.key_file": &k.TLS.KeyFile,
		"sasl.password_file": &k.SASL.PasswordFile, "sasl.token_file": &k.SASL.TokenFile,
	} {
		if *p == "" {
			continue
		}
		base := fileDir
		if _, ok := sources[path+"."+key]; ok {
			base = "."
		}
		*p = absPath(base, *p)
	}
}

// validateKafka checks a kafka section at path: that its files exist and
// parse, that the key matches the certificate, and that SASL has what its
// mechanism needs. It reads the secrets to check they are there, and never
// puts them in a problem.
func validateKafka(p *problems, path string, k *Kafka) {
	t, s := &k.TLS, &k.SASL
	tp, sp := path+".tls", path+".sasl"
	if !t.Enabled {
		for _, kv := range [][2]string{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}, {"server_name", t.ServerName}} {
			if kv[1] != "" {
				p.add(tp+"."+kv[0], "set while "+tp+".enabled is false")
			}
		}
	} else if _, err := t.Config(); err != nil {
		var fp *fileProblem
		if errors.As(err, &fp) {
			p.addErr(tp+"."+fp.key, fp.reason, fp.err)
		} else {
			p.add(tp, err.Error())
		}
	}

	switch s.Mechanism {
	case "":
		if s.Username != "" || s.PasswordEnv != "" || s.PasswordFile != "" || s.TokenFile != "" {
			p.add(sp+".mechanism", "required with the other sasl keys: one of "+strings.Join(saslMechanisms, ", "))
		}
		return
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if s.Username == "" {
			p.add(sp+".username", "required with mechanism "+s.Mechanism)
		}
		if s.TokenFile != "" {
			p.add(sp+".token_file", "only for mechanism "+SASLOAuthBearer+", not "+s.Mechanism)
		}
		switch {
		case s.PasswordEnv != "" && s.PasswordFile != "":
			p.add(sp+".password_env", "give password_env or password_file, not both")
		case s.PasswordEnv == "" && s.PasswordFile == "":
			p.add(sp+".password_env", "required with mechanism "+s.Mechanism+": the environment variable that holds the password (or give password_file)")
		default:
			if _, err := s.Password(); err != nil {
				key := sp + ".password_env"
				if s.PasswordFile != "" {
					key = sp + ".password_file"
				}
				p.addErr(key, err.Error(), err)
			}
		}
	case SASLOAuthBearer:
		for _, kv := range [][2]string{{"username", s.Username}, {"password_env", s.PasswordEnv}, {"password_file", s.PasswordFile}} {
			if kv[1] != "" {
				p.add(sp+"."+kv[0], "not used by mechanism "+SASLOAuthBearer+" (it sends the token in token_file)")
			}
		}
		if s.TokenFile == "" {
			p.add(sp+".token_file", "required with mechanism "+SASLOAuthBearer+": the file holding the bearer token")
		} else if _, err := s.Token(); err != nil {
			p.addErr(sp+".token_file", err.Error(), err)
		}
	default:
		reason := fmt.Sprintf("unknown mechanism %q: want %s", s.Mechanism, strings.Join(saslMechanisms, ", "))
		if c := closest(s.Mechanism, saslMechanisms); c != "" {
			reason += fmt.Sprintf(" (did you mean %s?)", c)
		}
		p.add(sp+".mechanism", reason)
		return
	}
	if (s.Mechanism == SASLPlain || s.Mechanism == SASLOAuthBearer) && !t.Enabled && !s.AllowCleartext {
		secret := "password"
		if s.Mechanism == SASLOAuthBearer {
			secret = "token"
		}
		p.add(sp+".mechanism", fmt.Sprintf("%s sends the %s as it is: turn on TLS (%s), or set %s.allow_cleartext: true on a network you trust",
			s.Mechanism, secret, tp, sp))
	}
}

// fileProblem is a problem with one file of a TLS section: key names the
// key (relative to the section) whose file is at fault.
type fileProblem struct {
	key, reason string
	err         error
}

func (f *fileProblem) Error() string { return f.key + ": " + f.reason }
func (f *fileProblem) Unwrap() error { return f.err }

// Config returns the client TLS configuration t describes, its files read
// and checked: a CA file must hold PEM certificates, a key must match its
// certificate, and a certificate must be valid now. An error names the key
// and file at fault. t must be enabled.
func (t *KafkaTLS) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pool, err := loadCAs("ca_file", t.CAFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	cert, err := loadKeyPair("cert_file", t.CertFile, "key_file", t.KeyFile)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c, nil
}

// loadCAs reads a PEM file of CA certificates.
func loadCAs(key, path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &fileProblem{key, fmt.Sprintf("cannot read %s: %s", path, pathErrText(err)), err}
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, &fileProblem{key, fmt.Sprintf("%s: certificate %d does not parse: %v", path, n+1, err), err}
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, &fileProblem{key, fmt.Sprintf("%s holds no PEM certificate (want -----BEGIN CERTIFICATE-----)", path), nil}
	}
	return pool, nil
}

// loadKeyPair reads a certificate chain and its private key, both PEM,
// given together or not at all; nil when neither is.
func loadKeyPair(certKey, certPath, keyKey, keyPath string) (*tls.Certificate, error) {
	switch {
	case certPath == "" && keyPath == "":
		return nil, nil
	case keyPath == "":
		return nil, &fileProblem{keyKey, "required with " + certKey + ": the certificate's private key", nil}
	case certPath == "":
		return nil, &fileProblem{certKey, "required with " + keyKey + ": the key's certificate", nil}
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, &fileProblem{certKey, fmt.Sprintf("cannot read %s: %s", certPath, pathErrText(err)), err}
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, &fileProblem{keyKey, fmt.Sprintf("cannot read %s: %s", keyPath, pathErrText(err)), err}
	}
	if blk, _ := pem.Decode(certPEM); blk == nil || blk.Type != "CERTIFICATE" {
		return nil, &fileProblem{certKey, fmt.Sprintf("%s holds no PEM certificate (want -----BEGIN CERTIFICATE-----)", certPath), nil}
	}
	if !hasPEMKey(keyPEM) {
		return nil, &fileProblem{keyKey, fmt.Sprintf("%s holds no PEM private key (want -----BEGIN ... PRIVATE KEY-----)", keyPath), nil}
	}
	// The messages of tls.X509KeyPair never quote the key.
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return nil, &fileProblem{keyKey, fmt.Sprintf("the key in %s does not match the certificate in %s", keyPath, certPath), err}
		}
		return nil, &fileProblem{keyKey, fmt.Sprintf("%s with %s: %v", keyPath, certPath, err), err}
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, &fileProblem{certKey, fmt.Sprintf("%s does not parse: %v", certPath, err), err}
		}
	}
	switch now := time.Now(); {
	case now.After(leaf.NotAfter):
		return nil, &fileProblem{certKey, fmt.Sprintf("the certificate in %s (%s) expired at %s", certPath, leaf.Subject, leaf.NotAfter.UTC().Format(time.RFC3339)), nil}
	case now.Before(leaf.NotBefore):
		return nil, &fileProblem{certKey, fmt.Sprintf("the certificate in %s (%s) is not valid before %s", certPath, leaf.Subject, leaf.NotBefore.UTC().Format(time.RFC3339)), nil}
	}
	return &cert, nil
}

func hasPEMKey(b []byte) bool {
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return false
		}
		if strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			return true
		}
	}
}

// maxSecret bounds a password or token file.
const maxSecret = 64 << 10

// Password returns the SASL password, read now from PasswordEnv or
// PasswordFile; a file's trailing newline is dropped. Its error names the
// variable or file, never what it holds.
func (s *KafkaSASL) Password() (string, error) {
	if s.PasswordEnv != "" {
		v, ok := os.LookupEnv(s.PasswordEnv)
		switch {
		case !ok:
			return "", fmt.Errorf("environment variable %s, which should hold the password, is not set", s.PasswordEnv)
		case v == "":
			return "", fmt.Errorf("environment variable %s, which should hold the password, is empty", s.PasswordEnv)
		}
		return v, nil
	}
	return readSecret(s.PasswordFile, "password")
}

// Token returns the OAUTHBEARER token, read now from TokenFile.
func (s *KafkaSASL) Token() (string, error) { return readSecret(s.TokenFile, "token") }

func readSecret(path, what string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("no file holds the %s", what)
	}
	b, err := os.ReadFile(path)
	switch {
	case err != nil:
		return "", fmt.Errorf("cannot read the %s file %s: %s", what, path, pathErrText(err))
	case len(b) > maxSecret:
		return "", fmt.Errorf("the %s file %s is over %d bytes", what, path, maxSecret)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("the %s file %s is empty", what, path)
	}
	return v, nil
}

// LoadKafka reads the kafka section of the app configuration at path, with
// the environment's STREAMRT_KAFKA__ variables over it, and validates it;
// the file's other keys are ignored. It is how the CLI's produce and
// consume take an app's Kafka settings.
func LoadKafka(path string) (*Kafka, error) {
	data, err := file.Provider(path).ReadBytes()
	if err != nil {
		return nil, &Error{File: path, Reason: "cannot read: " + pathErrText(err), Err: err}
	}
	return ParseKafka(data, path, os.Environ())
}

// ParseKafka is LoadKafka for a file already read.
func ParseKafka(data []byte, file string, environ []string) (*Kafka, error) {
	settable := map[string]bool{}
	kafkaSettable("kafka", settable)
	ko, p, err := layers(data, file, environ, nil, settable)
	if ko == nil {
		return nil, err
	}
	d := decoder{p: p, given: map[string]bool{}}
	km, _ := d.mapping(ko.Raw(), "", "kafka")
	k := &Kafka{}
	d.kafka(km, "kafka", k)
	resolveKafka(k, "kafka", fileDir(file), p.sources)
	validateKafka(p, "kafka", k)
	if err := p.err(); err != nil {
		return nil, err
	}
	return k, nil
}

// fileDir is the directory that relative paths in file resolve against.
func fileDir(file string) string {
	if file == "" {
		return "."
	}
	return filepath.Dir(absPath(".", file))
}

// Secured reports whether k uses TLS or SASL.
func (k *Kafka) Secured() bool { return k.TLS.Enabled || k.SASL.Mechanism != "" }

// Describe renders k for a log line: what is on, and the files and user,
// never a secret.
func (k *Kafka) Describe() string {
	var parts []string
	if k.TLS.Enabled {
		tl := "tls"
		if k.TLS.CAFile != "" {
			tl += " ca=" + k.TLS.CAFile
		}
		if k.TLS.CertFile != "" {
			tl += " client-cert=" + k.TLS.CertFile
		}
		if k.TLS.InsecureSkipVerify {
			tl += " insecure-skip-verify"
		}
		parts = append(parts, tl)
	}
	if s := k.SASL; s.Mechanism != "" {
		sl := "sasl " + s.Mechanism
		if s.Username != "" {
			sl += " user=" + s.Username
		}
		parts = append(parts, sl)
	}
	if len(parts) == 0 {
		return "plaintext"
	}
	return strings.Join(parts, ", ")
}
