package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrTopics is wrapped when the app's topics are not as it needs them: an
// input, changelog or co-partitioned table topic whose partition count
// differs from the app's, or a table topic that does not exist.
var ErrTopics = errors.New("streamrt: topics do not fit the app")

// ensureTopics waits for the brokers, checks the partition counts of
// existing input topics and creates the app's missing topics. opts are more
// options of its client, such as hooks that follow the brokers' health.
func ensureTopics(ctx context.Context, cfg *config.Config, topo *config.Topology, log *slog.Logger, opts ...kgo.Opt) error {
	cl, err := newClient(cfg, append([]kgo.Opt{kgo.RequestRetries(1)}, opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	uses := topo.Topics()
	names := make([]string, len(uses))
	for i, u := range uses {
		names[i] = u.Name
	}

	var details kadm.TopicDetails
	for attempt, backoff := 1, 250*time.Millisecond; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		details, err = adm.ListTopics(actx, names...)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A broker that is down comes back; a wrong password, an
		// untrusted certificate or a missing ACL does not, and waiting
		// would hide it.
		if refused := kafka.Refused(err, cfg.Kafka); refused != nil {
			return fmt.Errorf("brokers %v: %w", cfg.Brokers, refused)
		}
		if kafka.Denied(err) {
			return deniedTopic(ctx, adm, names, err)
		}
		log.Warn("brokers unreachable; retrying", "brokers", cfg.Brokers, "attempt", attempt, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}

	var plain, compacted, bad []string
	for _, u := range uses {
		t, tb := u.Name, u.Table
		d, ok := details[t]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			switch {
			case tb != nil && !u.Input && !u.Output:
				// A table fed by one of the app's own stages is created
				// like the stage's other outputs; any other is a source
				// that must exist.
				bad = append(bad, fmt.Sprintf("topic %q of table %q does not exist (tables in %s)", t, tb.Name, cfg.File))
			case u.Changelog:
				compacted = append(compacted, t)
			default:
				plain = append(plain, t)
			}
			continue
		}
		if tb != nil && !tb.Global && int32(len(d.Partitions)) != cfg.Partitions {
			bad = append(bad, fmt.Sprintf("topic %q of co-partitioned table %q has %d partitions, app %q needs %d (partitions in %s); make the table global, or repartition its topic", t, tb.Name, len(d.Partitions), cfg.App, cfg.Partitions, cfg.File))
			continue
		}
		if d.Err != nil {
			if denied := kafka.Deny(d.Err, kafka.Access{Doing: "checking the app's topics", Op: "DESCRIBE (READ or WRITE grant it)", Topic: t}); denied != nil {
				return denied
			}
			return fmt.Errorf("topic %q: %w", t, d.Err)
		}
		if (u.Input || u.Changelog) && int32(len(d.Partitions)) != cfg.Partitions {
			kind := "input"
			if u.Changelog {
				kind = "changelog"
			}
			bad = append(bad, fmt.Sprintf("%s topic %q has %d partitions, app %q needs %d (partitions in %s)", kind, t, len(d.Partitions), cfg.App, cfg.Partitions, cfg.File))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrTopics, joinLines(bad))
	}
	compact := "compact"
	if err := createTopics(ctx, adm, cfg, nil, plain, log); err != nil {
		return err
	}
	return createTopics(ctx, adm, cfg, map[string]*string{"cleanup.policy": &compact}, compacted, log)
}

// CreateTableTopics creates those of cfg's table topics that do not exist,
// as Run creates changelogs: with the app's partition count and replication
// factor, compacted. It returns the topics it created, sorted. A table whose
// topic one of the app's stages reads or writes is left to Run, which
// creates that topic with the stage's others.
//
// It is for a broker that starts empty, such as the one `streamrt run
// --embedded-broker` starts. Run never creates a table's topic from nothing:
// on a real cluster the topic is the table's source, and its absence is a
// mistake that Run reports with ErrTopics.
func CreateTableTopics(ctx context.Context, cfg *config.Config, log *slog.Logger) ([]string, error) {
	topo, err := cfg.Topology()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, u := range topo.Topics() {
		if u.Table != nil && !u.Input && !u.Output {
			names = append(names, u.Name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	cl, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list topics %v: %w", names, err)
	}
	var missing []string
	for _, t := range names {
		if d, ok := details[t]; !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			missing = append(missing, t)
		}
	}
	compact := "compact"
	if err := createTopics(ctx, adm, cfg, map[string]*string{"cleanup.policy": &compact}, missing, log); err != nil {
		return nil, err
	}
	return missing, nil
}

func createTopics(ctx context.Context, adm *kadm.Client, cfg *config.Config, configs map[string]*string, topics []string, log *slog.Logger) error {
	if len(topics) == 0 {
		return nil
	}
	resp, err := adm.CreateTopics(ctx, cfg.Partitions, cfg.ReplicationFactor, configs, topics...)
	if err != nil {
		if denied := kafka.Deny(err, kafka.Access{Doing: "creating the app's topics", Op: "CREATE", Topic: topics[0]}); denied != nil {
			return denied
		}
		return fmt.Errorf("create topics %v: %w", topics, err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			if denied := kafka.Deny(r.Err, kafka.Access{Doing: "creating the app's topics", Op: "CREATE", Topic: r.Topic}); denied != nil {
				return denied
			}
			return fmt.Errorf("create topic %q: %w", r.Topic, r.Err)
		}
		log.Info("created topic", "topic", r.Topic, "partitions", cfg.Partitions, "compacted", configs != nil)
	}
	return nil
}

// deniedTopic names the first of topics the app may not describe, asking
// for each alone, since a listing of all of them fails whole.
func deniedTopic(ctx context.Context, adm *kadm.Client, topics []string, err error) error {
	access := kafka.Access{Doing: "checking the app's topics", Op: "DESCRIBE (READ or WRITE grant it)"}
	for _, t := range topics {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		d, terr := adm.ListTopics(actx, t)
		cancel()
		if terr == nil {
			terr = d[t].Err
		}
		if kafka.Denied(terr) {
			access.Topic = t
			return kafka.Deny(terr, access)
		}
	}
	return kafka.Deny(err, access)
}

// newClient returns a client of cfg's brokers with its kafka section's
// TLS and SASL, and opts.
func newClient(cfg *config.Config, opts ...kgo.Opt) (*kgo.Client, error) {
	security, err := kafka.Options(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, security...), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

// KafkaOptions returns the franz-go client options for the TLS and SASL
// settings of a kafka configuration section, as every client of Run uses
// them; the seed brokers are not among them. Passwords and tokens are
// read when a connection authenticates. It is for tools beside an app,
// such as the CLI's produce and consume.
func KafkaOptions(k config.Kafka) ([]kgo.Opt, error) { return kafka.Options(k) }

// Errors that Run wraps when the brokers refuse the app for good reason:
// ErrKafkaAuthentication for TLS or SASL (a wrong password, an untrusted
// certificate, a plaintext client at a TLS listener), ErrKafkaAuthorization
// for an ACL that is missing. Their messages name the setting, file,
// permission or resource at fault, and never a secret.
var (
	ErrKafkaAuthentication = kafka.ErrAuthentication
	ErrKafkaAuthorization  = kafka.ErrAuthorization
)

func joinLines(s []string) string {
	out := ""
	for i, l := range s {
		if i > 0 {
			out += "; "
		}
		out += l
	}
	return out
}
