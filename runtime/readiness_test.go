package runtime_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/partition"
)

// A record that fails under error_policy: fail stops its task only:
// /readyz answers 503 with the reason and the stopped task's error,
// streamrt_tasks_stopped_total and streamrt_guest_errors_total count it,
// and the other partitions go on.
func TestFailPolicyStopsTheTaskAndReadyzSaysWhy(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	a := startApp(t, appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("faulty"), stores: []string{"seen"}})
	a.waitReady()

	bad := "bad-key"
	produce(t, brokers, in, bad, "fail")
	var ready struct {
		Reasons []string
		Stopped []string `json:"stopped_tasks"`
	}
	apptest.WaitCheck(t, 60*time.Second, "/readyz to report the stopped task", func() error {
		code, body := a.get("/readyz")
		if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusServiceUnavailable || len(ready.Stopped) == 0 {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})
	if !slices.Contains(ready.Reasons, "1 task(s) stopped by the fail error policy") || len(ready.Stopped) != 1 ||
		!strings.Contains(ready.Stopped[0], "bad record") || !strings.Contains(ready.Stopped[0], fmt.Sprintf("%s/%d offset 0", in, partition.For([]byte(bad), 4))) {
		t.Errorf("/readyz says %+v, want the reason and the stopped task with its partition, offset and error", ready)
	}
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"streamrt_tasks_stopped_total", []string{"stage", "main"}},
		{"streamrt_guest_errors_total", []string{"stage", "main", "kind", "record", "policy", "fail"}},
	} {
		if n := apptest.Metric(a.http, c.name, c.labels...); n != 1 {
			t.Errorf("%s%v = %v, want 1", c.name, c.labels, n)
		}
	}

	// The other partitions go on.
	var good []string
	for i := 0; len(good) < 3; i++ {
		if k := fmt.Sprintf("good-%d", i); partition.For([]byte(k), 4) != partition.For([]byte(bad), 4) {
			good = append(good, k, "ok")
		}
	}
	produce(t, brokers, in, good...)
	for i := 0; i < len(good); i += 2 {
		a.waitGet(t, "/v1/stores/seen/keys/"+good[i], "ok")
	}
	if code, _ := a.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz answered %d with a task stopped, want 200", code)
	}
}

// /readyz tells "assigned" from "caught up": it reports the records the
// tasks have not processed yet as lag, and ?caught_up=true or ?max_lag=N
// make it answer 503 while the tasks are further behind than that. A task
// stopped by the fail policy falls behind by every record after it.
func TestReadyzReportsLagAndCaughtUp(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	a := startApp(t, appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("faulty"), stores: []string{"seen"}})
	a.waitReady()

	type readiness struct {
		Lag     int64
		Reasons []string
	}
	readyz := func(query string) (int, readiness) {
		code, body := a.get("/readyz" + query)
		var r readiness
		if code != http.StatusBadRequest {
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatalf("/readyz%s: %d %q: %v", query, code, body, err)
			}
		}
		return code, r
	}

	var kvs []string
	for i := range 40 {
		kvs = append(kvs, fmt.Sprintf("k%d", i), "ok")
	}
	produce(t, brokers, in, kvs...)
	a.waitGet(t, "/v1/stores/seen/keys/k39", "ok")
	apptest.WaitCheck(t, 10*time.Second, "/readyz?caught_up=true to answer 200 with lag 0", func() error {
		if code, r := readyz("?caught_up=true"); code != http.StatusOK || r.Lag != 0 {
			return fmt.Errorf("%d %+v", code, r)
		}
		return nil
	})
	if code, _ := a.get("/readyz?max_lag=lots"); code != http.StatusBadRequest {
		t.Errorf("/readyz?max_lag=lots answered %d, want 400", code)
	}

	// Stop one task, then give its partition 5 more records: it is 6
	// behind (the failed record and those after it).
	bad := "bad-key"
	p := partition.For([]byte(bad), 4)
	kvs = []string{bad, "fail"}
	for i := 0; len(kvs) < 12; i++ {
		if k := fmt.Sprintf("after-%d", i); partition.For([]byte(k), 4) == p {
			kvs = append(kvs, k, "ok")
		}
	}
	produce(t, brokers, in, kvs...)
	apptest.WaitCheck(t, 30*time.Second, "/readyz to report 6 records of lag", func() error {
		if _, r := readyz(""); r.Lag != 6 {
			return fmt.Errorf("lag %d", r.Lag)
		}
		return nil
	})
	code, r := readyz("?max_lag=5")
	if code != http.StatusServiceUnavailable || !slices.Contains(r.Reasons, "6 records behind the inputs, more than the 5 asked for") {
		t.Errorf("/readyz?max_lag=5 answered %d %+v, want 503 naming the lag", code, r)
	}
}
