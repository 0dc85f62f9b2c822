package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/assign"
	"github.com/streamrt/streamrt/runtime/internal/control"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fence is the engine.Fence of a generation being rebuilt beside the one
// serving. Before the flip it lets the new generation process each input
// partition only up to where the serving generation has committed, and
// drops its outputs. At the flip every instance stops the serving
// generation; once its group is empty, its committed offsets are final:
// the new generation drops the outputs of the offsets below them and
// produces the rest, so each input offset's outputs come from one
// generation.
type fence struct {
	adm      *kadm.Client
	log      *slog.Logger
	old, new string // the serving and the rebuilding generation's groups
	inputs   []string

	mu      sync.Mutex
	limits  map[string]map[int32]int64 // the serving generation's committed offsets
	built   map[string]map[int32]int64 // the new generation's committed offsets
	flipped bool
	final   map[string]map[int32]int64 // limits once the serving generation stopped everywhere; nil before
	rate    []sample                   // replayed records over time, for the ETA
}

type sample struct {
	at       time.Time
	replayed int64
}

// pollEvery is how often a fence reads the two groups' offsets.
const pollEvery = 500 * time.Millisecond

func newFence(adm *kadm.Client, log *slog.Logger, old, new string, inputs []string) *fence {
	return &fence{adm: adm, log: log, old: old, new: new, inputs: inputs, limits: map[string]map[int32]int64{}, built: map[string]map[int32]int64{}}
}

// Limit implements engine.Fence.
func (f *fence) Limit(topic string, p int32) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.final != nil {
		return 0, false
	}
	return f.limits[topic][p], true
}

// Emits implements engine.Fence.
func (f *fence) Emits(topic string, p int32, offset int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.final == nil {
		return false
	}
	end, ok := f.final[topic][p]
	return !ok || offset >= end
}

// flip records that the serving generation is being stopped everywhere.
func (f *fence) flip() {
	f.mu.Lock()
	f.flipped = true
	f.mu.Unlock()
}

// run reads both groups' committed offsets until ctx ends; after a flip it
// waits for the serving generation's group to be empty and takes its
// offsets as final.
func (f *fence) run(ctx context.Context) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		f.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (f *fence) poll(ctx context.Context) {
	old, err := f.committed(ctx, f.old)
	if err != nil {
		f.log.Warn("rebuild: reading the serving generation's offsets failed; retrying", "err", err)
		return
	}
	built, err := f.committed(ctx, f.new)
	if err != nil {
		f.log.Warn("rebuild: reading the new generation's offsets failed; retrying", "err", err)
		return
	}
	f.mu.Lock()
	flipped, final := f.flipped, f.final
	f.mu.Unlock()
	if flipped && final == nil {
		empty, err := f.groupEmpty(ctx, f.old)
		if err != nil {
			f.log.Warn("rebuild: describing the serving generation's group failed; retrying", "err", err)
		} else if empty {
			final = old
			f.log.Info("rebuild: the serving generation has stopped everywhere; its offsets are final", "group", f.old)
		}
	}
	var replayed int64
	for _, ps := range built {
		for _, o := range ps {
			replayed += o
		}
	}
	f.mu.Lock()
	if f.final == nil {
		f.limits = old
	}
	f.built, f.final = built, final
	f.rate = append(f.rate, sample{time.Now(), replayed})
	for len(f.rate) > 1 && time.Since(f.rate[0].at) > time.Minute {
		f.rate = f.rate[1:]
	}
	f.mu.Unlock()
}

// committed returns a group's committed offsets of the inputs.
func (f *fence) committed(ctx context.Context, group string) (map[string]map[int32]int64, error) {
	out := map[string]map[int32]int64{}
	for _, topic := range f.inputs {
		out[topic] = map[int32]int64{}
	}
	resp, err := f.adm.FetchOffsetsForTopics(ctx, group, f.inputs...)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return out, nil // a group that has committed nothing yet
	}
	if err != nil {
		return nil, err
	}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At >= 0 && out[o.Topic] != nil {
			out[o.Topic][o.Partition] = o.At
		}
	})
	return out, nil
}

