// Package kafka builds the options of every Kafka client the host creates,
// from an app's (or a server's) kafka configuration section: TLS and SASL.
// It is the one place those options are made; the engine's clients, topic
// creation and the CLI all start from Options.
//
// It also tells the failures that retrying cannot heal from those that it
// can. A broker that is down comes back; a wrong password, an untrusted
// certificate, a plaintext client at a TLS listener or a missing ACL do
// not, and a client that retries them forever hides the fault. Refused and
// Denied recognise them and say, in words an operator can act on, what is
// wrong: which setting, which file, which permission on which resource,
// never the secret.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Options returns the client options that k asks for: TLS to the brokers
// and a SASL mechanism. It reads and checks the TLS files now; passwords
// and tokens are read at each authentication, so a rotated file reaches
// the next connection. The options do not include the seed brokers.
func Options(k config.Kafka) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if k.TLS.Enabled {
		tc, err := k.TLS.Config()
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.%w", err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if k.SASL.Mechanism != "" {
		m, err := mechanism(k.SASL)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func mechanism(s config.KafkaSASL) (sasl.Mechanism, error) {
	user := s.Username
	switch s.Mechanism {
	case config.SASLPlain:
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			pw, err := s.Password()
			return plain.Auth{User: user, Pass: pw}, secretErr(err)
		}), nil
	case config.SASLScramSHA256, config.SASLScramSHA512:
		fn := func(context.Context) (scram.Auth, error) {
			pw, err := s.Password()
			return scram.Auth{User: user, Pass: pw}, secretErr(err)
		}
		if s.Mechanism == config.SASLScramSHA256 {
			return scram.Sha256(fn), nil
		}
		return scram.Sha512(fn), nil
	case config.SASLOAuthBearer:
		return oauth.Oauth(func(context.Context) (oauth.Auth, error) {
			tok, err := s.Token()
			return oauth.Auth{Token: tok}, secretErr(err)
		}), nil
	}
	return nil, fmt.Errorf("kafka.sasl.mechanism: unknown mechanism %q", s.Mechanism)
}

// secretError is a password or token that could not be read when a
// connection authenticated.
type secretError struct{ err error }

func (e *secretError) Error() string { return "SASL credentials: " + e.err.Error() }
func (e *secretError) Unwrap() error { return e.err }

func secretErr(err error) error {
	if err == nil {
		return nil
	}
	return &secretError{err}
}

// Errors that retrying does not heal. Refused wraps ErrAuthentication and
// Denied wraps ErrAuthorization.
var (
	ErrAuthentication = errors.New("streamrt: Kafka refused the connection's credentials, or the connection refused the broker's")
	ErrAuthorization  = errors.New("streamrt: Kafka's ACLs deny an operation the app needs")
)

// SecurityError is a failure to connect or authenticate that k's settings
// explain: Reason says what to check, Err is the client's error.
type SecurityError struct {
	Reason string
	Err    error
}

func (e *SecurityError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *SecurityError) Unwrap() []error { return []error{ErrAuthentication, e.Err} }

// Refused returns a *SecurityError when err, from a client configured by k,
// is a TLS or SASL failure that retrying will not heal, and nil otherwise
// (a broker that is down, a timeout).
func Refused(err error, k config.Kafka) error {
	if err == nil {
		return nil
	}
	var se *SecurityError
	if errors.As(err, &se) {
		return se
	}
	reason := refusal(err, k)
	if reason == "" {
		return nil
	}
	return &SecurityError{Reason: reason, Err: err}
}

