//go:build unix

package runtime_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/control"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Sizes of the tenant benchmarks (BENCHMARKS.md section 15).
var (
	tenantCount       = flag.Int("streamrt.tenants", 100, "tenants BenchmarkServerTenants declares, each with one idle app")
	tenantPartitions  = flag.Int("streamrt.tenant-partitions", 4, "partitions of each idle app of BenchmarkServerTenants")
	tenantIdle        = flag.Duration("streamrt.tenants-idle", 10*time.Second, "how long BenchmarkServerTenants lets the server idle before each measure of its CPU and memory")
	tenantHeapProfile = flag.String("streamrt.tenants-heap-profile", "", "path prefix of the heap profiles BenchmarkServerTenants writes while the idle apps run")
	noisyRate         = flag.Int("streamrt.noisy-rate", 500, "records per second the quiet tenant's app receives in BenchmarkNoisyNeighbour")
	noisyDuration     = flag.Duration("streamrt.noisy-duration", 20*time.Second, "how long BenchmarkNoisyNeighbour measures each phase")
	noisyBatchSize    = flag.Int("streamrt.noisy-batch-size", 1, "batch_size of the noisy tenant's stage in BenchmarkNoisyNeighbour")
	noisyPartitions   = flag.Int("streamrt.noisy-partitions", 4, "partitions of the noisy tenant's app in BenchmarkNoisyNeighbour")
)

// BenchmarkServerTenants measures what idle tenants cost a server: one
// in-process server, -streamrt.tenants tenants (100 by default), each with
// a deploy token and one idle app of its own, TENANT.idle, reading its own
// topic TENANT.in (-streamrt.tenant-partitions partitions, 4 by default)
// into TENANT.out through the Rust identity test guest (44 KB; compiled in
// the server's cache beforehand, as after the first deploy of a module).
//
// The tenants, their tokens and input topics exist and the module is
// uploaded before the server is measured with no app. Then each tenant
// deploys its app with its own token, one after the other, and the server
// is polled every 100 ms. Reported:
//
//   - serving-s, serving-p50-s: from the first deploy's request until the
//     last (the median) app serves here: the server's /readyz reports its
//     version running, and then the app's own /apps/NAME/readyz answers
//     200 (its group has assigned its partitions, nothing restores). The
//     target is 30 s for 100 apps;
//   - running-s: until the server's /readyz reports every app running;
//   - deploys-written-s: until the last deploy was answered;
//   - rss-mib/app: this process's resident memory (VmRSS) with the apps
//     running less without them, over the apps, each measured after
//     -streamrt.tenants-idle of idling and a debug.FreeOSMemory (a GC
//     that returns free pages to the OS). It is the whole process: the
//     server, the benchmark's own HTTP clients and, on kfake, the broker's
//     partitions and groups of the apps. Memory that Go does not manage
//     (Pebble's memtables and block cache are C allocations, wazero's
//     compiled code is mapped) shows here and not in the heap. The target
//     is 10 MiB per idle app;
//   - heap-mib/app, stack-mib/app, goroutines/app: the same difference of
//     the Go heap in use (HeapInuse), goroutine stacks (StackInuse) and
//     goroutines;
//   - idle-cpu-ms/s/app: CPU time of the process per second of wall time
//     over -streamrt.tenants-idle, with the apps less without, per app
//     (on kfake it includes the broker's work for the apps' fetches and
//     heartbeats);
//   - base-rss-mib, rss-mib: the two resident sizes;
//   - fed-rss-mib/app, fed-heap-mib/app and the others with "fed-": the
//     same once one record has gone through every partition of every app,
//     after which each task holds an instance of the guest (tasks
//     instantiate it at their first batch, and keep it), and again
//     -streamrt.tenants-idle of idling. An app that ever processed a
//     record is this one; the target applies to it as much.
//
// -streamrt.tenants-heap-profile=PREFIX writes heap profiles of both
// states, after the same GC, to PREFIX-idle.pb.gz and PREFIX-fed.pb.gz:
// the breakdown of heap-mib/app.
func BenchmarkServerTenants(b *testing.B) {
	if testing.Short() {
		b.Skip("tenants benchmark: one server runs a hundred idle apps; skipped with -short")
	}
	brokers := testkafka.Brokers(b)
	guest := guesttest.BuildRust(b, guesttest.RustDir("testdata/identity"))
	var all tenantsRun
	for range b.N {
		r := serverTenants(b, brokers, guest, *tenantCount)
		all.serving = append(all.serving, r.serving...)
		all.running = max(all.running, r.running)
		all.written = max(all.written, r.written)
		all.base = all.base.plus(r.base.scale(1 / float64(b.N)))
		all.busy = all.busy.plus(r.busy.scale(1 / float64(b.N)))
		all.fed = all.fed.plus(r.fed.scale(1 / float64(b.N)))
	}
	n := float64(*tenantCount)
	slices.Sort(all.serving)
	b.ReportMetric(all.serving[len(all.serving)-1].Seconds(), "serving-s")
	b.ReportMetric(all.serving[len(all.serving)/2].Seconds(), "serving-p50-s")
	b.ReportMetric(all.running.Seconds(), "running-s")
	b.ReportMetric(all.written.Seconds(), "deploys-written-s")
	for _, m := range []struct {
		prefix string
		f      footprint
	}{{"", all.busy}, {"fed-", all.fed}} {
		d := m.f.plus(all.base.scale(-1)).scale(1 / n)
		if all.base.rss > 0 {
			b.ReportMetric(d.rss, m.prefix+"rss-mib/app")
			b.ReportMetric(m.f.rss, m.prefix+"rss-mib")
		}
		b.ReportMetric(d.heap, m.prefix+"heap-mib/app")
		b.ReportMetric(d.stack, m.prefix+"stack-mib/app")
		b.ReportMetric(d.goroutines, m.prefix+"goroutines/app")
		b.ReportMetric(d.cpu, m.prefix+"idle-cpu-ms/s/app")
	}
	if all.base.rss > 0 {
		b.ReportMetric(all.base.rss, "base-rss-mib")
	}
	b.ReportMetric(n, "apps")
	b.ReportMetric(0, "ns/op")
}

