package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/streamrt/streamrt/runtime/config"
)

// maxQueryBody bounds what query reads of a response.
const maxQueryBody = 64 << 20

func cmdQuery(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("query", "query [-a URL] STORE KEY", `Print the value of KEY in STORE of a running app, followed by a newline, by
asking any of its instances: GET URL/v1/stores/STORE/keys/KEY, with STORE and
KEY path-escaped; any instance answers, forwarding to the key's owner. An
error from the app, such as a missing key (404), is printed to standard error
and exits 1. Flags go before STORE and KEY. When the app sets query.tokens,
pass one with --token or in STREAMRT_TOKEN. When the app serves HTTPS
(http_tls), --cacert trusts the CA that signed its certificate, and --cert
and --key present a client certificate where it requires one; an address
without a scheme is then https.`)
	addr := f.String("addr", "http://"+config.DefaultHTTP, "base `URL` of an instance's query API")
	f.alias("a", "addr")
	timeout := f.Duration("timeout", 10*time.Second, "give up after `D`")
	token := f.String("token", os.Getenv("STREAMRT_TOKEN"), "bearer `TOKEN` for an app with query.tokens (default $STREAMRT_TOKEN)")
	var httpTLS config.HTTPTLS
	f.StringVar(&httpTLS.CAFile, "cacert", "", "trust the CAs in the PEM `FILE` for an app that serves HTTPS")
	f.StringVar(&httpTLS.CertFile, "cert", "", "present the client certificate in the PEM `FILE` (with --key)")
	f.StringVar(&httpTLS.KeyFile, "key", "", "the client certificate's private key, a PEM `FILE`")
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return code
	}
	if f.NArg() != 2 {
		return f.usageError(stderr, "want STORE and KEY, got %d arguments", f.NArg())
	}
	if *timeout <= 0 {
		return f.usageError(stderr, "--timeout must be positive")
	}
	useTLS := httpTLS.CAFile != "" || httpTLS.CertFile != "" || httpTLS.KeyFile != ""
	base := strings.TrimRight(*addr, "/")
	if !f.given()["addr"] && useTLS {
		base = config.DefaultHTTP
	}
	if !strings.Contains(base, "://") {
		base = map[bool]string{false: "http://", true: "https://"}[useTLS] + base
	}
	client := http.DefaultClient
	if useTLS {
		tc, err := httpTLS.ClientConfig()
		if err != nil {
			// Name the flag, not the configuration key, at fault.
			msg := strings.NewReplacer("ca_file", "--cacert", "cert_file", "--cert", "key_file", "--key").Replace(err.Error())
			return f.usageError(stderr, "%s", msg)
		}
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	}
	target := base + "/v1/stores/" + url.PathEscape(f.Arg(0)) + "/keys/" + url.PathEscape(f.Arg(1))

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintf(stderr, "streamrt query: %v\n", err)
		return exitFail
	}
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "streamrt query: %v\n", err)
		return exitFail
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxQueryBody))
	if err != nil {
		fmt.Fprintf(stderr, "streamrt query: read response: %v\n", err)
		return exitFail
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "streamrt query: %s (%s)\n", errorMessage(body), resp.Status)
		return exitFail
	}
	if _, err := stdout.Write(append(body, '\n')); err != nil {
		fmt.Fprintf(stderr, "streamrt query: write: %v\n", err)
		return exitFail
	}
	return exitOK
}

// errorMessage returns the message of an {"error": "..."} body, or the body
// itself if it is not one.
func errorMessage(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		return s
	}
	return "no error message"
}
