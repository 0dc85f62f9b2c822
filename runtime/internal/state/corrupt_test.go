package state

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A database whose files are damaged or missing is refused with a
// *CorruptError under Refuse, and under Rebuild moved aside, whole, to a
// sibling directory named in a Warn log line, with an empty database
// opened in its place.
func TestOpenCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string) // applied to each file
	}{
		{"manifest truncated", func(t *testing.T, p string) {
			if isManifest(p) {
				mustOK(t, os.Truncate(p, 0))
			}
		}},
		{"manifest garbled", func(t *testing.T, p string) {
			if isManifest(p) {
				b, err := os.ReadFile(p)
				mustOK(t, err)
				for i := 8; i < len(b); i += 5 {
					b[i] ^= 0xa5
				}
				mustOK(t, os.WriteFile(p, b, 0o644))
			}
		}},
		{"manifest missing", func(t *testing.T, p string) {
			if isManifest(p) {
				mustOK(t, os.Remove(p))
			}
		}},
		{"table missing", func(t *testing.T, p string) {
			if strings.HasSuffix(p, ".sst") {
				mustOK(t, os.Remove(p))
			}
		}},
		{"table short", func(t *testing.T, p string) {
			if strings.HasSuffix(p, ".sst") {
				fi, err := os.Stat(p)
				mustOK(t, err)
				mustOK(t, os.Truncate(p, fi.Size()/2))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			damaged(t, dir, tc.damage)

			_, err := Open(dir, Options{})
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.Dir != dir || ce.MovedTo != "" {
				t.Fatalf("Open under Refuse: %v, want a *CorruptError for %s", err, dir)
			}

			var log bytes.Buffer
			at := time.Date(2026, 12, 3, 18, 4, 5, 0, time.UTC)
			db, err := Open(dir, Options{Recovery: Rebuild, Logger: slog.New(slog.NewTextHandler(&log, nil)), now: func() time.Time { return at }})
			mustOK(t, err)
			defer db.Close()
			ks := mustKeyspace(t, db, "counts", 1)
			if got := scanAll(t, db, ks, nil, nil, 0); len(got) != 0 {
				t.Errorf("rebuilt database holds %v, want nothing", got)
			}
			aside := dir + ".corrupt-20261203T180405Z"
			if _, err := os.Stat(filepath.Join(aside, "OPTIONS-000003")); err != nil {
				t.Errorf("the corrupt database is not kept at %s: %v", aside, err)
			}
			if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), aside) {
				t.Errorf("log %q does not warn of %s", log.String(), aside)
			}

			// A second corruption in the same second gets a name of its
			// own, and only the latest copy is kept.
			mustOK(t, db.Close())
			damaged(t, dir, tc.damage)
			db, err = Open(dir, Options{Recovery: Rebuild, now: func() time.Time { return at }})
			mustOK(t, err)
			if _, err := os.Stat(aside + "-2"); err != nil {
				t.Errorf("second corrupt copy: %v", err)
			}
			if _, err := os.Stat(aside); !os.IsNotExist(err) {
				t.Errorf("first corrupt copy still there: %v", err)
			}
		})
	}
}

func isManifest(p string) bool { return strings.HasPrefix(filepath.Base(p), "MANIFEST-") }

// damaged writes a database in dir, with a flushed table and a WAL, closes
// it and applies damage to each of its files.
func damaged(t *testing.T, dir string, damage func(t *testing.T, path string)) {
	t.Helper()
	mustOK(t, os.RemoveAll(dir))
	db, err := Open(dir, Options{})
	mustOK(t, err)
	ks := mustKeyspace(t, db, "counts", 1)
	put(t, db, ks, "a", "1", "b", "2")
	mustOK(t, db.pdb.Flush())
	put(t, db, ks, "c", "3")
	mustOK(t, db.Close())
	entries, err := os.ReadDir(dir)
	mustOK(t, err)
	for _, e := range entries {
		if !e.IsDir() {
			damage(t, filepath.Join(dir, e.Name()))
		}
	}
}
