package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestKeyspaceValidation(t *testing.T) {
	db := openMem(t)
	tests := []struct {
		name      string
		store     string
		partition int32
		wantErr   error
	}{
		{"one byte", "a", 0, nil},
		{"max length", strings.Repeat("s", 255), 7, nil},
		{"max partition", "s", 1<<31 - 1, nil},
		{"empty store", "", 0, ErrStoreName},
		{"store too long", strings.Repeat("s", 256), 0, ErrStoreName},
		{"negative partition", "s", -1, ErrPartition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := db.Keyspace(tt.store, tt.partition)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Keyspace(%q, %d) error = %v, want %v", tt.store, tt.partition, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if ks.Store() != tt.store || ks.Partition() != tt.partition {
				t.Errorf("Keyspace(%q, %d) = (%q, %d)", tt.store, tt.partition, ks.Store(), ks.Partition())
			}
		})
	}
}

func TestZeroKeyspaceRejected(t *testing.T) {
	db := openMem(t)
	var zero Keyspace
	if _, _, err := db.Get(zero, []byte("k")); !errors.Is(err, ErrStoreName) {
		t.Errorf("DB.Get(zero) error = %v, want ErrStoreName", err)
	}
	if err := db.Scan(zero, nil, nil, 0, func(k, v []byte) error { return nil }); !errors.Is(err, ErrStoreName) {
		t.Errorf("DB.Scan(zero) error = %v, want ErrStoreName", err)
	}
	tx := db.NewTxn()
	defer tx.Discard()
	if err := tx.Put(zero, []byte("k"), []byte("v")); !errors.Is(err, ErrStoreName) {
		t.Errorf("Txn.Put(zero) error = %v, want ErrStoreName", err)
	}
	if _, err := tx.NewIter(zero, nil, nil); !errors.Is(err, ErrStoreName) {
		t.Errorf("Txn.NewIter(zero) error = %v, want ErrStoreName", err)
	}
}

// TestLayoutIsolation writes the same and look-alike keys into neighbouring
// keyspaces and checks that each keyspace sees only its own.
func TestLayoutIsolation(t *testing.T) {
	// Without the length byte, store "a" partition 0x62000000 key "\x00xyz"
	// and store "ab" partition 0 key "xyz" would be the same bytes.
	if a, ab := "a"+be32(0x62000000)+"\x00xyz", "ab"+be32(0)+"xyz"; a != ab {
		t.Fatalf("test premise: %q != %q", a, ab)
	}

	type entry struct {
		store     string
		partition int32
		key, val  string
	}
	entries := []entry{
		{"s", 0, "k", "s0"},
		{"s", 1, "k", "s1"},
		{"s", 2, "", "s2-empty-key"},
		{"t", 0, "k", "t0"},
		{"a", 0x62000000, "\x00xyz", "a"},
		{"ab", 0, "xyz", "ab"},
	}
	db := openMem(t)
	tx := db.NewTxn()
	for _, e := range entries {
		mustOK(t, tx.Put(mustKeyspace(t, db, e.store, e.partition), []byte(e.key), []byte(e.val)))
	}
	mustOK(t, tx.SetOffset("g", "s", 0, 7))
	mustOK(t, tx.Commit())

	lookups := []struct {
		store     string
		partition int32
		key       string
		want      string // "" means not found
	}{
		{"s", 0, "k", "s0"},
		{"s", 1, "k", "s1"},
		{"s", 2, "", "s2-empty-key"},
		{"s", 3, "k", ""},
		{"t", 0, "k", "t0"},
		{"t", 1, "k", ""},
		{"a", 0x62000000, "\x00xyz", "a"},
		{"a", 0x62000000, "xyz", ""},
		{"ab", 0, "xyz", "ab"},
		{"ab", 0, "\x00xyz", ""},
		{"a", 0, "bxyz", ""},
	}
	for _, l := range lookups {
		got, found, err := db.Get(mustKeyspace(t, db, l.store, l.partition), []byte(l.key))
		mustOK(t, err)
		if found != (l.want != "") || string(got) != l.want {
			t.Errorf("Get(%q, %d, %q) = %q, %v; want %q", l.store, l.partition, l.key, got, found, l.want)
		}
	}

	// A whole-keyspace scan sees exactly the entries written to it.
	for _, e := range entries {
		ks := mustKeyspace(t, db, e.store, e.partition)
		got := scanAll(t, db, ks, nil, nil, 0)
		if want := []string{e.key + "=" + e.val}; !slices.Equal(got, want) {
			t.Errorf("Scan(%v) = %q, want %q", ks, got, want)
		}
	}
}

func FuzzFullKeyInjective(f *testing.F) {
	f.Add("a", int32(0x62000000), []byte("\x00xyz"), "ab", int32(0), []byte("xyz"))
	f.Add("s", int32(0), []byte("k"), "s", int32(1), []byte("k"))
	f.Add("s", int32(1<<31-1), []byte{}, "s\x00", int32(0), []byte{0xff})
	f.Fuzz(func(t *testing.T, s1 string, p1 int32, k1 []byte, s2 string, p2 int32, k2 []byte) {
		ks1, err1 := newKeyspace(s1, p1)
		ks2, err2 := newKeyspace(s2, p2)
		if err1 != nil || err2 != nil {
			return
		}
		full1, full2 := ks1.appendKey(nil, k1), ks2.appendKey(nil, k2)
		same := s1 == s2 && p1 == p2 && bytes.Equal(k1, k2)
		if bytes.Equal(full1, full2) != same {
			t.Fatalf("(%q,%d,%q) and (%q,%d,%q): full keys equal = %v", s1, p1, k1, s2, p2, k2, !same)
		}
		lower, upper := ks1.bounds(nil, nil)
		in := bytes.Compare(full2, lower) >= 0 && bytes.Compare(full2, upper) < 0
		if in != (ks1 == ks2) {
			t.Fatalf("key of %v within bounds of %v = %v", ks2, ks1, in)
		}
		if ks1.Store() != s1 || ks1.Partition() != p1 {
			t.Fatalf("Keyspace(%q, %d) = (%q, %d)", s1, p1, ks1.Store(), ks1.Partition())
		}
	})
}

func TestOffsetKeyValidation(t *testing.T) {
	db := openMem(t)
	tests := []struct {
		name      string
		group     string
		topic     string
		partition int32
		next      int64
		wantErr   error
	}{
		{"plain", "g", "t", 0, 0, nil},
		{"empty group", "", "changelog", 3, 42, nil},
		{"max lengths", strings.Repeat("g", 65535), strings.Repeat("t", 65535), 1, 1, nil},
		{"empty topic", "g", "", 0, 0, ErrCheckpoint},
		{"group too long", strings.Repeat("g", 65536), "t", 0, 0, ErrCheckpoint},
		{"topic too long", "g", strings.Repeat("t", 65536), 0, 0, ErrCheckpoint},
		{"negative partition", "g", "t", -1, 0, ErrCheckpoint},
		{"negative offset", "g", "t", 0, -1, ErrCheckpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx := db.NewTxn()
			defer tx.Discard()
			if err := tx.SetOffset(tt.group, tt.topic, tt.partition, tt.next); !errors.Is(err, tt.wantErr) {
				t.Fatalf("SetOffset error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			mustOK(t, tx.Commit())
			got, found, err := db.Offset(tt.group, tt.topic, tt.partition)
			if err != nil || !found || got != tt.next {
				t.Fatalf("Offset = %d, %v, %v; want %d", got, found, err, tt.next)
			}
		})
	}
}

func be32(v uint32) string { return string(binary.BigEndian.AppendUint32(nil, v)) }
