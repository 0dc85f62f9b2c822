package state

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Leading bytes of the key families; see the package doc for the layout.
const (
	tagData byte = 0x01
	tagMeta byte = 0x02

	metaOffset byte = 0x01
)

const (
	maxStoreName      = math.MaxUint8
	maxCheckpointName = math.MaxUint16
)

// Keyspace is the key prefix of one (store, partition), computed once so that
// the hot path only appends the user key to it.
//
// A Keyspace is an immutable value, safe to share between goroutines and
// comparable, so it can key a map. The zero Keyspace is invalid: calls given
// one return ErrStoreName.
type Keyspace struct {
	// prefix is tagData | u8 len(store) | store | u32be partition, held as a
	// string so the value is immutable and comparable.
	prefix string
}

// Keyspace returns the keyspace of partition of store. It returns ErrStoreName
// if store is empty or longer than 255 bytes, and ErrPartition if partition is
// negative.
func (db *DB) Keyspace(store string, partition int32) (Keyspace, error) {
	return newKeyspace(store, partition)
}

func newKeyspace(store string, partition int32) (Keyspace, error) {
	if len(store) == 0 || len(store) > maxStoreName {
		return Keyspace{}, fmt.Errorf("%w: store %q is %d bytes, want 1..%d", ErrStoreName, store, len(store), maxStoreName)
	}
	if partition < 0 {
		return Keyspace{}, fmt.Errorf("%w: store %q partition %d is negative", ErrPartition, store, partition)
	}
	b := make([]byte, 0, 2+len(store)+4)
	b = append(b, tagData, byte(len(store)))
	b = append(b, store...)
	b = binary.BigEndian.AppendUint32(b, uint32(partition))
	return Keyspace{prefix: string(b)}, nil
}

// Store returns the store name, or "" for the zero Keyspace.
func (ks Keyspace) Store() string {
	if ks.prefix == "" {
		return ""
	}
	return ks.prefix[2 : len(ks.prefix)-4]
}

// Partition returns the partition, or 0 for the zero Keyspace.
func (ks Keyspace) Partition() int32 {
	if ks.prefix == "" {
		return 0
	}
	p := ks.prefix[len(ks.prefix)-4:]
	return int32(uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3]))
}

// String returns "store %q partition %d", the facts every error about a
// keyspace carries.
func (ks Keyspace) String() string {
	return fmt.Sprintf("store %q partition %d", ks.Store(), ks.Partition())
}

func (ks Keyspace) check() error {
	if ks.prefix == "" {
		return fmt.Errorf("%w: zero Keyspace", ErrStoreName)
	}
	return nil
}

// appendKey appends the full Pebble key of userKey in ks to dst.
func (ks Keyspace) appendKey(dst, userKey []byte) []byte {
	dst = append(dst, ks.prefix...)
	return append(dst, userKey...)
}

// bounds returns the Pebble keys bounding user keys in [start, end) in ks; a
// nil start or end leaves that side bounded only by the keyspace. Both bounds
// share one fresh allocation, because Pebble iterators keep them until closed.
// An end at or before start gives an empty range rather than inverted bounds,
// which Pebble rejects.
func (ks Keyspace) bounds(start, end []byte) (lower, upper []byte) {
	n := len(ks.prefix)
	buf := make([]byte, 0, 2*n+len(start)+len(end))
	lower = ks.appendKey(buf, start)
	if end == nil {
		// The next partition's prefix: partition+1 cannot carry into the store
		// bytes because partitions are at most MaxInt32.
		upper = append(lower[len(lower):], ks.prefix...)
		binary.BigEndian.PutUint32(upper[n-4:], uint32(ks.Partition())+1)
	} else {
		upper = ks.appendKey(lower[len(lower):], end)
	}
	if string(upper) < string(lower) {
		upper = lower
	}
	return lower, upper
}

// appendOffsetKey appends the checkpoint key of (group, topic, partition).
func appendOffsetKey(dst []byte, group, topic string, partition int32) ([]byte, error) {
	switch {
	case len(group) > maxCheckpointName:
		return dst, fmt.Errorf("%w: group is %d bytes, want at most %d", ErrCheckpoint, len(group), maxCheckpointName)
	case len(topic) == 0 || len(topic) > maxCheckpointName:
		return dst, fmt.Errorf("%w: topic %q is %d bytes, want 1..%d", ErrCheckpoint, topic, len(topic), maxCheckpointName)
	case partition < 0:
		return dst, fmt.Errorf("%w: topic %q partition %d is negative", ErrCheckpoint, topic, partition)
	}
	dst = append(dst, tagMeta, metaOffset)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(group)))
	dst = append(dst, group...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(topic)))
	dst = append(dst, topic...)
	return binary.BigEndian.AppendUint32(dst, uint32(partition)), nil
}
