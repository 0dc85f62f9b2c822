package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/cmd/streamrt/internal/broker"
	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/internal/testtls"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// cli runs the command line args with stdin and returns the exit code and
// what was written to stdout and stderr.
func cli(t *testing.T, ctx context.Context, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runCommand(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string // a part of stdout, or "" for none at all
		stderr string // a part of stderr, or "" for none at all
	}{
		{args: nil, code: 2, stderr: "Commands:\n  run "},
		{args: []string{"--help"}, code: 0, stdout: "Commands:\n  run "},
		{args: []string{"-h"}, code: 0, stdout: "consume"},
		{args: []string{"help"}, code: 0, stdout: "query"},
		{args: []string{"help", "produce"}, code: 0, stdout: "Usage: streamrt produce"},
		{args: []string{"bogus"}, code: 2, stderr: `streamrt: unknown command "bogus"`},
		{args: []string{"run", "--help"}, code: 0, stdout: "  -c, --config FILE\n"},
		{args: []string{"run", "-h"}, code: 0, stdout: "  --embedded-broker[=ADDR]\n"},
		{args: []string{"produce", "--help"}, code: 0, stdout: "  -t, --topic TOPIC\n"},
		{args: []string{"consume", "--help"}, code: 0, stdout: "  -n N\n"},
		{args: []string{"query", "--help"}, code: 0, stdout: "  -a, --addr URL\n"},
		{args: []string{"version", "--help"}, code: 0, stdout: "Usage: streamrt version"},
		{args: []string{"version"}, code: 0, stdout: "streamrt dev go1."},
		{args: []string{"version", "now"}, code: 2, stderr: `unexpected argument "now"`},
		{args: []string{"run"}, code: 2, stderr: "-c FILE is required"},
		{args: []string{"run", "--bogus"}, code: 2, stderr: "flag provided but not defined: -bogus"},
		{args: []string{"run", "-c", "app.yaml", "extra"}, code: 2, stderr: `unexpected argument "extra"`},
		{args: []string{"run", "--embedded-broker", "127.0.0.1:0", "-c", "app.yaml"}, code: 2,
			stderr: "--embedded-broker=127.0.0.1:0"},
		{args: []string{"run", "--embedded-broker=nowhere", "-c", "app.yaml"}, code: 2,
			stderr: `want true, false or host:port, got "nowhere"`},
		{args: []string{"produce"}, code: 2, stderr: "-t TOPIC is required"},
		{args: []string{"produce", "-t", "x", "-b", ","}, code: 2, stderr: "must name at least one broker"},
		{args: []string{"consume", "-t", "x", "-n", "-1"}, code: 2, stderr: "must not be negative"},
		{args: []string{"consume", "-t", "x", "--request-timeout", "0s"}, code: 2, stderr: "--request-timeout must be positive"},
		{args: []string{"query", "store"}, code: 2, stderr: "want STORE and KEY, got 1 arguments"},
		{args: []string{"query", "-a"}, code: 2, stderr: "flag needs an argument: -a"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := cli(t, context.Background(), "", tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			check := func(name, got, want string) {
				if want == "" && got != "" || !strings.Contains(got, want) {
					t.Errorf("%s = %q, want it to contain %q", name, got, want)
				}
			}
			check("stdout", stdout, tt.stdout)
			check("stderr", stderr, tt.stderr)
			if tt.code == 2 && !strings.Contains(stderr, "Usage:") {
				t.Errorf("usage error without usage on stderr: %q", stderr)
			}
		})
	}
}

func TestRunEntryPoint(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, strings.NewReader(""), &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "streamrt dev ") {
		t.Errorf("run(version) = %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}

func TestRunBadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	one := write("one.yaml", "app: a\nbrokers: [b:1]\nstages:\n  - {name: s, module: missing.wasm, inputs: [t]}\n")
	many := write("many.yaml", "app: a\npartitons: 3\nstages:\n  - {name: s, module: missing.wasm, inputs: [t], batch_size: -3}\n")
	tests := []struct {
		name   string
		args   []string
		stderr []string
	}{
		{"missing file", []string{"run", "-c", filepath.Join(dir, "nope.yaml")},
			[]string{"streamrt run: " + filepath.Join(dir, "nope.yaml") + ": cannot read: no such file or directory\n"}},
		{"one problem", []string{"run", "-c", one},
			[]string{"streamrt run: " + one + ": stages[0].module: cannot use " + filepath.Join(dir, "missing.wasm") + ": no such file or directory\n"}},
		{"several problems", []string{"run", "--config", many},
			[]string{
				"streamrt run: invalid configuration:\n",
				"\n  " + many + ": partitons: unknown key (did you mean partitions?)\n",
				"\n  " + many + ": brokers: at least one broker is required\n",
				"\n  " + many + ": stages[0].batch_size: must be between 1 and 100000, got -3\n",
			}},
		{"flag names the key", []string{"run", "-c", one, "--http", "nowhere"},
			[]string{one + ": --http: must be host:port, got \"nowhere\"\n"}},
		{"checked before the embedded broker starts", []string{"run", "--embedded-broker=127.0.0.1:0", "-c", many},
			[]string{"streamrt run: invalid configuration:\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, context.Background(), "", tt.args...)
			if code != 1 || stdout != "" {
				t.Errorf("exit code %d, stdout %q; want 1 and nothing", code, stdout)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr:\n%s\nwant it to contain %q", stderr, want)
				}
			}
			if strings.Contains(stderr, "embedded broker started") {
				t.Errorf("embedded broker started despite a bad configuration:\n%s", stderr)
			}
		})
	}
}

