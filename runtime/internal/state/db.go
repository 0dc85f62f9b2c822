package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Pebble settings for many small writes and point reads. The cache and
// memtable budgets are per instance, shared by every store and partition.
const (
	cacheSize = 64 << 20
	// Twice Pebble's default, to absorb more overwrites of hot keys before
	// they are flushed, but no more: every read seeks the memtable skiplist,
	// and in BenchmarkTxnGetPut a get+put cost about three times as much with
	// 32 MiB as with 4 to 16 MiB, once the skiplist outgrew the CPU cache.
	memTableSize = 8 << 20
	// Up to four memtables may queue for flushing before writes stall, so a
	// burst rides over a slow flush instead of blocking commits.
	memTableStopWritesThreshold = 4
	// Point reads dominate (get-then-put per record); a bloom filter lets most
	// lookups of absent keys skip a table without reading its blocks.
	bloomBitsPerKey = 10
)

// Options configures Open. The zero value is usable.
type Options struct {
	// FS is the filesystem Pebble runs on; nil means the operating system's.
	// Tests may pass vfs.NewMem().
	FS vfs.FS

	// Sync makes every commit (Txn.Commit, DropPartition) wait until the WAL
	// is fsynced. Without it a commit survives a crash of the process, since
	// its WAL write has reached the OS, but the latest commits may be lost to
	// an OS crash or power failure. Offsets commit in the same batch as the
	// state they produced, so such a loss rewinds both together and the lost
	// records are consumed again: state is never ahead of or behind its
	// checkpoint, only older.
	Sync bool

	// Logger receives Pebble's log lines, informational ones at Debug and
	// errors at Error. Nil discards them.
	Logger *slog.Logger

	// Recovery says what Open does with a database it finds corrupt.
	Recovery Recovery

	// Reserve is the size of a file of zeros kept beside the database
	// (DIR.reserve), 0 for none. Pebble treats a failed WAL or MANIFEST
	// write as fatal and panics; with a reserve, a write that meets a full
	// disk removes the file and is retried once in the space it held, and
	// OnDiskFull is called. EnsureReserve writes the file again. It
	// needs FS nil: the reserve is a file of the operating system's.
	Reserve int64
	// OnDiskFull is called when a write met a full disk and the reserve
	// was released. It runs while every write of the database waits: it
	// must be quick. Nil for none.
	OnDiskFull func()

	// now stamps the name of a database moved aside; time.Now when nil.
	now func() time.Time
}

// Recovery is what Open does with a database that does not open because
// it is corrupt: a malformed or missing MANIFEST, a table missing, short or
// failing its checksum.
type Recovery int

const (
	// Refuse returns a *CorruptError: the caller decides.
	Refuse Recovery = iota
	// Rebuild moves the database aside, to a sibling directory named
	// DIR.corrupt-TIMESTAMP kept for inspection (the latest one only),
	// logs where at Warn, and
	// opens a fresh, empty one in its place. The caller restores the
	// state from its changelogs, as for a new state directory.
	Rebuild
)

// DB is the state database of one streamrt instance. Its methods are safe for
// concurrent use; a Txn it creates is not.
type DB struct {
	pdb *pebble.DB
	wo  *pebble.WriteOptions

	// fs, ingestPath, writerOpts and ingestSeq serve Load: the directory its
	// tables are written to, how they are written (as Pebble writes L0
	// tables), and a counter naming them.
	fs         vfs.FS
	ingestPath string
	writerOpts sstable.WriterOptions
	ingestSeq  atomic.Uint64

	// reserve is the file Options.Reserve keeps, of reserveLen bytes.
	reserve    string
	reserveLen int64

	// mu guards closed. It is held only to check closed and take a reference
	// in refs, never across a call, so calls may nest (a Scan callback may
	// call Get) without deadlocking against a pending Close.
	mu     sync.RWMutex
	closed bool
	// refs counts in-flight calls and open Txns: Pebble panics when used after
	// Close, so Close waits for them.
	refs sync.WaitGroup
}

// lockHeld reports whether err is Pebble's refusal of a directory whose
// LOCK file another process (or this one) holds.
func lockHeld(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "lock held by current process")
}

