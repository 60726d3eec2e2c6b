package main

import (
	"sync"
	"time"
)

// The verified-token cache's bounds.
const (
	tokenCacheEntries = 50_000
	tokenCacheBytes   = 32 << 20
)

// tokenCache maps the SHA-256 of a verified access token to its claims until
// the token's exp, for the key-set generation that verified it. It is
// bounded both in entries and in the bytes of the claims it holds. A nil
// *tokenCache is no cache: the provider then verifies every bearer token in
// full, as in builds with the tokencacheoff tag (tokenCacheEnabled), or in a
// test that sets the provider's cache to nil.
type tokenCache struct {
	mu       sync.RWMutex
	m        map[[32]byte]tokenCacheEntry
	maxN     int
	maxBytes int
	bytes    int
}

type tokenCacheEntry struct {
	c    *claims
	exp  time.Time
	gen  uint64
	size int
}

func newTokenCache(maxN, maxBytes int) *tokenCache {
	return &tokenCache{m: make(map[[32]byte]tokenCacheEntry), maxN: maxN, maxBytes: maxBytes}
}

func (tc *tokenCache) get(key [32]byte, gen uint64, now time.Time) (*claims, bool) {
	tc.mu.RLock()
	e, ok := tc.m[key]
	tc.mu.RUnlock()
	if !ok || e.gen != gen || !now.Before(e.exp) {
		return nil, false
	}
	return e.c, true
}

func (tc *tokenCache) put(key [32]byte, c *claims, gen uint64, now time.Time) {
	tc.putUntil(key, c, gen, c.Expiry.Time(), now)
}

// genAny is the generation of entries that no key set vouches for (answers
// of the IdP's introspection or userinfo endpoint): a new key set does not
// make them stale.
const genAny = ^uint64(0)

// putUntil is put with the entry's end given: for an answer of the IdP, the
// earlier of the token's exp and the tenant's cache_seconds. A nil c is a
// negative entry: get then answers (nil, true), a token known to be invalid.
func (tc *tokenCache) putUntil(key [32]byte, c *claims, gen uint64, exp, now time.Time) {
	if !now.Before(exp) {
		return // accepted within the leeway only: not worth keeping
	}
	size := 200
	if c != nil {
		size += len(c.Issuer) + len(c.Subject) + len(c.AuthorizedParty) + len(c.Nonce) +
			len(c.Name) + len(c.PreferredUsername) + len(c.Email)
		for _, a := range c.Audience {
			size += len(a) + 16
		}
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if old, ok := tc.m[key]; ok {
		tc.bytes -= old.size
		delete(tc.m, key)
	}
	if len(tc.m) >= tc.maxN || tc.bytes+size > tc.maxBytes {
		tc.evictLocked(now, gen, size)
	}
	if len(tc.m) >= tc.maxN || tc.bytes+size > tc.maxBytes {
		return
	}
	tc.m[key] = tokenCacheEntry{c: c, exp: exp, gen: gen, size: size}
	tc.bytes += size
}

// evictLocked drops stale entries (expired or of an older key set), then
// arbitrary ones (map order is random) until there is room for one more.
func (tc *tokenCache) evictLocked(now time.Time, gen uint64, need int) {
	for k, e := range tc.m {
		// An IdP's answer is never of a stale key set, and an insert of one
		// (gen genAny) does not know the current set.
		if (gen != genAny && e.gen != gen && e.gen != genAny) || !now.Before(e.exp) {
			tc.bytes -= e.size
			delete(tc.m, k)
		}
	}
	// Make room for a tenth more at once, so that a full cache does not
	// scan the map on every insert.
	lowN, lowBytes := tc.maxN-tc.maxN/10, tc.maxBytes-tc.maxBytes/10
	for k, e := range tc.m {
		if len(tc.m) < lowN && tc.bytes+need <= lowBytes {
			return
		}
		tc.bytes -= e.size
		delete(tc.m, k)
	}
}

// len reports the number of entries, 0 for a nil (absent) cache.
func (tc *tokenCache) len() int {
	if tc == nil {
		return 0
	}
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	return len(tc.m)
}

// remove drops the entry for key, if any. A nil cache holds nothing.
func (tc *tokenCache) remove(key [32]byte) {
	if tc == nil {
		return
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if e, ok := tc.m[key]; ok {
		tc.bytes -= e.size
		delete(tc.m, key)
	}
}

// removeFunc drops every entry whose claims match and returns how many it
// dropped. It scans the whole cache under the write lock, so it is for rare
// events (a revocation), never for the request path.
func (tc *tokenCache) removeFunc(match func(*claims) bool) int {
	if tc == nil {
		return 0
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	n := 0
	for k, e := range tc.m {
		// A negative entry (an IdP's refusal, nil claims) refuses already.
		if e.c != nil && match(e.c) {
			tc.bytes -= e.size
			delete(tc.m, k)
			n++
		}
	}
	return n
}
