// Package control is server mode's control plane, kept in Kafka: three
// compacted topics that every `streamrt server` instance reads whole and
// then tails, so that an instance that starts late or restarts reaches the
// same view from the topics alone.
//
//   - The apps topic holds each app's versions (Spec): its configuration
//     and the content hashes of its modules. Key NAME is the version in
//     force; key NAME@VERSION keeps each version for rollback.
//   - The modules topic holds module bytes by content hash, in chunks that
//     fit the broker's message size: key HASH is a manifest, HASH#I chunk I.
//   - The status topic holds what each instance runs of each app (Status),
//     keyed APP/INSTANCE.
//   - The tenants topic holds each tenant (Tenant) by name: its topic
//     grants, quotas and hashed tokens.
//   - The audit topic, not compacted, records every change made through
//     the admin API (Event).
//
// A Log is one instance's view of them and its way to write them.
package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Topics names the control topics.
type Topics struct{ Apps, Modules, Status, Tenants, Audit string }

// compacted are the topics that keep the latest record per key.
func (t Topics) compacted() []string { return []string{t.Apps, t.Modules, t.Status, t.Tenants} }

func (t Topics) all() []string { return append(t.compacted(), t.Audit) }

// Spec is one version of an app, as deployed.
type Spec struct {
	App     string `json:"app"`
	Version int64  `json:"version"`
	// Tenant owns the app, which is named TENANT.NAME; empty for an app of
	// the platform's own.
	Tenant string `json:"tenant,omitempty"`
	// Config is the app's YAML; each stage's module is the content address
	// ("sha256:HEX") of bytes in the modules topic.
	Config string `json:"config"`
	// Modules maps each stage to its module's content hash, as Config
	// names them.
	Modules map[string]string `json:"modules"`
	// Generation is the app's newest state generation: a rebuild deploys
	// the next one, with its own group, stores and changelogs, which
	// replays the inputs beside the one serving.
	Generation int `json:"generation"`
	// Serving is the generation that serves queries and writes outputs:
	// Generation, except while a rebuild catches up; the flip makes it
	// Generation again.
	Serving int `json:"serving"`
	// FlippedFrom is the generation this one replaced at its flip: an
	// instance that starts before the flip has finished everywhere holds
	// the new generation's outputs back to where that one's group stopped.
	FlippedFrom *int `json:"flipped_from,omitempty"`
	// Canary, when set, runs this version on that many partitions first;
	// the others keep the previous version until a promote.
	Canary     int       `json:"canary,omitempty"`
	DeployedBy string    `json:"deployed_by,omitempty"`
	DeployedAt time.Time `json:"deployed_at"`
	// Note says where a version came from, such as a rollback.
	Note string `json:"note,omitempty"`
	// Deleted marks the version that deletes the app; Purge, that its
	// internal topics, group and local state go too.
	Deleted bool `json:"deleted,omitempty"`
	Purge   bool `json:"purge,omitempty"`
}

