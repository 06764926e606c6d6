package storage

import "sync"

// memo keeps decoded records of one bucket in memory: the records every
// inbox request reads (the sender's key, the Note it is about), whose
// decoding from JSON cost more than the rest of their read. bbolt stays
// the only truth: a miss reads it, and every method that writes the
// bucket forgets what it wrote once its transaction is over.
//
// A reader that decoded a record while a write was committing must not
// put the old value back after the writer forgot it: gen counts the
// forgets, and put keeps a value only when no forget came between the
// reader's start (begin) and its put.
type memo[V any] struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]V
	max int // entries kept at most; a full memo drops an eighth of them
}

func newMemo[V any](max int) *memo[V] { return &memo[V]{m: make(map[string]V), max: max} }

func (c *memo[V]) get(key string) (V, bool) {
	c.mu.Lock()
	v, ok := c.m[key]
	c.mu.Unlock()
	return v, ok
}

// begin is called before reading bbolt; its result goes to put.
func (c *memo[V]) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *memo[V]) put(gen uint64, key string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) >= c.max {
		// Map order is random enough to drop arbitrary entries.
		n := c.max / 8
		for k := range c.m {
			delete(c.m, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	c.m[key] = v
}

// forget drops keys (every entry when none is given) after a write.
func (c *memo[V]) forget(keys ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if len(keys) == 0 {
		clear(c.m)
		return
	}
	for _, k := range keys {
		delete(c.m, k)
	}
}
