package testkafka

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/twmb/franz-go/pkg/kgo"
)

// HowToSecure says how to give the tests a secured broker.
const HowToSecure = "start one with `scripts/kafka.sh start --secure DIR` and run the tests with " +
	"STREAMRT_TEST_BROKERS=<the address it prints last> STREAMRT_TEST_KAFKA_SECURITY=DIR/client.yaml"

// Secured returns the brokers of a secured cluster (a SASL_SSL listener
// with ACLs enforced) and the kafka section of its super user, for tests
// of authentication and ACLs: the cluster of STREAMRT_TEST_BROKERS when
// STREAMRT_TEST_KAFKA_SECURITY gives it TLS and SASL; otherwise, in a
// real-Kafka run, a broker of the test's own that `scripts/kafka.sh start
// --secure` starts and the test's cleanup stops. On kfake it skips the
// test, saying how to run it (the real-Kafka phases of .ci/run do). Without
// Java or the Kafka jars it skips too, or fails under CI=true, where they
// are expected.
func Secured(t *testing.T) ([]string, *config.Kafka) {
	t.Helper()
	if k := Security(t); k != nil && k.TLS.Enabled && k.SASL.Mechanism != "" {
		return Brokers(t), k
	}
	if !Real() {
		t.Skip("needs a secured Kafka (SASL_SSL, ACLs on): " + HowToSecure +
			"; a real-Kafka run (STREAMRT_TEST_BROKERS set) without one starts its own")
	}
	missing := ""
	version := cmp.Or(os.Getenv("STREAMRT_KAFKA_VERSION"), "4.1.1")
	cache := os.Getenv("STREAMRT_KAFKA_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(cmp.Or(home, "/tmp"), ".cache", "streamrt", "kafka-"+version)
	}
	if _, err := exec.LookPath("java"); err != nil {
		missing = "java is not on PATH"
	} else if _, err := exec.LookPath("openssl"); err != nil {
		missing = "openssl is not on PATH"
	} else if _, err := os.Stat(filepath.Join(cache, ".fetched")); err != nil {
		missing = "the Kafka jars are not in " + cache + " (run scripts/kafka.sh fetch)"
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("this test starts a secured Kafka broker of its own, but %s", missing)
		}
		t.Skipf("this test starts a secured Kafka broker of its own, but %s; or %s", missing, HowToSecure)
	}
	dir := t.TempDir()
	began := time.Now()
	addr, err := script(3*time.Minute, "start", "--secure", dir)
	t.Cleanup(func() { script(time.Minute, "stop", dir) })
	if err != nil {
		t.Fatal(err)
	}
	k, err := config.LoadKafka(filepath.Join(dir, "client.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("private secured Kafka at %s, up in %v (dir %s)", addr, time.Since(began).Round(time.Millisecond), dir)
	return []string{addr}, k
}

// ClientWith returns a client of brokers that connects as k says (nil:
// plaintext), closed by t.Cleanup.
func ClientWith(t testing.TB, brokers []string, k *config.Kafka, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	if k != nil {
		sec, err := runtime.KafkaOptions(*k)
		if err != nil {
			t.Fatal(err)
		}
		base = append(base, sec...)
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// script runs scripts/kafka.sh with args and returns the last line it
// printed: the broker's address for start.
func script(timeout time.Duration, args ...string) (string, error) {
	_, here, _, _ := goruntime.Caller(0)
	path := filepath.Join(filepath.Dir(here), "..", "..", "scripts", "kafka.sh")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second // the broker must not hold our pipes
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kafka.sh %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	lines := strings.Fields(stdout.String())
	if len(lines) == 0 {
		return "", nil
	}
	return lines[len(lines)-1], nil
}
