package engine

import (
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/kafka"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// brokerHealth follows whether the brokers the engine's Kafka clients talk
// to answer, from the clients' connection and read hooks: a broker is
// unreachable from a failed connection until a response arrives on a
// connection opened after that (a response still in flight on an old
// connection says nothing about the broker now). It
// reports each change once in the log, keeps streamrt_broker_up, and gives
// Status its reasons. It is safe for concurrent use; every client of the
// engine shares one.
type brokerHealth struct {
	log     *slog.Logger
	metrics *metrics.Metrics
	now     func() time.Time
	// kafka explains failures that are the security settings' fault (a
	// certificate that expired, a password rotated at the broker): they
	// are reported as what they are, and retried like any other, since
	// the one who can fix them may do so while the app waits.
	kafka config.Kafka

	mu   sync.Mutex
	down map[string]*brokerDown // by host:port
}

type brokerDown struct {
	since, last time.Time // the first and latest failed connection
	err         error     // the latest failure
	reconnected bool      // a connection succeeded since the latest failure
}

// forgetAfter is how long a broker that no client tries to reach any more
// stays reported as unreachable: a broker removed from the cluster is not a
// fault.
const forgetAfter = 30 * time.Second

var (
	_ kgo.HookBrokerConnect = (*brokerHealth)(nil)
	_ kgo.HookBrokerRead    = (*brokerHealth)(nil)
)

func newBrokerHealth(log *slog.Logger, m *metrics.Metrics, k config.Kafka) *brokerHealth {
	m.BrokerUp.Set(1)
	return &brokerHealth{log: log, metrics: m, now: time.Now, kafka: k, down: map[string]*brokerDown{}}
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (h *brokerHealth) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	addr := net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.down[addr]
	if err == nil {
		if ok {
			d.reconnected = true // connected, but not answering yet: wait for a read
		}
		return
	}
	h.metrics.BrokerErrors.Inc()
	if refused := kafka.Refused(err, h.kafka); refused != nil {
		err = refused
	}
	if ok {
		d.last, d.err, d.reconnected = now, err, false
		return
	}
	h.down[addr] = &brokerDown{since: now, last: now, err: err}
	h.metrics.BrokerUp.Set(0)
	h.log.Warn("broker unreachable; retrying", "broker", addr, "err", err)
}

// OnBrokerRead implements kgo.HookBrokerRead: a response read whole means
// the broker is back.
func (h *brokerHealth) OnBrokerRead(meta kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		return
	}
	addr := net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.down[addr]
	if !ok || !d.reconnected {
		return
	}
	delete(h.down, addr)
	if len(h.down) == 0 {
		h.metrics.BrokerUp.Set(1)
	}
	h.log.Info("broker reachable again", "broker", addr, "unreachable_for", h.now().Sub(d.since).Round(time.Millisecond))
}

// reasons lists the brokers unreachable now, each with when it went away
// and its latest error, in address order.
func (h *brokerHealth) reasons() []string {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for addr, d := range h.down {
		if now.Sub(d.last) > forgetAfter {
			delete(h.down, addr)
			continue
		}
		out = append(out, fmt.Sprintf("broker %s unreachable since %s: %v", addr, d.since.UTC().Format(time.RFC3339), d.err))
	}
	if len(h.down) == 0 {
		h.metrics.BrokerUp.Set(1)
	}
	slices.Sort(out)
	return out
}
