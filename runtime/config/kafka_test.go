package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testtls"
)

// kafkaFixture writes the files a kafka section names into dir: a CA,
// a client certificate and key it signed, an expired certificate, a key of
// another certificate, a file that is not PEM, and a password and a token.
func kafkaFixture(t *testing.T, dir string) {
	t.Helper()
	ca := testtls.NewCA(t, "test CA")
	leaf := ca.Issue(t, testtls.Options{CommonName: "app"})
	other := ca.Issue(t, testtls.Options{CommonName: "other"})
	expired := ca.Issue(t, testtls.Options{CommonName: "old", NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	testtls.Write(t, dir, "ca.pem", ca.PEM)
	testtls.Write(t, dir, "client.pem", leaf.CertPEM)
	testtls.Write(t, dir, "client.key", leaf.KeyPEM)
	testtls.Write(t, dir, "other.key", other.KeyPEM)
	testtls.Write(t, dir, "expired.pem", expired.CertPEM)
	testtls.Write(t, dir, "expired.key", expired.KeyPEM)
	testtls.Write(t, dir, "garbage.pem", []byte("not a certificate\n"))
	testtls.Write(t, dir, "password", []byte(secretPassword+"\n"))
	testtls.Write(t, dir, "empty.txt", nil)
	testtls.Write(t, dir, "token.jwt", []byte("eyJ.token.sig\n"))
}

const secretPassword = "hunter2-do-not-print"

func TestKafkaSection(t *testing.T) {
	dir := fixture(t)
	kafkaFixture(t, dir)
	yaml := minimal + `kafka:
  tls:
    ca_file: ca.pem
    cert_file: client.pem
    key_file: client.key
    server_name: broker.example
  sasl:
    mechanism: scram-sha-512
    username: app
    password_file: password
`
	c, err := Parse([]byte(yaml), filepath.Join(dir, "app.yaml"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Kafka{
		TLS: KafkaTLS{Enabled: true, CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "client.pem"),
			KeyFile: filepath.Join(dir, "client.key"), ServerName: "broker.example"},
		SASL: KafkaSASL{Mechanism: SASLScramSHA512, Username: "app", PasswordFile: filepath.Join(dir, "password")},
	}
	if c.Kafka != want {
		t.Fatalf("kafka = %+v\nwant %+v", c.Kafka, want)
	}
	if pw, err := c.Kafka.SASL.Password(); err != nil || pw != secretPassword {
		t.Errorf("Password() = %q, %v", pw, err)
	}
	tc, err := c.Kafka.TLS.Config()
	if err != nil || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "broker.example" {
		t.Errorf("TLS config = %+v, %v", tc, err)
	}
	if d := c.Kafka.Describe(); strings.Contains(d, secretPassword) || !strings.Contains(d, "SCRAM-SHA-512 user=app") {
		t.Errorf("Describe() = %q", d)
	}

	// An empty tls section turns TLS on with the system roots; without
	// one, the clients are plaintext.
	c, err = Parse([]byte(minimal+"kafka: {tls: {}}\n"), filepath.Join(dir, "app.yaml"), nil, nil)
	if err != nil || !c.Kafka.TLS.Enabled || c.Kafka.Secured() != true {
		t.Errorf("tls: {} gives %+v, %v", c.Kafka, err)
	}
	c, err = Parse([]byte(minimal), filepath.Join(dir, "app.yaml"), nil, nil)
	if err != nil || c.Kafka.Secured() || c.Kafka.Describe() != "plaintext" {
		t.Errorf("no kafka section gives %+v, %v", c.Kafka, err)
	}
}

func TestKafkaEnv(t *testing.T) {
	dir := fixture(t)
	kafkaFixture(t, dir)
	t.Setenv("TEST_KAFKA_PASSWORD", secretPassword)
	env := []string{
		"STREAMRT_KAFKA__TLS__CA_FILE=" + filepath.Join(dir, "ca.pem"),
		"STREAMRT_KAFKA__SASL__MECHANISM=PLAIN",
		"STREAMRT_KAFKA__SASL__USERNAME=app",
		"STREAMRT_KAFKA__SASL__PASSWORD_ENV=TEST_KAFKA_PASSWORD",
	}
	c, err := Parse([]byte(minimal), filepath.Join(dir, "app.yaml"), env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Kafka.TLS.Enabled || c.Kafka.TLS.CAFile != filepath.Join(dir, "ca.pem") || c.Kafka.SASL.Mechanism != SASLPlain {
		t.Errorf("env not applied: %+v", c.Kafka)
	}
	if pw, err := c.Kafka.SASL.Password(); err != nil || pw != secretPassword {
		t.Errorf("Password() = %q, %v", pw, err)
	}

	// LoadKafka reads the section alone, ignoring the app's other keys,
	// with the same environment over it.
	file := filepath.Join(dir, "app.yaml")
	must(t, os.WriteFile(file, []byte(minimal+"kafka:\n  tls: {ca_file: ca.pem}\n"), 0o644))
	t.Setenv("STREAMRT_KAFKA__SASL__MECHANISM", "SCRAM-SHA-256")
	t.Setenv("STREAMRT_KAFKA__SASL__USERNAME", "cli")
	t.Setenv("STREAMRT_KAFKA__SASL__PASSWORD_FILE", filepath.Join(dir, "password"))
	k, err := LoadKafka(file)
	if err != nil {
		t.Fatal(err)
	}
	if k.TLS.CAFile != filepath.Join(dir, "ca.pem") || k.SASL.Mechanism != SASLScramSHA256 || k.SASL.Username != "cli" {
		t.Errorf("LoadKafka = %+v", k)
	}
}

func TestKafkaErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string // the kafka section
		env  []string
		want []problem
	}{
		{name: "unknown key", yaml: "kafka: {tsl: {}}",
			want: []problem{{"kafka.tsl", "unknown key (did you mean tls?)"}}},
		{name: "missing CA file", yaml: "kafka: {tls: {ca_file: nope.pem}}",
			want: []problem{{"kafka.tls.ca_file", "nope.pem: no such file or directory"}}},
		{name: "CA not PEM", yaml: "kafka: {tls: {ca_file: garbage.pem}}",
			want: []problem{{"kafka.tls.ca_file", "garbage.pem holds no PEM certificate"}}},
		{name: "cert without key", yaml: "kafka: {tls: {cert_file: client.pem}}",
			want: []problem{{"kafka.tls.key_file", "required with cert_file"}}},
		{name: "key of another certificate", yaml: "kafka: {tls: {cert_file: client.pem, key_file: other.key}}",
			want: []problem{{"kafka.tls.key_file", "other.key does not match the certificate in"}}},
		{name: "key file is not a key", yaml: "kafka: {tls: {cert_file: client.pem, key_file: garbage.pem}}",
			want: []problem{{"kafka.tls.key_file", "garbage.pem holds no PEM private key"}}},
		{name: "missing key file", yaml: "kafka: {tls: {cert_file: client.pem, key_file: nope.key}}",
			want: []problem{{"kafka.tls.key_file", "nope.key: no such file or directory"}}},
		{name: "expired client certificate", yaml: "kafka: {tls: {cert_file: expired.pem, key_file: expired.key}}",
			want: []problem{{"kafka.tls.cert_file", "expired at"}}},
		{name: "files with TLS off", yaml: "kafka: {tls: {enabled: false, ca_file: ca.pem}}",
			want: []problem{{"kafka.tls.ca_file", "set while kafka.tls.enabled is false"}}},
		{name: "unknown mechanism", yaml: "kafka: {sasl: {mechanism: SCRAM-SHA-1, username: a, password_file: password}}",
			want: []problem{{"kafka.sasl.mechanism", `unknown mechanism "SCRAM-SHA-1": want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER (did you mean SCRAM-SHA-512?)`}}},
		{name: "PLAIN without TLS", yaml: "kafka: {sasl: {mechanism: PLAIN, username: a, password_file: password}}",
			want: []problem{{"kafka.sasl.mechanism", "PLAIN sends the password as it is: turn on TLS (kafka.tls), or set kafka.sasl.allow_cleartext: true"}}},
		{name: "OAUTHBEARER without TLS", yaml: "kafka: {sasl: {mechanism: OAUTHBEARER, token_file: token.jwt}}",
			want: []problem{{"kafka.sasl.mechanism", "OAUTHBEARER sends the token as it is"}}},
		{name: "no username", yaml: "kafka: {sasl: {mechanism: SCRAM-SHA-512, password_file: password}}",
			want: []problem{{"kafka.sasl.username", "required with mechanism SCRAM-SHA-512"}}},
		{name: "no password source", yaml: "kafka: {sasl: {mechanism: SCRAM-SHA-512, username: a}}",
			want: []problem{{"kafka.sasl.password_env", "required with mechanism SCRAM-SHA-512"}}},
		{name: "two password sources", yaml: "kafka: {sasl: {mechanism: SCRAM-SHA-512, username: a, password_env: X, password_file: password}}",
			want: []problem{{"kafka.sasl.password_env", "not both"}}},
		{name: "password variable unset", yaml: "kafka: {sasl: {mechanism: SCRAM-SHA-512, username: a, password_env: STREAMRT_TEST_UNSET_PASSWORD}}",
			want: []problem{{"kafka.sasl.password_env", "environment variable STREAMRT_TEST_UNSET_PASSWORD, which should hold the password, is not set"}}},
		{name: "password file missing", yaml: "kafka: {sasl: {mechanism: SCRAM-SHA-512, username: a, password_file: nope}}",
			want: []problem{{"kafka.sasl.password_file", "cannot read the password file"}}},
		{name: "password file empty", yaml: "kafka: {sasl: {mechanism: SCRAM-SHA-512, username: a, password_file: empty.txt}}",
			want: []problem{{"kafka.sasl.password_file", "is empty"}}},
		{name: "token with a password", yaml: "kafka: {tls: {}, sasl: {mechanism: OAUTHBEARER, token_file: token.jwt, password_file: password}}",
			want: []problem{{"kafka.sasl.password_file", "not used by mechanism OAUTHBEARER"}}},
		{name: "token file missing", yaml: "kafka: {tls: {}, sasl: {mechanism: OAUTHBEARER, token_file: nope.jwt}}",
			want: []problem{{"kafka.sasl.token_file", "cannot read the token file"}}},
		{name: "sasl keys without a mechanism", yaml: "kafka: {sasl: {username: a}}",
			want: []problem{{"kafka.sasl.mechanism", "required with the other sasl keys"}}},
		{name: "bad file named by the environment", yaml: "kafka: {}", env: []string{"STREAMRT_KAFKA__TLS__CA_FILE=/nope/ca.pem"},
			want: []problem{{"STREAMRT_KAFKA__TLS__CA_FILE", "/nope/ca.pem: no such file or directory"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fixture(t)
			kafkaFixture(t, dir)
			file := filepath.Join(dir, "app.yaml")
			_, err := Parse([]byte(minimal+tt.yaml+"\n"), file, tt.env, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), secretPassword) {
				t.Fatalf("the error shows the password: %v", err)
			}
			got := problemsOf(err)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(got), len(tt.want), err)
			}
			for i, w := range tt.want {
				if g := got[i]; g.Key != w.key || !strings.Contains(g.Reason, w.reason) {
					t.Errorf("problem %d = %q\nwant key %q, reason containing %q", i, g.Error(), w.key, w.reason)
				}
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("not ErrInvalid: %v", err)
			}
		})
	}
}

