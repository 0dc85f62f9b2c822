package serve

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/streamrt/streamrt/runtime/config"
	"github.com/streamrt/streamrt/runtime/internal/metrics"
	"github.com/streamrt/streamrt/runtime/internal/partition"
	"github.com/streamrt/streamrt/runtime/internal/state"
)

// Keys a path segment cannot carry are reached with ?key= or ?key_base64=;
// a lookup without either, or with bad base64, is told how to give one.
func TestKeysByQueryParameter(t *testing.T) {
	hs, db := newTestServer(t)
	keys := []string{"", ".", "..", "a/b", "\xff\x00"}
	for i, k := range keys {
		put(t, db, "counts", partition.For([]byte(k), 4), k, string(rune('0'+i)))
	}
	for i, k := range keys {
		want := string(rune('0' + i))
		for _, q := range []string{"key=" + url.QueryEscape(k), "key_base64=" + base64.URLEncoding.EncodeToString([]byte(k)), "key_base64=" + base64.RawStdEncoding.EncodeToString([]byte(k))} {
			if code, _, body := get(t, hs.URL+"/v1/stores/counts/key?stale=true&"+q); code != 200 || body != want {
				t.Errorf("key %q by ?%s: %d %s, want 200 %s", k, q, code, body, want)
			}
		}
	}
	if code, _, body := get(t, hs.URL+"/v1/metadata/stores/counts/key?key="); code != 200 || !strings.Contains(body, `"key":""`) {
		t.Errorf("metadata of the empty key: %d %s", code, body)
	}
	for q, want := range map[string]string{"": "give the key as ?key=KEY", "key_base64=***": "is not base64"} {
		if code, _, body := get(t, hs.URL+"/v1/stores/counts/key?"+q); code != 400 || !strings.Contains(body, want) {
			t.Errorf("?%s: %d %s, want 400 with %q", q, code, body, want)
		}
	}
}

// A method a route does not answer gets 405 with the methods it does in
// Allow; a path no route has gets 404.
func TestUnknownMethodIs405WithAllow(t *testing.T) {
	hs, _ := newTestServer(t)
	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/stores/counts/keys/home", strings.NewReader("x"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST on a key: %d Allow %q, want 405 with GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if code, h, _ := get(t, hs.URL+"/v1/nothing"); code != 404 || h.Get("Allow") != "" {
		t.Errorf("an unknown path: %d Allow %q, want 404", code, h.Get("Allow"))
	}
}

// The bearer scheme's name is matched without regard to case.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	_, sdb := newTestServer(t)
	q := config.Query{MaxKeyBytes: 64, MaxRangeLimit: 10, ForwardTimeout: config.DefaultForwardTimeout, Tokens: []string{"s3cret"}}
	s := New(Options{DB: sdb, Engine: lostEngine{}, Metrics: metrics.New(), Query: q, Stores: []Store{{Name: "counts", Partitions: 4, Topic: "clicks"}}})
	hs := httptest.NewServer(s)
	defer hs.Close()
	for auth, want := range map[string]int{"Bearer s3cret": 200, "bearer s3cret": 200, "BEARER  s3cret": 200, "Basic s3cret": 401, "bearer wrong": 401, "": 401} {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/v1/instances", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Authorization %q: %d, want %d", auth, resp.StatusCode, want)
		}
	}
}

// A store that declares its values' media type (query.content_types) has
// key lookups answered with it; the others stay application/octet-stream.
func TestStoreContentType(t *testing.T) {
	db, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	q := config.Query{MaxKeyBytes: 64, MaxRangeLimit: 10, ForwardTimeout: config.DefaultForwardTimeout}
	s := New(Options{DB: db, Engine: lostEngine{}, Metrics: metrics.New(), Query: q, Stores: []Store{
		{Name: "counts", Partitions: 4, Topic: "clicks"},
		{Name: "profiles", Partitions: 4, Topic: "users", ContentType: "application/json"},
	}})
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	put(t, db, "counts", partition.For([]byte("home"), 4), "home", "3")
	put(t, db, "profiles", partition.For([]byte("ann"), 4), "ann", `{"name":"Ann"}`)
	for path, want := range map[string]string{
		"/v1/stores/counts/keys/home":  "application/octet-stream",
		"/v1/stores/profiles/keys/ann": "application/json",
	} {
		if code, h, _ := get(t, hs.URL+path+"?stale=true"); code != 200 || h.Get("Content-Type") != want {
			t.Errorf("%s: %d Content-Type %q, want 200 %q", path, code, h.Get("Content-Type"), want)
		}
	}
}
