package main

import "sync"

// participantCache holds participants by principal so that /register for a
// known person with unchanged claims does not touch SQLite.
type participantCache struct {
	mu  sync.RWMutex
	max int
	m   map[principal]participant
	// gen counts clears; put refuses rows read before the latest one.
	gen uint64
}

func newParticipantCache(max int) *participantCache {
	return &participantCache{max: max, m: make(map[principal]participant)}
}

func (c *participantCache) get(p principal) (participant, bool) {
	c.mu.RLock()
	part, ok := c.m[p]
	c.mu.RUnlock()
	return part, ok
}

// epoch returns the number of clears so far, to pass to put.
func (c *participantCache) epoch() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put caches part unless the cache was cleared since epoch was taken.
func (c *participantCache) put(part participant, epoch uint64) {
	key := principal{part.TenantID, part.Issuer, part.Subject}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != epoch {
		return
	}
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		// Evict an arbitrary entry: map iteration order is random.
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = part
}

func (c *participantCache) clear() {
	c.mu.Lock()
	clear(c.m)
	c.gen++
	c.mu.Unlock()
}
