// kafka-music end to end, from streamrt.yaml: two instances of the app
// share the work; songs and plays with known charts go in, and every route
// answers the same on both instances. It runs against the embedded kfake
// broker, or the cluster STREAMRT_TEST_BROKERS names.
package kafkamusic_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/config"
)

// track is a song of the test's catalogue with the plays the test sends:
// plays that count (30 s or more) and short ones that do not.
type track struct {
	id                         int
	genre, artist, album, name string
	plays, short               int
}

// catalogue's charts, worked out by hand, are in TestKafkaMusic. Genres
// come in several cases; a chart's genre is lower-cased.
var catalogue = []track{
	{1, "Punk", "Wire Fence", "Short Fuse", "Three Chords", 5, 1},
	{2, "punk", "Wire Fence", "Short Fuse", "Safety Pin", 7, 0},
	{3, "PUNK", "The Staples", "Photocopy", "Zine", 3, 2},
	{4, "Punk", "The Staples", "Photocopy", "Xerox Love", 7, 1},
	{5, "punk", "Gob", "Spit", "Pogo", 1, 0},
	{6, "punk", "Gob", "Spit", "Mohawk", 2, 0},
	{7, "punk", "Gob", "Spit", "Too Short", 0, 3},
	{10, "Hip Hop", "MC Lattice", "Grid Lines", "Cipher", 9, 0},
	{11, "hip hop", "MC Lattice", "Grid Lines", "Sample Clear", 4, 1},
	{12, "Hip Hop", "DJ Vinyl", "Crates", "Dig Deep", 5, 0},
	{20, "Electronic", "Modulär", "Patch Bay", "Oscillate", 6, 2},
	{21, "electronic", "Modulär", "Patch Bay", "Almost", 0, 1},
	{30, "Jazz", "Quartet Nine", "Blue Room", "Brushes", 0, 0},
}

// Durations of the plays sent: the shortest that counts, and the longest
// that does not, come first.
var (
	longPlays  = []int{30_000, 61_000, 184_500, 245_000}
	shortPlays = []int{29_999, 5_000, 12_000}
)

