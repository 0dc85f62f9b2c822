package engine

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A broker that refuses the app's credentials while it runs is retried,
// as it may be fixed at the broker, and /readyz says what to check rather
// than only that the broker is unreachable, without the secret.
func TestBrokerRefusalOnReadyz(t *testing.T) {
	k := config.Kafka{SASL: config.KafkaSASL{Mechanism: config.SASLScramSHA512, Username: "app", PasswordEnv: "APP_PASSWORD"}}
	h := newBrokerHealth(slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New(), k)
	h.OnBrokerConnect(kgo.BrokerMetadata{Host: "127.0.0.1", Port: 9093}, 0, nil, fmt.Errorf("sasl: %w", kerr.SaslAuthenticationFailed))
	reasons := h.reasons()
	want := `broker 127.0.0.1:9093 unreachable since`
	explained := `SASL SCRAM-SHA-512 authentication as "app" failed: check kafka.sasl.username and the password in the environment variable APP_PASSWORD`
	if len(reasons) != 1 || !strings.Contains(reasons[0], want) || !strings.Contains(reasons[0], explained) {
		t.Fatalf("reasons = %q\nwant one saying %q and %q", reasons, want, explained)
	}
}
