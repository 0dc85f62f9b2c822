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

// statusDoc is the part of GET /v1/status the tests read.
type statusDoc struct {
	App        string `json:"app"`
	Instance   string `json:"instance"`
	InstanceID string `json:"instance_id"`
	Local      bool   `json:"local"`
	Readiness  struct {
		Ready bool  `json:"ready"`
		Lag   int64 `json:"lag"`
	} `json:"readiness"`
	Topology struct {
		Partitions       int32    `json:"partitions"`
		Inputs           []string `json:"inputs"`
		Outputs          []string `json:"outputs"`
		DeadLetterTopics []string `json:"dead_letter_topics"`
		Stages           []struct {
			Name               string            `json:"name"`
			ModuleVersion      string            `json:"module_version"`
			ModuleVersionShort string            `json:"module_version_short"`
			Inputs             []string          `json:"inputs"`
			Outputs            map[string]string `json:"outputs"`
			Stores             []struct {
				Name      string `json:"name"`
				Changelog string `json:"changelog"`
			} `json:"stores"`
			ErrorPolicy string `json:"error_policy"`
		} `json:"stages"`
	} `json:"topology"`
	Instances []struct {
		Address  string `json:"address"`
		Self     bool   `json:"self"`
		Answered bool   `json:"answered"`
		Error    string `json:"error"`
		Active   []struct {
			Stage     string `json:"stage"`
			Partition int32  `json:"partition"`
		} `json:"active"`
		Standby []struct {
			Stage     string `json:"stage"`
			Partition int32  `json:"partition"`
		} `json:"standby"`
		Tasks []statusTask `json:"tasks"`
	} `json:"instances"`
	Tasks       []statusTask `json:"tasks"`
	DeadLetters []struct {
		Stage           string            `json:"stage"`
		Topic           string            `json:"topic"`
		SourceTopic     string            `json:"source_topic"`
		SourcePartition int32             `json:"source_partition"`
		SourceOffset    int64             `json:"source_offset"`
		Key             string            `json:"key"`
		Headers         map[string]string `json:"headers"`
		Time            time.Time         `json:"time"`
	} `json:"dead_letters"`
	Routes []struct {
		Method  string `json:"method"`
		Path    string `json:"path"`
		Builtin string `json:"builtin"`
	} `json:"routes"`
	Stores []struct {
		Name string `json:"name"`
	} `json:"stores"`
}

type statusTask struct {
	Stage            string   `json:"stage"`
	Partition        int32    `json:"partition"`
	Topics           []string `json:"topics"`
	State            string   `json:"state"`
	Lag              int64    `json:"lag"`
	RecordsPerSecond float64  `json:"records_per_second"`
	Processed        int64    `json:"processed"`
	ModuleVersion    string   `json:"module_version"`
}

func (a *app) status(t testing.TB, query string) statusDoc {
	t.Helper()
	code, body := a.get("/v1/status" + query)
	var st statusDoc
	if code != http.StatusOK {
		t.Fatalf("/v1/status%s: %d %s", query, code, body)
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/v1/status%s: %v: %s", query, err, body)
	}
	return st
}

func processed(tasks []statusTask) (n int64) {
	for _, t := range tasks {
		n += t.Processed
	}
	return n
}

