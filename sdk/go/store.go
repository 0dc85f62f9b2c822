package streamrt

import "github.com/streamrt/streamrt/abi"

// Store is a handle to one of the stage's key/value stores, as declared in
// the app's configuration. Reads see the batch's own earlier writes; writes
// become durable when the host commits the batch.
//
// Store methods may be called only while a handler runs.
type Store struct {
	name   string
	handle int32
	opened bool
	err    error // sticky: the host said the store is not declared
}

// OpenStore returns the handle for the named store. Handles are cached by
// name, and the host is not asked about the store until the handle's first
// use, so a guest may open stores in package variables:
//
//	var counts = streamrt.OpenStore("click-counts")
//
// When the stage does not declare the store, every method returns an error
// that names the store and wraps ErrUnknownStore.
func OpenStore(name string) *Store {
	if s, ok := inst.stores[name]; ok {
		return s
	}
	if inst.stores == nil {
		inst.stores = make(map[string]*Store)
	}
	s := &Store{name: name}
	inst.stores[name] = s
	return s
}

// Name returns the store's name.
func (s *Store) Name() string { return s.name }

// open asks the host for the store's handle; the methods call it only
// until it succeeds. Their common path, an open store, checks s.opened and
// leaves by a call when it is false, so that it takes no branch in the Go
// Wasm port, where a taken branch is costly.
func (s *Store) open() error {
	if s.err != nil {
		return s.err
	}
	rc := storeOpen(s.name)
	if rc < 0 {
		err := hostError(abi.FuncStoreOpen, s.name, rc)
		if abi.Code(rc) == abi.ErrUnknownStore {
			s.err = err
		}
		return err
	}
	s.handle, s.opened = rc, true
	return nil
}

// Get returns the value stored under key, with found false when there is
// none. A nil key is the empty key.
//
// The value is the caller's to read and modify, but its memory is reused
// once the handler returns (a per-record handler's next record, or the next
// batch for a batch handler): copy it to keep it longer. Values from
// several Gets in one handler call stay valid side by side.
func (s *Store) Get(key []byte) (value []byte, found bool, err error) {
	if !s.opened {
		if err := s.open(); err != nil {
			return nil, false, err
		}
		return s.Get(key)
	}
	buf := inst.values.free()
	kp, kl := bytesArg(key)
	bp, bc := capArg(buf)
	n := hostStoreGet(s.handle, kp, kl, bp, bc)
	// One check for the uncommon cases: an error, including "not found"
	// (n < 0, a huge uint), and a value that does not fit in the arena's
	// room or fills it to the brim (which covers having no arena yet).
	if uint(int(n)) >= uint(cap(buf)) {
		return s.getOther(key, buf, n)
	}
	return inst.values.take(int(n)), true, nil
}

// getOther finishes a Get whose store_get returned n with buf, for the
// cases Get leaves out.
func (s *Store) getOther(key, buf []byte, n int32) (value []byte, found bool, err error) {
	if n >= 0 && (int(n) > cap(buf) || buf == nil) {
		buf = inst.values.grow(int(n))
		n = storeGet(s.handle, key, buf)
		if int(n) > cap(buf) {
			return nil, false, hostError(abi.FuncStoreGet, s.name, int32(abi.ErrInternal))
		}
	}
	if n < 0 {
		if abi.Code(n) == abi.ErrNotFound {
			return nil, false, nil
		}
		return nil, false, hostError(abi.FuncStoreGet, s.name, n)
	}
	return inst.values.take(int(n)), true, nil
}

// Put stores value under key, attributed to the record being handled (see
// HandleRecord and Batch.All). The host copies both: the caller may reuse
// them as soon as Put returns. A nil key is the empty key and a nil value
// the empty value; Delete removes a key.
func (s *Store) Put(key, value []byte) error {
	if !s.opened {
		if err := s.open(); err != nil {
			return err
		}
		return s.Put(key, value)
	}
	kp, kl := bytesArg(key)
	vp, vl := bytesArg(value)
	rc := hostStorePut(s.handle, inst.current, kp, kl, vp, vl)
	if rc >= 0 {
		return nil
	}
	return hostError(abi.FuncStorePut, s.name, rc)
}

// Delete removes key, attributed to the record being handled. Deleting an
// absent key is not an error.
func (s *Store) Delete(key []byte) error {
	if !s.opened {
		if err := s.open(); err != nil {
			return err
		}
		return s.Delete(key)
	}
	kp, kl := bytesArg(key)
	rc := hostStoreDelete(s.handle, inst.current, kp, kl)
	if rc >= 0 {
		return nil
	}
	return hostError(abi.FuncStoreDelete, s.name, rc)
}

// arena holds Get results: values are appended and handed out as capped
// slices, and the whole arena is reused once the handler returns. When a
// value does not fit, a fresh chunk replaces the current one; values in the
// old chunk stay valid because the caller's slices keep it alive.
type arena struct {
	buf []byte // len is the bytes handed out
}

const (
	arenaMin   = 4 << 10
	arenaChunk = 1 << 20 // growth beyond this allocates only what one value needs
)

func (a *arena) reset() { a.buf = a.buf[:0] }

// free returns the unused tail of the arena, with len 0; it is nil until
// the first grow.
func (a *arena) free() []byte {
	return a.buf[len(a.buf):len(a.buf)]
}

// grow replaces the chunk with one that has room for n bytes and returns
// its free tail.
func (a *arena) grow(n int) []byte {
	size := max(n, arenaMin, min(2*cap(a.buf), arenaChunk))
	a.buf = make([]byte, 0, size)
	return a.buf
}

// take hands out the next n bytes, which the host has just written.
func (a *arena) take(n int) []byte {
	start := len(a.buf)
	a.buf = a.buf[:start+n]
	return a.buf[start : start+n : start+n]
}

// OpenTable returns the handle for the named table: a store the host
// materialises from a topic, which the stage declares under tables. A guest
// reads it like a store; Put and Delete return an error wrapping
// ErrReadOnly.
//
// Joins are lookups in tables. A stream–table join looks up the record's
// key in a co-partitioned table; a stream–global-table join looks up a key
// taken from the record's value in a global table. An inner join emits only
// when the lookup finds a value, a left join emits either way (with no
// table value when it finds none). A table update never re-emits stream
// records joined earlier: only records processed after the update see it.
func OpenTable(name string) *Store { return OpenStore(name) }

// Lookup is Get for joins: the table's value for key, or nil when the table
// has none. The value is valid as Get's is.
func (s *Store) Lookup(key []byte) ([]byte, error) {
	v, _, err := s.Get(key)
	return v, err
}