func TestKafkaMusic(t *testing.T) {
	app := newApp(t)
	testkafka.CreateTopic(t, app.brokers, app.songFeed, 3) // a global table needs no co-partitioning
	testkafka.CreateTopic(t, app.brokers, app.playEvents, 4)
	var songs []*kgo.Record
	for _, tr := range catalogue {
		songs = append(songs, &kgo.Record{Topic: app.songFeed, Key: fmt.Append(nil, tr.id), Value: fmt.Appendf(nil,
			`{"id":%d,"album":%q,"artist":%q,"name":%q,"genre":%q}`, tr.id, tr.album, tr.artist, tr.name, tr.genre)})
	}
	testkafka.ProduceRecords(t, app.brokers, songs...)
	instances := []*apptest.App{app.start(t), app.start(t)}

	// Plays in a fixed shuffled order, so that songs overtake each other,
	// from five regions spread over the partitions, with a play of an
	// unknown song among them (dropped); then two bad ones (dead-lettered).
	var plays []*kgo.Record
	regions := []string{"uk", "us", "de", "fr", "jp"}
	play := func(value string) {
		plays = append(plays, &kgo.Record{Topic: app.playEvents, Key: []byte(regions[len(plays)%len(regions)]), Value: []byte(value)})
	}
	for _, tr := range catalogue {
		for i := range tr.plays {
			play(fmt.Sprintf(`{"song_id":%d,"duration":%d}`, tr.id, longPlays[i%len(longPlays)]))
		}
		for i := range tr.short {
			play(fmt.Sprintf(`{"song_id":%d,"duration":%d}`, tr.id, shortPlays[i%len(shortPlays)]))
		}
	}
	play(`{"song_id":99,"duration":200000}`)
	rand.New(rand.NewPCG(5, 5)).Shuffle(len(plays), func(i, j int) { plays[i], plays[j] = plays[j], plays[i] })
	testkafka.ProduceRecords(t, app.brokers, plays...)
	testkafka.ProduceRecords(t, app.brokers,
		&kgo.Record{Topic: app.playEvents, Key: []byte("bad-1"), Value: []byte("not json")},
		&kgo.Record{Topic: app.playEvents, Key: []byte("bad-2"), Value: []byte(`{"song_id":1}`)})

	app.waitCaughtUp(t)

	// Every route, asked of both instances: the same exact answers. Ranks
	// are worked out by hand from the catalogue: most plays first, ties to
	// the lower song id, five at most, genres lower-cased.
	topFive := chart(t, "10:9", "2:7", "4:7", "20:6", "1:5") // 12:5 loses its tie with 1:5
	punk := chart(t, "2:7", "4:7", "1:5", "3:3", "6:2")      // 5:1 is sixth; 7 had short plays only
	hipHop := chart(t, "10:9", "12:5", "11:4")
	electronic := chart(t, "20:6") // 21's only play was 29.999 s
	page, err := os.ReadFile("charts/index.html")
	if err != nil {
		t.Fatal(err)
	}
	routes := []struct {
		path, ctype string
		code        int
		body        string
	}{
		{"/kafka-music/charts/top-five", jsonType, 200, topFive},
		{"/kafka-music/charts/genre/punk", jsonType, 200, punk},
		{"/kafka-music/charts/genre/hip%20hop", jsonType, 200, hipHop},
		{"/kafka-music/charts/genre/electronic", jsonType, 200, electronic},
		{"/kafka-music/charts/genre/jazz", jsonType, 404, `{"error":"no chart for genre \"jazz\""}`},
		{"/kafka-music/charts/genre/polka", jsonType, 404, `{"error":"no chart for genre \"polka\""}`},
		{"/kafka-music/charts/genre/Punk", jsonType, 200, punk},
		{"/kafka-music/charts/genre/HIP%20Hop", jsonType, 200, hipHop},
		{"/kafka-music/song/4", jsonType, 200, `{"artist":"The Staples","album":"Photocopy","name":"Xerox Love"}`},
		{"/kafka-music/song/21", jsonType, 200, `{"artist":"Modulär","album":"Patch Bay","name":"Almost"}`},
		{"/kafka-music/song/99", jsonType, 404, `{"error":"no song \"99\""}`},
		{"/kafka-music/song/x", jsonType, 404, `{"error":"no song \"x\""}`},
		{"/kafka-music/genres", jsonType, 200, `["electronic","hip hop","jazz","punk"]`},
		{"/kafka-music/", "text/html; charset=utf-8", 200, string(page)},
		{"/kafka-music/nope", jsonType, 404, `{"error":"no page /kafka-music/nope"}`},
	}
	for _, in := range instances {
		for _, r := range routes {
			if got := in.Get(r.path); got.Code != r.code || got.Type != r.ctype || got.Body != r.body {
				t.Errorf("instance %s: GET %s:\n got %d %s %s\nwant %d %s %s", in.Addr, r.path, got.Code, got.Type, got.Body, r.code, r.ctype, r.body)
			}
		}
	}

	// The instances routes list both instances, each with the stores it
	// holds (which partitions land where is the balancer's business), the
	// same from both.
	for _, path := range []string{"/kafka-music/instances", "/kafka-music/instances/songs", "/kafka-music/instances/charts", "/kafka-music/instances/nope"} {
		a, b := instances[0].Get(path), instances[1].Get(path)
		if a != b {
			t.Errorf("GET %s: instances differ:\n%s: %+v\n%s: %+v", path, instances[0].Addr, a, instances[1].Addr, b)
		}
	}
	checkInstances(t, instances, "", 2)
	checkInstances(t, instances, "songs", 2) // a global table: on every instance
	checkInstances(t, instances, "charts", 1)
	if got := instances[0].Get("/kafka-music/instances/nope"); got.Code != 404 {
		t.Errorf("GET /kafka-music/instances/nope: %+v, want 404", got)
	}

	dead := map[string]string{}
	for _, r := range testkafka.ReadAll(t, app.brokers, app.name+"-plays-dlq", 2, time.Minute) {
		dead[string(r.Key)] = testkafka.Header(r, "streamrt.error")
	}
	for key, want := range map[string]string{"bad-1": "play event is not JSON", "bad-2": "play event needs song_id and duration"} {
		if !strings.Contains(dead[key], want) {
			t.Errorf("dead letter %s: error %q, want %q", key, dead[key], want)
		}
	}

	// A chart route watched from either instance (one owns the chart, the
	// other relays it) answers now, and again when plays change it.
	t.Run("watched charts", func(t *testing.T) {
		path := "/kafka-music/charts/genre/electronic"
		var streams []*apptest.Stream
		for _, in := range instances {
			s := apptest.Watch(t, in.Addr, path)
			if s.Code != 200 {
				t.Fatalf("instance %s: watch %s answered %d %s", in.Addr, path, s.Code, s.Body)
			}
			if got, want := answerBody(t, s.Next(t, 20*time.Second)), electronic; got != want {
				t.Fatalf("instance %s: first answer of %s:\n got %s\nwant %s", in.Addr, path, got, want)
			}
			streams = append(streams, s)
		}
		testkafka.ProduceRecords(t, app.brokers,
			&kgo.Record{Topic: app.playEvents, Key: []byte("uk"), Value: []byte(`{"song_id":21,"duration":90000}`)},
			&kgo.Record{Topic: app.playEvents, Key: []byte("us"), Value: []byte(`{"song_id":21,"duration":91000}`)})
		want := chart(t, "20:6", "21:2")
		for i, s := range streams {
			for got := ""; got != want; {
				got = answerBody(t, s.Next(t, 30*time.Second))
				if got != want && got != chart(t, "20:6", "21:1") {
					t.Fatalf("instance %s: %s pushed %s, want the chart with 21 at 1 then 2 plays", instances[i].Addr, path, got)
				}
			}
		}
		electronic = want
	})

	// The page, opened on either instance, shows every chart and follows
	// them live: a play sent while it is open reaches it by a push, as the
	// page sets no timer and never asks again.
	t.Run("web page in headless Chromium", func(t *testing.T) {
		bin := apptest.Chromium(t)
		page, err := os.ReadFile("charts/index.html")
		if err != nil {
			t.Fatal(err)
		}
		for _, timer := range []string{"setTimeout", "setInterval"} {
			if strings.Contains(string(page), timer) {
				t.Errorf("the page calls %s: it must follow the charts by watching, not polling", timer)
			}
		}
		want := map[string]string{"top-five": topFive, "punk": punk, "hip hop": hipHop, "electronic": electronic}
		for i, in := range instances {
			jazzPlays := i + 1 // song 30, the only jazz song, had none so far
			jazz := chart(t, fmt.Sprintf("30:%d", jazzPlays))
			dom := watchPage(t, bin, in, instances, func() {
				testkafka.ProduceRecords(t, app.brokers, &kgo.Record{Topic: app.playEvents, Key: []byte("jp"), Value: []byte(`{"song_id":30,"duration":120000}`)})
			}, func(dom string) bool { return renderedChart(dom, "jazz") == pageRows(t, jazz) })
			want["jazz"] = jazz
			for name, rows := range want {
				if got, want := renderedChart(dom, name), pageRows(t, rows); got != want {
					t.Errorf("instance %s: chart %q on the page:\n got %s\nwant %s", in.Addr, name, got, want)
				}
			}
			if !strings.Contains(dom, "Live: ") {
				t.Errorf("instance %s: the page does not say it is live", in.Addr)
			}
			for _, other := range instances {
				if !strings.Contains(dom, other.Addr) {
					t.Errorf("instance %s: the page does not list instance %s", in.Addr, other.Addr)
				}
			}
			if t.Failed() {
				t.Logf("the page as rendered by %s:\n%s", in.Addr, dom)
			}
		}
	})
}