// Open opens the state database in dir, creating it if needed. A database
// that is corrupt is refused with a *CorruptError, or moved aside and
// replaced by an empty one, as opts.Recovery says.
func Open(dir string, opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db, err := open(dir, opts, logger)
	var ce *CorruptError
	if !errors.As(err, &ce) || opts.Recovery != Rebuild {
		return db, err
	}
	now := opts.now
	if now == nil {
		now = time.Now
	}
	aside, merr := moveAside(opts.FS, dir, now())
	if merr != nil {
		return nil, fmt.Errorf("%w; moving it aside failed: %w", err, merr)
	}
	ce.MovedTo = aside
	if opts.FS == nil {
		// The mark goes with the copy it describes.
		_ = os.Rename(damagedMark(dir), filepath.Join(aside, "DAMAGED"))
	}
	logger.Warn("state db is corrupt: moved it aside and opened an empty one; its stores restore from their changelogs",
		"dir", dir, "moved_to", aside, "err", ce.Err.Error())
	return open(dir, opts, logger)
}

// moveAside renames dir to a sibling named after it and t, which no other
// directory has, and removes the copies moved aside before.
func moveAside(fs vfs.FS, dir string, t time.Time) (string, error) {
	if fs == nil {
		fs = vfs.Default
	}
	base := dir + ".corrupt-" + t.UTC().Format("20060102T150405Z")
	aside := base
	for i := 2; ; i++ {
		if _, err := fs.Stat(aside); errors.Is(err, os.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s-%d", base, i)
	}
	older, _ := fs.List(filepath.Dir(dir))
	if err := fs.Rename(dir, aside); err != nil {
		return "", err
	}
	// Only the latest copy is kept, so that a disk that keeps corrupting
	// the state does not fill up with copies of it.
	prefix := filepath.Base(dir) + ".corrupt-"
	for _, name := range older {
		if strings.HasPrefix(name, prefix) {
			_ = fs.RemoveAll(fs.PathJoin(filepath.Dir(dir), name))
		}
	}
	return aside, nil
}

// damagedMark is the file that records corruption found in the database
// in dir while it ran.
func damagedMark(dir string) string { return dir + ".damaged" }

// IsCorrupt reports whether err says that the state's files are damaged:
// ErrCorrupt, or Pebble's corruption errors (a table failing its checksum).
func IsCorrupt(err error) bool {
	return errors.Is(err, ErrCorrupt) || pebble.IsCorruptionError(err)
}

// corrupt reports whether err, from pebble.Open, says the database's files
// are damaged or missing, as opposed to unreachable (a lock held, no
// permission, no space).
func corrupt(err error) bool {
	return pebble.IsCorruptionError(err) || errors.Is(err, os.ErrNotExist) ||
		strings.Contains(err.Error(), "object size mismatch")
}

func open(dir string, opts Options, logger *slog.Logger) (*DB, error) {
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	reserve := dir + ".reserve"
	if opts.Reserve > 0 && opts.FS == nil {
		inner := fs
		fs = vfs.OnDiskFull(inner, func() {
			_ = inner.Remove(reserve) // when it is already gone, the retry fails as it would have
			logger.Warn("state disk full: released the reserve for the write that met it", "reserve", reserve, "bytes", opts.Reserve)
			if opts.OnDiskFull != nil {
				opts.OnDiskFull()
			}
		})
	}
	if opts.FS == nil {
		if why, err := os.ReadFile(damagedMark(dir)); err == nil {
			return nil, &CorruptError{Dir: dir, Err: fmt.Errorf("corruption found while it ran (%s): %s", damagedMark(dir), strings.TrimSpace(string(why)))}
		}
	}
	po := &pebble.Options{
		FS:                          fs,
		CacheSize:                   cacheSize,
		MemTableSize:                memTableSize,
		MemTableStopWritesThreshold: memTableStopWritesThreshold,
		FormatMajorVersion:          pebble.FormatNewest,
		Logger:                      pebbleLogger{logger.With("component", "pebble")},
	}
	// Pebble's default answer to a table failing its checksum on a read is
	// Logger.Fatalf, which stops the process. The read returns the error
	// all the same, and the caller (the task that met it) can stop alone:
	// log it and let the error through.
	// A mark beside the database makes the next Open treat it as corrupt,
	// since it may well open without error.
	var marked atomic.Bool
	po.EventListener = &pebble.EventListener{
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			logger.Error("state db: on-disk corruption; the reads that meet it fail, and the next start rebuilds the state", "path", info.Path, "err", info.Details.Error())
			if opts.FS == nil && marked.CompareAndSwap(false, true) {
				_ = os.WriteFile(damagedMark(dir), []byte(info.Path+": "+info.Details.Error()+"\n"), 0o644)
			}
		},
	}
	// Deeper levels inherit L0's filter policy.
	po.Levels[0].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
	pdb, err := pebble.Open(dir, po)
	if err != nil {
		if lockHeld(err) {
			return nil, fmt.Errorf("open state db %q: another instance holds it (its LOCK file is locked): give each instance a state_dir of its own: %w", dir, err)
		}
		if corrupt(err) {
			return nil, &CorruptError{Dir: dir, Err: err}
		}
		return nil, fmt.Errorf("open state db %q: %w", dir, err)
	}
	// Load writes tables as Pebble writes L0's. The defaults are filled in on
	// a copy, as Open does, so that Open gets the options as they were.
	wo := po.Clone()
	wo.FS = fs
	wo.EnsureDefaults()
	db := &DB{
		pdb:        pdb,
		wo:         &pebble.WriteOptions{Sync: opts.Sync},
		fs:         fs,
		ingestPath: fs.PathJoin(dir, ingestDir),
		writerOpts: wo.MakeWriterOptions(0, pdb.TableFormat()),
		reserve:    reserve,
	}
	if opts.FS == nil {
		db.reserveLen = opts.Reserve
	}
	if err := db.clearIngestDir(); err != nil {
		_ = pdb.Close() // the directory's error is the one to report
		return nil, fmt.Errorf("open state db %q: %w", dir, err)
	}
	return db, nil
}

