package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/probe"
)

// StatusSource is what /v1/status reads of the engine beyond Engine: the
// tasks, dead letters and module versions it publishes. Like Engine's, its
// answers never wait for a batch or a commit.
type StatusSource interface {
	Tasks() []probe.Task
	DeadLetters() []probe.DeadLetter
	Modules() map[string]probe.Module
	InstanceID() string
}

// statusTimeout bounds the wait for another instance's status: one that is
// slow is shown with its error rather than holding the answer back.
const statusTimeout = 2 * time.Second

// status is the answer of GET /v1/status: the app as this instance sees
// it, with every other instance's own tasks and dead letters fanned in.
// Its field names are an API: add to them, never rename.
type status struct {
	App        string          `json:"app"`
	Instance   string          `json:"instance"` // this instance's advertised address
	InstanceID string          `json:"instance_id,omitempty"`
	Time       time.Time       `json:"time"`
	Local      bool            `json:"local"` // ?local=true: other instances were not asked
	Readiness  probe.Readiness `json:"readiness"`
	Topology   statusTopology  `json:"topology"`
	// Instances are the members of the group in its assignment, this one
	// among them.
	Instances []statusInstance `json:"instances"`
	// Tasks and DeadLetters are this instance's.
	Tasks       []probe.Task       `json:"tasks"`
	DeadLetters []probe.DeadLetter `json:"dead_letters"`
	Routes      []statusRoute      `json:"routes"`
	Stores      []statusStore      `json:"stores"`
}

type statusTopology struct {
	Partitions int32 `json:"partitions"`
	// Inputs are the topics the app consumes from outside it; Outputs
	// those it writes for outside it; InternalTopics its repartition
	// topics, which only its own stages read.
	Inputs           []string      `json:"inputs"`
	Outputs          []string      `json:"outputs"`
	InternalTopics   []string      `json:"internal_topics"`
	DeadLetterTopics []string      `json:"dead_letter_topics"`
	Stages           []statusStage `json:"stages"`
	Tables           []statusTable `json:"tables"`
}

type statusStage struct {
	Name string `json:"name"`
	// TableOnly: the stage only materialises a table, with no module.
	TableOnly bool `json:"table_only,omitempty"`
	// Module is the configured module; ModuleVersion the sha256 of the
	// version running now, ModuleVersionShort its first 12 digits.
	Module             string             `json:"module,omitempty"`
	ModuleVersion      string             `json:"module_version,omitempty"`
	ModuleVersionShort string             `json:"module_version_short,omitempty"`
	CanaryVersion      string             `json:"canary_version,omitempty"`
	CanaryPartitions   int32              `json:"canary_partitions,omitempty"`
	Inputs             []string           `json:"inputs"`
	Outputs            map[string]string  `json:"outputs"` // output name → topic
	Stores             []statusStageStore `json:"stores"`
	Tables             []string           `json:"tables"`
	ErrorPolicy        string             `json:"error_policy,omitempty"`
	DeadLetterTopic    string             `json:"dead_letter_topic,omitempty"`
}

type statusStageStore struct {
	Name      string `json:"name"`
	Changelog string `json:"changelog"`
}

type statusTable struct {
	Name   string `json:"name"`
	Topic  string `json:"topic"`
	Global bool   `json:"global"`
	Stage  string `json:"stage,omitempty"` // the stage that materialises a co-partitioned table
}

// statusInstance is a member of the group: what the assignment gives it,
// and what it answered itself.
type statusInstance struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Self    bool   `json:"self,omitempty"`
	// Active and Standby are the tasks the assignment gives it.
	Active  []statusTaskRef `json:"active"`
	Standby []statusTaskRef `json:"standby"`
	// Answered: the instance gave its status (always, for this one); Error
	// says why not. Its Readiness, Tasks and DeadLetters are set only when
	// it answered.
	Answered    bool               `json:"answered"`
	Error       string             `json:"error,omitempty"`
	Readiness   *probe.Readiness   `json:"readiness,omitempty"`
	Tasks       []probe.Task       `json:"tasks,omitempty"`
	DeadLetters []probe.DeadLetter `json:"dead_letters,omitempty"`
}