func TestHTTPTLS(t *testing.T) {
	dir := fixture(t)
	kafkaFixture(t, dir)
	file := filepath.Join(dir, "app.yaml")
	c, err := Parse([]byte(minimal+"http_tls: {cert_file: client.pem, key_file: client.key, client_ca_file: ca.pem, ca_file: ca.pem}\n"), file, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := c.HTTPTLS; !h.Enabled() || !h.RequireClientCert() || h.CAFile != filepath.Join(dir, "ca.pem") {
		t.Errorf("http_tls = %+v", h)
	}
	if c.HTTPTLS = (HTTPTLS{}); c.HTTPTLS.Enabled() {
		t.Error("an empty http_tls is enabled")
	}
	for _, tt := range []struct {
		yaml string
		want problem
	}{
		{"http_tls: {cert_file: nope.pem, key_file: client.key}", problem{"http_tls.cert_file", "nope.pem: no such file or directory"}},
		{"http_tls: {cert_file: client.pem, key_file: other.key}", problem{"http_tls.key_file", "does not match the certificate"}},
		{"http_tls: {cert_file: client.pem, key_file: client.key, client_ca_file: garbage.pem}", problem{"http_tls.client_ca_file", "holds no PEM certificate"}},
		{"http_tls: {ca_file: ca.pem}", problem{"http_tls.ca_file", "needs http_tls.cert_file"}},
		{"http_tls: {cert_file: expired.pem, key_file: expired.key}", problem{"http_tls.cert_file", "expired at"}},
	} {
		_, err := Parse([]byte(minimal+tt.yaml+"\n"), file, nil, nil)
		got := problemsOf(err)
		if len(got) != 1 || got[0].Key != tt.want.key || !strings.Contains(got[0].Reason, tt.want.reason) {
			t.Errorf("%s: %v\nwant %s: ...%s...", tt.yaml, err, tt.want.key, tt.want.reason)
		}
	}
}
