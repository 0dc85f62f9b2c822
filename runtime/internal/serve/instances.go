package serve

import (
	"net"
	"net/http"
	"slices"
	"strconv"
)

// instance is one entry of GET /v1/instances.
type instance struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Self    bool   `json:"self,omitempty"`
	// Stores maps each store to the partitions this instance owns; a
	// global store, held whole everywhere, lists partition 0.
	Stores   map[string][]int32 `json:"stores"`
	Standbys map[string][]int32 `json:"standbys,omitempty"`
}

// instances lists every member of the group with the store partitions it
// owns and keeps standby copies of.
func (s *Server) instances() []instance {
	a := s.eng.Assignment()
	self, _ := a.Self()
	var out []instance
	for _, m := range a.Members() {
		in := instance{ID: m.ID, Address: m.Addr, Self: m.ID == self.ID, Stores: map[string][]int32{}}
		for _, st := range s.storeList {
			if st.Global {
				in.Stores[st.Name] = []int32{0}
				continue
			}
			if ps := m.Partitions[st.Topic]; len(ps) > 0 {
				in.Stores[st.Name] = ps
			}
			if ps := m.Standbys[st.Topic]; len(ps) > 0 {
				if in.Standbys == nil {
					in.Standbys = map[string][]int32{}
				}
				in.Standbys[st.Name] = ps
			}
		}
		out = append(out, in)
	}
	return out
}

// getInstances answers GET /v1/instances.
func (s *Server) getInstances(w http.ResponseWriter, _ *http.Request) int {
	ins := s.instances()
	if ins == nil {
		ins = []instance{}
	}
	return writeJSON(w, http.StatusOK, ins)
}

// hostInfo is the builtin instances answer's shape: host, port and the
// names of the stores an instance holds, as Kafka Streams' interactive
// query examples list them.
type hostInfo struct {
	Host       string   `json:"host"`
	Port       int      `json:"port"`
	StoreNames []string `json:"storeNames"`
}

// builtinInstances answers a route with builtin: instances, for every
// instance or, with a {store} path parameter, those holding that store.
func (s *Server) builtinInstances(w http.ResponseWriter, r *http.Request) int {
	filter := r.PathValue("store")
	if filter != "" {
		if _, code, ok := s.store(w, filter); !ok {
			return code
		}
	}
	out := []hostInfo{}
	for _, in := range s.instances() {
		host, port, _ := net.SplitHostPort(in.Address)
		pn, _ := strconv.Atoi(port)
		hi := hostInfo{Host: host, Port: pn, StoreNames: []string{}}
		for name := range in.Stores {
			hi.StoreNames = append(hi.StoreNames, name)
		}
		slices.Sort(hi.StoreNames)
		if filter != "" && !slices.Contains(hi.StoreNames, filter) {
			continue
		}
		out = append(out, hi)
	}
	return writeJSON(w, http.StatusOK, out)
}