type statusTaskRef struct {
	Stage     string `json:"stage"`
	Partition int32  `json:"partition"`
}

type statusRoute struct {
	Method  string `json:"method"`
	Path    string `json:"path"`
	Stage   string `json:"stage,omitempty"`
	Store   string `json:"store,omitempty"`
	Key     string `json:"key,omitempty"`
	Builtin string `json:"builtin,omitempty"`
}

type statusStore struct {
	Name       string `json:"name"`
	Partitions int32  `json:"partitions"`
	Topic      string `json:"topic"`
	Global     bool   `json:"global"`
}

// getStatus answers GET /v1/status. Without ?local=true it asks every
// other instance for its own, in parallel, each within statusTimeout.
func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) int {
	local := r.URL.Query().Get("local") == "true" || r.Header.Get(HeaderForwarded) != ""
	st := s.localStatus()
	st.Local = local
	if !local {
		var wg sync.WaitGroup
		for i := range st.Instances {
			in := &st.Instances[i]
			if in.Self {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				peer, err := s.peerStatus(r, in.Address)
				if err != nil {
					in.Error = err.Error()
					return
				}
				in.Answered = true
				in.Readiness, in.Tasks, in.DeadLetters = &peer.Readiness, peer.Tasks, peer.DeadLetters
			}()
		}
		wg.Wait()
	}
	w.Header().Set(HeaderServedBy, s.self())
	return writeJSON(w, http.StatusOK, st)
}

// localStatus is the status as this instance knows it, without asking the
// others.
func (s *Server) localStatus() status {
	st := status{Instance: s.self(), Time: time.Now().UTC(), Readiness: s.eng.Readiness(),
		Tasks: []probe.Task{}, DeadLetters: []probe.DeadLetter{}, Routes: []statusRoute{}, Stores: []statusStore{}}
	src, _ := s.eng.(StatusSource)
	var modules map[string]probe.Module
	if src != nil {
		st.InstanceID = src.InstanceID()
		st.Tasks = nonNil(src.Tasks())
		st.DeadLetters = nonNil(src.DeadLetters())
		modules = src.Modules()
	}
	if t := s.topo; t != nil {
		st.App = t.App
		st.Topology = statusTopologyOf(t, modules)
	}
	for _, rt := range s.query.Routes {
		st.Routes = append(st.Routes, statusRoute{Method: rt.Method, Path: rt.Path, Stage: rt.Stage, Store: rt.Store, Key: rt.Key, Builtin: rt.Builtin})
	}
	for _, so := range s.storeList {
		st.Stores = append(st.Stores, statusStore{Name: so.Name, Partitions: so.Partitions, Topic: so.Topic, Global: so.Global})
	}
	st.Instances = s.statusInstances()
	for i := range st.Instances {
		if in := &st.Instances[i]; in.Self {
			in.Answered = true
			in.Readiness, in.Tasks, in.DeadLetters = &st.Readiness, st.Tasks, st.DeadLetters
		}
	}
	return st
}

