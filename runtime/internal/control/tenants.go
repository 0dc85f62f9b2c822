package control

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Tenant is a team whose apps share the servers with other teams' apps. Its
// apps are named TENANT.APP, so their consumer groups, internal topics and
// state live under its name; they may read and write topics under the
// tenant's namespace (TENANT.) and its Prefixes, and read its Shared topics.
type Tenant struct {
	Name string `json:"name"`
	// Prefixes are the topic name prefixes the tenant's apps may read and
	// write, beside its namespace.
	Prefixes []string `json:"prefixes,omitempty"`
	// Shared are topics the platform lets the tenant's apps read, not write.
	Shared []string `json:"shared,omitempty"`
	Quotas Quotas   `json:"quotas"`
	// Tokens are the tenant's bearer tokens, stored as their hashes.
	Tokens    []Token   `json:"tokens,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Quotas bound what one tenant may use; 0 is no bound.
type Quotas struct {
	// Apps is how many apps the tenant may have deployed.
	Apps int `json:"apps,omitempty"`
	// Partitions is the sum of its apps' partition counts.
	Partitions int `json:"partitions,omitempty"`
	// MemoryBytes bounds the guest memory the tenant's apps may hold on one
	// server: the sum of their guest instances' memory limits, counted as
	// if every partition ran on that server.
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// CPU is the share of each server's cores the tenant's batches may
	// take (1.5: one and a half cores); past it they wait for their turn.
	CPU float64 `json:"cpu,omitempty"`
	// StateBytes bounds the tenant's apps' local state on each server: at
	// it, their tasks stop processing until it is raised or the state
	// shrinks.
	StateBytes int64 `json:"state_bytes,omitempty"`
}

// Token is one of a tenant's bearer tokens. The token itself is shown once,
// when it is made, and never stored: only the hex sha256 of it is.
type Token struct {
	ID        string    `json:"id"`
	Role      string    `json:"role"`
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
}

// Token roles: a query token reads a tenant's apps' stores; a deploy token
// also deploys, rolls back, promotes, deletes and lists them.
const (
	RoleQuery  = "query"
	RoleDeploy = "deploy"
)

// Event is one change made through the admin API, as the audit topic keeps
// it: who made it (the token's id, never the token), to what, and when.
type Event struct {
	At     time.Time `json:"at"`
	Action string    `json:"action"`
	Tenant string    `json:"tenant,omitempty"`
	// TokenID names the token that made the change: a tenant token's id,
	// or admin:HASHPREFIX for one of the servers' admin tokens.
	TokenID string `json:"token_id"`
	App     string `json:"app,omitempty"`
	Version int64  `json:"version,omitempty"`
	// From is the version in force before the change.
	From   int64  `json:"from,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// maxEvents bounds the audit events a Log keeps in memory; the topic keeps
// them all.
const maxEvents = 10_000

// applyTenant applies one record of the tenants topic. Callers hold l.mu.
func (l *Log) applyTenant(name string, value []byte) error {
	if value == nil {
		delete(l.tenants, name)
		return nil
	}
	var t Tenant
	if err := json.Unmarshal(value, &t); err != nil {
		return err
	}
	l.tenants[name] = t
	return nil
}

// applyEvent applies one record of the audit topic. Callers hold l.mu.
func (l *Log) applyEvent(value []byte) error {
	var e Event
	if err := json.Unmarshal(value, &e); err != nil {
		return err
	}
	if len(l.audit) == maxEvents {
		l.audit = append(l.audit[:0], l.audit[1:]...)
	}
	l.audit = append(l.audit, e)
	return nil
}

// Tenants returns every tenant, by name.
func (l *Log) Tenants() map[string]Tenant {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]Tenant, len(l.tenants))
	for k, v := range l.tenants {
		out[k] = v
	}
	return out
}

// Tenant returns the named tenant.
func (l *Log) Tenant(name string) (Tenant, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.tenants[name]
	return t, ok
}

// PutTenant writes a tenant, new or changed.
func (l *Log) PutTenant(ctx context.Context, t Tenant) error {
	v, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := l.cl.ProduceSync(ctx, &kgo.Record{Topic: l.topics.Tenants, Key: []byte(t.Name), Value: v}).FirstErr(); err != nil {
		return fmt.Errorf("write tenant %s: %w", t.Name, err)
	}
	return nil
}

// DeleteTenant removes a tenant and with it its tokens.
func (l *Log) DeleteTenant(ctx context.Context, name string) error {
	if err := l.cl.ProduceSync(ctx, &kgo.Record{Topic: l.topics.Tenants, Key: []byte(name)}).FirstErr(); err != nil {
		return fmt.Errorf("delete tenant %s: %w", name, err)
	}
	return nil
}

// Record appends an event to the audit topic.
func (l *Log) Record(ctx context.Context, e Event) error {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	key := make([]byte, 8)
	rand.Read(key)
	if err := l.cl.ProduceSync(ctx, &kgo.Record{Topic: l.topics.Audit, Key: []byte(fmt.Sprintf("%x", key)), Value: v}).FirstErr(); err != nil {
		return fmt.Errorf("write audit event %s: %w", e.Action, err)
	}
	return nil
}

// Events returns the audit events kept, oldest first, that keep accepts.
func (l *Log) Events(keep func(Event) bool) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, e := range l.audit {
		if keep(e) {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}
