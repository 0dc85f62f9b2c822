package wasm

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/abi"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// A guest has no file system, no network and no environment: the sandbox
// guest, which tries each, gets an error for every file it reads, writes
// or lists and for every connection it opens, and an empty environment,
// while the host has the file, a listener and a variable for it to find.
func TestGuestHasNoFileSystemNetworkOrEnvironment(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("STREAMRT_SANDBOX_TEST", "host variable")

	ctx := context.Background()
	m, err := newEngine(t, Config{MemoryLimit: 64 << 20, Deadline: 5 * time.Second}).Compile(ctx, "sandbox.wasm", guesttest.Build(t, "sandbox"))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := m.Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	attempts := []struct{ what, arg string }{
		{"read", secret},
		{"read", "/etc/hostname"},
		{"write", filepath.Join(dir, "written")},
		{"list", dir},
		{"list", "/"},
		{"dial", ln.Addr().String()},
		{"env", ""},
	}
	var in []abi.Record
	for _, a := range attempts {
		in = append(in, abi.Record{Topic: "in", Key: []byte(a.what), Value: []byte(a.arg)})
	}
	h := &recordingHost{}
	if err := inst.Process(ctx, h, abi.EncodeBatch(nil, &abi.Batch{Records: in})); err != nil {
		t.Fatal(err)
	}
	if len(h.emitted) != len(attempts) {
		t.Fatalf("%d results for %d attempts", len(h.emitted), len(attempts))
	}
	for i, a := range attempts {
		got := string(h.emitted[i].Value)
		t.Logf("%s %s: %s", a.what, a.arg, got)
		want := "err: "
		if a.what == "env" {
			want = "ok: " // and nothing after it
		}
		if !strings.HasPrefix(got, want) || (a.what == "env" && got != want) {
			t.Errorf("%s %s: the guest got %q, want %q", a.what, a.arg, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "written")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the guest's write reached the host's file system: %v", err)
	}
	// A connection the guest opened would be waiting to be accepted.
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(200 * time.Millisecond))
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Error("the guest connected to the host's listener")
	}
}
