package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testtls"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	user     = "app"
	password = "s3cret-not-for-logs"
)

// broker starts a kfake cluster with the given options and returns its
// address.
func broker(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// serverTLS is a broker's TLS configuration with leaf as its certificate;
// clients must present a certificate signed by clientCA when it is set.
func serverTLS(leaf *testtls.Leaf, clientCA *testtls.CA) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
	if clientCA != nil {
		c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, clientCA.Pool()
	}
	return c
}

// ping connects with k's options and lists the topics, the first request
// every host client makes, and returns its error.
func ping(t *testing.T, addr string, k config.Kafka) error {
	t.Helper()
	opts, err := Options(k)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(addr), kgo.RequestRetries(0), kgo.RetryTimeout(2*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

func TestOptions(t *testing.T) {
	dir := t.TempDir()
	ca := testtls.NewCA(t, "broker CA")
	clients := testtls.NewCA(t, "client CA")
	otherCA := testtls.NewCA(t, "some other CA")
	expired := ca.Issue(t, testtls.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	misnamed := ca.Issue(t, testtls.Options{DNS: []string{"elsewhere.example"}})
	client := clients.Issue(t, testtls.Options{CommonName: user})
	caFile := testtls.Write(t, dir, "ca.pem", ca.PEM)
	otherFile := testtls.Write(t, dir, "other.pem", otherCA.PEM)
	certFile := testtls.Write(t, dir, "client.pem", client.CertPEM)
	keyFile := testtls.Write(t, dir, "client.key", client.KeyPEM)
	pwFile := testtls.Write(t, dir, "password", []byte(password+"\n"))

	tlsOn := config.KafkaTLS{Enabled: true, CAFile: caFile}
	scram := config.KafkaSASL{Mechanism: config.SASLScramSHA512, Username: user, PasswordFile: pwFile}
	sasl := []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(config.SASLScramSHA512, user, password)}
	tests := []struct {
		name   string
		broker []kfake.Opt
		client config.Kafka
		want   string // in the refusal; empty: the client connects
	}{
		{name: "plaintext", client: config.Kafka{}},
		{name: "TLS and SCRAM", broker: append(sasl, kfake.TLS(serverTLS(ca.Issue(t, testtls.Options{}), nil))),
			client: config.Kafka{TLS: tlsOn, SASL: scram}},
		{name: "mutual TLS", broker: []kfake.Opt{kfake.TLS(serverTLS(ca.Issue(t, testtls.Options{}), clients))},
			client: config.Kafka{TLS: config.KafkaTLS{Enabled: true, CAFile: caFile, CertFile: certFile, KeyFile: keyFile}}},
		{name: "PLAIN", broker: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(config.SASLPlain, user, password), kfake.TLS(serverTLS(ca.Issue(t, testtls.Options{}), nil))},
			client: config.Kafka{TLS: tlsOn, SASL: config.KafkaSASL{Mechanism: config.SASLPlain, Username: user, PasswordFile: pwFile}}},

		{name: "untrusted broker certificate", broker: []kfake.Opt{kfake.TLS(serverTLS(ca.Issue(t, testtls.Options{}), nil))},
			client: config.Kafka{TLS: config.KafkaTLS{Enabled: true, CAFile: otherFile}},
			want:   "the broker's TLS certificate is not trusted: kafka.tls.ca_file (" + otherFile + ") must hold the CA that signed it"},
		{name: "expired broker certificate", broker: []kfake.Opt{kfake.TLS(serverTLS(expired, nil))},
			client: config.Kafka{TLS: tlsOn},
			want:   "the broker's TLS certificate has expired or is not valid yet"},
		{name: "broker certificate for another name", broker: []kfake.Opt{kfake.TLS(serverTLS(misnamed, nil))},
			client: config.Kafka{TLS: tlsOn},
			want:   "does not name the host dialled"},
		{name: "no client certificate for mutual TLS", broker: []kfake.Opt{kfake.TLS(serverTLS(ca.Issue(t, testtls.Options{}), clients))},
			client: config.Kafka{TLS: tlsOn},
			want:   "the broker refused the TLS handshake: it may require a client certificate"},
		{name: "plaintext client at a TLS listener", broker: []kfake.Opt{kfake.TLS(serverTLS(ca.Issue(t, testtls.Options{}), nil))},
			client: config.Kafka{},
			want:   "its listener likely expects TLS (kafka.tls) or SASL (kafka.sasl)"},
		{name: "no SASL at a SASL listener", broker: sasl, client: config.Kafka{},
			want: "SASL (kafka.sasl)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := broker(t, tt.broker...)
			err := ping(t, addr, tt.client)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ping: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("ping succeeded")
			}
			refused := Refused(err, tt.client)
			if refused == nil {
				t.Fatalf("Refused(%v) = nil, want a refusal", err)
			}
			if msg := refused.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, password) {
				t.Errorf("refusal:\n%s\nwant it to contain %q, and no password", msg, tt.want)
			}
			if !errors.Is(refused, ErrAuthentication) {
				t.Errorf("not ErrAuthentication: %v", refused)
			}
		})
	}
}

// kfake closes the connection on a wrong password, where Kafka answers
// SASL_AUTHENTICATION_FAILED (the secured-broker tests meet the real
// answer), and hangs on a TLS handshake at a plaintext listener, where
// Kafka closes it: their refusals are checked on the errors Kafka's
// answers give.
func TestRefusedKafkaAnswers(t *testing.T) {
	k := config.Kafka{SASL: config.KafkaSASL{Mechanism: config.SASLScramSHA512, Username: user, PasswordEnv: "APP_PASSWORD"}}
	for _, tt := range []struct {
		err  error
		k    config.Kafka
		want string
	}{
		{fmt.Errorf("sasl: %w", kerr.SaslAuthenticationFailed), k,
			`SASL SCRAM-SHA-512 authentication as "app" failed: check kafka.sasl.username and the password in the environment variable APP_PASSWORD (kafka.sasl.password_env)`},
		{fmt.Errorf("unable to dial: %w", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), config.Kafka{TLS: config.KafkaTLS{Enabled: true}},
			"does not speak TLS, but kafka.tls is on"},
		{kerr.UnsupportedSaslMechanism, k, "does not accept SASL mechanism SCRAM-SHA-512"},
	} {
		r := Refused(tt.err, tt.k)
		if r == nil || !strings.Contains(r.Error(), tt.want) {
			t.Errorf("Refused(%v) = %v, want %q", tt.err, r, tt.want)
		}
	}
}

// A broker that is not there is not refused: it may come back.
func TestRefusedHeals(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	down := c.ListenAddrs()[0]
	c.Close()
	if err := ping(t, down, config.Kafka{}); err == nil {
		t.Fatal("ping of a closed broker succeeded")
	} else if r := Refused(err, config.Kafka{}); r != nil {
		t.Errorf("Refused(%v) = %v, want nil", err, r)
	}
}

// The password is read at each authentication: a file replaced while the
// client runs is used by its next connection.
func TestPasswordReadAtConnect(t *testing.T) {
	addr := broker(t, kfake.EnableSASL(), kfake.Superuser(config.SASLScramSHA256, user, password))
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := config.Kafka{SASL: config.KafkaSASL{Mechanism: config.SASLScramSHA256, Username: user, PasswordFile: pw}}
	if err := ping(t, addr, k); err == nil {
		t.Fatal("the stale password was accepted")
	}
	if err := os.WriteFile(pw, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ping(t, addr, k); err != nil {
		t.Fatalf("the rotated password: %v", err)
	}
}