// /v1/status shows the app as an instance sees it: its topology with the
// module version, the instance and its tasks with their state, lag and
// rate, the dead letter a failed record became with its error headers,
// the routes and the stores.
func TestStatusShowsTasksLagDeadLettersAndRoutes(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	a := startApp(t, appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("faulty"), stores: []string{"seen"},
		policy: "dead_letter", extra: "query:\n  routes:\n    - {path: /members, builtin: instances}\n"})
	a.waitReady()

	var kvs []string
	for i := range 20 {
		kvs = append(kvs, fmt.Sprintf("k%d", i), "ok")
	}
	bad := "bad-key"
	kvs = append(kvs, bad, "fail")
	produce(t, brokers, in, kvs...)

	var st statusDoc
	apptest.WaitCheck(t, 30*time.Second, "/v1/status to show the 21 records and the dead letter", func() error {
		st = a.status(t, "")
		if len(st.DeadLetters) != 1 || processed(st.Tasks) != 21 {
			return fmt.Errorf("%d dead letters, %d records processed", len(st.DeadLetters), processed(st.Tasks))
		}
		return nil
	})
	if st.App != appName || st.Instance != a.http || st.Local || st.InstanceID == "" {
		t.Errorf("app %q instance %q id %q local %v, want %q at %s, with its static id, fanned out", st.App, st.Instance, st.InstanceID, st.Local, appName, a.http)
	}
	topo := st.Topology
	if topo.Partitions != 4 || !slices.Equal(topo.Inputs, []string{in}) || !slices.Equal(topo.Outputs, []string{out}) || len(topo.DeadLetterTopics) != 1 {
		t.Errorf("topology %+v, want 4 partitions, input %s, output %s and one dead-letter topic", topo, in, out)
	}
	if len(topo.Stages) != 1 {
		t.Fatalf("stages %+v, want main", topo.Stages)
	}
	stage := topo.Stages[0]
	if stage.Name != "main" || len(stage.ModuleVersion) != 64 || stage.ModuleVersionShort != stage.ModuleVersion[:12] ||
		stage.Outputs["out"] != out || len(stage.Stores) != 1 || stage.Stores[0].Name != "seen" || !strings.HasSuffix(stage.Stores[0].Changelog, "-seen-changelog") ||
		stage.ErrorPolicy != "dead_letter" {
		t.Errorf("stage %+v, want main with its module version, output, store and policy", stage)
	}

	if len(st.Instances) != 1 || !st.Instances[0].Self || !st.Instances[0].Answered || st.Instances[0].Address != a.http || len(st.Instances[0].Active) != 4 {
		t.Errorf("instances %+v, want this one, answering, with 4 active tasks", st.Instances)
	}
	if len(st.Tasks) != 4 {
		t.Fatalf("tasks %+v, want 4", st.Tasks)
	}
	var lag int64
	for i, task := range st.Tasks {
		if task.Stage != "main" || task.Partition != int32(i) || task.State != "running" || task.ModuleVersion != stage.ModuleVersion || !slices.Equal(task.Topics, []string{in}) {
			t.Errorf("task %+v, want main/%d running %s on %s", task, i, stage.ModuleVersion, in)
		}
		lag += task.Lag
	}
	if lag != st.Readiness.Lag {
		t.Errorf("the tasks' lags add up to %d, readiness says %d", lag, st.Readiness.Lag)
	}
	apptest.WaitCheck(t, 10*time.Second, "a task to show a rate", func() error {
		for _, task := range a.status(t, "?local=true").Tasks {
			if task.RecordsPerSecond > 0 {
				return nil
			}
		}
		return fmt.Errorf("no task has a rate")
	})

	dl := st.DeadLetters[0]
	if dl.Stage != "main" || dl.Key != bad || dl.SourceTopic != in || dl.SourcePartition != partition.For([]byte(bad), 4) || dl.SourceOffset < 0 ||
		dl.Topic != topo.DeadLetterTopics[0] || dl.Time.IsZero() {
		t.Errorf("dead letter %+v, want %s's from %s", dl, bad, in)
	}
	if h := dl.Headers; h["streamrt.error"] != "bad record" || h["streamrt.error.kind"] != "record" || h["streamrt.module.version"] != stage.ModuleVersion {
		t.Errorf("dead letter headers %v, want the error, its kind and the module version", h)
	}
	if len(st.Routes) != 1 || st.Routes[0].Path != "/members" || st.Routes[0].Builtin != "instances" {
		t.Errorf("routes %+v, want /members", st.Routes)
	}
	if len(st.Stores) != 1 || st.Stores[0].Name != "seen" {
		t.Errorf("stores %+v, want seen", st.Stores)
	}
	if local := a.status(t, "?local=true"); !local.Local {
		t.Errorf("?local=true answered local=false")
	}
}

// /v1/status asks every other instance for its own tasks: an app on two
// instances shows both, each with the tasks it runs and the standby copies
// it keeps.
func TestStatusFansOutToEveryInstance(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("faulty"), stores: []string{"seen"}, extra: "standby_replicas: 1\n"}
	a := startApp(t, spec)
	a.waitReady()
	b := startApp(t, spec)
	b.waitReady()

	apptest.WaitCheck(t, 60*time.Second, "/v1/status to show both instances with their tasks and standbys", func() error {
		st := a.status(t, "")
		if len(st.Instances) != 2 {
			return fmt.Errorf("instances %+v", st.Instances)
		}
		active, standby := 0, 0
		for _, in := range st.Instances {
			var running, copies int
			for _, task := range in.Tasks {
				if task.State == "standby" {
					copies++
				} else {
					running++
				}
			}
			if !in.Answered || in.Error != "" || running == 0 || running != len(in.Active) || copies != len(in.Standby) {
				return fmt.Errorf("instance %+v", in)
			}
			active += running
			standby += copies
		}
		if active != 4 || standby != 4 {
			return fmt.Errorf("%d tasks and %d standbys in all, want 4 of each", active, standby)
		}
		return nil
	})
}
