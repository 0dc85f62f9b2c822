package state

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by calls made after DB.Close has begun.
	ErrClosed = errors.New("streamrt: state db closed")

	// ErrStoreName is returned for a store name that is empty or longer than
	// 255 bytes, and for a zero Keyspace.
	ErrStoreName = errors.New("streamrt: invalid store name")

	// ErrPartition is returned for a negative partition.
	ErrPartition = errors.New("streamrt: invalid partition")

	// ErrCheckpoint is returned by Txn.SetOffset and DB.Offset for a group or
	// topic that cannot be encoded, or a negative offset.
	ErrCheckpoint = errors.New("streamrt: invalid checkpoint")

	// ErrTxnDone is returned by calls on a Txn after Commit or Discard, and
	// on a Load after Close.
	ErrTxnDone = errors.New("streamrt: transaction already committed or discarded")

	// ErrInvalidMark is returned by Txn.RollbackTo for a mark taken from another
	// Txn or discarded by an earlier rollback to a point before it.
	ErrInvalidMark = errors.New("streamrt: invalid rollback mark")

	// ErrIterInvalidated is returned by Iter.Close when the iterator's Txn was
	// rolled back, committed or discarded while the iterator was open.
	ErrIterInvalidated = errors.New("streamrt: iterator invalidated by rollback, commit or discard")

	// ErrWriteOnly is returned by the reads and rollbacks of a Txn from
	// DB.NewWriteTxn.
	ErrWriteOnly = errors.New("streamrt: read or rollback on a write-only transaction")

	// ErrCorrupt is returned when a stored value cannot be decoded.
	ErrCorrupt = errors.New("streamrt: corrupt state")
)

// CorruptError is Open's refusal of a database whose files are damaged or
// missing. It wraps ErrCorrupt and Pebble's error.
type CorruptError struct {
	Dir string
	Err error // Pebble's
	// MovedTo is where Open moved the database under Rebuild; "" when it
	// did not.
	MovedTo string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("open state db %q: it is corrupt: %v", e.Dir, e.Err)
}

func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }
