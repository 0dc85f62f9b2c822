package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/streamrt/streamrt/cmd/streamrt/internal/broker"
	streamrt "github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaFlags are the flags shared by produce and consume.
type kafkaFlags struct {
	brokers string
	config  string // an app configuration whose kafka section (TLS, SASL) to use
	topic   string
	timeout time.Duration
}

func (k *kafkaFlags) define(f *flags) {
	f.StringVar(&k.brokers, "brokers", broker.DefaultAddr, "Kafka seed brokers, a comma-separated `LIST` of host:port")
	f.alias("b", "brokers")
	f.StringVar(&k.config, "config", "", "use the kafka section (TLS, SASL) of the app config `FILE`;\nSTREAMRT_KAFKA__ variables override it, and secrets come from\nthe environment or files it names, never from flags")
	f.alias("c", "config")
	f.StringVar(&k.topic, "topic", "", "the `TOPIC` (required; it must exist)")
	f.alias("t", "topic")
	f.DurationVar(&k.timeout, "request-timeout", 10*time.Second, "give up on an unreachable cluster after `D`")
}

// check validates the flags after parsing; it returns the usage problem.
func (k *kafkaFlags) check(f *flags) string {
	switch {
	case f.NArg() > 0:
		return fmt.Sprintf("unexpected argument %q", f.Arg(0))
	case k.topic == "":
		return "-t TOPIC is required"
	case len(splitList(k.brokers)) == 0:
		return "-b BROKERS must name at least one broker"
	case k.timeout <= 0:
		return "--request-timeout must be positive"
	}
	return ""
}

// client returns a client for the flags' brokers that never creates topics
// (kgo leaves AllowAutoTopicCreation off unless asked), with the TLS and
// SASL of the kafka section of -c FILE. A warning about that section goes
// to stderr.
func (k *kafkaFlags) client(stderr io.Writer, opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{
		kgo.SeedBrokers(splitList(k.brokers)...),
		kgo.DialTimeout(k.timeout),
		kgo.RetryTimeout(k.timeout),
	}
	if k.config != "" {
		kc, err := config.LoadKafka(k.config)
		if err != nil {
			return nil, err
		}
		if kc.TLS.InsecureSkipVerify {
			fmt.Fprintln(stderr, "warning: kafka.tls.insecure_skip_verify is on: any broker certificate is accepted")
		}
		security, err := streamrt.KafkaOptions(*kc)
		if err != nil {
			return nil, err
		}
		base = append(base, security...)
	}
	return kgo.NewClient(append(base, opts...)...)
}

// checkTopic fails unless the topic exists, within the request timeout. A
// topic just created may take a moment to appear in a real cluster's
// metadata, so "unknown topic" is asked again a few times before it is
// believed.
func (k *kafkaFlags) checkTopic(parent context.Context, cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(parent, k.timeout)
	defer cancel()
	adm := kadm.NewClient(cl)
	for attempt := 1; ; attempt++ {
		topics, err := adm.ListTopics(ctx, k.topic)
		switch {
		case parent.Err() != nil:
			return parent.Err()
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("cannot reach Kafka at %s within %s: %w", k.brokers, k.timeout, err)
		case err != nil:
			return fmt.Errorf("cannot reach Kafka at %s: %w", k.brokers, err)
		}
		err = topics[k.topic].Err
		if _, ok := topics[k.topic]; !ok {
			err = kerr.UnknownTopicOrPartition
		}
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, kerr.UnknownTopicOrPartition):
			return fmt.Errorf("topic %q: %w", k.topic, err)
		case attempt == 4:
			return fmt.Errorf("topic %q does not exist at %s (this command creates no topics)", k.topic, k.brokers)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %q does not exist at %s (this command creates no topics)", k.topic, k.brokers)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// formatRecord renders a record as a line: key, a tab, value. A null key is
// printed as an empty one.
func formatRecord(b *strings.Builder, r *kgo.Record, headers bool) {
	b.Write(r.Key)
	b.WriteByte('\t')
	b.Write(r.Value)
	if headers {
		// A JSON object in the record's header order: a dead letter's
		// error and its source stay on one line however they read.
		b.WriteString("\t{")
		for i, h := range r.Headers {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(h.Key)
			v, _ := json.Marshal(string(h.Value))
			b.Write(k)
			b.WriteByte(':')
			b.Write(v)
		}
		b.WriteByte('}')
	}
	b.WriteByte('\n')
}
