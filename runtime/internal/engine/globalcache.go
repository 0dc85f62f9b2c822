package engine

import "sync"

// globalCache keeps the values tasks read from one global table, shared by
// every task of the instance: a lookup in a table read by every record (an
// enrichment) then costs a map lookup instead of a Pebble seek through
// every level. Only the global-table tailer writes the table; after each
// of its commits it drops the keys it changed.
//
// A reader notes the generation before it reads Pebble and keeps what it
// read only if no commit came in between (checked under the same lock the
// tailer takes to drop keys and move the generation), so a value read
// before a commit can never be kept after the commit dropped its key. It is
// safe for concurrent use.
type globalCache struct {
	mu      sync.RWMutex
	gen     uint64
	entries map[string]cachedValue
	bytes   int
}

// maxGlobalCacheBytes bounds one table's cache, keys and values; past it
// the cache starts over.
const maxGlobalCacheBytes = 32 << 20

func newGlobalCache() *globalCache { return &globalCache{entries: map[string]cachedValue{}} }

// get returns the cached value of key and whether there is one, with the
// generation to pass to put after reading Pebble on a miss. The value must
// not be modified.
func (c *globalCache) get(key []byte) (v cachedValue, ok bool, gen uint64) {
	c.mu.RLock()
	v, ok = c.entries[string(key)]
	gen = c.gen
	c.mu.RUnlock()
	return v, ok, gen
}

// put keeps what a reader found for key in Pebble (found false: absent),
// unless the table changed since gen. It copies key and value.
func (c *globalCache) put(gen uint64, key, value []byte, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.bytes >= maxGlobalCacheBytes {
		clear(c.entries)
		c.bytes = 0
	}
	c.entries[string(key)] = cachedValue{v: append([]byte(nil), value...), found: found}
	c.bytes += len(key) + len(value) + 48
}

// changed drops keys after the tailer committed changes to them.
func (c *globalCache) changed(keys [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, k := range keys {
		if v, ok := c.entries[string(k)]; ok {
			c.bytes -= len(k) + len(v.v) + 48
			delete(c.entries, string(k))
		}
	}
}
