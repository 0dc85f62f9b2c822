package engine

// readCache holds, per store handle, values a task read or wrote, so that a
// hot key's get+put pair costs a map lookup instead of a Pebble seek. It is
// safe because a task is the only writer of its partitions of its stores and
// co-partitioned tables; global tables, written by another goroutine, are
// never cached. Any rollback clears it, since it cannot tell which entries
// the rollback undid.
type readCache struct {
	stores  []map[string]*cachedValue // by handle; nil = not cached
	entries int
}

type cachedValue struct {
	v     []byte
	found bool
}

// maxCachedEntries bounds the cache's memory; past it, it starts over.
const maxCachedEntries = 200_000

func (c *readCache) init(t *task) {
	c.stores = make([]map[string]*cachedValue, len(t.stores))
	for i := range c.stores {
		if i >= len(t.stage.stores) && t.stage.tables[i-len(t.stage.stores)].Global {
			continue
		}
		c.stores[i] = map[string]*cachedValue{}
	}
}

// get returns the cached value of key, if any.
func (c *readCache) get(store int32, key []byte) (*cachedValue, bool) {
	m := c.stores[store]
	if m == nil {
		return nil, false
	}
	v, ok := m[string(key)]
	return v, ok
}

// set records key's value (found false: absent). The value is copied.
func (c *readCache) set(store int32, key, value []byte, found bool) {
	m := c.stores[store]
	if m == nil {
		return
	}
	if cv := m[string(key)]; cv != nil {
		cv.v, cv.found = append(cv.v[:0], value...), found
		return
	}
	if c.entries >= maxCachedEntries {
		c.clear()
	}
	m[string(key)] = &cachedValue{v: append([]byte(nil), value...), found: found}
	c.entries++
}

func (c *readCache) clear() {
	for _, m := range c.stores {
		clear(m)
	}
	c.entries = 0
}