// clearIngestDir creates Load's directory, or removes the tables a crash
// left in it: they were never ingested, and their changes are replayed from
// the last checkpoint.
func (db *DB) clearIngestDir() error {
	if err := db.fs.MkdirAll(db.ingestPath, 0o755); err != nil {
		return err
	}
	names, err := db.fs.List(db.ingestPath)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := db.fs.Remove(db.fs.PathJoin(db.ingestPath, name)); err != nil {
			return err
		}
	}
	return nil
}

// Close waits for in-flight calls to return and for every open Txn to be
// committed or discarded, then closes the database. Calls that start once
// Close has begun return ErrClosed, but a Txn opened before keeps working
// until it ends, so a task can finish its batch during shutdown. A goroutine
// holding an open Txn must therefore not call Close: it would wait forever.
// Closing a closed DB returns ErrClosed.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return ErrClosed
	}
	db.closed = true
	db.mu.Unlock()

	db.refs.Wait()
	if err := db.pdb.Close(); err != nil {
		return fmt.Errorf("close state db: %w", err)
	}
	return nil
}

// acquire takes a reference that keeps Pebble open until release.
func (db *DB) acquire() error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	db.refs.Add(1)
	return nil
}

func (db *DB) release() { db.refs.Done() }

// Get returns a copy of the committed value of key in ks, which the caller
// owns. It is safe to modify key after Get returns.
func (db *DB) Get(ks Keyspace, key []byte) (value []byte, found bool, err error) {
	if err := ks.check(); err != nil {
		return nil, false, err
	}
	if err := db.acquire(); err != nil {
		return nil, false, err
	}
	defer db.release()

	v, closer, err := db.pdb.Get(ks.appendKey(nil, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get %v: %w", ks, err)
	}
	value = make([]byte, len(v))
	copy(value, v)
	if err := closer.Close(); err != nil {
		return nil, false, fmt.Errorf("get %v: %w", ks, err)
	}
	return value, true, nil
}

// Scan calls fn for the committed keys of ks in [start, end), in ascending key
// order, at most limit times; limit <= 0 means no limit. A nil start or end
// leaves that side unbounded within ks. Scan reads one consistent snapshot
// taken when it starts: commits made while it runs are not seen.
//
// fn receives user keys (without the keyspace prefix). key and value are
// valid only until fn returns and must not be modified. If fn returns an
// error, Scan stops and returns that error unwrapped, so callers can stop
// early with a sentinel of their own. fn may call other DB methods, but not
// Close.
func (db *DB) Scan(ks Keyspace, start, end []byte, limit int, fn func(key, value []byte) error) error {
	if err := ks.check(); err != nil {
		return err
	}
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	return scan(db.pdb, ks, start, end, limit, fn)
}

// scan is Scan over r: the database or a snapshot of it.
func scan(r pebble.Reader, ks Keyspace, start, end []byte, limit int, fn func(key, value []byte) error) error {
	lower, upper := ks.bounds(start, end)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("scan %v: %w", ks, err)
	}
	n := 0
	for valid := it.First(); valid && (limit <= 0 || n < limit); valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close() // the value error is the one worth reporting
			return fmt.Errorf("scan %v: %w", ks, err)
		}
		if err := fn(it.Key()[len(ks.prefix):], v); err != nil {
			_ = it.Close()
			return err
		}
		n++
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("scan %v: %w", ks, err)
	}
	return nil
}

