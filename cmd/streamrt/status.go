package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

func cmdStatus(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("status", "status [-a URL] [--app NAME] [--watch]", `Print a running app's state at a glance, as one of its instances sees it
(GET URL/v1/status, which asks the other instances for their part): its
stages with their module versions, the instances with their tasks, each
task's state, lag, records/s and restore progress, the last dead letters
with their error, and the query routes. --app reads an app a server hosts
(URL/apps/NAME/v1/status). --watch prints it again every --every until
interrupted. An instance that cannot be reached is an error (exit 1); with
--watch it is shown and asked again. Query tokens and HTTPS flags are those
of query.`)
	var api apiFlags
	api.define(f, "an instance's API")
	app := f.String("app", "", "the `NAME` of an app a server hosts (default: the instance's own app, in run mode)")
	watch := f.Bool("watch", false, "print the status again every --every, until interrupted")
	every := f.Duration("every", 2*time.Second, "how often --watch refreshes, `D`")
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return code
	}
	if f.NArg() > 0 {
		return f.usageError(stderr, "unexpected argument %q", f.Arg(0))
	}
	if *every <= 0 {
		return f.usageError(stderr, "--every must be positive")
	}
	c, err := api.client(f)
	if err != nil {
		return f.usageError(stderr, "%s", err)
	}
	path := "/v1/status"
	if *app != "" {
		path = "/apps/" + url.PathEscape(*app) + path
	}
	for {
		st, err := fetchStatus(ctx, c, path)
		if *watch {
			// Home the cursor and clear the screen, as watch(1) does.
			fmt.Fprint(stdout, "\x1b[H\x1b[2J")
			fmt.Fprintf(stdout, "every %s: streamrt status -a %s    %s\n\n", *every, c.base, time.Now().Format(time.TimeOnly))
		}
		if err != nil {
			fmt.Fprintf(stderr, "streamrt status: %v\n", err)
			if !*watch {
				return exitFail
			}
		} else {
			printStatus(stdout, st)
		}
		if !*watch {
			return exitOK
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(*every):
		}
	}
}

// appStatus is what status reads of /v1/status.
type appStatus struct {
	App        string `json:"app"`
	Instance   string `json:"instance"`
	InstanceID string `json:"instance_id"`
	Readiness  struct {
		Ready     bool     `json:"ready"`
		Reasons   []string `json:"reasons"`
		Lag       int64    `json:"lag"`
		Stopped   []string `json:"stopped_tasks"`
		Restoring []string `json:"restoring_tasks"`
	} `json:"readiness"`
	Topology struct {
		Partitions int32 `json:"partitions"`
		Stages     []struct {
			Name               string            `json:"name"`
			TableOnly          bool              `json:"table_only"`
			ModuleVersionShort string            `json:"module_version_short"`
			CanaryVersion      string            `json:"canary_version"`
			CanaryPartitions   int32             `json:"canary_partitions"`
			Inputs             []string          `json:"inputs"`
			Outputs            map[string]string `json:"outputs"`
			Stores             []struct {
				Name string `json:"name"`
			} `json:"stores"`
			Tables []string `json:"tables"`
		} `json:"stages"`
	} `json:"topology"`
	Instances []struct {
		ID       string            `json:"id"`
		Address  string            `json:"address"`
		Self     bool              `json:"self"`
		Active   []json.RawMessage `json:"active"`
		Standby  []json.RawMessage `json:"standby"`
		Answered bool              `json:"answered"`
		Error    string            `json:"error"`
		Tasks    []statusTask      `json:"tasks"`
	} `json:"instances"`
	Tasks       []statusTask `json:"tasks"`
	DeadLetters []struct {
		Time            time.Time         `json:"time"`
		Stage           string            `json:"stage"`
		SourceTopic     string            `json:"source_topic"`
		SourcePartition int32             `json:"source_partition"`
		SourceOffset    int64             `json:"source_offset"`
		Key             *string           `json:"key"`
		KeyBase64       *string           `json:"key_base64"`
		Headers         map[string]string `json:"headers"`
	} `json:"dead_letters"`
	Routes []struct {
		Method  string `json:"method"`
		Path    string `json:"path"`
		Stage   string `json:"stage"`
		Store   string `json:"store"`
		Builtin string `json:"builtin"`
	} `json:"routes"`
}

// statusTask is one task's row.
type statusTask struct {
	Stage             string  `json:"stage"`
	Partition         int32   `json:"partition"`
	State             string  `json:"state"`
	Reason            string  `json:"reason"`
	RestorePercent    float64 `json:"restore_percent"`
	RestoreETASeconds float64 `json:"restore_eta_seconds"`
	Lag               int64   `json:"lag"`
	RecordsPerSecond  float64 `json:"records_per_second"`
	Processed         int64   `json:"processed"`
	ModuleVersion     string  `json:"module_version"`
}

