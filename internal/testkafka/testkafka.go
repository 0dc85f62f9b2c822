// Package testkafka picks the Kafka cluster that a test runs against, so that one
// suite runs unchanged against the embedded kfake broker and a real Apache Kafka.
//
// With STREAMRT_TEST_BROKERS unset or empty, each call to Brokers starts a fresh
// in-process kfake cluster on a loopback port and closes it when the test ends.
// With STREAMRT_TEST_BROKERS=host:port[,host:port], tests share that cluster; they
// keep apart by naming their topics and groups with Name. When that cluster
// needs TLS or SASL, STREAMRT_TEST_KAFKA_SECURITY names a file whose kafka
// section (an app config's) says how to connect, as the one that
// `scripts/kafka.sh start --secure DIR` writes to DIR/client.yaml: Client
// connects with it, and Overrides gives it to the apps a test runs.
package testkafka

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnvBrokers names the environment variable that selects a real cluster.
const EnvBrokers = "STREAMRT_TEST_BROKERS"

// EnvSecurity names the environment variable that points at the kafka
// section for the clients of EnvBrokers' cluster.
const EnvSecurity = "STREAMRT_TEST_KAFKA_SECURITY"

var security struct {
	once sync.Once
	k    *config.Kafka // nil: plaintext
	err  error
}

// Security returns the kafka section the clients of the real cluster use,
// or nil when they connect in plaintext (or tests run on kfake). A file
// that does not load fails the test.
func Security(t testing.TB) *config.Kafka {
	t.Helper()
	path := strings.TrimSpace(os.Getenv(EnvSecurity))
	if !Real() || path == "" {
		return nil
	}
	security.once.Do(func() {
		security.k, security.err = config.LoadKafka(path)
	})
	if security.err != nil {
		t.Fatalf("%s=%s: %v", EnvSecurity, path, security.err)
	}
	return security.k
}

// Overrides returns the configuration keys that give an app the kafka
// section of Security, as `streamrt run` flags would: nil when there is
// none.
func Overrides(t testing.TB) map[string]string {
	t.Helper()
	return KafkaOverrides(Security(t))
}

// Env returns the STREAMRT_KAFKA__ environment variables that give a
// `streamrt run` process the kafka section of Security; none when there
// is none.
func Env(t testing.TB) []string {
	t.Helper()
	var out []string
	for k, v := range Overrides(t) {
		out = append(out, config.EnvPrefix+strings.ToUpper(strings.ReplaceAll(k, ".", "__"))+"="+v)
	}
	return out
}

// KafkaOverrides returns the configuration keys that set k as an app's
// kafka section; nil for a nil k.
func KafkaOverrides(k *config.Kafka) map[string]string {
	if k == nil {
		return nil
	}
	out := map[string]string{}
	set := func(key, v string) {
		if v != "" {
			out["kafka."+key] = v
		}
	}
	if k.TLS.Enabled {
		set("tls.enabled", "true")
		set("tls.ca_file", k.TLS.CAFile)
		set("tls.cert_file", k.TLS.CertFile)
		set("tls.key_file", k.TLS.KeyFile)
		set("tls.server_name", k.TLS.ServerName)
		if k.TLS.InsecureSkipVerify {
			set("tls.insecure_skip_verify", "true")
		}
	}
	set("sasl.mechanism", k.SASL.Mechanism)
	set("sasl.username", k.SASL.Username)
	set("sasl.password_env", k.SASL.PasswordEnv)
	set("sasl.password_file", k.SASL.PasswordFile)
	set("sasl.token_file", k.SASL.TokenFile)
	if k.SASL.AllowCleartext {
		set("sasl.allow_cleartext", "true")
	}
	return out
}

// Real reports whether tests run against a real cluster rather than kfake.
func Real() bool { return strings.TrimSpace(os.Getenv(EnvBrokers)) != "" }

// Brokers returns seed brokers for the test: the real cluster's, or those of a
// kfake cluster started for this test alone and closed by t.Cleanup.
func Brokers(t testing.TB) []string {
	t.Helper()
	if Real() {
		return strings.Split(strings.TrimSpace(os.Getenv(EnvBrokers)), ",")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

var seq atomic.Int64

// Name returns a name unique to this test process, for topics, groups and apps
// that must not collide with other tests on a shared cluster.
func Name(t testing.TB, base string) string {
	return fmt.Sprintf("%s-%d-%d", base, time.Now().UnixNano()%1_000_000_000, seq.Add(1))
}

// Client returns a franz-go client for the test's cluster, with the TLS and
// SASL of Security, closed by t.Cleanup.
func Client(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return ClientWith(t, brokers, Security(t), opts...)
}

// CreateTopic creates topic with the given partition count, failing the test on error.
func CreateTopic(t testing.TB, brokers []string, topic string, partitions int32) {
	t.Helper()
	adm := kadm.NewClient(Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %q: %v", topic, err)
	}
}

// ReadAll consumes topic from the start until n records arrived or the deadline
// passes, and returns what it read.
func ReadAll(t testing.TB, brokers []string, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl := Client(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// BrokersAt starts a kfake cluster listening on addr, for tests that start
// the broker after the runtime.
func BrokersAt(t testing.TB, addr string) []string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(p))
	if err != nil {
		t.Fatalf("start kfake on %s: %v", addr, err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// ProduceRecords produces rs synchronously, failing the test on error.
func ProduceRecords(t testing.TB, brokers []string, rs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Client(t, brokers).ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// Produce produces key and value pairs to topic synchronously, failing the
// test on error.
func Produce(t testing.TB, brokers []string, topic string, kvs ...string) {
	t.Helper()
	var rs []*kgo.Record
	for i := 0; i+1 < len(kvs); i += 2 {
		rs = append(rs, &kgo.Record{Topic: topic, Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
	}
	ProduceRecords(t, brokers, rs...)
}

// ReadUntil consumes topic from the start until done accepts a record, and
// returns that record, or nil when timeout passes first. done sees every
// record read, in order within a partition.
func ReadUntil(t testing.TB, brokers []string, topic string, timeout time.Duration, done func(*kgo.Record) bool) *kgo.Record {
	t.Helper()
	cl := Client(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var found *kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if found == nil && done(r) {
				found = r
			}
		})
		if found != nil {
			return found
		}
	}
}

// ReadKey consumes topic from the start and returns the values of its first
// n records with key, in order within their partition; fewer when timeout
// passes first.
func ReadKey(t testing.TB, brokers []string, topic, key string, n int, timeout time.Duration) []string {
	t.Helper()
	var values []string
	ReadUntil(t, brokers, topic, timeout, func(r *kgo.Record) bool {
		if string(r.Key) == key {
			values = append(values, string(r.Value))
		}
		return len(values) == n
	})
	return values
}

// Header returns the value of r's first header named key, or "" when it has
// none or r is nil.
func Header(r *kgo.Record, key string) string {
	if r == nil {
		return ""
	}
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