// Offset returns the committed checkpoint of (group, topic, partition): the
// next input offset to consume, as last set by Txn.SetOffset.
func (db *DB) Offset(group, topic string, partition int32) (next int64, found bool, err error) {
	if err := db.acquire(); err != nil {
		return 0, false, err
	}
	defer db.release()
	return offset(db.pdb, group, topic, partition)
}

// offset is Offset read from r: the database or a snapshot of it.
func offset(r pebble.Reader, group, topic string, partition int32) (next int64, found bool, err error) {
	key, err := appendOffsetKey(nil, group, topic, partition)
	if err != nil {
		return 0, false, err
	}
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("offset of group %q topic %q partition %d: %w", group, topic, partition, err)
	}
	size := len(v)
	if size == 8 {
		next = int64(binary.BigEndian.Uint64(v))
	}
	if err := closer.Close(); err != nil {
		return 0, false, fmt.Errorf("offset of group %q topic %q partition %d: %w", group, topic, partition, err)
	}
	if size != 8 {
		return 0, false, fmt.Errorf("%w: offset of group %q topic %q partition %d is %d bytes, want 8",
			ErrCorrupt, group, topic, partition, size)
	}
	return next, true, nil
}

// DropPartition deletes every key of partition of store with one range
// deletion, used when the partition moves to another instance. Checkpoints
// are keyed by input, not by store, so it leaves them to the caller.
func (db *DB) DropPartition(store string, partition int32) error {
	ks, err := newKeyspace(store, partition)
	if err != nil {
		return err
	}
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()

	lower, upper := ks.bounds(nil, nil)
	// An empty partition, such as one about to be restored into a new state
	// directory, needs no range deletion. Writing one anyway would leave it
	// in the memtable, where the tables a Load ingests into the partition
	// would overlap it and be flushed to L0 with it instead of going to the
	// bottom level.
	if empty, err := db.empty(lower, upper); err != nil {
		return fmt.Errorf("drop %v: %w", ks, err)
	} else if empty {
		return nil
	}
	if err := db.pdb.DeleteRange(lower, upper, db.wo); err != nil {
		return fmt.Errorf("drop %v: %w", ks, err)
	}
	return nil
}

// empty reports whether no committed key is in [lower, upper).
func (db *DB) empty(lower, upper []byte) (bool, error) {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return false, err
	}
	found := it.First()
	if err := it.Close(); err != nil {
		return false, err
	}
	return !found, nil
}

// ClearOffset removes a checkpoint. Clear a store partition's changelog
// checkpoint before dropping its data: a crash between the two then leaves
// data without a checkpoint, which a restore drops and rebuilds, rather than
// a checkpoint that claims data that is gone.
func (db *DB) ClearOffset(group, topic string, partition int32) error {
	key, err := appendOffsetKey(nil, group, topic, partition)
	if err != nil {
		return err
	}
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	if err := db.pdb.Delete(key, db.wo); err != nil {
		return fmt.Errorf("clear offset of group %q topic %q partition %d: %w", group, topic, partition, err)
	}
	return nil
}

// pebbleLogger routes Pebble's logging to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.log(slog.LevelDebug, format, args) }