// fetchStatus asks the instance for path and decodes its answer.
func fetchStatus(ctx context.Context, c *apiClient, path string) (*appStatus, error) {
	code, body, err := c.get(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", c.base, err)
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s%s: %s (%d %s)", c.base, path, errorMessage(body), code, http.StatusText(code))
	}
	var st appStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("%s%s did not answer a status: %w", c.base, path, err)
	}
	return &st, nil
}

// printStatus prints st as a few tables.
func printStatus(w io.Writer, st *appStatus) {
	ready := "ready"
	if !st.Readiness.Ready {
		ready = "NOT READY: " + strings.Join(st.Readiness.Reasons, "; ")
	}
	id := ""
	if st.InstanceID != "" {
		id = " (" + st.InstanceID + ")"
	}
	fmt.Fprintf(w, "app %s, asked %s%s: %s, lag %d\n", st.App, st.Instance, id, ready, st.Readiness.Lag)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSTAGE\tMODULE\tINPUTS\tOUTPUTS\tSTORES")
	for _, s := range st.Topology.Stages {
		module := s.ModuleVersionShort
		if s.TableOnly {
			module = "(tables)"
		}
		if s.CanaryVersion != "" {
			module += fmt.Sprintf(" canary %.12s on %d partition(s)", s.CanaryVersion, s.CanaryPartitions)
		}
		var outs, stores []string
		for name, topic := range s.Outputs {
			outs = append(outs, name+"→"+topic)
		}
		slices.Sort(outs)
		for _, ss := range s.Stores {
			stores = append(stores, ss.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, module, list(append(s.Inputs, s.Tables...)), list(outs), list(stores))
	}

	fmt.Fprintln(tw, "\nINSTANCE\tACTIVE\tSTANDBY\tANSWER")
	var tasks []taskRow
	for _, in := range st.Instances {
		name := in.Address
		if in.Self {
			name += " (asked)"
		}
		answer := "ok"
		if !in.Answered {
			answer = "no answer: " + in.Error
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", name, len(in.Active), len(in.Standby), answer)
		rows := in.Tasks
		if in.Self {
			rows = st.Tasks
		}
		for _, t := range rows {
			tasks = append(tasks, taskRow{in.Address, t})
		}
	}
	slices.SortFunc(tasks, func(a, b taskRow) int {
		if c := strings.Compare(a.t.Stage, b.t.Stage); c != 0 {
			return c
		}
		return int(a.t.Partition - b.t.Partition)
	})
	fmt.Fprintln(tw, "\nTASK\tINSTANCE\tSTATE\tLAG\tRECORDS/S\tPROCESSED\tMODULE")
	for _, r := range tasks {
		t := r.t
		state := t.State
		switch {
		case t.State == "restoring" && t.RestoreETASeconds >= 0:
			state += fmt.Sprintf(" %.0f%% eta %s", t.RestorePercent, (time.Duration(t.RestoreETASeconds) * time.Second).String())
		case t.State == "restoring":
			state += fmt.Sprintf(" %.0f%%", t.RestorePercent)
		case t.Reason != "":
			state += ": " + t.Reason
		}
		fmt.Fprintf(tw, "%s/%d\t%s\t%s\t%d\t%.1f\t%d\t%.12s\n", t.Stage, t.Partition, r.instance, state, t.Lag, t.RecordsPerSecond, t.Processed, t.ModuleVersion)
	}
	tw.Flush()

	if len(st.DeadLetters) > 0 {
		fmt.Fprintf(w, "\nLAST DEAD LETTERS (this instance)\n")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tSTAGE\tSOURCE\tKEY\tERROR")
		for _, d := range st.DeadLetters {
			key := "(null)"
			switch {
			case d.Key != nil:
				key = strconv.Quote(*d.Key)
			case d.KeyBase64 != nil:
				key = "base64:" + *d.KeyBase64
			}
			fmt.Fprintf(tw, "%s\t%s\t%s/%d@%d\t%s\t%s: %s\n", d.Time.Format(time.TimeOnly), d.Stage, d.SourceTopic, d.SourcePartition, d.SourceOffset,
				key, d.Headers["streamrt.error.kind"], d.Headers["streamrt.error"])
		}
		tw.Flush()
	}
	if len(st.Routes) > 0 {
		fmt.Fprintf(w, "\nROUTES\n")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, r := range st.Routes {
			by := "stage " + r.Stage
			if r.Builtin != "" {
				by = "builtin " + r.Builtin
			}
			if r.Store != "" {
				by += ", store " + r.Store
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Method, r.Path, by)
		}
		tw.Flush()
	}
}

type taskRow struct {
	instance string
	t        statusTask
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}
