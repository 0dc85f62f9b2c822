package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/streamrt/streamrt/runtime/internal/probe"
	"github.com/streamrt/streamrt/runtime/internal/state"
)

// diskCheckEvery is how often an app measures its state directory's disk:
// often enough that a burst of writes cannot cross the watermark's margin
// between two measures, rarely enough to cost nothing to speak of (one
// statfs and a walk of the state directory).
const diskCheckEvery = time.Second

// watchDisk measures the app's state directory every diskCheckEvery until
// ctx ends, publishing what it finds to the engine (Readiness and the
// disk hold) and the metrics. Below the watermark (state_min_free) the
// engine pauses everything that writes state, so that Pebble never meets
// the end of the disk: Pebble treats a failed WAL or MANIFEST write as
// fatal. Processing resumes once the free space is back above the
// watermark by a margin, so that it does not flap at the line.
func (a *app) watchDisk(ctx context.Context) {
	t := time.NewTicker(diskCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.checkDisk()
		case <-a.diskAlarm:
			a.checkDisk()
		}
	}
}

// checkDisk measures the disk once and publishes it.
func (a *app) checkDisk() {
	space, err := state.FreeSpace(a.cfg.StateDir)
	if err != nil {
		a.diskErr(err)
		return
	}
	d := probe.Disk{
		Dir:          a.cfg.StateDir,
		FreeBytes:    space.Free,
		TotalBytes:   space.Total,
		MinFreeBytes: a.cfg.StateMinFree.Of(space.Total),
		StateBytes:   state.DirBytes(a.cfg.StateDir),
		StoreBytes:   map[string]uint64{},
	}
	for _, qs := range a.topo.QueryStores() {
		if n, err := a.db.StoreBytes(qs.Name); err == nil {
			d.StoreBytes[qs.Name] = n
			a.metrics.StoreBytes.WithLabelValues(qs.Name).Set(float64(n))
		}
	}
	resume := d.MinFreeBytes + resumeMargin(d.MinFreeBytes)
	low := a.diskPaused
	switch {
	case d.FreeBytes < d.MinFreeBytes:
		low = true
	case d.FreeBytes >= resume:
		low = false
	}
	// After a full disk took the reserve, processing waits until the
	// reserve is back, so that the next full disk finds one too.
	if a.diskFull.Load() && !low && d.FreeBytes >= resume+uint64(reserveSize(d.TotalBytes)) {
		if ok, err := a.db.EnsureReserve(); ok {
			a.diskFull.Store(false)
		} else {
			a.log.Warn("cannot write the state disk's reserve again", "err", err)
		}
	}
	full := a.diskFull.Load()
	paused := low || full
	switch {
	case full:
		d.Paused = fmt.Sprintf("processing paused: a write met a full disk on the filesystem of the state directory %s and took the reserve kept for it; %s free; it resumes once %s are free and the reserve is written again",
			d.Dir, formatBytes(d.FreeBytes), formatBytes(resume+uint64(reserveSize(d.TotalBytes))))
	case low:
		d.Paused = fmt.Sprintf("processing paused: %s free on the filesystem of the state directory %s, below state_min_free (%s, here %s); it resumes once %s are free",
			formatBytes(d.FreeBytes), d.Dir, a.cfg.StateMinFree, formatBytes(d.MinFreeBytes), formatBytes(resume))
	}
	switch {
	case paused && !a.diskPaused:
		a.log.Warn("state disk short of space: "+d.Paused, "free_bytes", d.FreeBytes, "min_free_bytes", d.MinFreeBytes, "state_bytes", d.StateBytes)
	case !paused && a.diskPaused:
		a.log.Info("state disk has space again: processing resumes", "free_bytes", d.FreeBytes, "min_free_bytes", d.MinFreeBytes)
	}
	a.diskPaused = paused
	a.eng.SetDisk(d)
	a.metrics.StateFreeBytes.Set(float64(d.FreeBytes))
	a.metrics.StateMinFreeBytes.Set(float64(d.MinFreeBytes))
	a.metrics.StateBytes.Set(float64(d.StateBytes))
	a.metrics.StatePaused.Set(b2f(paused))
}

// diskErr reports, once, a disk that cannot be measured: the watermark is
// then not enforced.
func (a *app) diskErr(err error) {
	if !a.diskErrLogged {
		a.diskErrLogged = true
		a.log.Warn("cannot measure the state directory's free space: state_min_free is not enforced", "dir", a.cfg.StateDir, "err", err)
	}
}

// onDiskFull is told by the state database that a write met a full disk
// and took the reserve: processing pauses at once, until the reserve is
// back. It runs while the database's writes wait, so it only signals.
func (a *app) onDiskFull() {
	a.diskFull.Store(true)
	select {
	case a.diskAlarm <- struct{}{}:
	default:
	}
}

// reserveSize is the state database's reserve on a filesystem of total
// bytes: 1% of it, from 1 MiB to 64 MiB. It is released when a write meets
// a full disk, which the watermark should prevent, so it is sized for the
// write that slipped past, not for more processing.
func reserveSize(total uint64) int64 {
	return int64(min(max(total/100, 1<<20), 64<<20))
}

// resumeMargin is how far above the watermark the free space must be for
// processing to resume: a tenth of the watermark, at most 64 MiB.
func resumeMargin(minFree uint64) uint64 { return min(minFree/10, 64<<20) }

func formatBytes(n uint64) string {
	const unit = 1 << 10
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	f, suffix := float64(n), "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if f/unit < unit {
			break
		}
		f, suffix = f/unit, s
	}
	return fmt.Sprintf("%.1f%s", f/unit, suffix)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
