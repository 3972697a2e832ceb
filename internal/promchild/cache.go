package promchild

import "sync"

// Cache maps a key (the label values, in whatever form the caller has
// them) to the vector's child for it. Children are made on first use, so no
// zero series appear before a request does.
type Cache[K comparable, V any] struct {
	make func(K) V
	max  int // how many children are remembered; more are made per call

	mu sync.RWMutex
	m  map[K]V
}

// New returns a cache that makes children with make and remembers at most
// max of them: label values that come from clients must not grow it
// without bound.
func New[K comparable, V any](max int, make func(K) V) *Cache[K, V] {
	return &Cache[K, V]{make: make, max: max, m: map[K]V{}}
}

// Get is the child for k.
func (c *Cache[K, V]) Get(k K) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = c.make(k)
	c.mu.Lock()
	if len(c.m) < c.max {
		c.m[k] = v
	}
	c.mu.Unlock()
	return v
}
