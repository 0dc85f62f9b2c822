package assign

import (
	"encoding/binary"
	"math"
	"slices"
)

// Versions of the two UserData encodings this build writes and the newest it
// decodes. See the package documentation for the layouts and the rule for
// adding fields.
const (
	metadataVersion   byte = 1
	assignmentVersion byte = 1
)

const (
	kindMetadata   = "member metadata"
	kindAssignment = "assignment"
)

// memberMeta is what a member advertises in its JoinGroup UserData.
type memberMeta struct {
	addr string
	// standby lists partitions whose state the member keeps warm without
	// owning them, for standby-aware assignment later. v1 writers leave it
	// empty.
	standby map[string][]int32
}

func appendMemberMeta(dst []byte, m memberMeta) []byte {
	dst = append(dst, metadataVersion)
	dst = appendString(dst, m.addr)
	topics := listedTopics(m.standby)
	dst = binary.AppendUvarint(dst, uint64(len(topics)))
	for _, t := range topics {
		dst = appendString(dst, t)
		dst = appendPartitions(dst, m.standby[t])
	}
	return dst
}

func decodeMemberMeta(b []byte) (memberMeta, error) {
	r := reader{kind: kindMetadata, b: b}
	var m memberMeta
	if err := r.version(metadataVersion); err != nil {
		return m, err
	}
	m.addr = r.string("query address", true)
	n := r.count("standby topics")
	var prev string
	for i := 0; i < n && r.err == nil; i++ {
		t := r.string("topic", false)
		if i > 0 && t <= prev {
			r.fail("standby topics not in increasing order")
		}
		prev = t
		ps := r.partitions()
		if r.err == nil {
			if m.standby == nil {
				m.standby = make(map[string][]int32, n)
			}
			m.standby[t] = ps
		}
	}
	if err := r.done(); err != nil {
		return memberMeta{}, err
	}
	return m, nil
}

// appendAssignment encodes the group's whole assignment as received by
// members[self]. members must be sorted by ID with distinct IDs, and their
// partition lists sorted without duplicates.
func appendAssignment(dst []byte, generation int32, self int, members []Member) []byte {
	return append(appendAssignmentHeader(dst, generation, self), assignmentBody(members)...)
}

// appendAssignmentHeader writes the part of an assignment that differs
// between recipients; assignmentBody, the rest, is the same for all.
func appendAssignmentHeader(dst []byte, generation int32, self int) []byte {
	dst = append(dst, assignmentVersion)
	dst = binary.AppendVarint(dst, int64(generation))
	return binary.AppendUvarint(dst, uint64(self))
}

func assignmentBody(members []Member) []byte {
	var topics []string
	for _, m := range members {
		topics = append(topics, listedTopics(m.Partitions)...)
		topics = append(topics, listedTopics(m.Standbys)...)
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)
	index := make(map[string]uint64, len(topics))

	dst := binary.AppendUvarint(nil, uint64(len(topics)))
	for i, t := range topics {
		index[t] = uint64(i)
		dst = appendString(dst, t)
	}
	dst = binary.AppendUvarint(dst, uint64(len(members)))
	for _, m := range members {
		dst = appendString(dst, m.ID)
		dst = appendString(dst, m.Addr)
		dst = appendIndexedPartitions(dst, index, m.Partitions)
		dst = appendIndexedPartitions(dst, index, m.Standbys)
	}
	return dst
}

func appendIndexedPartitions(dst []byte, index map[string]uint64, tps map[string][]int32) []byte {
	topics := listedTopics(tps)
	dst = binary.AppendUvarint(dst, uint64(len(topics)))
	for _, t := range topics {
		dst = binary.AppendUvarint(dst, index[t])
		dst = appendPartitions(dst, tps[t])
	}
	return dst
}