// watchPage opens the charts page of in in headless Chromium, runs change
// once the page watches its five charts (the top five and four genres;
// all are the instances of the app), and returns the page's DOM once
// done(dom) holds, or fails the test after 30 s: what the page shows then
// came to it by pushes.
func watchPage(t *testing.T, bin string, in *apptest.App, all []*apptest.App, change func(), done func(dom string) bool) string {
	t.Helper()
	base := openWatches(t, all)
	page := apptest.OpenPage(t, bin, "http://"+in.Addr+"/kafka-music/")
	apptest.WaitCheck(t, 30*time.Second, "the page to watch its five charts", func() error {
		if n := openWatches(t, all) - base; n < 5 {
			return fmt.Errorf("%d watches open", n)
		}
		return nil
	})
	change()
	var dom string
	apptest.WaitCheck(t, 30*time.Second, "the page to show the change", func() error {
		if dom = page.DOM(t); !done(dom) {
			return fmt.Errorf("the page shows:\n%s", dom)
		}
		return nil
	})
	return dom
}

// openWatches is the sum of the streamrt_watches gauges of instances: a
// watch counts where it is answered, at the owner of its chart.
func openWatches(t *testing.T, instances []*apptest.App) int {
	t.Helper()
	sum := 0
	for _, in := range instances {
		found := false
		for _, line := range strings.Split(in.Get("/metrics").Body, "\n") {
			if v, ok := strings.CutPrefix(line, "streamrt_watches "); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("streamrt_watches %q: %v", v, err)
				}
				sum, found = sum+n, true
			}
		}
		if !found {
			t.Fatalf("/metrics of %s has no streamrt_watches", in.Addr)
		}
	}
	return sum
}

