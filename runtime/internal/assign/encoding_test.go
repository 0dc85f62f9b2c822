package assign

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func TestMemberMetaRoundTrip(t *testing.T) {
	tests := []memberMeta{
		{},
		{addr: "10.0.0.1:8080"},
		{addr: "[::1]:9", standby: map[string][]int32{"orders": {0, 3, 200000}, "products": {7}}},
	}
	for _, m := range tests {
		b := appendMemberMeta(nil, m)
		if b[0] != metadataVersion {
			t.Fatalf("version byte %d", b[0])
		}
		got, err := decodeMemberMeta(b)
		if err != nil {
			t.Fatalf("decode %+v: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func TestAssignmentRoundTrip(t *testing.T) {
	members := []Member{
		{ID: "a", Addr: "h1:1", Partitions: map[string][]int32{"x": {0, 1, 5}, "y": {0, 1, 5}}},
		{ID: "b", Addr: "", Partitions: map[string][]int32{"x": {2, 3}, "z": {1 << 30}}, Standbys: map[string][]int32{"x": {0}}},
		{ID: "c", Addr: "h3:3"},
	}
	for _, gen := range []int32{-1, 0, 7, 1<<31 - 1} {
		for self := range members {
			b := appendAssignment(nil, gen, self, members)
			if b[0] != assignmentVersion {
				t.Fatalf("version byte %d", b[0])
			}
			a, err := decodeAssignment(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if a.generation != gen || a.self != self || !reflect.DeepEqual(a.members, members) {
				t.Fatalf("round trip: got gen %d self %d %+v", a.generation, a.self, a.members)
			}
			s := Assignment{a: a}
			if addr, ok := s.Owner("x", 5); !ok || addr != "h1:1" {
				t.Fatalf("Owner(x, 5) = %q, %v", addr, ok)
			}
			if id, ok := s.OwnerID("z", 1<<30); !ok || id != "b" {
				t.Fatalf("OwnerID(z, 1<<30) = %q, %v", id, ok)
			}
			if _, ok := s.Owner("x", 4); ok {
				t.Fatal("Owner(x, 4) found an owner")
			}
			if me, _ := s.Self(); me.ID != members[self].ID {
				t.Fatalf("Self = %q, want %q", me.ID, members[self].ID)
			}
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := appendAssignment(nil, 3, 0, []Member{{ID: "a", Partitions: map[string][]int32{"t": {1, 2}}}})
	uv := func(vs ...uint64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.AppendUvarint(b, v)
		}
		return b
	}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	str := func(s string) []byte { return appendString(nil, s) }
	// header: version 1, generation 0, self 0, one topic "t"
	hdr := cat([]byte{1}, binary.AppendVarint(nil, 0), uv(0), uv(1), str("t"))

	tests := []struct {
		name    string
		decode  func([]byte) error
		in      []byte
		version bool // want a *VersionError rather than ErrMalformed
	}{
		{"meta empty", decodeMeta, nil, false},
		{"meta version 0", decodeMeta, []byte{0, 0, 0}, false},
		{"meta newer version", decodeMeta, []byte{2, 0, 0}, true},
		{"meta truncated", decodeMeta, []byte{1, 5, 'a'}, false},
		{"meta trailing", decodeMeta, []byte{1, 0, 0, 9}, false},
		{"meta unsorted standby", decodeMeta, cat([]byte{1}, str(""), uv(2), str("b"), uv(1, 0), str("a"), uv(1, 0)), false},
		{"meta empty partition list", decodeMeta, cat([]byte{1}, str(""), uv(1), str("a"), uv(0)), false},
		{"meta huge count", decodeMeta, cat([]byte{1}, str(""), uv(1<<40)), false},
		{"assignment empty", decodeAsn, nil, false},
		{"assignment newer version", decodeAsn, append([]byte{9}, valid[1:]...), true},
		{"assignment trailing", decodeAsn, append(valid, 0), false},
		{"assignment no members", decodeAsn, cat(hdr, uv(0)), false},
		{"assignment self out of range", decodeAsn, cat([]byte{1}, binary.AppendVarint(nil, 0), uv(1), uv(0), uv(1), str("a"), str(""), uv(0), uv(0)), false},
		{"assignment unsorted members", decodeAsn, cat(hdr, uv(2), str("b"), str(""), uv(0), uv(0), str("a"), str(""), uv(0), uv(0)), false},
		{"assignment empty member id", decodeAsn, cat(hdr, uv(1), str(""), str(""), uv(0), uv(0)), false},
		{"assignment topic index out of range", decodeAsn, cat(hdr, uv(1), str("a"), str(""), uv(1, 1, 1, 0), uv(0)), false},
		{"assignment partition twice", decodeAsn, cat(hdr, uv(2), str("a"), str(""), uv(1, 0, 1, 4), uv(0), str("b"), str(""), uv(1, 0, 1, 4), uv(0)), false},
		{"assignment unsorted partitions", decodeAsn, cat(hdr, uv(1), str("a"), str(""), uv(1, 0, 2, 4, 0), uv(0)), false},
		{"assignment partition overflow", decodeAsn, cat(hdr, uv(1), str("a"), str(""), uv(1, 0, 2, 1<<31-1, 1), uv(0)), false},
		{"assignment generation overflow", decodeAsn, cat([]byte{1}, binary.AppendVarint(nil, 1<<40), uv(0, 0, 1), str("a"), str(""), uv(0), uv(0)), false},
		{"assignment overlong varint", decodeAsn, cat([]byte{1}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode(tt.in)
			if err == nil {
				t.Fatal("decoded without error")
			}
			var ve *VersionError
			if tt.version != errors.As(err, &ve) || tt.version != errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("error %v: want version error = %v", err, tt.version)
			}
			if !tt.version && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
		})
	}
	if _, err := decodeAssignment(valid); err != nil {
		t.Fatalf("valid input rejected: %v", err)
	}
}

func decodeMeta(b []byte) error { _, err := decodeMemberMeta(b); return err }
func decodeAsn(b []byte) error  { _, err := decodeAssignment(b); return err }

func FuzzDecodeMemberMeta(f *testing.F) {
	f.Add(appendMemberMeta(nil, memberMeta{addr: "h:1"}))
	f.Add(appendMemberMeta(nil, memberMeta{addr: "h:1", standby: map[string][]int32{"a": {1, 9}, "b": {0}}}))
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMemberMeta(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		again, err := decodeMemberMeta(appendMemberMeta(nil, m))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("re-encoding %+v: %+v, %v", m, again, err)
		}
	})
}

func FuzzDecodeAssignment(f *testing.F) {
	f.Add(appendAssignment(nil, 4, 1, []Member{
		{ID: "a", Addr: "h1:1", Partitions: map[string][]int32{"x": {0, 2}, "y": {0, 2}}},
		{ID: "b", Addr: "h2:1", Partitions: map[string][]int32{"x": {1}}, Standbys: map[string][]int32{"y": {1}}},
	}))
	f.Add(appendAssignment(nil, -1, 0, []Member{{ID: "solo"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAssignment(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		again, err := decodeAssignment(appendAssignment(nil, a.generation, a.self, a.members))
		if err != nil || !reflect.DeepEqual(again, a) {
			t.Fatalf("re-encoding %+v: %+v, %v", a, again, err)
		}
	})
}

func FuzzParseSyncAssignment(f *testing.F) {
	b := New(Config{})
	for _, in := range syncAssignments(f) {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		assigned, err := b.ParseSyncAssignment(in)
		if err != nil {
			return
		}
		self, ok := b.Snapshot().Self()
		if !ok || !equalTPs(assigned, self.Partitions) {
			t.Fatalf("parsed %v but the snapshot says %+v", assigned, self)
		}
	})
}