func decodeAssignment(b []byte) (*assignment, error) {
	r := reader{kind: kindAssignment, b: b}
	if err := r.version(assignmentVersion); err != nil {
		return nil, err
	}
	a := &assignment{owners: map[topicPartition]int{}}
	gen := r.varint()
	if r.err == nil && (gen < math.MinInt32 || gen > math.MaxInt32) {
		r.fail("generation %d out of range", gen)
	}
	a.generation = int32(gen)
	self := r.uvarint()

	topics := make([]string, r.count("topics"))
	for i := range topics {
		topics[i] = r.string("topic", false)
		if r.err == nil && i > 0 && topics[i] <= topics[i-1] {
			r.fail("topics not in increasing order")
		}
		if r.err != nil {
			return nil, r.err
		}
	}

	n := r.count("members")
	if r.err == nil && n == 0 {
		r.fail("no members")
	}
	if r.err == nil && self >= uint64(n) {
		r.fail("recipient index %d out of %d members", self, n)
	}
	a.self = int(self)
	a.members = make([]Member, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		m := Member{ID: r.string("member id", false), Addr: r.string("query address", true)}
		if r.err == nil && i > 0 && m.ID <= a.members[i-1].ID {
			r.fail("members not in increasing order of id")
		}
		m.Partitions = r.indexedPartitions(topics)
		m.Standbys = r.indexedPartitions(topics)
		for t, ps := range m.Partitions {
			for _, p := range ps {
				tp := topicPartition{t, p}
				if other, dup := a.owners[tp]; dup && r.err == nil {
					r.fail("%s/%d assigned to both %q and %q", t, p, a.members[other].ID, m.ID)
				}
				a.owners[tp] = i
			}
		}
		a.members = append(a.members, m)
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return a, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendPartitions writes a non-empty, strictly increasing list as its length,
// its first partition and the gaps between neighbours, so that dense lists
// take about a byte a partition.
func appendPartitions(dst []byte, ps []int32) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ps)))
	prev := int32(0)
	for i, p := range ps {
		if i == 0 {
			dst = binary.AppendUvarint(dst, uint64(p))
		} else {
			dst = binary.AppendUvarint(dst, uint64(p-prev))
		}
		prev = p
	}
	return dst
}

// reader decodes the primitives of both encodings. The first failure sticks:
// later reads return zero values, and done reports it.
type reader struct {
	kind string
	b    []byte
	err  error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = malformed(r.kind, format, args...)
	}
}

func (r *reader) version(newest byte) error {
	if len(r.b) == 0 {
		r.fail("empty")
		return r.err
	}
	v := r.b[0]
	r.b = r.b[1:]
	switch {
	case v == 0:
		r.fail("version 0 is not a valid version")
	case v > newest:
		r.err = &VersionError{Kind: r.kind, Version: v, Supported: newest}
	}
	return r.err
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("truncated or overlong varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("truncated or overlong varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads an element count, bounded by the bytes left (every element
// takes at least one), so that garbage cannot make the decoder allocate.
func (r *reader) count(what string) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.fail("%s count %d exceeds the %d bytes left", what, n, len(r.b))
		return 0
	}
	return int(n)
}

func (r *reader) string(what string, emptyOK bool) string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.fail("%s length %d exceeds the %d bytes left", what, n, len(r.b))
		return ""
	}
	if n == 0 && !emptyOK {
		r.fail("empty %s", what)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) partitions() []int32 {
	n := r.count("partitions")
	if r.err == nil && n == 0 {
		r.fail("empty partition list")
	}
	if r.err != nil {
		return nil
	}
	ps := make([]int32, 0, n)
	var prev uint64
	for i := 0; i < n; i++ {
		v := r.uvarint()
		if r.err != nil {
			return nil
		}
		if i > 0 {
			if v == 0 {
				r.fail("partitions not in increasing order")
				return nil
			}
			v += prev
		}
		if v > math.MaxInt32 {
			r.fail("partition out of range")
			return nil
		}
		ps = append(ps, int32(v))
		prev = v
	}
	return ps
}

func (r *reader) indexedPartitions(topics []string) map[string][]int32 {
	n := r.count("topic entries")
	var m map[string][]int32
	prev := -1
	for i := 0; i < n && r.err == nil; i++ {
		idx := r.uvarint()
		if r.err != nil {
			break
		}
		if idx >= uint64(len(topics)) || int(idx) <= prev {
			r.fail("topic index %d out of range or order", idx)
			break
		}
		prev = int(idx)
		ps := r.partitions()
		if r.err == nil {
			if m == nil {
				m = make(map[string][]int32, n)
			}
			m[topics[idx]] = ps
		}
	}
	return m
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) > 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

// listedTopics returns the topics of tps that have partitions, sorted: the
// encodings have no way to say "a topic with no partitions".
func listedTopics(tps map[string][]int32) []string {
	keys := make([]string, 0, len(tps))
	for k, ps := range tps {
		if len(ps) > 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