const jsonType = "application/json"

// answerBody is the body of a watched route's answer event, which must be
// a 200 of JSON.
func answerBody(t *testing.T, ev apptest.Event) string {
	t.Helper()
	var a struct {
		Status      int    `json:"status"`
		ContentType string `json:"content_type"`
		Body        string `json:"body"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &a); err != nil || ev.Kind != "answer" || a.Status != 200 || a.ContentType != jsonType {
		t.Fatalf("watched route sent %s %s (%v), want an answer of 200 %s", ev.Kind, ev.Data, err, jsonType)
	}
	return a.Body
}

// chart returns the JSON a chart route answers for songs given as
// "id:plays", in rank order.
func chart(t *testing.T, songs ...string) string {
	t.Helper()
	var rows []string
	for _, s := range songs {
		var id, plays int
		if _, err := fmt.Sscanf(s, "%d:%d", &id, &plays); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(catalogue, func(tr track) bool { return tr.id == id })
		tr := catalogue[i]
		rows = append(rows, fmt.Sprintf(`{"artist":%q,"album":%q,"name":%q,"plays":%d}`, tr.artist, tr.album, tr.name, plays))
	}
	return "[" + strings.Join(rows, ",") + "]"
}

// checkInstances checks the builtin instances route, for every instance
// or those holding store: at least min of the test's instances, none
// other, each listing store.
func checkInstances(t *testing.T, instances []*apptest.App, store string, min int) {
	t.Helper()
	path := "/kafka-music/instances"
	if store != "" {
		path += "/" + store
	}
	got := instances[0].Get(path)
	var list []struct {
		Host       string   `json:"host"`
		Port       int      `json:"port"`
		StoreNames []string `json:"storeNames"`
	}
	if err := json.Unmarshal([]byte(got.Body), &list); got.Code != 200 || err != nil {
		t.Errorf("GET %s: %+v (%v)", path, got, err)
		return
	}
	var addrs []string
	for _, in := range instances {
		addrs = append(addrs, in.Addr)
	}
	all := map[string]bool{}
	for _, l := range list {
		addr := net.JoinHostPort(l.Host, fmt.Sprint(l.Port))
		if !slices.Contains(addrs, addr) {
			t.Errorf("GET %s: unknown instance %s in %s", path, addr, got.Body)
		}
		for _, s := range l.StoreNames {
			all[s] = true
		}
		if store != "" && !slices.Contains(l.StoreNames, store) {
			t.Errorf("GET %s: instance %s without store %s: %s", path, addr, store, got.Body)
		}
	}
	if len(list) < min {
		t.Errorf("GET %s: %d instances, want at least %d: %s", path, len(list), min, got.Body)
	}
	if store == "" {
		for _, s := range []string{"charts", "song-plays", "songs"} {
			if !all[s] {
				t.Errorf("GET %s: no instance holds store %s: %s", path, s, got.Body)
			}
		}
	}
}

// app is the example's configuration as a test runs it: as written on the
// embedded broker, which is new for every test, and with an app name and
// topics of its own on a real cluster, which outlives runs.
type app struct {
	brokers              []string
	name                 string // the app's name and consumer group
	songFeed, playEvents string
	yaml                 []byte
}

func newApp(t *testing.T) *app {
	t.Helper()
	yaml, err := os.ReadFile("streamrt.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := &app{brokers: testkafka.Brokers(t), name: "kafka-music", songFeed: "song-feed", playEvents: "play-events", yaml: yaml}
	if testkafka.Real() {
		a.name = testkafka.Name(t, "kafka-music")
		a.songFeed, a.playEvents = a.name+"-song-feed", a.name+"-play-events"
		s := strings.ReplaceAll(string(yaml), "song-feed", a.songFeed)
		a.yaml = []byte(strings.ReplaceAll(s, "play-events", a.playEvents))
	}
	return a
}

// start runs an instance of the app in-process until the test ends; it
// returns once the instance is ready.
func (a *app) start(t *testing.T) *apptest.App {
	t.Helper()
	return apptest.StartYAML(t, a.yaml, "streamrt.yaml", apptest.Options{
		Brokers:   a.brokers,
		Overrides: map[string]string{"app": a.name},
		LogLevel:  slog.LevelWarn,
	})
}

// waitCaughtUp waits until the app has processed everything in its input
// topics: stage by stage down the pipeline, the group's committed offsets
// reach the topic's end. Outputs are flushed and state committed before
// offsets, so once a stage's inputs are done its outputs are all in the
// next stage's topic, and the last stage's state is all in its store.
func (a *app) waitCaughtUp(t *testing.T) {
	t.Helper()
	adm := kadm.NewClient(testkafka.Client(t, a.brokers))
	topics := []string{a.playEvents, config.RepartitionTopic(a.name, "counts"), config.RepartitionTopic(a.name, "charts")}
	apptest.WaitCheck(t, 2*time.Minute, "the app to catch up", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, topic := range topics {
			committed, err := adm.FetchOffsetsForTopics(ctx, a.name, topic)
			if err == nil {
				err = committed.Error()
			}
			if err != nil {
				return err
			}
			ends, err := adm.ListEndOffsets(ctx, topic)
			if err == nil {
				err = ends.Error()
			}
			if err != nil {
				return err
			}
			var behind error
			ends.Each(func(end kadm.ListedOffset) {
				c, ok := committed.Lookup(topic, end.Partition)
				if end.Offset > 0 && (!ok || c.At < end.Offset) {
					behind = fmt.Errorf("%s[%d] at %d of %d", topic, end.Partition, c.At, end.Offset)
				}
			})
			if behind != nil {
				return behind
			}
		}
		return nil
	})
}
