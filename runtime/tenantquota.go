package runtime

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/quota"
)

// stateCheckEvery is how often a server measures its tenants' local state
// against their quotas: often enough that a tenant overshoots by at most a
// few seconds of writes, rarely enough that walking the state directories
// costs nothing to speak of.
const stateCheckEvery = 2 * time.Second

// meter returns tenant's meter of guest time on this server, made at its
// tenant's share on first use.
func (h *host) meter(tenant string) *quota.Meter {
	h.mmu.Lock()
	defer h.mmu.Unlock()
	m := h.meters[tenant]
	if m == nil {
		t, _ := h.ctl.Tenant(tenant)
		m = quota.New(t.Quotas.CPU)
		h.meters[tenant] = m
	}
	return m
}

// enforceQuotas keeps every tenant's meter at its quota's CPU share, and
// holds the tasks of a tenant whose apps' state on this server has reached
// its state quota, releasing them once the quota is raised or the state
// has shrunk. The apps of a tenant held or released report it.
func (h *host) enforceQuotas(ctx context.Context) {
	tenants := h.ctl.Tenants()
	measure := time.Since(h.stateCheck) >= stateCheckEvery
	if measure {
		h.stateCheck = time.Now()
	}
	h.mmu.Lock()
	meters := make(map[string]*quota.Meter, len(h.meters))
	for name, m := range h.meters {
		meters[name] = m
	}
	h.mmu.Unlock()
	for name, m := range meters {
		t := tenants[name]
		m.SetShare(t.Quotas.CPU)
		was := m.Held()
		switch {
		case t.Quotas.StateBytes == 0:
			m.Release()
		case measure:
			used := h.stateBytes(name)
			if used >= t.Quotas.StateBytes {
				m.Hold(fmt.Sprintf("state quota exceeded: tenant %q holds %s of local state on this server, its quota is %s", name, config.FormatByteSize(used), config.FormatByteSize(t.Quotas.StateBytes)))
			} else {
				m.Release()
			}
		}
		now := m.Held()
		if now == was {
			continue
		}
		if now != "" {
			h.log.Warn("tenant's tasks stopped: "+now, "tenant", name)
		} else {
			h.log.Info("tenant's tasks resumed: back within its state quota", "tenant", name, "quota", config.FormatByteSize(t.Quotas.StateBytes))
		}
		for _, hs := range h.apps {
			if hs.spec.Tenant == name && hs.state != "" {
				h.report(ctx, hs, hs.state)
			}
		}
	}
}

// stateBytes is the size of the local state of tenant's apps on this
// server: every generation's stores, under state_dir/apps/TENANT.NAME,
// but not the reserve kept beside each.
func (h *host) stateBytes(tenant string) int64 {
	root := filepath.Join(h.cfg.StateDir, "apps")
	entries, err := os.ReadDir(root)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), tenant+".") {
			continue
		}
		filepath.WalkDir(filepath.Join(root, e.Name()), func(_ string, d fs.DirEntry, err error) error {
			// The state's reserve (state.Options.Reserve) is the
			// server's, not the tenant's.
			if err == nil && !d.IsDir() && !strings.HasSuffix(d.Name(), ".reserve") {
				if info, err := d.Info(); err == nil {
					n += info.Size()
				}
			}
			return nil
		})
	}
	return n
}
