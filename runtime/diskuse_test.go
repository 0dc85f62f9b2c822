package runtime_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/probe"
)

// /readyz and /metrics show what the state takes of its disk: the free
// space, the watermark (by default the larger of 1 GiB and 5% of the
// filesystem), the state directory's size and each store's.
func TestDiskUseIsVisible(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	a := startApp(t, appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}})
	a.waitReady()
	produce(t, brokers, in, clicks([]string{"a", "b", "c"}, 2)...)
	a.waitGet(t, "/v1/stores/counts/keys/c", "2")

	apptest.WaitCheck(t, 10*time.Second, "/readyz's disk to show the state", func() error {
		code, r := readiness(t, a)
		d := r.Disk
		switch {
		case code != http.StatusOK || d == nil:
			return fmt.Errorf("/readyz %d %+v", code, r)
		case d.Dir != a.stateDir || d.TotalBytes == 0 || d.FreeBytes == 0 || d.FreeBytes > d.TotalBytes:
			return fmt.Errorf("disk %+v: want the state dir and its filesystem's size and free space", d)
		case d.MinFreeBytes != max(1<<30, d.TotalBytes/20):
			return fmt.Errorf("watermark %d on %d bytes, want the larger of 1GiB and 5%%", d.MinFreeBytes, d.TotalBytes)
		case d.StateBytes <= 0:
			return fmt.Errorf("state_bytes %d", d.StateBytes)
		}
		if _, ok := d.StoreBytes["counts"]; !ok {
			return fmt.Errorf("store_bytes %v lacks counts", d.StoreBytes)
		}
		return nil
	})
	for _, m := range []struct {
		name   string
		labels []string
	}{
		{"streamrt_state_free_bytes", nil},
		{"streamrt_state_min_free_bytes", nil},
		{"streamrt_state_bytes", nil},
	} {
		if n := apptest.Metric(a.http, m.name, m.labels...); n <= 0 {
			t.Errorf("%s = %v, want more than 0", m.name, n)
		}
	}
	if _, body := a.get("/metrics"); !strings.Contains(body, `streamrt_store_bytes{store="counts"} `) {
		t.Error("/metrics has no streamrt_store_bytes for counts")
	}
	if n := apptest.Metric(a.http, "streamrt_state_disk_paused"); n != 0 {
		t.Errorf("streamrt_state_disk_paused = %v, want 0", n)
	}
}

// readiness reads /readyz.
func readiness(t *testing.T, a *app) (int, probe.Readiness) {
	t.Helper()
	code, body := a.get("/readyz")
	var r probe.Readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/readyz: %d %q: %v", code, body, err)
	}
	return code, r
}
