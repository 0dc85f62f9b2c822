package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
)

// TestRunEmbeddedBrokerTables runs an app with tables on the embedded
// broker, which starts empty: the table that only the outside world feeds
// gets a compacted topic with the app's partition count, so the app starts
// and serves the table; the table fed by the app's own stage is left to the
// runtime, which creates its topic as the stage's other outputs.
// joinsGuest is the runtime's test guest that joins clicks with tables.
var joinsGuest, _ = filepath.Abs(filepath.Join("..", "..", "runtime", "internal", "wasm", "testdata", "guests", "joins"))

func TestRunEmbeddedBrokerTables(t *testing.T) {
	dir := t.TempDir()
	httpAddr, brokerAddr := apptest.FreeAddr(t), apptest.FreeAddr(t)
	file := filepath.Join(dir, "app.yaml")
	yaml := fmt.Sprintf(`app: tables
brokers: [unused:1]
partitions: 3
cache_dir: %s
tables:
  - {name: users, topic: users, global: true}
  - {name: lefts, topic: out}
stages:
  - name: join
    module: %s
    inputs: [clicks]
    tables: [users]
    outputs: {left: out, inner: out-inner}
`, apptest.CacheDir(), joinsGuest)
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}

	stop, stderr := background(t, httpAddr, "run", "-c", file, "--embedded-broker="+brokerAddr, "--http", httpAddr, "--state-dir", filepath.Join(dir, "state"))
	ctx := context.Background()

	brokers := []string{brokerAddr}
	adm := kadm.NewClient(testkafka.Client(t, brokers))
	actx, acancel := context.WithTimeout(ctx, 30*time.Second)
	defer acancel()
	topics, err := adm.ListTopics(actx, "users", "out")
	if err != nil {
		t.Fatal(err)
	}
	configs, err := adm.DescribeTopicConfigs(actx, "users", "out")
	if err != nil {
		t.Fatal(err)
	}
	policy := map[string]string{}
	for _, rc := range configs {
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil {
				policy[rc.Name] = *c.Value
			}
		}
	}
	for _, tt := range []struct {
		topic, policy string
		partitions    int
	}{
		{"users", "compact", 3},
		{"out", "delete", 3},
	} {
		d, ok := topics[tt.topic]
		if !ok || d.Err != nil || len(d.Partitions) != tt.partitions || policy[tt.topic] != tt.policy {
			t.Errorf("topic %s: %d partitions (%v), cleanup.policy %q; want %d, %q", tt.topic, len(d.Partitions), d.Err, policy[tt.topic], tt.partitions, tt.policy)
		}
	}

	// The created topic feeds the table like any other.
	testkafka.ProduceRecords(t, brokers, &kgo.Record{Topic: "users", Key: []byte("u1"), Value: []byte("ann")})
	apptest.WaitFor(t, time.Minute, "user u1 in the table", func() bool {
		got := apptest.Get(httpAddr, "/v1/stores/users/keys/u1")
		return got.Code == 200 && got.Body == "ann"
	})

	if code := stop(); code != 0 {
		t.Errorf("exit code %d, want 0:\n%s", code, stderr.String())
	}
	log := stderr.String()
	if want := `msg="created topic" component=embedded-broker topic=users partitions=3 compacted=true`; !strings.Contains(log, want) {
		t.Errorf("the log does not say %q:\n%s", want, log)
	}
	if strings.Contains(log, "component=embedded-broker topic=out") {
		t.Errorf("the embedded broker created the topic of a table that a stage feeds:\n%s", log)
	}
}

// The quick start run twice prints 2 both times: without a state_dir, the
// state of a run on the embedded broker goes with the broker's data.
func TestQuickStartTwice(t *testing.T) {
	example, _ := filepath.Abs(filepath.Join("..", "..", "examples", "clickcount", "streamrt.yaml"))
	t.Setenv("STREAMRT_CACHE_DIR", apptest.CacheDir())
	for run := 1; run <= 2; run++ {
		httpAddr, brokerAddr := apptest.FreeAddr(t), apptest.FreeAddr(t)
		stop, stderr := background(t, httpAddr, "run", "-c", example, "--embedded-broker="+brokerAddr, "--http", httpAddr)
		if got := apptest.Get(httpAddr, "/v1/stores/click-counts/keys/home"); got.Code != 404 {
			t.Fatalf("run %d counts clicks before any was sent: %d %s", run, got.Code, got.Body)
		}
		if code, _, errs := cli(t, context.Background(), "home\tx\nhome\tx\n", "produce", "-b", brokerAddr, "-t", "clicks"); code != 0 {
			t.Fatalf("produce: %d %s", code, errs)
		}
		apptest.WaitCheck(t, 30*time.Second, fmt.Sprintf("run %d to count 2 clicks", run), func() error {
			if got := apptest.Get(httpAddr, "/v1/stores/click-counts/keys/home"); got.Code != 200 || got.Body != "2" {
				return fmt.Errorf("%d %s", got.Code, got.Body)
			}
			return nil
		})
		if code := stop(); code != 0 {
			t.Fatalf("run %d exited %d:\n%s", run, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "state is kept for this run only") {
			t.Errorf("run %d did not say where its state goes:\n%s", run, stderr.String())
		}
	}
}

// background runs the command line args (a streamrt run serving httpAddr)
// until the test stops it, and waits until the app answers /readyz. stop
// ends the run and returns its exit code; stderr is the command's.
func background(t *testing.T, httpAddr string, args ...string) (stop func() int, stderr *apptest.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr = &apptest.Buffer{}
	exited := make(chan int, 1)
	go func() {
		exited <- runCommand(ctx, args, strings.NewReader(""), &apptest.Buffer{}, stderr)
	}()
	var once sync.Once
	code := 0
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-exited:
			case <-time.After(apptest.StopTimeout):
				code = -1
				t.Errorf("%v did not stop within %v of its context ending", args, apptest.StopTimeout)
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	apptest.WaitFor(t, apptest.ReadyTimeout, "the app to be ready", func() bool {
		select {
		case code := <-exited:
			exited <- code
			t.Fatalf("%v exited %d before the app was ready:\n%s", args, code, stderr.String())
		default:
		}
		return apptest.Get(httpAddr, "/readyz").Code == 200
	})
	return stop, stderr
}
