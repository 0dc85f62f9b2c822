package state

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Snapshot is the committed state at one moment: reads through it see
// neither the commits made after it was taken nor half of one. A watch uses
// it to read a value and the changelog position it reflects together.
type Snapshot struct {
	db   *DB
	snap *pebble.Snapshot
}

// NewSnapshot takes a snapshot of the committed state. Close releases it.
func (db *DB) NewSnapshot() (*Snapshot, error) {
	if err := db.acquire(); err != nil {
		return nil, err
	}
	return &Snapshot{db: db, snap: db.pdb.NewSnapshot()}, nil
}

// Get returns a copy of the value of key in ks as of the snapshot.
func (s *Snapshot) Get(ks Keyspace, key []byte) (value []byte, found bool, err error) {
	if err := ks.check(); err != nil {
		return nil, false, err
	}
	v, closer, err := s.snap.Get(ks.appendKey(nil, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get %v: %w", ks, err)
	}
	value = append([]byte(nil), v...)
	if err := closer.Close(); err != nil {
		return nil, false, fmt.Errorf("get %v: %w", ks, err)
	}
	return value, true, nil
}

// Scan is DB.Scan as of the snapshot.
func (s *Snapshot) Scan(ks Keyspace, start, end []byte, limit int, fn func(key, value []byte) error) error {
	if err := ks.check(); err != nil {
		return err
	}
	return scan(s.snap, ks, start, end, limit, fn)
}

// Offset is DB.Offset as of the snapshot.
func (s *Snapshot) Offset(group, topic string, partition int32) (next int64, found bool, err error) {
	return offset(s.snap, group, topic, partition)
}

// Close releases the snapshot. Closing again does nothing.
func (s *Snapshot) Close() {
	if s.snap == nil {
		return
	}
	_ = s.snap.Close() // a snapshot's close only releases its sequence number
	s.snap = nil
	s.db.release()
}