func (f *fence) groupEmpty(ctx context.Context, group string) (bool, error) {
	described, err := f.adm.DescribeGroups(ctx, group)
	if err != nil {
		return false, err
	}
	d, ok := described[group]
	switch {
	case !ok || errors.Is(d.Err, kerr.GroupIDNotFound):
		return true, nil
	case d.Err != nil:
		return false, d.Err
	}
	return len(d.Members) == 0, nil
}

// progress says how far the new generation is: records committed, its lag
// behind the serving generation (behind the final offsets after the flip),
// and an ETA at the last minute's rate.
func (f *fence) progress() (replayed, lag int64, eta float64, caughtUp bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	target := f.limits
	if f.final != nil {
		target = f.final
	}
	caughtUp = true
	for topic, ps := range target {
		for p, end := range ps {
			done := f.built[topic][p]
			replayed += done
			if end > done {
				lag += end - done
				caughtUp = false
			}
		}
	}
	if n := len(f.rate); n > 1 && lag > 0 {
		first, last := f.rate[0], f.rate[n-1]
		if d := last.at.Sub(first.at).Seconds(); d > 0 && last.replayed > first.replayed {
			eta = float64(lag) / (float64(last.replayed-first.replayed) / d)
		}
	}
	return replayed, lag, eta, caughtUp
}

// final reports whether the serving generation's final offsets are known.
func (f *fence) finalKnown() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.final != nil
}

// externalInputs lists an app's input topics that are not its own
// repartition topics: what a fence holds the new generation to.
func externalInputs(topo *config.Topology) []string {
	var out []string
	for _, u := range topo.Topics() {
		if u.Input && !topo.IsInternal(u.Name) {
			out = append(out, u.Name)
		}
	}
	sort.Strings(out)
	return out
}

