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
	var api apiFlags
	api.define(f, "an instance's query API")
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return code
	}
	if f.NArg() != 2 {
		return f.usageError(stderr, "want STORE and KEY, got %d arguments", f.NArg())
	}
	c, err := api.client(f)
	if err != nil {
		return f.usageError(stderr, "%s", err)
	}
	code, body, err := c.get(ctx, "/v1/stores/"+url.PathEscape(f.Arg(0))+"/keys/"+url.PathEscape(f.Arg(1)))
	if err != nil {
		fmt.Fprintf(stderr, "streamrt query: %v\n", err)
		return exitFail
	}
	if code != http.StatusOK {
		fmt.Fprintf(stderr, "streamrt query: %s (%d %s)\n", errorMessage(body), code, http.StatusText(code))
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

// apiFlags are the flags of a command that talks to an instance's HTTP API:
// where, for how long, with which token and, for an instance that serves
// HTTPS, which CA and client certificate.
type apiFlags struct {
	addr, token string
	timeout     time.Duration
	tls         config.HTTPTLS
}

// define adds the flags to f; what names the API the address reaches.
func (a *apiFlags) define(f *flags, what string) {
	f.StringVar(&a.addr, "addr", "http://"+config.DefaultHTTP, "base `URL` of "+what)
	f.alias("a", "addr")
	f.DurationVar(&a.timeout, "timeout", 10*time.Second, "give up after `D`")
	f.StringVar(&a.token, "token", os.Getenv("STREAMRT_TOKEN"), "bearer `TOKEN` for an app with query.tokens (default $STREAMRT_TOKEN)")
	f.StringVar(&a.tls.CAFile, "cacert", "", "trust the CAs in the PEM `FILE` for an app that serves HTTPS")
	f.StringVar(&a.tls.CertFile, "cert", "", "present the client certificate in the PEM `FILE` (with --key)")
	f.StringVar(&a.tls.KeyFile, "key", "", "the client certificate's private key, a PEM `FILE`")
}

// apiClient reaches one instance's HTTP API.
type apiClient struct {
	base    string // scheme://host:port, no trailing slash
	http    *http.Client
	timeout time.Duration
	token   string
}

// client checks the flags, once parsed, and returns the client they
// describe; its error names the flag at fault.
func (a *apiFlags) client(f *flags) (*apiClient, error) {
	if a.timeout <= 0 {
		return nil, fmt.Errorf("--timeout must be positive")
	}
	useTLS := a.tls.CAFile != "" || a.tls.CertFile != "" || a.tls.KeyFile != ""
	base := strings.TrimRight(a.addr, "/")
	if !f.given()["addr"] && useTLS {
		base = config.DefaultHTTP
	}
	if !strings.Contains(base, "://") {
		base = map[bool]string{false: "http://", true: "https://"}[useTLS] + base
	}
	c := &apiClient{base: base, http: http.DefaultClient, timeout: a.timeout, token: a.token}
	if useTLS {
		tc, err := a.tls.ClientConfig()
		if err != nil {
			// Name the flag, not the configuration key, at fault.
			return nil, fmt.Errorf("%s", strings.NewReplacer("ca_file", "--cacert", "cert_file", "--cert", "key_file", "--key").Replace(err.Error()))
		}
		c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	}
	return c, nil
}

// get asks the instance for path within the timeout and returns the
// status and body of its answer.
func (c *apiClient) get(ctx context.Context, path string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxQueryBody))
	if err != nil {
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, body, nil
}
