// Package state keeps a streamrt instance's local state: every store's
// partitions and the checkpoints that say how far into its inputs that state
// reflects, all in one Pebble database.
//
// One database per instance, not one per store or partition, so that a task's
// batch (writes to several stores plus its input and changelog offsets) commits
// in one atomic Pebble batch, and so that every store shares one block cache,
// one memtable budget and one WAL.
//
// # Key layout
//
// Every key starts with a tag byte that says which family it belongs to.
//
// Data, one family per (store, partition):
//
//	0x01 | u8 len(store) | store | u32be partition | userKey
//
// The length byte makes the prefix self-delimiting: store "a" and store "ab"
// can never produce the same prefix, whatever the partition and user key. With
// the partition fixed-width and big-endian, all of a partition's keys are
// contiguous and sort by user key, so a partition is scanned with one bounded
// iterator and dropped with one DeleteRange. Store names are 1..255 bytes;
// partitions are Kafka partitions, 0..MaxInt32.
//
// Checkpoints (the next input offset to consume):
//
//	0x02 | 0x01 | u16be len(group) | group | u16be len(topic) | topic | u32be partition
//	  → u64be next offset
//
// The second byte names the kind of metadata, leaving room for other kinds.
// Group may be empty, for positions that belong to no consumer group such as a
// changelog's restore point; topic is 1..65535 bytes.
//
// # Reads and writes
//
// DB.Get and DB.Scan read committed data and are safe to call from any
// goroutine, concurrently with commits; the HTTP query server uses them. A
// task's writes go through a Txn: an indexed Pebble batch whose reads see its
// own writes merged over committed data, which commits atomically, and which
// can be rolled back to a Mark when the guest reports that one record failed.
// A restore replaying a changelog goes through a Load instead, which writes
// its changes as sorted sstables for Pebble to ingest.
//
// # Corruption
//
// The database is a cache of the changelogs. One that does not open
// because its files are damaged or missing is refused with a *CorruptError,
// or, under Options.Recovery Rebuild, moved aside whole and replaced by an
// empty one, which the engine restores as it restores a new state
// directory.
package state