// tenantsRun is what one run of BenchmarkServerTenants saw.
type tenantsRun struct {
	serving          []time.Duration // per app, from the first deploy's request
	running, written time.Duration
	base, busy, fed  footprint // without the apps, with them, and once they processed a record
}

// footprint is what the process holds at rest: resident memory, Go heap
// in use and goroutine stacks in MiB, goroutines, and CPU in ms per second.
type footprint struct {
	rss, heap, stack, goroutines, cpu float64
}

func (f footprint) plus(g footprint) footprint {
	return footprint{f.rss + g.rss, f.heap + g.heap, f.stack + g.stack, f.goroutines + g.goroutines, f.cpu + g.cpu}
}

func (f footprint) scale(k float64) footprint {
	return footprint{f.rss * k, f.heap * k, f.stack * k, f.goroutines * k, f.cpu * k}
}

// measureIdle lets the process idle for idle, measuring its CPU meanwhile,
// then collects garbage, returns free memory to the OS and measures the
// rest.
func measureIdle(b *testing.B, c *benchCluster, idle time.Duration) footprint {
	cpu, start := cpuTime(), time.Now()
	c.sleep(b, idle)
	f := footprint{cpu: float64((cpuTime() - cpu).Milliseconds()) / time.Since(start).Seconds()}
	debug.FreeOSMemory()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	f.rss = residentMB()
	f.heap = float64(ms.HeapInuse) / (1 << 20)
	f.stack = float64(ms.StackInuse) / (1 << 20)
	f.goroutines = float64(goruntime.NumGoroutine())
	return f
}

