package runtime_test

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

var brokerUpRE = regexp.MustCompile(`(?m)^streamrt_broker_up (\S+)$`)

// brokerUp reads streamrt_broker_up; -1 when the metric is missing.
func brokerUp(a *app) float64 {
	_, body := a.get("/metrics")
	m := brokerUpRE.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// While the broker is away, /readyz says which broker is unreachable, since
// when and why, streamrt_broker_up is 0 and the log says so once; when a
// broker answers on that address again, all three say so.
func TestReadyzReportsUnreachableBroker(t *testing.T) {
	if testkafka.Real() {
		t.Skip("stops its broker; runs on the embedded broker (TestBrokerRestartLosesNothing covers real Kafka)")
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(p))
	if err != nil {
		t.Fatal(err)
	}
	brokers := c.ListenAddrs()
	appName, in, out := names(t)
	a := startApp(t, appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}})
	a.waitReady()
	produce(t, brokers, in, "k", "x")
	waitFor(t, 30*time.Second, "the count", func() bool {
		_, body := a.get("/v1/stores/counts/keys/k")
		return body == "1"
	})
	if up := brokerUp(a); up != 1 {
		t.Fatalf("streamrt_broker_up is %v with the broker up, want 1", up)
	}

	c.Close()
	var body string
	waitFor(t, 30*time.Second, "/readyz to report the broker unreachable", func() bool {
		var code int
		code, body = a.get("/readyz")
		return code == 503 && strings.Contains(body, "broker "+addr+" unreachable since ")
	})
	t.Logf("/readyz with the broker away: %s", body)
	if up := brokerUp(a); up != 0 {
		t.Errorf("streamrt_broker_up is %v with the broker away, want 0", up)
	}
	if n := strings.Count(a.log.String(), "broker unreachable; retrying"); n != 1 {
		t.Errorf("%d log lines say the broker is unreachable, want 1", n)
	}

	c2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Close)
	waitFor(t, 30*time.Second, "the broker to be reported back", func() bool {
		_, body := a.get("/readyz")
		return !strings.Contains(body, "unreachable") && brokerUp(a) == 1 && strings.Contains(a.log.String(), "broker reachable again")
	})
}

// Brokers unreachable from the start are reported as such by /readyz and
// streamrt_broker_up, not only as a group assignment still awaited.
func TestReadyzReportsBrokersUnreachableAtStart(t *testing.T) {
	addr := freeAddr(t) // nothing listens there
	appName, in, out := names(t)
	a := startApp(t, appSpec{brokers: []string{addr}, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}})
	waitFor(t, 30*time.Second, "/readyz to report the broker unreachable", func() bool {
		code, body := a.get("/readyz")
		return code == 503 && strings.Contains(body, "broker "+addr+" unreachable since")
	})
	if up := brokerUp(a); up != 0 {
		t.Fatalf("streamrt_broker_up is %v with no broker, want 0", up)
	}
}