// Status is what one instance runs of one app.
type Status struct {
	App      string `json:"app"`
	Instance string `json:"instance"`
	Address  string `json:"address,omitempty"`
	// Version is the version the instance runs; Prepared the newer one it
	// has compiled and is ready to swap to.
	Version  int64 `json:"version"`
	Prepared int64 `json:"prepared,omitempty"`
	// State is running, swapping, rebuilding, stopped or failed.
	State string `json:"state"`
	// Failed is the version the instance could not load, and Reason why.
	Failed int64  `json:"failed,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Held says why the app's tasks process nothing on this instance,
	// such as its tenant's state quota; empty when they run.
	Held string `json:"held,omitempty"`
	// Serving is the generation this instance serves, and Rebuild the
	// progress of one being rebuilt.
	Serving   int       `json:"serving"`
	Rebuild   *Rebuild  `json:"rebuild,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Rebuild is the progress of a generation replaying its inputs, over every
// partition, as the instance saw it.
type Rebuild struct {
	Generation int     `json:"generation"`
	Replayed   int64   `json:"replayed"`    // input records the new generation committed
	Lag        int64   `json:"lag"`         // records it is behind the serving generation
	ETASeconds float64 `json:"eta_seconds"` // at the rate of the last minute; 0 when unknown
	Flipping   bool    `json:"flipping,omitempty"`
	// Ready says the new generation has this instance's share of the
	// partitions, every one restored, in a group as large as the serving
	// one's: the flip may begin without a query finding a partition
	// restoring or in a rebalance.
	Ready bool `json:"ready,omitempty"`
}

// States of a Status.
const (
	StateRunning  = "running"
	StateSwapping = "swapping"
	StateFailed   = "failed"
	StateStopped  = "stopped"
	// StateRebuilding: a new generation replays the inputs beside the one
	// serving.
	StateRebuilding = "rebuilding"
)

// ErrMissingModule is wrapped when a module's bytes are not in the modules
// topic, or not whole.
var ErrMissingModule = errors.New("streamrt: module not in the modules topic")

// chunkSize is the most module bytes one record of the modules topic
// holds: well under Kafka's default message size of 1 MiB.
const chunkSize = 512 << 10

// Log is one instance's view of the control topics, kept current by a
// tail, and its way to write them. It is safe for concurrent use.
type Log struct {
	topics Topics
	cl     *kgo.Client
	adm    *kadm.Client
	log    *slog.Logger

	// pollMu is held by whoever polls: records of one partition must be
	// applied in order, so one goroutine polls at a time.
	pollMu sync.Mutex

	mu       sync.Mutex
	heads    map[string]Spec              // app → the version in force
	versions map[string]map[int64]Spec    // app → version → spec
	manifest map[string]manifest          // hash → its manifest
	chunks   map[string]map[int][]byte    // hash → chunk index → bytes
	status   map[string]map[string]Status // app → instance → status
	tenants  map[string]Tenant
	audit    []Event                    // the newest maxEvents, oldest first
	pos      map[string]map[int32]int64 // topic → partition → next offset read
	changed  chan struct{}              // closed and replaced at every change
}

type manifest struct {
	Size   int `json:"size"`
	Chunks int `json:"chunks"`
}

// MaxModuleBytes bounds a module: what the admin API accepts, and what a
// manifest in the modules topic may announce.
const MaxModuleBytes = 256 << 20

// newLog returns an empty view of the control topics, reading nothing.
func newLog(topics Topics, log *slog.Logger) *Log {
	return &Log{
		topics: topics, log: log,
		heads: map[string]Spec{}, versions: map[string]map[int64]Spec{},
		manifest: map[string]manifest{}, chunks: map[string]map[int][]byte{},
		status: map[string]map[string]Status{}, pos: map[string]map[int32]int64{},
		tenants: map[string]Tenant{},
		changed: make(chan struct{}),
	}
}

// Open creates the control topics when missing (compacted, one partition,
// so that each is read in the order it was written) and starts reading
// them from the start. opts are the Kafka client's options (brokers,
// security). It returns once the topics are read to the end they had.
func Open(ctx context.Context, topics Topics, replication int16, log *slog.Logger, opts ...kgo.Opt) (*Log, error) {
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(topics.all()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("control topics: kafka client: %w", err)
	}
	l := newLog(topics, log)
	l.cl, l.adm = cl, kadm.NewClient(cl)
	compact, keep := "compact", "-1"
	if err := l.createTopics(ctx, topics.compacted(), replication, map[string]*string{"cleanup.policy": &compact}); err != nil {
		cl.Close()
		return nil, err
	}
	// The audit trail is kept whole: every record is a distinct event.
	if err := l.createTopics(ctx, []string{topics.Audit}, replication, map[string]*string{"retention.ms": &keep, "retention.bytes": &keep}); err != nil {
		cl.Close()
		return nil, err
	}
	if err := l.Sync(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	return l, nil
}

func (l *Log) createTopics(ctx context.Context, topics []string, replication int16, configs map[string]*string) error {
	for attempt := 0; ; attempt++ {
		resp, err := l.adm.CreateTopics(ctx, 1, replication, configs, topics...)
		if err == nil {
			for _, r := range resp.Sorted() {
				if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
					err = fmt.Errorf("create control topic %q: %w", r.Topic, r.Err)
					break
				}
			}
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || attempt == 30 {
			return fmt.Errorf("control topics: %w", err)
		}
		l.log.Warn("control topics: brokers unreachable; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// Run tails the control topics until ctx ends.
func (l *Log) Run(ctx context.Context) {
	for ctx.Err() == nil {
		l.pollMu.Lock()
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		l.poll(pctx)
		cancel()
		l.pollMu.Unlock()
	}
}

// Close stops the Log's client; Run must have returned.
func (l *Log) Close() { l.cl.Close() }

// Sync waits until the Log has read every record written to the control
// topics before it was called: what it then says is at least as new as
// what any instance had written.
func (l *Log) Sync(ctx context.Context) error {
	var ends kadm.ListedOffsets
	var err error
	// Topics created moments ago may be missing from metadata for a
	// little while.
	for attempt := 0; ; attempt++ {
		ends, err = l.adm.ListEndOffsets(ctx, l.topics.all()...)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			break
		}
		if attempt == 40 || ctx.Err() != nil {
			return fmt.Errorf("control topics: list end offsets: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	for {
		behind := false
		l.mu.Lock()
		ends.Each(func(lo kadm.ListedOffset) {
			if l.pos[lo.Topic][lo.Partition] < lo.Offset {
				behind = true
			}
		})
		changed := l.changed
		l.mu.Unlock()
		if !behind {
			return nil
		}
		// Poll, unless Run is polling already; then wait for its news.
		if l.pollMu.TryLock() {
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			l.poll(pctx)
			cancel()
			l.pollMu.Unlock()
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// poll applies one fetch of the control topics.
func (l *Log) poll(ctx context.Context) {
	fs := l.cl.PollFetches(ctx)
	fs.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			l.log.Warn("control topics: fetch failed; retrying", "topic", topic, "err", err)
		}
	})
	if fs.NumRecords() == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fs.EachRecord(func(r *kgo.Record) {
		if l.pos[r.Topic] == nil {
			l.pos[r.Topic] = map[int32]int64{}
		}
		l.pos[r.Topic][r.Partition] = r.Offset + 1
		if err := l.apply(r); err != nil {
			l.log.Warn("control topics: record skipped", "topic", r.Topic, "key", string(r.Key), "offset", r.Offset, "err", err)
		}
	})
	close(l.changed)
	l.changed = make(chan struct{})
}

// apply applies one record to the view. Callers hold l.mu.
func (l *Log) apply(r *kgo.Record) error {
	key := string(r.Key)
	switch r.Topic {
	case l.topics.Apps:
		name, version, isVersion := strings.Cut(key, "@")
		if r.Value == nil {
			if !isVersion {
				delete(l.heads, name)
				return nil
			}
			v, err := strconv.ParseInt(version, 10, 64)
			if err != nil {
				return err
			}
			delete(l.versions[name], v)
			return nil
		}
		var s Spec
		if err := json.Unmarshal(r.Value, &s); err != nil {
			return err
		}
		if isVersion {
			if l.versions[name] == nil {
				l.versions[name] = map[int64]Spec{}
			}
			l.versions[name][s.Version] = s
		} else {
			l.heads[name] = s
		}
	case l.topics.Modules:
		hash, chunk, isChunk := strings.Cut(key, "#")
		if r.Value == nil {
			delete(l.manifest, hash)
			delete(l.chunks, hash)
			return nil
		}
		if !isChunk {
			var m manifest
			if err := json.Unmarshal(r.Value, &m); err != nil {
				return err
			}
			// The topic is written by whoever may write it: a manifest
			// announcing a negative or vast size must not become an
			// allocation when the module is put together.
			if m.Size < 0 || m.Size > MaxModuleBytes || m.Chunks < 0 || m.Chunks > m.Size+1 {
				return fmt.Errorf("manifest of module %s: size %d in %d chunks is out of range (at most %d bytes)", hash, m.Size, m.Chunks, MaxModuleBytes)
			}
			l.manifest[hash] = m
			return nil
		}
		i, err := strconv.Atoi(chunk)
		if err != nil || i < 0 {
			return fmt.Errorf("module %s: chunk %q is not a chunk number", hash, chunk)
		}
		if l.chunks[hash] == nil {
			l.chunks[hash] = map[int][]byte{}
		}
		l.chunks[hash][i] = r.Value
	case l.topics.Status:
		app, instance, _ := strings.Cut(key, "/")
		if r.Value == nil {
			delete(l.status[app], instance)
			return nil
		}
		var st Status
		if err := json.Unmarshal(r.Value, &st); err != nil {
			return err
		}
		if l.status[app] == nil {
			l.status[app] = map[string]Status{}
		}
		l.status[app][instance] = st
	case l.topics.Tenants:
		return l.applyTenant(key, r.Value)
	case l.topics.Audit:
		return l.applyEvent(r.Value)
	}
	return nil
}

// Changed returns a channel closed at the next change of the view.
func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Apps returns the version in force of every app.
func (l *Log) Apps() map[string]Spec {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]Spec, len(l.heads))
	for k, v := range l.heads {
		out[k] = v
	}
	return out
}

// App returns the version in force of app.
func (l *Log) App(app string) (Spec, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.heads[app]
	return s, ok
}

// Versions returns the kept versions of app, oldest first.
func (l *Log) Versions(app string) []Spec {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Spec
	for _, s := range l.versions[app] {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// Statuses returns every instance's status of app, by instance.
func (l *Log) Statuses(app string) map[string]Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]Status{}
	for k, v := range l.status[app] {
		out[k] = v
	}
	return out
}

// HasModule reports whether the modules topic holds the module whole.
func (l *Log) HasModule(hash string) bool { return l.ModuleError(hash) == nil }

// Module returns a module's bytes, waiting up to wait for a manifest not
// read yet (a module is written before the spec that names it, but in
// another topic). A manifest read without all its chunks is an error at
// once: the modules topic has one partition and chunks are written before
// their manifest, so a chunk missing then is missing for good. The bytes
// are checked against the hash.
func (l *Log) Module(ctx context.Context, hash string, wait time.Duration) ([]byte, error) {
	deadline := time.After(wait)
	for {
		b, manifested, err := l.module(hash)
		if err == nil {
			return b, nil
		}
		if manifested {
			return nil, fmt.Errorf("%w: %w", ErrMissingModule, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			return nil, fmt.Errorf("%w: %w", ErrMissingModule, err)
		case <-l.Changed():
		}
	}
}

// ModuleError says why the modules topic does not hold a module whole
// (what is missing, without ErrMissingModule), or nil when it does.
func (l *Log) ModuleError(hash string) error {
	_, _, err := l.module(hash)
	return err
}

func (l *Log) module(hash string) (b []byte, manifested bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.manifest[hash]
	if !ok {
		return nil, false, fmt.Errorf("no manifest for module %s", hash)
	}
	// The chunks are counted before anything is allocated: the manifest
	// says what size to expect, the chunks what there is.
	size := 0
	for i := range m.Chunks {
		c, ok := l.chunks[hash][i]
		if !ok {
			return nil, true, fmt.Errorf("module %s lacks chunk %d of %d in the modules topic (upload it again)", hash, i, m.Chunks)
		}
		size += len(c)
	}
	if size != m.Size {
		return nil, true, fmt.Errorf("module %s: its chunks make %d bytes, its manifest says %d (upload it again)", hash, size, m.Size)
	}
	b = make([]byte, 0, size)
	for i := range m.Chunks {
		b = append(b, l.chunks[hash][i]...)
	}
	if sum := Hash(b); sum != hash {
		return nil, true, fmt.Errorf("module %s: its chunks make %d bytes hashing to %s (upload it again)", hash, len(b), sum)
	}
	return b, true, nil
}

// Hash is the content address of module bytes: the hex sha256.
func Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// PutModule writes a module's bytes, chunks first and the manifest last,
// and returns its hash once Kafka has every record.
func (l *Log) PutModule(ctx context.Context, b []byte) (string, error) {
	hash := Hash(b)
	var recs []*kgo.Record
	n := 0
	for off := 0; off < len(b) || n == 0; off += chunkSize {
		end := min(off+chunkSize, len(b))
		recs = append(recs, &kgo.Record{Topic: l.topics.Modules, Key: []byte(hash + "#" + strconv.Itoa(n)), Value: b[off:end:end]})
		n++
	}
	mf, _ := json.Marshal(manifest{Size: len(b), Chunks: n})
	if err := l.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return "", fmt.Errorf("write module %s: %w", hash, err)
	}
	if err := l.cl.ProduceSync(ctx, &kgo.Record{Topic: l.topics.Modules, Key: []byte(hash), Value: mf}).FirstErr(); err != nil {
		return "", fmt.Errorf("write module %s: %w", hash, err)
	}
	return hash, nil
}

// PutSpec writes a version of an app: its record in the history, then as
// the version in force; and drops versions beyond the newest keep.
func (l *Log) PutSpec(ctx context.Context, s Spec, keep int) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	recs := []*kgo.Record{
		{Topic: l.topics.Apps, Key: []byte(fmt.Sprintf("%s@%d", s.App, s.Version)), Value: v},
		{Topic: l.topics.Apps, Key: []byte(s.App), Value: v},
	}
	for _, old := range l.Versions(s.App) {
		if old.Version <= s.Version-int64(keep) {
			recs = append(recs, &kgo.Record{Topic: l.topics.Apps, Key: []byte(fmt.Sprintf("%s@%d", s.App, old.Version))})
		}
	}
	if err := l.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("write app %s version %d: %w", s.App, s.Version, err)
	}
	return nil
}

// DeleteApp removes app and its versions.
func (l *Log) DeleteApp(ctx context.Context, app string) error {
	recs := []*kgo.Record{{Topic: l.topics.Apps, Key: []byte(app)}}
	for _, old := range l.Versions(app) {
		recs = append(recs, &kgo.Record{Topic: l.topics.Apps, Key: []byte(fmt.Sprintf("%s@%d", app, old.Version))})
	}
	if err := l.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("delete app %s: %w", app, err)
	}
	return nil
}

// PutStatus writes an instance's status of an app, or with remove drops
// it (only App and Instance matter then).
func (l *Log) PutStatus(ctx context.Context, st Status, remove bool) error {
	r := &kgo.Record{Topic: l.topics.Status, Key: []byte(st.App + "/" + st.Instance)}
	if !remove {
		st.UpdatedAt = time.Now().UTC()
		r.Value, _ = json.Marshal(st)
	}
	if err := l.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("write status of app %s: %w", st.App, err)
	}
	return nil
}