func serverTenants(b *testing.B, brokers []string, guest []byte, n int) tenantsRun {
	b.StopTimer()
	defer b.StartTimer()
	c := startBenchServers(b, brokers, 1, guest)
	prefix := testkafka.Name(b, "bt")
	tenants := make([]string, n)
	tokens := make([]string, n)
	inputs := make([]string, n)
	for i := range n {
		tenants[i] = fmt.Sprintf("%s-%03d", prefix, i)
		inputs[i] = tenants[i] + ".in"
		tokens[i] = c.tenant(b, tenants[i], nil)
	}
	createTopicsOf(b, brokers, int32(*tenantPartitions), inputs...)
	outputs := make([]string, n)
	for i, t := range tenants {
		outputs[i] = t + ".out"
	}
	deleteTopics(b, brokers, outputs...)
	module := c.upload(b, guest)

	var r tenantsRun
	r.base = measureIdle(b, c, *tenantIdle)
	apps := make([]string, n)
	versions := map[string]int64{}
	start := time.Now()
	for i, t := range tenants {
		apps[i] = t + ".idle"
		yaml := fmt.Sprintf("app: %s\npartitions: %d\nstages:\n  - name: main\n    module: %s\n    inputs: [%s]\n    outputs: {out: %s}\n",
			apps[i], *tenantPartitions, module, inputs[i], outputs[i])
		versions[apps[i]] = c.deployAs(b, tokens[i], apps[i], yaml)
	}
	r.written = time.Since(start)
	defer func() {
		for _, app := range apps {
			c.purge(b, app)
		}
	}()

	running := map[string]time.Duration{}
	serving := map[string]time.Duration{}
	c.waitFor(b, fmt.Sprintf("%d apps to serve", n), 100*time.Millisecond, func() bool {
		states := c.readyz(b, 0)
		for _, app := range apps {
			if _, ok := running[app]; !ok {
				if st := states[app]; st.Version != versions[app] || st.State != control.StateRunning {
					continue
				}
				running[app] = time.Since(start)
			}
			if _, ok := serving[app]; !ok && c.appReady(b, 0, app) {
				serving[app] = time.Since(start)
			}
		}
		return len(serving) == n
	})
	for _, app := range apps {
		r.serving = append(r.serving, serving[app])
		r.running = max(r.running, running[app])
	}

	r.busy = measureIdle(b, c, *tenantIdle)
	writeHeapProfile(b, "idle")

	// One record to every partition of every app: each task then holds an
	// instance of the guest, as it does once it has processed anything.
	parts := *tenantPartitions
	prod := testkafka.Client(b, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, in := range inputs {
		for p := range int32(parts) {
			prod.Produce(context.Background(), &kgo.Record{Topic: in, Partition: p, Value: []byte("x")}, nil)
		}
	}
	if err := prod.Flush(context.Background()); err != nil {
		b.Fatalf("produce to the apps: %v", err)
	}
	out := testkafka.Client(b, brokers, kgo.ConsumeTopics(outputs...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	c.waitFor(b, "every app's outputs", 10*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		got += out.PollFetches(ctx).NumRecords()
		return got >= n*parts
	})
	r.fed = measureIdle(b, c, *tenantIdle)
	writeHeapProfile(b, "fed")
	return r
}

// writeHeapProfile writes a heap profile to -streamrt.tenants-heap-profile
// with -state.pb.gz appended, if the flag is set.
func writeHeapProfile(b *testing.B, state string) {
	if *tenantHeapProfile == "" {
		return
	}
	f, err := os.Create(*tenantHeapProfile + "-" + state + ".pb.gz")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// tenant declares tenant with quotas (none when nil) through server 0 and
// returns a deploy token of it.
func (c *benchCluster) tenant(b *testing.B, tenant string, quotas map[string]any) string {
	b.Helper()
	if quotas == nil {
		quotas = map[string]any{}
	}
	body, _ := json.Marshal(map[string]any{"quotas": quotas})
	if _, err := c.admin(b, 0, http.MethodPut, "/v1/admin/tenants/"+tenant, body, nil); err != nil {
		b.Fatalf("declare tenant: %v", err)
	}
	var ans struct{ Token string }
	if _, err := c.admin(b, 0, http.MethodPost, "/v1/admin/tenants/"+tenant+"/tokens", []byte(`{"role":"deploy"}`), &ans); err != nil {
		b.Fatalf("token of tenant %s: %v", tenant, err)
	}
	return ans.Token
}

// upload puts module in the modules topic through server 0 and returns
// how a configuration names it.
func (c *benchCluster) upload(b *testing.B, module []byte) string {
	b.Helper()
	hash := control.Hash(module)
	if _, err := c.admin(b, 0, http.MethodPut, "/v1/admin/modules/"+hash, module, nil); err != nil {
		b.Fatalf("upload module: %v", err)
	}
	return config.ModulePrefix + hash
}

// deployAs writes yaml as app's next version through server 0 with a
// tenant's token, and returns the version.
func (c *benchCluster) deployAs(b *testing.B, token, app, yaml string) int64 {
	b.Helper()
	var ans struct{ Version int64 }
	body, _ := json.Marshal(map[string]any{"config": yaml})
	if _, err := c.call(b, 0, token, http.MethodPost, "/v1/admin/apps/"+app+"/versions", body, &ans); err != nil {
		b.Fatalf("deploy %s: %v", app, err)
	}
	return ans.Version
}

// benchReadyState is what server i's /readyz says of one app.
type benchReadyState struct {
	Version int64  `json:"version"`
	State   string `json:"state"`
}

// readyz is what server i's /readyz says of each app; none when it does
// not answer.
func (c *benchCluster) readyz(b *testing.B, i int) map[string]benchReadyState {
	var ready struct {
		Apps map[string]benchReadyState `json:"apps"`
	}
	c.admin(b, i, http.MethodGet, "/readyz", nil, &ready)
	return ready.Apps
}

// appReady reports whether app's own /readyz on server i answers 200.
func (c *benchCluster) appReady(b *testing.B, i int, app string) bool {
	code, _ := c.admin(b, i, http.MethodGet, "/apps/"+app+"/readyz", nil, nil)
	return code == http.StatusOK
}

// metric sums the samples of a metric of server i's /metrics whose name
// and labels start with series (`name{label="value"`, or a bare name).
func (c *benchCluster) metric(b *testing.B, i int, series string) float64 {
	req, err := http.NewRequest(http.MethodGet, "http://"+c.servers[i].addr+"/metrics", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+benchAdminToken)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		b.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for line := range strings.Lines(string(body)) {
		name, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && strings.HasPrefix(name, series) {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return sum
}

// The noisy neighbour: its share of the server, and how it burns it.
const (
	noisyShare    = 0.25                   // cores: the noisy tenant's cpu quota in phase "capped"
	noisyDeadline = 100 * time.Millisecond // the noisy stage's batch_deadline
	noisyLoops    = 40                     // "loop" records per second to the noisy app
	noisyWarmup   = 2 * time.Second        // before each phase
	quietParts    = 4                      // partitions of the quiet app
)

// BenchmarkNoisyNeighbour measures how much a tenant whose guest burns
// every core it gets slows another tenant's app on the same server, with
// and without the first tenant's cpu quota: what the meter (package quota)
// buys.
//
// One in-process server; two tenants. The quiet one runs a light app: the
// Rust identity test guest, 4 partitions, the default guarantee
// (at_least_once) and commit interval, fed -streamrt.noisy-rate records/s
// (500 by default) spread evenly over its partitions. Its latency is, per
// record, from the time the benchmark produced it (its timestamp, which
// the output keeps) to its output being fetched by a reader that waits at
// most 10 ms at the broker. Each phase measures -streamrt.noisy-duration
// (20 s by default) of input after 2 s of warm-up, in one run:
//
//   - alone: the quiet app alone on the server;
//   - capped: beside the noisy tenant's app, the faulty Go test guest
//     (-streamrt.noisy-partitions partitions, 4 by default; batch_deadline
//     100ms, error_policy skip, batch_size -streamrt.noisy-batch-size, 1
//     by default) fed 40 "loop" records/s: each one spins until the
//     deadline stops its batch, so unchecked the app would keep a core
//     per partition busy. The noisy tenant's cpu quota is 0.25 cores;
//   - uncapped: the same with the noisy tenant's cpu quota removed (the
//     app runs on, its backlog grown in the capped phase).
//
// With batch_size 1 every batch is one record and burns one deadline, and
// the meter is asked before each; a larger batch of loop records is run
// again record by record when it fails, within one metered batch.
//
// Reported: PHASE-p50-ms, PHASE-p99-ms, PHASE-max-ms of the quiet app's
// latency; capped-p99-x and uncapped-p99-x, the phase's p99 over alone's
// (the target for capped is 1.5 at most); noisy-batch-s/s-capped and
// -uncapped, the noisy tenant's batch time per second of the phase
// (streamrt_tenant_batch_seconds_total: what its meter charged, in wall
// time); cpu-cores-PHASE, the CPU time of the whole process per second of
// the phase (the server, the benchmark's producer and reader and, on
// kfake, the broker), against which the machine's two cores are the
// ceiling.
func BenchmarkNoisyNeighbour(b *testing.B) {
	if testing.Short() {
		b.Skip("noisy neighbour benchmark: a tenant burns the cores for a minute beside another's app; skipped with -short")
	}
	brokers := testkafka.Brokers(b)
	identity := guesttest.BuildRust(b, guesttest.RustDir("testdata/identity"))
	faulty := guesttest.Build(b, "faulty")
	var all noisyRun
	for range b.N {
		r := noisyNeighbour(b, brokers, identity, faulty)
		all.alone = append(all.alone, r.alone...)
		all.capped = append(all.capped, r.capped...)
		all.uncapped = append(all.uncapped, r.uncapped...)
		for i, l := range r.load {
			all.load[i].batch += l.batch / float64(b.N)
			all.load[i].cpu += l.cpu / float64(b.N)
		}
	}
	reportPercentiles(b, "alone", all.alone)
	reportPercentiles(b, "capped", all.capped)
	reportPercentiles(b, "uncapped", all.uncapped)
	p99 := func(ds []time.Duration) float64 { return float64(ds[int(0.99*float64(len(ds)-1))]) } // sorted by reportPercentiles
	if len(all.alone) > 0 && len(all.capped) > 0 && len(all.uncapped) > 0 {
		b.ReportMetric(p99(all.capped)/p99(all.alone), "capped-p99-x")
		b.ReportMetric(p99(all.uncapped)/p99(all.alone), "uncapped-p99-x")
	}
	for i, name := range []string{"alone", "capped", "uncapped"} {
		if i > 0 {
			b.ReportMetric(all.load[i].batch, "noisy-batch-s/s-"+name)
		}
		b.ReportMetric(all.load[i].cpu, "cpu-cores-"+name)
	}
	b.ReportMetric(0, "ns/op")
}

// noisyRun is what one run of BenchmarkNoisyNeighbour saw: the quiet
// app's latencies and the load, per phase.
type noisyRun struct {
	alone, capped, uncapped []time.Duration
	load                    [3]noisyLoad // alone, capped, uncapped
}

// noisyLoad is a phase's load, per second of the phase: the noisy
// tenant's batch time, and the CPU time of the process.
type noisyLoad struct{ batch, cpu float64 }

func noisyNeighbour(b *testing.B, brokers []string, identity, faulty []byte) noisyRun {
	b.StopTimer()
	defer b.StartTimer()
	c := startBenchServers(b, brokers, 1, identity, faulty)
	quiet, noisy := testkafka.Name(b, "quiet"), testkafka.Name(b, "noisy")
	quietToken := c.tenant(b, quiet, nil)
	noisyToken := c.tenant(b, noisy, map[string]any{"cpu": noisyShare})
	createTopicsOf(b, brokers, quietParts, quiet+".in")
	createTopicsOf(b, brokers, int32(*noisyPartitions), noisy+".in")
	deleteTopics(b, brokers, quiet+".out", noisy+".out")
	light, hog := quiet+".light", noisy+".hog"
	defer c.purge(b, light)
	defer c.purge(b, hog)

	v := c.deployAs(b, quietToken, light, fmt.Sprintf(`app: %s
partitions: %d
stages:
  - name: main
    module: %s
    inputs: [%s]
    outputs: {out: %s}
`, light, quietParts, c.upload(b, identity), quiet+".in", quiet+".out"))
	c.waitRunning(b, light, v, time.Now())
	c.waitGroup(b, brokers, light)
	watch := newOutputWatch(b, brokers, quiet+".out")
	defer watch.close()
	phase := func(d time.Duration) []time.Duration {
		from := watch.count()
		p := produceSteady(b, brokers, quiet+".in", quietParts, *noisyRate)
		c.sleep(b, d)
		sent, _ := p.stop(b)
		lat := watch.latenciesSince(from, from+int(sum(sent)), time.Minute)
		if len(lat) < int(sum(sent)) {
			b.Logf("%d of %d records came out within a minute", len(lat), sum(sent))
		}
		return lat
	}
	spent := fmt.Sprintf("streamrt_tenant_batch_seconds_total{tenant=%q}", noisy)
	measure := func(lat *[]time.Duration) noisyLoad {
		s0, cpu0, t0 := c.metric(b, 0, spent), cpuTime(), time.Now()
		*lat = phase(*noisyDuration)
		secs := time.Since(t0).Seconds()
		return noisyLoad{batch: (c.metric(b, 0, spent) - s0) / secs, cpu: (cpuTime() - cpu0).Seconds() / secs}
	}
	var r noisyRun
	phase(noisyWarmup)
	r.load[0] = measure(&r.alone)

	v = c.deployAs(b, noisyToken, hog, fmt.Sprintf(`app: %s
partitions: %d
stages:
  - name: main
    module: %s
    inputs: [%s]
    stores: [seen]
    outputs: {out: %s}
    error_policy: skip
    batch_deadline: %s
    batch_size: %d
`, hog, *noisyPartitions, c.upload(b, faulty), noisy+".in", noisy+".out", noisyDeadline, *noisyBatchSize))
	c.waitRunning(b, hog, v, time.Now())
	c.waitGroup(b, brokers, hog)
	stopLoops := feedLoops(b, brokers, noisy+".in", *noisyPartitions, noisyLoops)
	defer stopLoops()
	phase(noisyWarmup)
	r.load[1] = measure(&r.capped)
	// In debt, a capped tenant may run nothing for longer than a short
	// phase; but it must have run.
	if c.metric(b, 0, spent) == 0 {
		b.Errorf("the noisy app ran no batch while capped: nothing was measured")
	}

	body, _ := json.Marshal(map[string]any{"quotas": map[string]any{}})
	if _, err := c.admin(b, 0, http.MethodPut, "/v1/admin/tenants/"+noisy, body, nil); err != nil {
		b.Fatalf("remove the noisy tenant's cpu quota: %v", err)
	}
	phase(noisyWarmup)
	r.load[2] = measure(&r.uncapped)
	if r.load[2].batch == 0 {
		b.Errorf("the noisy app ran no batch uncapped: nothing was measured")
	}
	return r
}

// feedLoops produces rate "loop" records per second to topic, spread
// evenly over its partitions, until the returned function is called.
func feedLoops(b *testing.B, brokers []string, topic string, partitions, rate int) (stop func()) {
	cl := testkafka.Client(b, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	stopc, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopc:
				return
			case <-tick.C:
			}
			cl.Produce(context.Background(), &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: []byte("loop")}, nil)
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stopc); <-done }) }
}

// count is how many records w has seen.
func (w *outputWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.lat)
}

// latenciesSince waits until w has seen n records in all and returns the
// latencies of those after the first from (fewer when timeout passes
// first).
func (w *outputWatch) latenciesSince(from, n int, timeout time.Duration) []time.Duration {
	deadline := time.After(timeout)
	for w.count() < n {
		select {
		case <-w.added:
		case <-deadline:
			n = w.count()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lat[from:n])
}
