package main

import (
	"sync"
	"unsafe"
)

// participantCacheBytes bounds what the participant cache's entries occupy
// on the heap, as participantSize counts them (about 15 000 typical
// participants; TestParticipantCacheAccounting holds the count to the
// measured heap).
const participantCacheBytes = 8 << 20

// participantCache holds participants by principal so that /register for a
// known person with unchanged claims does not touch SQLite. It is bounded in
// the bytes its entries occupy; when full, a put evicts arbitrary entries.
type participantCache struct {
	mu       sync.RWMutex
	maxBytes int
	bytes    int
	m        map[principal]participant
	// gen counts clears; put refuses rows read before the latest one.
	gen uint64
}

func newParticipantCache(maxBytes int) *participantCache {
	return &participantCache{maxBytes: maxBytes, m: make(map[principal]participant)}
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

// put caches part unless the cache was cleared since epoch was taken, or
// part alone is larger than the whole budget.
func (c *participantCache) put(part participant, epoch uint64) {
	key := principal{part.TenantID, part.Issuer, part.Subject}
	size := participantSize(part)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != epoch || size > c.maxBytes {
		return
	}
	if old, ok := c.m[key]; ok {
		c.bytes -= participantSize(old)
	}
	for c.bytes+size > c.maxBytes {
		// Evict an arbitrary entry: map iteration starts at a random place.
		for k, v := range c.m {
			delete(c.m, k)
			c.bytes -= participantSize(v)
			break
		}
	}
	c.m[key] = part
	c.bytes += size
}

// clear empties the cache. A new map, not clear(m): a map never gives back
// the room it grew to.
func (c *participantCache) clear() {
	c.mu.Lock()
	c.m = make(map[principal]participant)
	c.bytes = 0
	c.gen++
	c.mu.Unlock()
}

// participantEntrySize is what an entry occupies besides its strings: a map
// slot of the key and a pointer to the value, which the map keeps in an
// allocation of its own at this size, at the map's average fill (between 7/16
// and 7/8), and that allocation.
var participantEntrySize = (int(unsafe.Sizeof(principal{}))+8)*3/2 + allocSize(int(unsafe.Sizeof(participant{})))

// participantSize is what part occupies in the cache.
func participantSize(part participant) int {
	n := participantEntrySize
	for _, s := range [...]string{part.ID, part.TenantID, part.Issuer, part.Subject, part.DisplayName, part.Email, part.PersonalWorkspaceID} {
		n += allocSize(len(s))
	}
	return n
}