// TestRunEmbeddedBroker starts the embedded broker and hands the runtime a
// module it must refuse: the broker comes up, says it keeps data in memory,
// and the runtime's error ends the command with exit code 1.
func TestRunEmbeddedBroker(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.wasm"), []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "app.yaml")
	data := "app: a\nbrokers: [unused:1]\nhttp: 127.0.0.1:0\nstages:\n  - {name: s, module: bad.wasm, inputs: [t]}\n"
	if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, _, stderr := cli(t, ctx, "", "run", "-c", cfg, "--embedded-broker=127.0.0.1:0", "--state-dir", filepath.Join(dir, "state"))
	if ctx.Err() != nil {
		t.Fatalf("run did not stop on a bad module:\n%s", stderr)
	}
	for _, want := range []string{"level=WARN", "data is kept in memory only", "\nstreamrt run: ", "embedded broker stopped"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, stderr)
		}
	}
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
}

func TestProduceConsume(t *testing.T) {
	brokers := testkafka.Brokers(t)
	b := strings.Join(brokers, ",")
	topic := testkafka.Name(t, "cli")
	testkafka.CreateTopic(t, brokers, topic, 1)
	ctx := context.Background()

	input := "k1\tv1\n" + // key and value
		"no key\n" + // null key
		"\n" + // null key, empty value
		"k2\tv\twith\ttabs\r\n" + // split at the first tab; CRLF
		"\tempty key" // empty key, no final newline
	code, stdout, stderr := cli(t, ctx, input, "produce", "-b", b, "-t", topic)
	if code != 0 || stdout != "" || stderr != "produced 5 records to "+topic+"\n" {
		t.Fatalf("produce: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	code, stdout, stderr = cli(t, ctx, "", "consume", "-b", b, "-t", topic, "--from-beginning", "-n", "5", "--timeout", "20s")
	want := "k1\tv1\n\tno key\n\t\nk2\tv\twith\ttabs\n\tempty key\n"
	if code != 0 || stdout != want || stderr != "" {
		t.Fatalf("consume: exit %d, stderr %q\nstdout %q\nwant   %q", code, stderr, stdout, want)
	}

	recs := testkafka.ReadAll(t, brokers, topic, 5, 20*time.Second)
	if len(recs) != 5 {
		t.Fatalf("read %d records, want 5", len(recs))
	}
	if recs[0].Key == nil || recs[1].Key != nil || recs[2].Key != nil || recs[4].Key == nil || len(recs[4].Key) != 0 {
		t.Errorf("keys %q %q %q %q: want non-null, null, null, empty", recs[0].Key, recs[1].Key, recs[2].Key, recs[4].Key)
	}
	if string(recs[3].Value) != "v\twith\ttabs" || len(recs[2].Value) != 0 {
		t.Errorf("values %q %q", recs[2].Value, recs[3].Value)
	}
}

func TestConsume(t *testing.T) {
	brokers := testkafka.Brokers(t)
	b := strings.Join(brokers, ",")
	topic := testkafka.Name(t, "cli")
	testkafka.CreateTopic(t, brokers, topic, 3)
	empty := testkafka.Name(t, "cli-empty")
	testkafka.CreateTopic(t, brokers, empty, 1)
	ctx := context.Background()

	var in strings.Builder
	for i := range 10 {
		in.WriteString("k" + string(rune('0'+i)) + "\tv\n")
	}
	if code, _, stderr := cli(t, ctx, in.String(), "produce", "-b", b, "-t", topic); code != 0 {
		t.Fatalf("produce: %s", stderr)
	}

	t.Run("n", func(t *testing.T) {
		code, stdout, stderr := cli(t, ctx, "", "consume", "-b", b, "-t", topic, "--from-beginning", "-n", "3", "--timeout", "20s")
		if code != 0 || strings.Count(stdout, "\n") != 3 {
			t.Errorf("exit %d, stdout %q, stderr %q; want 3 lines", code, stdout, stderr)
		}
	})
	t.Run("all until idle", func(t *testing.T) {
		code, stdout, stderr := cli(t, ctx, "", "consume", "-b", b, "-t", topic, "--from-beginning", "--timeout", "2s")
		if code != 0 || strings.Count(stdout, "\n") != 10 {
			t.Errorf("exit %d, stdout %q, stderr %q; want 10 lines", code, stdout, stderr)
		}
	})
	t.Run("idle timeout without n", func(t *testing.T) {
		code, stdout, stderr := cli(t, ctx, "", "consume", "-b", b, "-t", empty, "--from-beginning", "--timeout", "300ms")
		if code != 0 || stdout != "" || stderr != "" {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0 and nothing", code, stdout, stderr)
		}
	})
	t.Run("idle timeout before n", func(t *testing.T) {
		code, stdout, stderr := cli(t, ctx, "", "consume", "-b", b, "-t", empty, "--from-beginning", "-n", "1", "--timeout", "300ms")
		if code != 1 || stdout != "" || !strings.Contains(stderr, "no record for 300ms; got 0 of 1") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		code, stdout, _ := cli(t, ctx, "", "consume", "-b", b, "-t", empty)
		if code != 0 || stdout != "" {
			t.Errorf("exit %d, stdout %q; want 0 and nothing", code, stdout)
		}
	})
	t.Run("headers", func(t *testing.T) {
		dead := testkafka.Name(t, "cli-dlq")
		testkafka.CreateTopic(t, brokers, dead, 1)
		rec := &kgo.Record{Topic: dead, Key: []byte("k"), Value: []byte("v"), Headers: []kgo.RecordHeader{
			{Key: "streamrt.error", Value: []byte("panic: \"boom\"\nat line 2")}, {Key: "streamrt.error.kind", Value: []byte("record")}}}
		if err := testkafka.Client(t, brokers).ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := cli(t, ctx, "", "consume", "-b", b, "-t", dead, "--from-beginning", "-n", "1", "--timeout", "20s", "--headers")
		if want := "k\tv\t{\"streamrt.error\":\"panic: \\\"boom\\\"\\nat line 2\",\"streamrt.error.kind\":\"record\"}\n"; code != 0 || stdout != want {
			t.Errorf("exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, want)
		}
	})
	t.Run("latest", func(t *testing.T) {
		// Without --from-beginning only records produced after the start are
		// printed: keep producing "new" until the consumer has one.
		type result struct {
			code           int
			stdout, stderr string
		}
		done := make(chan result, 1)
		go func() {
			code, stdout, stderr := cli(t, ctx, "", "consume", "-b", b, "-t", topic, "-n", "1", "--timeout", "20s")
			done <- result{code, stdout, stderr}
		}()
		cl := testkafka.Client(t, brokers)
		for {
			select {
			case r := <-done:
				if r.code != 0 || r.stdout != "new\tafter start\n" {
					t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
				}
				return
			case <-time.After(100 * time.Millisecond):
				rec := &kgo.Record{Topic: topic, Key: []byte("new"), Value: []byte("after start")}
				if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

func TestMissingTopic(t *testing.T) {
	brokers := testkafka.Brokers(t)
	topic := testkafka.Name(t, "absent")
	for _, cmd := range []string{"produce", "consume"} {
		code, _, stderr := cli(t, context.Background(), "k\tv\n", cmd, "-b", strings.Join(brokers, ","), "-t", topic)
		want := "streamrt " + cmd + `: topic "` + topic + `" does not exist`
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", cmd, code, stderr, want)
		}
	}
	// Nothing was created on the way.
	topics, err := kadm.NewClient(testkafka.Client(t, brokers)).ListTopics(context.Background(), topic)
	if err != nil || topics.Has(topic) && topics[topic].Err == nil {
		t.Errorf("topic %s exists after produce and consume (%v)", topic, err)
	}
}

func TestUnreachableBroker(t *testing.T) {
	// One address refuses connections; the other accepts them and never
	// answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	for _, addr := range []string{refused, silent.Addr().String()} {
		for _, cmd := range []string{"produce", "consume"} {
			start := time.Now()
			code, _, stderr := cli(t, context.Background(), "k\tv\n", cmd, "-b", addr, "-t", "t", "--request-timeout", "1s")
			if code != 1 || !strings.Contains(stderr, "streamrt "+cmd+": cannot reach Kafka at "+addr) {
				t.Errorf("%s -b %s: exit %d, stderr %q", cmd, addr, code, stderr)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("%s -b %s took %s to give up", cmd, addr, d)
			}
		}
	}
}

func TestQuery(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.EscapedPath() {
		case "/v1/stores/click-counts/keys/page-1":
			w.Write([]byte(`42`))
		case "/v1/stores/by%20page/keys/a%2Fb%3Fc":
			w.Write([]byte("escaped"))
		case "/v1/stores/click-counts/keys/broken":
			http.Error(w, "something broke", http.StatusInternalServerError)
		case "/v1/stores/guarded/keys/k":
			if r.Header.Get("Authorization") != "Bearer s3cret" {
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(`{"error": "missing bearer token"}`))
				return
			}
			w.Write([]byte("let in"))
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error": "key not found"}`))
		}
	}))
	defer srv.Close()
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"found", []string{"query", "-a", srv.URL, "click-counts", "page-1"}, 0, "42\n", ""},
		{"flags after arguments", []string{"query", "click-counts", "page-1", "-a", srv.URL}, 0, "42\n", ""},
		{"flags between arguments", []string{"query", "click-counts", "--addr=" + srv.URL, "page-1"}, 0, "42\n", ""},
		{"a flag's value that looks like an argument", []string{"query", "-a", srv.URL, "--timeout", "5s", "click-counts", "page-1"}, 0, "42\n", ""},
		{"escaped", []string{"query", "--addr", srv.URL + "/", "by page", "a/b?c"}, 0, "escaped\n", ""},
		{"no scheme", []string{"query", "-a", strings.TrimPrefix(srv.URL, "http://"), "click-counts", "page-1"}, 0, "42\n", ""},
		{"not found", []string{"query", "-a", srv.URL, "click-counts", "page-2"}, 1, "",
			"streamrt query: key not found (404 Not Found)\n"},
		{"not JSON", []string{"query", "-a", srv.URL, "click-counts", "broken"}, 1, "",
			"streamrt query: something broke (500 Internal Server Error)\n"},
		{"token", []string{"query", "-a", srv.URL, "--token", "s3cret", "guarded", "k"}, 0, "let in\n", ""},
		{"no token", []string{"query", "-a", srv.URL, "guarded", "k"}, 1, "",
			"streamrt query: missing bearer token (401 Unauthorized)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, context.Background(), "", tt.args...)
			if code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
				t.Errorf("exit %d, stdout %q, stderr %q\nwant %d, %q, %q", code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}

	srv.Close()
	code, _, stderr := cli(t, context.Background(), "", "query", "-a", srv.URL, "s", "k")
	if code != 1 || !strings.Contains(stderr, "streamrt query: ") {
		t.Errorf("server down: exit %d, stderr %q", code, stderr)
	}
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		line       string
		key, value []byte
	}{
		{"k\tv\n", []byte("k"), []byte("v")},
		{"k\tv\tw", []byte("k"), []byte("v\tw")},
		{"value only\n", nil, []byte("value only")},
		{"\n", nil, []byte{}},
		{"", nil, []byte{}},
		{"\tv\r\n", []byte{}, []byte("v")},
		{"k\t\n", []byte("k"), []byte{}},
	}
	for _, tt := range tests {
		r := parseLine("t", []byte(tt.line))
		if (r.Key == nil) != (tt.key == nil) || !bytes.Equal(r.Key, tt.key) ||
			r.Value == nil || !bytes.Equal(r.Value, tt.value) || r.Topic != "t" {
			t.Errorf("parseLine(%q) = key %q value %q, want %q %q", tt.line, r.Key, r.Value, tt.key, tt.value)
		}
	}
}

func TestEmbeddedFlag(t *testing.T) {
	tests := []struct {
		in   string
		on   bool
		addr string
		ok   bool
	}{
		{"true", true, broker.DefaultAddr, true},
		{"false", false, broker.DefaultAddr, true},
		{"127.0.0.1:0", true, "127.0.0.1:0", true},
		{":9093", true, ":9093", true},
		{"localhost", false, "", false},
	}
	for _, tt := range tests {
		var e embeddedFlag
		err := e.Set(tt.in)
		if (err == nil) != tt.ok || e.on != tt.on || e.addr != tt.addr {
			t.Errorf("Set(%q) = %+v, %v", tt.in, e, err)
		}
	}
}

// query trusts an HTTPS app's CA with --cacert and presents a client
// certificate with --cert and --key.
func TestQueryTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testtls.NewCA(t, "app CA")
	leaf, client := ca.Issue(t, testtls.Options{}), ca.Issue(t, testtls.Options{CommonName: "cli"})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.VerifiedChains) == 0 {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error": "a client certificate is required"}`))
			return
		}
		w.Write([]byte("42"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool()}
	srv.StartTLS()
	defer srv.Close()
	caFile := testtls.Write(t, dir, "ca.pem", ca.PEM)
	certFile, keyFile := testtls.Write(t, dir, "cli.pem", client.CertPEM), testtls.Write(t, dir, "cli.key", client.KeyPEM)
	hostPort := strings.TrimPrefix(srv.URL, "https://")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"client certificate", []string{"query", "-a", hostPort, "--cacert", caFile, "--cert", certFile, "--key", keyFile, "s", "k"}, 0, "42\n", ""},
		{"no client certificate", []string{"query", "-a", srv.URL, "--cacert", caFile, "s", "k"}, 1, "",
			"streamrt query: a client certificate is required (401 Unauthorized)\n"},
		{"untrusted", []string{"query", "-a", srv.URL, "s", "k"}, 1, "", "x509: certificate signed by unknown authority"},
		{"missing CA file", []string{"query", "-a", srv.URL, "--cacert", filepath.Join(dir, "nope.pem"), "s", "k"}, 2, "",
			"--cacert: cannot read " + filepath.Join(dir, "nope.pem")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, context.Background(), "", tt.args...)
			if code != tt.code || stdout != tt.stdout || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q\nwant %d, %q, %q", code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