func (p pebbleLogger) Errorf(format string, args ...any) { p.log(slog.LevelError, format, args) }

// Fatalf panics after logging, because Pebble calls it on invariant
// violations and relies on it not returning.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic("pebble: " + msg)
}

func (p pebbleLogger) log(level slog.Level, format string, args []any) {
	// Check first: Pebble logs often and formatting is the expensive part.
	if !p.l.Enabled(context.Background(), level) {
		return
	}
	p.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
}

// Compact flushes and compacts everything, so that reads measured after a
// bulk load are not competing with the compactions it set off. For
// benchmarks and tools; the runtime never needs it.
func (db *DB) Compact(ctx context.Context) error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	if err := db.pdb.Compact(ctx, []byte{0}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true); err != nil {
		return err
	}
	// The manual compaction leaves levels over their targets; wait for the
	// automatic compactions it set off to finish too.
	for {
		m := db.pdb.Metrics()
		if m.Compact.NumInProgress == 0 && m.Compact.EstimatedDebt == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Reader reads committed data through one kept iterator, re-seeked for
// every lookup: about a tenth of what Get costs, which builds an iterator
// per call. It sees the database as it was when the Reader was created or
// last refreshed. A Reader is not safe for concurrent use; it holds the DB
// open until Close.
type Reader struct {
	db  *DB
	it  *pebble.Iterator
	key []byte
	err error // ErrClosed when the DB was closing when the Reader was made
}

// NewReader returns a Reader of the database as it is now.
func (db *DB) NewReader() *Reader {
	if err := db.acquire(); err != nil {
		return &Reader{err: err}
	}
	return &Reader{db: db}
}

// Get appends the value of key in ks to dst[:0] and returns it; found is
// false when the key is absent.
func (r *Reader) Get(ks Keyspace, key, dst []byte) (value []byte, found bool, err error) {
	dst = dst[:0]
	if r.db == nil {
		return dst, false, r.err
	}
	if err := ks.check(); err != nil {
		return dst, false, err
	}
	if r.it == nil {
		if r.it, err = r.db.pdb.NewIter(nil); err != nil {
			return dst, false, fmt.Errorf("get %v: %w", ks, err)
		}
	}
	r.key = ks.appendKey(r.key[:0], key)
	if !r.it.SeekPrefixGE(r.key) {
		if err := r.it.Error(); err != nil {
			r.Refresh()
			return dst, false, fmt.Errorf("get %v: %w", ks, err)
		}
		return dst, false, nil
	}
	v, err := r.it.ValueAndErr()
	if err != nil {
		r.Refresh()
		return dst, false, fmt.Errorf("get %v: %w", ks, err)
	}
	return append(dst, v...), true, nil
}

// Refresh makes the next Get see the database as it is then.
func (r *Reader) Refresh() {
	if r.it != nil {
		_ = r.it.Close() // its errors were reported by the Get that met them
		r.it = nil
	}
}

// Close releases the Reader. Closing again does nothing.
func (r *Reader) Close() {
	if r.db == nil {
		return
	}
	r.Refresh()
	r.db.release()
	r.db, r.err = nil, ErrTxnDone
}

// EnsureReserve writes the reserve file (Options.Reserve) again when it is
// missing or short, as after a full disk released it, and reports whether
// it is whole. A disk too full to hold it leaves no partial file.
func (db *DB) EnsureReserve() (bool, error) {
	if db.reserveLen == 0 {
		return true, nil
	}
	if fi, err := os.Stat(db.reserve); err == nil && fi.Size() == db.reserveLen {
		return true, nil
	}
	f, err := os.Create(db.reserve)
	if err != nil {
		return false, fmt.Errorf("state reserve %s: %w", db.reserve, err)
	}
	// Zeros written, not a sparse file: the blocks must be taken now to
	// be given back later.
	chunk := make([]byte, 1<<20)
	for left := db.reserveLen; left > 0 && err == nil; left -= int64(len(chunk)) {
		_, err = f.Write(chunk[:min(left, int64(len(chunk)))])
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(db.reserve)
		return false, fmt.Errorf("state reserve %s: %w", db.reserve, err)
	}
	return true, nil
}
