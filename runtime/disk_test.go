//go:build linux

package runtime_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// smallDisk mounts a tmpfs of size bytes on a new directory and returns
// it; the test is skipped when it cannot mount (not root, no tmpfs).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// An instance whose state directory's filesystem runs short of space
// pauses processing before Pebble can meet the end of the disk: /readyz
// says why, with the free space and the watermark, the metrics say so,
// queries are answered, nothing panics. Once space is freed it resumes on
// its own and every record is counted once.
func TestStateDiskWatermarkPausesProcessing(t *testing.T) {
	disk := smallDisk(t, "16m")
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"},
		stateDir: filepath.Join(disk, "state"), extra: "state_min_free: 6MiB\n"}
	a := startApp(t, spec)
	a.waitReady()

	// Disk use appears in /readyz and /metrics.
	_, r := readiness(t, a)
	if r.Disk == nil || r.Disk.Dir != spec.stateDir || r.Disk.MinFreeBytes != 6<<20 || r.Disk.TotalBytes != 16<<20 ||
		r.Disk.FreeBytes == 0 || r.Disk.StateBytes == 0 || r.Disk.Paused != "" {
		t.Fatalf("/readyz disk: %+v, want the state dir, its free space, the 6MiB watermark and the state's size", r.Disk)
	}
	if n := apptest.Metric(a.http, "streamrt_state_min_free_bytes"); n != 6<<20 {
		t.Errorf("streamrt_state_min_free_bytes = %v, want %d", n, 6<<20)
	}

	// A ballast leaves a few MiB above the watermark.
	ballast := filepath.Join(disk, "ballast")
	if err := os.WriteFile(ballast, make([]byte, r.Disk.FreeBytes-(6<<20)-(5<<19)), 0o644); err != nil {
		t.Fatal(err)
	}

	// Records with keys of 3,000 bytes: their state and WAL outgrow what
	// is left above the watermark.
	pad := strings.Repeat("x", 3000)
	key := func(i int) string { return fmt.Sprintf("k%04d-%s", i, pad) }
	var kvs []string
	for i := range 1500 {
		kvs = append(kvs, key(i), "v")
	}
	produce(t, brokers, in, kvs...)
	var reason string
	apptest.WaitCheck(t, 60*time.Second, "processing to pause for the disk", func() error {
		code, r := readiness(t, a)
		if code != http.StatusServiceUnavailable || r.Disk == nil || r.Disk.Paused == "" {
			return fmt.Errorf("/readyz %d %+v", code, r)
		}
		reason = r.Disk.Paused
		if !strings.Contains(strings.Join(r.Reasons, "\n"), reason) {
			return fmt.Errorf("reasons %q lack %q", r.Reasons, reason)
		}
		return nil
	})
	if !strings.Contains(reason, "below state_min_free (6MiB, here 6.0MiB)") || !strings.Contains(reason, "free on the filesystem of the state directory "+spec.stateDir) {
		t.Errorf("pause reason %q does not give the free space and the watermark", reason)
	}
	if n := apptest.Metric(a.http, "streamrt_state_disk_paused"); n != 1 {
		t.Errorf("streamrt_state_disk_paused = %v while paused, want 1", n)
	}
	if free := apptest.Metric(a.http, "streamrt_state_free_bytes"); free <= 0 || free >= 6<<20 {
		t.Errorf("streamrt_state_free_bytes = %v while paused, want below the watermark", free)
	}
	if !strings.Contains(a.log.String(), "level=WARN msg=\"state disk short of space") {
		t.Error("no WARN about the disk in the log")
	}

	// Paused, it processes nothing more, and answers queries.
	settled := apptest.Metric(a.http, "streamrt_records_in_total", "stage", "main")
	t.Logf("paused after %v records: %s", settled, reason)
	var more []string
	for i := 1500; i < 1600; i++ {
		more = append(more, key(i), "v")
	}
	produce(t, brokers, in, more...)
	time.Sleep(3 * time.Second)
	if n := apptest.Metric(a.http, "streamrt_records_in_total", "stage", "main"); n != settled {
		t.Errorf("records in went from %v to %v while paused", settled, n)
	}
	if code, body := a.get("/v1/stores/counts/keys/" + key(0)); code != http.StatusOK && code != http.StatusNotFound {
		t.Errorf("query while paused: %d %s", code, body)
	}
	select {
	case err := <-a.done:
		a.cancel = nil
		t.Fatalf("the instance stopped while paused: %v\n%s", err, a.log.String())
	default:
	}

	// Space comes back: processing resumes and counts every record once.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "processing to resume", func() bool {
		code, r := readiness(t, a)
		return code == http.StatusOK && r.Disk != nil && r.Disk.Paused == ""
	})
	waitFor(t, 60*time.Second, "all 1,600 records counted", func() bool {
		return apptest.Metric(a.http, "streamrt_records_in_total", "stage", "main") == 1600
	})
	if n := apptest.Metric(a.http, "streamrt_state_disk_paused"); n != 0 {
		t.Errorf("streamrt_state_disk_paused = %v after resuming, want 0", n)
	}
	for _, i := range []int{0, 777, 1499, 1500, 1599} {
		a.waitGet(t, "/v1/stores/counts/keys/"+key(i), "1")
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
}

