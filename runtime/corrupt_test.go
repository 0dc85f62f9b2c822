package runtime_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
	"github.com/streamrt/streamrt/runtime/internal/state"
)

// An instance whose state does not open because its current MANIFEST is
// truncated moves the state aside, says where at WARN, and restores its
// stores from the changelogs: it serves the counts it served before. Under
// state_recovery: refuse it does not start, and says what to do.
func TestCorruptStateIsRebuiltFromChangelog(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}, stateDir: stateDir}
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("page-%d", i)
	}

	a := startApp(t, spec)
	a.waitReady()
	produce(t, brokers, in, clicks(keys, 3)...)
	if got := testkafka.ReadAll(t, brokers, out, 60, 60*time.Second); len(got) != 60 {
		t.Fatalf("%d outputs, want 60", len(got))
	}
	counts(t, a, keys, 3)
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(stateDir, "state")
	truncateManifest(t, db)

	refusing := spec
	refusing.extra = "state_recovery: refuse\n"
	r := startApp(t, refusing)
	select {
	case err := <-r.done:
		r.cancel = nil
		if err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), db) || !strings.Contains(err.Error(), "state_recovery: rebuild") {
			t.Fatalf("refusing instance stopped with %v, want an error naming %s and what to do", err, db)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an instance with state_recovery: refuse started on corrupt state")
	}

	b := startApp(t, spec)
	b.waitReady()
	counts(t, b, keys, 3)
	if n := restoredRecords(t, b, "counts"); n < len(keys) {
		t.Errorf("restored %d changelog records, want at least %d", n, len(keys))
	}
	m := regexp.MustCompile(`level=WARN msg="state db is corrupt[^"]*".* moved_to=(\S+)`).FindStringSubmatch(b.log.String())
	if m == nil {
		t.Fatalf("no WARN naming where the corrupt state went in the log:\n%s", b.log.String())
	}
	aside := strings.Trim(m[1], `"`)
	if !strings.HasPrefix(aside, db+".corrupt-") {
		t.Errorf("corrupt state moved to %s, want a sibling of %s", aside, db)
	}
	if manifests, _ := filepath.Glob(filepath.Join(aside, "MANIFEST-*")); len(manifests) == 0 {
		t.Errorf("the corrupt copy at %s has no MANIFEST", aside)
	}
	// Counting goes on from the restored counts.
	produce(t, brokers, in, clicks(keys, 1)...)
	counts(t, b, keys, 4)
}

// truncateManifest cuts the current MANIFEST of the Pebble database in dir
// to a few bytes, inside its first record.
func truncateManifest(t *testing.T, dir string) {
	t.Helper()
	markers, err := filepath.Glob(filepath.Join(dir, "marker.manifest.*"))
	if err != nil || len(markers) != 1 {
		t.Fatalf("manifest markers in %s: %v %v", dir, markers, err)
	}
	// The marker's name ends with the current MANIFEST's.
	name := markers[0][strings.LastIndex(markers[0], "MANIFEST-"):]
	if err := os.Truncate(filepath.Join(dir, name), 5); err != nil {
		t.Fatal(err)
	}
}

// A table of the state that fails its checksum when it is read does not
// bring the process down (Pebble's default is to panic): the instance stops
// with an error that says the state is corrupt, and, started again, moves
// the state aside and restores it from the changelogs.
func TestCorruptTableIsRebuiltAtTheNextStart(t *testing.T) {
	brokers := testkafka.Brokers(t)
	appName, in, out := names(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	spec := appSpec{brokers: brokers, app: appName, in: in, out: out, module: guesttest.Dir("counter"), stores: []string{"counts"}, stateDir: stateDir}
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	a := startApp(t, spec)
	a.waitReady()
	produce(t, brokers, in, clicks(keys, 1)...)
	counts(t, a, keys, 1)
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	// Opening the state again flushes what its WAL holds into a table.
	db := filepath.Join(stateDir, "state")
	sdb, err := state.Open(db, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	tables, _ := filepath.Glob(filepath.Join(db, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table in the state")
	}
	for _, p := range tables {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(b)/3; i++ {
			b[i] ^= 0x5a
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	b := startApp(t, spec)
	select {
	case err := <-b.done:
		b.cancel = nil
		if err == nil || !strings.Contains(err.Error(), "local state is corrupt") || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Fatalf("instance stopped with %v, want the corrupt state named", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the instance did not stop on its corrupt state")
	}

	c := startApp(t, spec)
	c.waitReady()
	counts(t, c, keys, 1)
	if !strings.Contains(c.log.String(), "corruption found while it ran") {
		t.Error("the restarted instance does not say why it rebuilt the state")
	}
	aside, _ := filepath.Glob(db + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("corrupt copies: %v, want one", aside)
	}
	if _, err := os.Stat(filepath.Join(aside[0], "DAMAGED")); err != nil {
		t.Errorf("the corrupt copy does not say what was found: %v", err)
	}
	produce(t, brokers, in, clicks(keys, 1)...)
	counts(t, c, keys, 2)
}