// produce and consume take the kafka section of -c FILE, checked before
// they connect: a problem names the file and the key, never a secret.
func TestKafkaConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := testtls.Write(t, dir, "app.yaml", []byte("app: x\nkafka:\n  tls: {ca_file: nope.pem}\n  sasl: {mechanism: SCRAM-SHA-512, username: u, password_env: STREAMRT_TEST_NO_SUCH_PASSWORD}\n"))
	for _, cmd := range []string{"produce", "consume"} {
		code, _, stderr := cli(t, context.Background(), "k\tv\n", cmd, "-b", "127.0.0.1:1", "-t", "t", "-c", file)
		for _, want := range []string{"kafka.tls.ca_file: cannot read " + filepath.Join(dir, "nope.pem"), "kafka.sasl.password_env: environment variable STREAMRT_TEST_NO_SUCH_PASSWORD"} {
			if code != 1 || !strings.Contains(stderr, want) {
				t.Errorf("%s -c: exit %d, stderr %q; want 1 and %q", cmd, code, stderr, want)
			}
		}
	}
}

// The admin commands reach a server that serves HTTPS with --cacert, and
// present a client certificate with --cert and --key.
func TestAdminTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testtls.NewCA(t, "server CA")
	leaf, client := ca.Issue(t, testtls.Options{}), ca.Issue(t, testtls.Options{CommonName: "operator"})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.VerifiedChains) == 0 || r.Header.Get("Authorization") != "Bearer s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error": "a client certificate and the admin token are required"}`))
			return
		}
		w.Write([]byte(`{"apps": [{"app": "clicks", "version": 3, "instances": [{"instance": "a", "version": 3, "state": "running"}]}]}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool()}
	srv.StartTLS()
	defer srv.Close()
	t.Setenv("STREAMRT_ADMIN_TOKEN", "s3cret")
	caFile := testtls.Write(t, dir, "ca.pem", ca.PEM)
	certFile, keyFile := testtls.Write(t, dir, "op.pem", client.CertPEM), testtls.Write(t, dir, "op.key", client.KeyPEM)
	hostPort := strings.TrimPrefix(srv.URL, "https://")
	for _, tt := range []struct {
		name         string
		args         []string
		code         int
		stdout, errs string
	}{
		{"client certificate", []string{"apps", "-s", hostPort, "--cacert", caFile, "--cert", certFile, "--key", keyFile}, 0, "clicks", ""},
		{"no client certificate", []string{"apps", "-s", srv.URL, "--cacert", caFile}, 1, "", "a client certificate and the admin token are required (401 Unauthorized)"},
		{"untrusted", []string{"apps", "-s", srv.URL}, 1, "", "x509: certificate signed by unknown authority"},
		{"missing CA file", []string{"apps", "-s", srv.URL, "--cacert", filepath.Join(dir, "nope.pem")}, 1, "", "--cacert: cannot read " + filepath.Join(dir, "nope.pem")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, context.Background(), "", tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.errs) {
				t.Errorf("exit %d, stdout %q, stderr %q\nwant %d, %q, %q", code, stdout, stderr, tt.code, tt.stdout, tt.errs)
			}
		})
	}
}
