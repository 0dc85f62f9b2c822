package runtime_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/apptest"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/internal/testtls"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// With http_tls, two instances serve their API over HTTPS, require a
// client certificate for queries (not for probes and metrics), and forward
// to each other over HTTPS, each verifying the other against the CA and
// presenting its own certificate.
func TestHTTPTLSForwarding(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	testkafka.CreateTopic(t, brokers, in, 4)
	dir := t.TempDir()
	ca := testtls.NewCA(t, "instances CA")
	leaf := ca.Issue(t, testtls.Options{CommonName: "instance"})
	client := ca.Issue(t, testtls.Options{CommonName: "a client"})
	yaml := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}}.yaml() +
		fmt.Sprintf("http_tls:\n  cert_file: %s\n  key_file: %s\n  client_ca_file: %s\n  ca_file: %s\n",
			testtls.Write(t, dir, "instance.pem", leaf.CertPEM), testtls.Write(t, dir, "instance.key", leaf.KeyPEM),
			testtls.Write(t, dir, "ca.pem", ca.PEM), testtls.Write(t, dir, "ca.pem", ca.PEM))
	a := startYAML(t, yaml, "", false)
	b := startYAML(t, yaml, "", false)

	withCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLS}}}}
	noCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	get := func(c *http.Client, url string) (int, string, http.Header) {
		resp, err := c.Get(url)
		if err != nil {
			return 0, err.Error(), nil
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}

	// Probes answer without a client certificate, over TLS only.
	for _, inst := range []*app{a, b} {
		waitFor(t, 60*time.Second, "instance "+inst.http+" to be ready over HTTPS", func() bool {
			code, _, _ := get(noCert, "https://"+inst.http+"/readyz")
			return code == http.StatusOK
		})
	}
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = fmt.Sprintf("page-%d", i)
	}
	produce(t, brokers, in, clicks(keys, 1)...)

	// Every key answers from a, half of them forwarded to b.
	apptest.WaitCheck(t, 60*time.Second, "every key from a, some served by b", func() error {
		servers := map[string]bool{}
		for _, k := range keys {
			code, body, h := get(withCert, "https://"+a.http+"/v1/stores/counts/keys/"+k)
			if code != http.StatusOK || body != "1" {
				return fmt.Errorf("key %s: %d %s", k, code, body)
			}
			servers[h.Get("X-Streamrt-Served-By")] = true
		}
		if !servers[a.http] || !servers[b.http] {
			return fmt.Errorf("served by %v, want both %s and %s", servers, a.http, b.http)
		}
		return nil
	})
	// A range reads b's partitions over HTTPS too.
	code, body, _ := get(withCert, "https://"+a.http+"/v1/stores/counts?prefix=page-&limit=100")
	var page struct{ Entries []json.RawMessage }
	if json.Unmarshal([]byte(body), &page); code != http.StatusOK || len(page.Entries) != len(keys) {
		t.Errorf("range: %d, %d entries, want %d: %s", code, len(page.Entries), len(keys), body)
	}

	for _, tt := range []struct {
		c    *http.Client
		url  string
		code int
		want string
	}{
		{noCert, "https://" + a.http + "/v1/stores/counts/keys/page-1", http.StatusUnauthorized, "a client certificate signed by a CA of http_tls.client_ca_file is required"},
		{noCert, "https://" + b.http + "/healthz", http.StatusOK, "ok"},
		{noCert, "https://" + b.http + "/metrics", http.StatusOK, "streamrt_"},
		{http.DefaultClient, "http://" + a.http + "/healthz", http.StatusBadRequest, "HTTP request to an HTTPS server"},
	} {
		if code, body, _ := get(tt.c, tt.url); code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s: %d %.200s, want %d and %q", tt.url, code, body, tt.code, tt.want)
		}
	}
}
