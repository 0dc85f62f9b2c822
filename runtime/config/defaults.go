package config

import (
	"fmt"
	"path/filepath"
	"slices"
)

// EnsureDefaults gives every key the configuration left unset its default,
// and works out the values that follow from others: the state and cache
// directories, dead-letter topics and the topics of repartition outputs. It
// is idempotent. Parse and Load call it before Validate; a Config built in
// code should be passed through it (runtime.New does so on a copy).
//
// A key is unset when it is zero and no source gave it. Zero is never a
// meaningful value in a Config built in code, with one exception it cannot
// express: a stage's batch_deadline of 0, which a file gives to turn the
// deadline off, while a zero BatchDeadline in code means the default.
func (c *Config) EnsureDefaults() {
	unset := func(key string) bool { return !c.given[key] }
	if c.HTTP == "" && unset("http") {
		c.HTTP = DefaultHTTP
	}
	if c.Guarantee == "" && unset("guarantee") {
		c.Guarantee = DefaultGuarantee
	}
	if c.SessionTimeout == 0 && unset("session_timeout") {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.Partitions == 0 && unset("partitions") {
		c.Partitions = DefaultPartitions
	}
	if c.ReplicationFactor == 0 && unset("replication_factor") {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	if c.CommitInterval == 0 && unset("commit_interval") {
		c.CommitInterval = DefaultCommitInterval
	}
	if c.StartOffset == "" && unset("start_offset") {
		c.StartOffset = DefaultStartOffset
	}
	if c.StateRecovery == "" && unset("state_recovery") {
		c.StateRecovery = DefaultStateRecovery
	}
	if c.StateMinFree == (MinFree{}) && unset("state_min_free") {
		c.StateMinFree = MinFree{Bytes: DefaultStateMinFreeBytes, Percent: DefaultStateMinFreePercent}
	}
	if c.StateDir == "" && validName(c.App) == "" {
		c.StateDir = filepath.Join(".streamrt", c.App)
	}
	if c.CacheDir == "" && c.StateDir != "" {
		c.CacheDir = filepath.Join(c.StateDir, "cache")
	}

	q := &c.Query
	if q.MaxKeyBytes == 0 && unset("query.max_key_bytes") {
		q.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if q.MaxRangeLimit == 0 && unset("query.max_range_limit") {
		q.MaxRangeLimit = DefaultMaxRangeLimit
	}
	if q.HandlerDeadline == 0 && unset("query.handler_deadline") {
		q.HandlerDeadline = DefaultHandlerDeadline
	}
	if q.ForwardTimeout == 0 && unset("query.forward_timeout") {
		q.ForwardTimeout = DefaultForwardTimeout
	}
	if q.MaxWatches == 0 && unset("query.max_watches") {
		q.MaxWatches = DefaultMaxWatches
	}
	if q.MaxWatchesPerClient == 0 && unset("query.max_watches_per_client") {
		q.MaxWatchesPerClient = DefaultMaxWatchesPerClient
	}
	if q.WatchBuffer == 0 && unset("query.watch_buffer") {
		q.WatchBuffer = DefaultWatchBuffer
	}
	if q.WatchCoalesceKeys == 0 && unset("query.watch_coalesce_keys") {
		q.WatchCoalesceKeys = DefaultWatchCoalesceKeys
	}
	for i := range q.Routes {
		if r := &q.Routes[i]; r.Method == "" && unset(fmt.Sprintf("query.routes[%d].method", i)) {
			r.Method = "GET"
		}
	}

	for i := range c.Stages {
		s := &c.Stages[i]
		key := func(k string) string { return fmt.Sprintf("stages[%d].%s", i, k) }
		if s.ErrorPolicy == "" && unset(key("error_policy")) {
			s.ErrorPolicy = DefaultErrorPolicy
		}
		if s.BatchSize == 0 && unset(key("batch_size")) {
			s.BatchSize = DefaultBatchSize
		}
		if s.MemoryLimit == 0 && unset(key("memory_limit")) {
			s.MemoryLimit = DefaultMemoryLimit
		}
		if s.BatchDeadline == 0 && unset(key("batch_deadline")) {
			s.BatchDeadline = DefaultBatchDeadline
		}
		if s.ErrorPolicy == PolicyDeadLetter && s.DeadLetterTopic == "" &&
			validName(c.App) == "" && validName(s.Name) == "" {
			s.DeadLetterTopic = c.App + "-" + s.Name + "-dlq"
		}
	}
	c.resolveRepartitions()
}

// resolveRepartitions turns each {repartition: STAGE} output into the
// internal topic that feeds STAGE: an output of the writing stage and an
// input of STAGE.
func (c *Config) resolveRepartitions() {
	for i := range c.Stages {
		for _, name := range sortedKeys(c.Stages[i].Repartition) {
			target, ok := c.Stage(c.Stages[i].Repartition[name])
			if !ok {
				continue // Validate reports it
			}
			topic := RepartitionTopic(c.Internal(), target.Name)
			if c.Stages[i].Outputs == nil {
				c.Stages[i].Outputs = map[string]string{}
			}
			c.Stages[i].Outputs[name] = topic
			if !slices.Contains(target.Inputs, topic) {
				target.Inputs = append(target.Inputs, topic)
			}
		}
	}
}