// statusInstances lists the members of the assignment with their tasks;
// before the first assignment, only this instance.
func (s *Server) statusInstances() []statusInstance {
	a := s.eng.Assignment()
	self, hasSelf := a.Self()
	var out []statusInstance
	for _, m := range a.Members() {
		out = append(out, statusInstance{ID: m.ID, Address: m.Addr, Self: hasSelf && m.ID == self.ID,
			Active: s.taskRefs(m.Partitions), Standby: s.taskRefs(m.Standbys)})
	}
	if !hasSelf {
		out = append(out, statusInstance{Address: s.self(), Self: true, Active: []statusTaskRef{}, Standby: []statusTaskRef{}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// taskRefs turns assigned topic partitions into the tasks they make: one
// per stage and partition, however many of the stage's topics it has.
func (s *Server) taskRefs(tps map[string][]int32) []statusTaskRef {
	seen := map[statusTaskRef]bool{}
	out := []statusTaskRef{}
	for topic, ps := range tps {
		stage := topic
		if s.topo != nil {
			if c := s.topo.Consumer(topic); c != nil {
				stage = c.Name
			}
		}
		for _, p := range ps {
			ref := statusTaskRef{Stage: stage, Partition: p}
			if !seen[ref] {
				seen[ref] = true
				out = append(out, ref)
			}
		}
	}
	slices.SortFunc(out, func(a, b statusTaskRef) int {
		if a.Stage != b.Stage {
			if a.Stage < b.Stage {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	return out
}

func statusTopologyOf(t *config.Topology, modules map[string]probe.Module) statusTopology {
	out := statusTopology{Partitions: t.Partitions, Inputs: []string{}, Outputs: []string{}, InternalTopics: []string{},
		DeadLetterTopics: []string{}, Stages: []statusStage{}, Tables: []statusTable{}}
	tableTopics := map[string]bool{}
	for _, tt := range t.Tables {
		tableTopics[tt.Topic] = true
		out.Tables = append(out.Tables, statusTable{Name: tt.Name, Topic: tt.Topic, Global: tt.Global, Stage: tt.Stage})
	}
	for _, u := range t.Topics() {
		switch {
		case t.IsInternal(u.Name):
			out.InternalTopics = append(out.InternalTopics, u.Name)
		case u.DeadLetter:
			out.DeadLetterTopics = append(out.DeadLetterTopics, u.Name)
		case u.Input && !tableTopics[u.Name]:
			out.Inputs = append(out.Inputs, u.Name)
		case u.Output:
			out.Outputs = append(out.Outputs, u.Name)
		}
	}
	for _, st := range t.Stages {
		ss := statusStage{Name: st.Name, TableOnly: st.TableOnly(), Inputs: slices.Clone(st.Inputs), Outputs: map[string]string{},
			Stores: []statusStageStore{}, Tables: []string{}}
		if ss.Inputs == nil {
			ss.Inputs = []string{}
		}
		if !st.TableOnly() {
			ss.Module, ss.ErrorPolicy, ss.DeadLetterTopic = st.Config.Module, string(st.Config.ErrorPolicy), st.Config.DeadLetterTopic
		}
		if m, ok := modules[st.Name]; ok {
			ss.ModuleVersion, ss.ModuleVersionShort = m.Version, shortVersion(m.Version)
			ss.CanaryVersion, ss.CanaryPartitions = m.CanaryVersion, m.CanaryPartitions
		}
		for _, o := range st.Outputs {
			ss.Outputs[o.Name] = o.Topic
		}
		for _, so := range st.Stores {
			ss.Stores = append(ss.Stores, statusStageStore{Name: so.Name, Changelog: so.Changelog})
		}
		for _, tt := range st.Tables {
			ss.Tables = append(ss.Tables, tt.Name)
		}
		out.Stages = append(out.Stages, ss)
	}
	return out
}

// peerStatus asks the instance at addr for its own status, as forwarded
// queries ask: same scheme, prefix, client and Authorization.
func (s *Server) peerStatus(r *http.Request, addr string) (status, error) {
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	u := url.URL{Scheme: s.scheme, Host: addr, Path: s.prefix + "/v1/status", RawQuery: "local=true"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return status{}, err
	}
	if v := r.Header.Get("Authorization"); v != "" {
		req.Header.Set("Authorization", v)
	}
	req.Header.Set(HeaderForwarded, s.self())
	resp, err := s.client.Do(req)
	if err != nil {
		return status{}, fmt.Errorf("instance %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return status{}, fmt.Errorf("instance %s: %s: %s", addr, resp.Status, e.Error)
	}
	var st status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return status{}, fmt.Errorf("instance %s: bad answer: %w", addr, err)
	}
	return st, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func shortVersion(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}