// deleteGeneration deletes a generation's consumer group and internal
// topics once its group is empty; it waits up to a minute for that.
func deleteGeneration(ctx context.Context, adm *kadm.Client, cfg *config.Config, topo *config.Topology) ([]string, error) {
	group := cfg.Internal()
	deadline := time.Now().Add(time.Minute)
	for {
		described, err := adm.DescribeGroups(ctx, group)
		if err == nil {
			if d, ok := described[group]; !ok || len(d.Members) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the group %q still has members after a minute; its topics are kept", group)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	var deleted []string
	if _, err := adm.DeleteGroups(ctx, group); err == nil {
		deleted = append(deleted, "group "+group)
	}
	var topics []string
	for _, u := range topo.Topics() {
		if u.Changelog || topo.IsInternal(u.Name) {
			topics = append(topics, u.Name)
		}
	}
	sort.Strings(topics)
	if len(topics) > 0 {
		resp, err := adm.DeleteTopics(ctx, topics...)
		if err != nil {
			return deleted, fmt.Errorf("delete topics %v: %w", topics, err)
		}
		for _, r := range resp.Sorted() {
			if r.Err == nil {
				deleted = append(deleted, "topic "+r.Topic)
			}
		}
	}
	return deleted, nil
}

// newAdmin returns an admin client of the server's cluster.
func (h *host) newAdmin() (*kadm.Client, func(), error) {
	cl, err := kgo.NewClient(h.clientOpts()...)
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}

// flipLag is how far behind the serving generation a rebuilt one may be
// when the flip is written: the last records are replayed during the flip.
const flipLag = 1000

// rebuild runs the generation spec deploys beside the serving one, held
// behind it by a fence, and reports its progress; the designated instance
// writes the flip once it has caught up.
func (h *host) rebuild(ctx context.Context, hs *hosted, spec control.Spec) {
	if hs.build == nil || hs.build.spec.Generation != spec.Generation {
		if hs.build != nil {
			stopGen(hs.build, hs.log, "superseded by generation "+fmt.Sprint(spec.Generation))
			h.closeGen(spec.App, hs.build)
			hs.build = nil
		}
		g, err := h.startBuild(ctx, hs, spec)
		if err != nil {
			hs.refused, hs.reason = spec.Version, err.Error()
			hs.log.Error("rebuild not started", "version", spec.Version, "err", err)
			h.report(ctx, hs, control.StateRunning)
			return
		}
		hs.build = g
		hs.log.Info("rebuilding", "generation", spec.Generation, "version", spec.Version)
	}
	h.report(ctx, hs, control.StateRebuilding)
	if _, lag, _, _ := hs.build.fence.progress(); lag <= flipLag && h.designated(hs) && h.fenceRead(hs.build) && h.allBuilt(hs, spec.Generation) {
		flip := spec
		from := hs.spec.Generation
		flip.Version, flip.Serving, flip.FlippedFrom, flip.DeployedAt = spec.Version+1, spec.Generation, &from, time.Now().UTC()
		flip.Note = fmt.Sprintf("flip to generation %d, rebuilt from its inputs", spec.Generation)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := h.ctl.PutSpec(wctx, flip, h.cfg.VersionsKept); err != nil {
			hs.log.Warn("writing the flip failed; trying again", "err", err)
		}
	}
}

// buildReady reports whether the generation being rebuilt could take over
// here without a query failing: both generations have their assignments,
// with the same members, and every task of both is restored.
func buildReady(hs *hosted) bool {
	if hs.build == nil || hs.generation == nil {
		return false
	}
	serving, built := hs.generation.app.eng, hs.build.app.eng
	return sameMembers(serving.Assignment(), built.Assignment()) && serving.Settled() && built.Settled() && built.Readiness().Ready
}

func sameMembers(a, b assign.Assignment) bool {
	if !a.Valid() || !b.Valid() || len(a.Members()) != len(b.Members()) {
		return false
	}
	in := map[string]bool{}
	for _, m := range a.Members() {
		in[m.Addr] = true
	}
	for _, m := range b.Members() {
		if !in[m.Addr] {
			return false
		}
	}
	return true
}

// statusFresh is how recent a status must be to count as an instance's
// word on a rebuild: a rebuilding instance reports at every reconcile step,
// about once a second.
const statusFresh = 10 * time.Second

// allBuilt reports whether every member of the serving generation's group
// reports generation g ready to take over, and no other instance has said
// lately that it hosts the app: one still joining would start a rebalance
// during the flip.
func (h *host) allBuilt(hs *hosted, g int) bool {
	a := hs.generation.app.eng.Assignment()
	if !a.Valid() {
		return false
	}
	ready := map[string]bool{}
	for _, st := range h.ctl.Statuses(hs.spec.App) {
		if time.Since(st.UpdatedAt) > statusFresh {
			continue
		}
		if st.Rebuild == nil || st.Rebuild.Generation != g || !st.Rebuild.Ready {
			return false
		}
		ready[st.Address] = true
	}
	for _, m := range a.Members() {
		if !ready[m.Addr] {
			return false
		}
	}
	return len(ready) == len(a.Members())
}

// fenceRead reports whether a fence has read both groups' offsets at least
// once: before that its lag says nothing.
func (h *host) fenceRead(g *generation) bool {
	g.fence.mu.Lock()
	defer g.fence.mu.Unlock()
	return len(g.fence.rate) > 0
}

// startBuild starts a generation being rebuilt, with its fence.
func (h *host) startBuild(ctx context.Context, hs *hosted, spec control.Spec) (*generation, error) {
	g, err := h.startFenced(ctx, spec, hs.spec.Generation, hs.log.With("generation", spec.Generation))
	if err != nil {
		return nil, err
	}
	h.route(spec.App, "only", g)
	return g, nil
}

// startFenced starts generation spec.Generation of an app behind a fence
// against generation old's consumer group.
func (h *host) startFenced(ctx context.Context, spec control.Spec, old int, log *slog.Logger) (*generation, error) {
	cfg, err := h.appConfig(spec)
	if err != nil {
		return nil, err
	}
	topo, err := cfg.Topology()
	if err != nil {
		return nil, err
	}
	adm, closeAdm, err := h.newAdmin()
	if err != nil {
		return nil, err
	}
	oldGroup := (&config.Config{App: spec.App, Generation: old}).Internal()
	f := newFence(adm, log, oldGroup, cfg.Internal(), externalInputs(topo))
	g, err := h.startGen(ctx, spec, f, log)
	if err != nil {
		closeAdm()
		return nil, err
	}
	fctx, stop := context.WithCancel(context.Background())
	g.stopFence = func() {
		stop()
		closeAdm()
	}
	go f.run(fctx)
	return g, nil
}

// flip makes the rebuilt generation the one serving: this instance stops
// the serving generation (its API answers on, from its final state), and
// once the serving generation has stopped everywhere and the new one has
// caught up to its final offsets, the app's API and outputs are the new
// generation's; the old one's group, internal topics and state are deleted.
func (h *host) flip(ctx context.Context, hs *hosted, spec control.Spec) {
	if hs.build == nil || hs.build.spec.Generation != spec.Serving {
		// This instance saw the flip before it had built the generation
		// (it started late): build it now; the fence does the rest.
		h.rebuild(ctx, hs, spec)
		if hs.build == nil {
			return
		}
	}
	if !hs.flipping {
		hs.flipping = true
		stopGen(hs.generation, hs.log, "flip to generation "+fmt.Sprint(spec.Serving))
		hs.build.fence.flip()
		h.report(ctx, hs, control.StateRebuilding)
	}
	// The app's API switches once this instance's share of the new
	// generation has caught up and can answer: until then the stopped
	// generation answers from its final state.
	_, _, _, caughtUp := hs.build.fence.progress()
	if !hs.build.fence.finalKnown() || !caughtUp || !hs.build.app.eng.Settled() {
		h.report(ctx, hs, control.StateRebuilding)
		return
	}
	old, oldSpec := hs.generation, hs.spec
	// Another instance may still serve the old generation and forward
	// queries to it here: the new one answers them, as new or newer.
	h.flipRoutes(spec.App, oldSpec.Generation, hs.build)
	// A swap prepared for the old generation compiled its modules in that
	// generation's engines, which close with it: the new generation
	// prepares it again if it is still wanted.
	hs.dropPrepared(ctx)
	h.closeGen(spec.App, old)
	hs.build.spec = spec
	hs.generation, hs.build, hs.flipping = hs.build, nil, false
	// The fence's final offsets are behind every task now: it has nothing
	// left to read.
	if hs.stopFence != nil {
		hs.stopFence()
		hs.fence, hs.stopFence = nil, nil
	}
	dir := filepath.Join(h.cfg.StateDir, "apps", spec.App, fmt.Sprintf("g%d", oldSpec.Generation))
	if err := os.RemoveAll(dir); err != nil {
		hs.log.Warn("removing the previous generation's state failed", "dir", dir, "err", err)
	}
	hs.log.Info("flipped to the rebuilt generation", "generation", spec.Serving, "version", spec.Version)
	h.report(ctx, hs, control.StateRunning)
	if h.designated(hs) {
		go h.dropGeneration(oldSpec, hs.log)
	}
}

// dropGeneration deletes a retired generation's group and internal topics.
func (h *host) dropGeneration(spec control.Spec, log *slog.Logger) {
	cfg, err := h.appConfig(spec)
	if err == nil {
		var topo *config.Topology
		if topo, err = cfg.Topology(); err == nil {
			var adm *kadm.Client
			var closeAdm func()
			if adm, closeAdm, err = h.newAdmin(); err == nil {
				defer closeAdm()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				var deleted []string
				deleted, err = deleteGeneration(ctx, adm, cfg, topo)
				log.Info("deleted the previous generation", "generation", spec.Generation, "deleted", deleted)
			}
		}
	}
	if err != nil {
		log.Warn("deleting the previous generation failed; its group and topics remain", "generation", spec.Generation, "err", err)
	}
}

// designated reports whether this instance is the one that writes an app's
// flip and deletes its retired generations: the first by name among the
// instances that report on the app and are members of its groups, so that
// one which left for good hands the task on.
func (h *host) designated(hs *hosted) bool {
	live := map[string]bool{}
	for _, g := range []*generation{hs.generation, hs.build} {
		if g == nil {
			continue
		}
		if a := g.app.eng.Assignment(); a.Valid() {
			for _, m := range a.Members() {
				live[m.Addr] = true
			}
		}
	}
	if len(live) > 0 && !live[h.advertise] {
		return false
	}
	first := h.instance
	for id, st := range h.ctl.Statuses(hs.spec.App) {
		if len(live) > 0 && !live[st.Address] {
			continue
		}
		if id < first {
			first = id
		}
	}
	return first == h.instance
}