func refusal(err error, k config.Kafka) string {
	s := k.SASL
	var (
		secret   *secretError
		firstEOF *kgo.ErrFirstReadEOF
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		host     x509.HostnameError
		header   tls.RecordHeaderError
		op       *net.OpError
	)
	trust := "the system roots"
	if k.TLS.CAFile != "" {
		trust = "kafka.tls.ca_file (" + k.TLS.CAFile + ")"
	}
	switch {
	case errors.As(err, &secret):
		return "cannot read the SASL " + passwordWord(s) + " (kafka.sasl)"
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return fmt.Sprintf("SASL %s authentication as %q failed: check kafka.sasl.username and the %s in %s", s.Mechanism, s.Username, passwordWord(s), secretSource(s))
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Sprintf("the broker's listener does not accept SASL mechanism %s (kafka.sasl.mechanism)", s.Mechanism)
	case errors.Is(err, kerr.IllegalSaslState):
		return "the broker's listener does not expect SASL: is kafka.sasl set for a listener without it?"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the broker's TLS certificate has expired or is not valid yet"
	case errors.As(err, &host):
		return "the broker's TLS certificate does not name the host dialled: use a broker address the certificate names, or set kafka.tls.server_name"
	case errors.As(err, &unknown) || errors.As(err, &verify) || errors.As(err, &invalid):
		return "the broker's TLS certificate is not trusted: " + trust + " must hold the CA that signed it"
	case errors.As(err, &header):
		return "the broker's listener does not speak TLS, but kafka.tls is on: use its TLS listener, or turn kafka.tls off"
	case errors.As(err, &op) && op.Op == "remote error":
		if k.TLS.CertFile == "" {
			return "the broker refused the TLS handshake: it may require a client certificate (kafka.tls.cert_file and key_file)"
		}
		return "the broker refused the TLS handshake: it may not trust the client certificate in kafka.tls.cert_file (" + k.TLS.CertFile + ")"
	case strings.Contains(err.Error(), "is this a plaintext connection speaking to a tls endpoint"):
		// franz-go's words when the first response is a TLS alert: Kafka
		// answering a plaintext request at its TLS listener.
		return "the broker's listener speaks TLS, but kafka.tls is off: turn it on (with kafka.tls.ca_file for a private CA)"
	case errors.As(err, &firstEOF):
		var missing []string
		if !k.TLS.Enabled {
			missing = append(missing, "TLS (kafka.tls)")
		}
		if s.Mechanism == "" {
			missing = append(missing, "SASL (kafka.sasl)")
		}
		if len(missing) == 0 {
			return "the broker closed the connection at once: check that kafka.tls and kafka.sasl match its listener"
		}
		return "the broker closed the connection at once: its listener likely expects " + strings.Join(missing, " or ") + ", which this client does not use"
	}
	return ""
}

func passwordWord(s config.KafkaSASL) string {
	if s.Mechanism == config.SASLOAuthBearer {
		return "token"
	}
	return "password"
}

// secretSource names where the secret comes from, never what it is.
func secretSource(s config.KafkaSASL) string {
	switch {
	case s.PasswordEnv != "":
		return "the environment variable " + s.PasswordEnv + " (kafka.sasl.password_env)"
	case s.PasswordFile != "":
		return s.PasswordFile + " (kafka.sasl.password_file)"
	case s.TokenFile != "":
		return s.TokenFile + " (kafka.sasl.token_file)"
	}
	return "kafka.sasl"
}

// ACLError is an operation that the brokers' ACLs deny: the permission it
// needs on a resource, as the README's ACL list names them.
type ACLError struct {
	Operation string // READ, WRITE, DESCRIBE, CREATE, IDEMPOTENT_WRITE
	Resource  string // "topic \"orders\"", "group \"app\"", "transactional id \"app-…\"", "the cluster"
	Doing     string // what the app was doing, such as "consuming" or "producing outputs"
	Err       error
}

func (e *ACLError) Error() string {
	return fmt.Sprintf("not authorized: %s needs %s on %s (grant it to the app's principal; see the README's ACL list): %v", e.Doing, e.Operation, e.Resource, e.Err)
}

func (e *ACLError) Unwrap() []error { return []error{ErrAuthorization, e.Err} }

// Denied reports whether err is an authorization failure from the brokers.
func Denied(err error) bool {
	for _, e := range []error{kerr.TopicAuthorizationFailed, kerr.GroupAuthorizationFailed, kerr.ClusterAuthorizationFailed,
		kerr.TransactionalIDAuthorizationFailed, kerr.DelegationTokenAuthorizationFailed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Access is what a client was doing when it was denied, for the message
// of Deny: the operation on the topic it needed, the app's group and its
// transactional id.
type Access struct {
	Doing           string // "consuming the inputs", "producing outputs"
	Op              string // the operation needed on Topic: READ, WRITE, DESCRIBE, CREATE
	Topic           string // empty when the failure names no topic
	Group           string
	TransactionalID string
}

// Deny turns an authorization failure into an *ACLError naming what is
// missing: a.Op on the topic for a topic failure, READ on the group for a
// group failure, WRITE on the transactional id, IDEMPOTENT_WRITE on the
// cluster. It returns nil for any other error.
func Deny(err error, a Access) error {
	e := &ACLError{Operation: a.Op, Doing: a.Doing, Err: err}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		e.Resource = "a topic"
		if a.Topic != "" {
			e.Resource = fmt.Sprintf("topic %q", a.Topic)
		}
	case errors.Is(err, kerr.GroupAuthorizationFailed):
		e.Operation, e.Resource = "READ", fmt.Sprintf("group %q", a.Group)
	case errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		e.Operation, e.Resource = "WRITE", fmt.Sprintf("transactional id %q (grant it on the prefix %q to cover every instance)", a.TransactionalID, a.Group+"-")
	case errors.Is(err, kerr.ClusterAuthorizationFailed):
		e.Operation, e.Resource = "IDEMPOTENT_WRITE", "the cluster (Kafka 3.0 and later accept WRITE on any topic instead)"
	case Denied(err):
		e.Resource = "a resource"
	default:
		return nil
	}
	return e
}
