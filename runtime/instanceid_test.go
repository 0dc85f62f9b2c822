package runtime

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamrt/streamrt/runtime/config"
)

// The instance id is made once and kept in the state dir; a file that
// does not hold a valid id is replaced, and the log says so.
func TestStateInstanceIDIsKeptAndACorruptOneReplaced(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	first, err := stateInstanceID(dir, log)
	if err != nil || !config.ValidInstanceID(first) {
		t.Fatalf("first id %q, %v: want a valid id", first, err)
	}
	again, err := stateInstanceID(dir, log)
	if err != nil || again != first {
		t.Fatalf("second read %q, %v: want the kept %q", again, err, first)
	}
	other, _ := stateInstanceID(t.TempDir(), log)
	if other == first {
		t.Errorf("two state dirs got the same id %q", first)
	}
	if logs.Len() != 0 {
		t.Errorf("logged %q for a valid id", logs.String())
	}

	path := filepath.Join(dir, instanceIDFile)
	if err := os.WriteFile(path, []byte("\x00\x01garbage with spaces\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh, err := stateInstanceID(dir, log)
	if err != nil || !config.ValidInstanceID(fresh) || fresh == first {
		t.Fatalf("after corruption: %q, %v: want a new valid id", fresh, err)
	}
	if !strings.Contains(logs.String(), "instance id file is corrupt") || !strings.Contains(logs.String(), path) {
		t.Errorf("log %q does not say the id file at %s was corrupt", logs.String(), path)
	}
	if kept, _ := os.ReadFile(path); strings.TrimSpace(string(kept)) != fresh {
		t.Errorf("the file holds %q, want the new id %q", kept, fresh)
	}
}