// fill writes a file in dir until its filesystem is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	for size := len(chunk) / 2; size > 0; size /= 2 {
		f.Write(chunk[:size])
	}
	return p
}

// Even with no watermark, a write that meets a full disk does not stop the
// process (Pebble panics on a failed WAL write): the reserve kept beside
// the state is released for it, processing pauses with the reason in
// /readyz, and resumes once there is space for the reserve again.
func TestStateDiskFullReleasesTheReserve(t *testing.T) {
	disk := smallDisk(t, "16m")
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"},
		stateDir: filepath.Join(disk, "state"), extra: "state_min_free: 0\n"}
	a := startApp(t, spec)
	a.waitReady()
	reserve := filepath.Join(spec.stateDir, "state.reserve")
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 1<<20 {
		t.Fatalf("reserve %s: %v, want 1MiB", reserve, err)
	}

	filler := fill(t, disk)
	pad := strings.Repeat("y", 3000)
	key := func(i int) string { return fmt.Sprintf("k%04d-%s", i, pad) }
	var kvs []string
	for i := range 200 {
		kvs = append(kvs, key(i), "v")
	}
	produce(t, brokers, in, kvs...)
	var reason string
	apptest.WaitCheck(t, 60*time.Second, "processing to pause on the full disk", func() error {
		select {
		case err := <-a.done:
			a.cancel = nil
			t.Fatalf("the instance stopped on a full disk: %v", err)
		default:
		}
		code, r := readiness(t, a)
		if code != http.StatusServiceUnavailable || r.Disk == nil || r.Disk.Paused == "" {
			return fmt.Errorf("/readyz %d %+v", code, r)
		}
		reason = r.Disk.Paused
		return nil
	})
	if !strings.Contains(reason, "met a full disk") {
		t.Errorf("pause reason %q, want the full disk", reason)
	}
	if _, err := os.Stat(reserve); !os.IsNotExist(err) {
		t.Errorf("the reserve is still there after the disk filled up: %v", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "processing to resume", func() bool {
		code, r := readiness(t, a)
		return code == http.StatusOK && r.Disk != nil && r.Disk.Paused == ""
	})
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 1<<20 {
		t.Errorf("reserve after resuming: %v, want it written again", err)
	}
	waitFor(t, 60*time.Second, "all 200 records counted", func() bool {
		return apptest.Metric(a.http, "streamrt_records_in_total", "stage", "main") == 200
	})
	for _, i := range []int{0, 99, 199} {
		a.waitGet(t, "/v1/stores/counts/keys/"+key(i), "1")
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
}
