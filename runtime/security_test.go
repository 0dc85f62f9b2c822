package runtime_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/internal/testtls"
	"github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// failFast bounds how long an app may take to stop on a fault that
// retrying cannot heal: its first requests, not a retry loop.
const failFast = 60 * time.Second

// exitErr waits for a to stop on its own and returns what Run returned,
// failing the test if it is still running after failFast.
func exitErr(t *testing.T, a *app) error {
	t.Helper()
	select {
	case err := <-a.done:
		a.cancel = nil
		return err
	case <-time.After(failFast):
		t.Fatalf("the app still runs after %v; its log:\n%s", failFast, a.log.String())
		return nil
	}
}

// TestSecuredBroker runs apps against a broker with a SASL_SSL listener and
// ACLs on (testkafka.Secured: the shared one, or one of its own): with the
// exact ACLs the README lists it counts exactly once; with a wrong
// password, an untrusted CA, no TLS or one of those ACLs missing it stops
// at once, saying what is wrong and never the secret.
func TestSecuredBroker(t *testing.T) {
	brokers, admin := testkafka.Secured(t)
	adm := kadm.NewClient(testkafka.ClientWith(t, brokers, admin))
	dir := t.TempDir()

	// Faults of the connection: the app names them at start.
	wrongPW := testtls.Write(t, dir, "wrong-password", []byte("not-the-admin-password\n"))
	otherCA := testtls.Write(t, dir, "other-ca.pem", testtls.NewCA(t, "not the broker's CA").PEM)
	for _, tt := range []struct {
		name  string
		kafka *config.Kafka
		want  string
	}{
		{"wrong password", &config.Kafka{TLS: admin.TLS, SASL: config.KafkaSASL{Mechanism: admin.SASL.Mechanism, Username: admin.SASL.Username, PasswordFile: wrongPW}},
			`authentication as "` + admin.SASL.Username + `" failed: check kafka.sasl.username and the password in ` + wrongPW},
		{"untrusted certificate", &config.Kafka{TLS: config.KafkaTLS{Enabled: true, CAFile: otherCA}, SASL: admin.SASL},
			"the broker's TLS certificate is not trusted: kafka.tls.ca_file (" + otherCA + ") must hold the CA that signed it"},
		{"plaintext client at the TLS listener", &config.Kafka{},
			"the broker's listener speaks TLS, but kafka.tls is off"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			appName, in, out := names(t)
			spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}}
			a := startWith(t, spec.yaml(), "", false, testkafka.KafkaOverrides(tt.kafka))
			err := exitErr(t, a)
			t.Logf("Run: %v", err)
			if err == nil || !errors.Is(err, runtime.ErrKafkaAuthentication) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run returned %v\nwant ErrKafkaAuthentication saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "not-the-admin-password") || strings.Contains(a.log.String(), "not-the-admin-password") {
				t.Errorf("the password shows in the error or the log: %v", err)
			}
		})
	}

	// ACLs: a user of its own for each app, granted the README's list or
	// all of it but one grant.
	for _, tt := range []struct {
		name    string
		without string // the grant left out
		want    string // in Run's error; empty: the app works
	}{
		{name: "the ACLs of the README"},
		{name: "without READ on the input", without: "input", want: `on topic "{{in}}"`},
		{name: "without WRITE on the output", without: "output WRITE", want: `producing needs WRITE on topic "{{out}}"`},
		{name: "without the transactional id", without: "transactional id", want: `needs WRITE on transactional id "{{app}}-`},
		{name: "without READ on the group", without: "group", want: `needs READ on group "{{app}}"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			appName, in, out := names(t)
			// Inputs and outputs are not the app's own: they exist before
			// it and are not under its prefix.
			in, out = "in-"+appName, "out-"+appName
			user := "user-" + appName
			for _, topic := range []string{in, out} {
				if _, err := adm.CreateTopic(ctxTimeout(t, 30*time.Second), 4, 1, nil, topic); err != nil {
					t.Fatal(err)
				}
			}
			pw := testtls.Write(t, t.TempDir(), "password", []byte(testkafka.Name(t, "pw")))
			if _, err := adm.AlterUserSCRAMs(ctxTimeout(t, 30*time.Second), nil, []kadm.UpsertSCRAM{{User: user, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: readFile(t, pw)}}); err != nil {
				t.Fatal(err)
			}
			for name, b := range appACLs(appName, in, out) {
				if name == tt.without {
					continue
				}
				res, err := adm.CreateACLs(ctxTimeout(t, 30*time.Second), b.Allow("User:"+user).AllowHosts("*"))
				if err == nil {
					err = errors.Join(func() (errs []error) {
						for _, r := range res {
							errs = append(errs, r.Err)
						}
						return
					}()...)
				}
				if err != nil {
					t.Fatalf("grant %s: %v", name, err)
				}
			}
			k := &config.Kafka{TLS: admin.TLS, SASL: config.KafkaSASL{Mechanism: config.SASLScramSHA512, Username: user, PasswordFile: pw}}
			spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}, eos: true}
			a := startWith(t, spec.yaml(), "", false, testkafka.KafkaOverrides(k))
			keys := []string{"a", "b", "c"}
			if tt.want == "" {
				a.waitReady()
				produceAs(t, brokers, admin, in, clicks(keys, 5)...)
				cl := testkafka.ClientWith(t, brokers, admin, kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
				var got int
				waitFor(t, 60*time.Second, "15 committed outputs", func() bool {
					got += cl.PollRecords(ctxTimeout(t, time.Second), 100).NumRecords()
					return got >= 15
				})
				counts(t, a, keys, 5)
				return
			}
			produceAs(t, brokers, admin, in, clicks(keys, 1)...)
			err := exitErr(t, a)
			t.Logf("Run: %v", err)
			want := strings.NewReplacer("{{in}}", in, "{{out}}", out, "{{app}}", appName).Replace(tt.want)
			if err == nil || !errors.Is(err, runtime.ErrKafkaAuthorization) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Run returned %v\nwant ErrKafkaAuthorization saying %q", err, want)
			}
		})
	}
}

// appACLs are the grants README.md lists for an app that reads in, writes
// out and keeps a store, under exactly_once, by name.
func appACLs(app, in, out string) map[string]*kadm.ACLBuilder {
	return map[string]*kadm.ACLBuilder{
		"group":        kadm.NewACLs().Groups(app).Operations(kadm.OpRead),
		"input":        kadm.NewACLs().Topics(in).Operations(kadm.OpRead),
		"output":       kadm.NewACLs().Topics(out).Operations(kadm.OpDescribe),
		"output WRITE": kadm.NewACLs().Topics(out).Operations(kadm.OpWrite),
		// Changelogs, repartition and dead-letter topics are named after
		// the app, which creates them.
		"own topics": kadm.NewACLs().Topics(app+"-").ResourcePatternType(kadm.ACLPatternPrefixed).
			Operations(kadm.OpRead, kadm.OpWrite, kadm.OpCreate),
		"transactional id": kadm.NewACLs().TransactionalIDs(app + "-").ResourcePatternType(kadm.ACLPatternPrefixed).
			Operations(kadm.OpWrite),
	}
}

func produceAs(t *testing.T, brokers []string, k *config.Kafka, topic string, kvs ...string) {
	t.Helper()
	var rs []*kgo.Record
	for i := 0; i+1 < len(kvs); i += 2 {
		rs = append(rs, &kgo.Record{Topic: topic, Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := testkafka.ClientWith(t, brokers, k).ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	k := config.KafkaSASL{PasswordFile: path}
	pw, err := k.Password()
	if err != nil {
		t.Fatal(err)
	}
	return pw
}

// An app reaches a TLS broker whose certificate it cannot verify when
// kafka.tls.insecure_skip_verify is on, and says at start that anyone on
// the way could read and change its traffic.
func TestInsecureSkipVerifyWarns(t *testing.T) {
	ca := testtls.NewCA(t, "unknown CA")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{ca.Issue(t, testtls.Options{}).TLS}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	appName, in, out := names(t)
	k := &config.Kafka{TLS: config.KafkaTLS{Enabled: true, InsecureSkipVerify: true}}
	spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}}
	a := startWith(t, spec.yaml(), "", false, testkafka.KafkaOverrides(k))
	a.waitReady()
	produceAs(t, brokers, k, in, "k", "x")
	a.waitGet(t, "/v1/stores/counts/keys/k", "1")
	if log := a.log.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "kafka.tls.insecure_skip_verify is on") {
		t.Errorf("no warning about insecure_skip_verify in the log:\n%s", log)
	}
}
