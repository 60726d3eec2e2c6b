package main

import (
	"encoding/binary"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-jose/go-jose/v4/jwt"
)

// The verified-token cache's bounds, per tenant. The bytes are what the
// entries really occupy on the heap, as tokenCacheEntrySize counts them
// (TestTokenCacheAccounting holds the count to the measured heap).
const (
	tokenCacheEntries = 50_000
	tokenCacheBytes   = 16 << 20
)

// tokenCache maps the SHA-256 of a verified access token to its claims until
// the token's exp, for the key-set generation that verified it. It is
// bounded both in entries and in the bytes its entries occupy. A nil
// *tokenCache is no cache: the provider then verifies every bearer token in
// full, as in builds with the tokencacheoff tag (tokenCacheEnabled), or in a
// test that sets the provider's cache to nil.
//
// A miss costs the caller a hash and one put, and a put costs a copy of the
// claims and constant work: the entries live in a ring swept by a clock hand
// (CLOCK, second chance), so a full cache makes room by evicting at the hand,
// never by scanning. A hit marks its entry, and the hand passes a marked
// entry once before evicting it, so tokens in use outlive a flood of tokens
// seen once; expired entries, and those of a key set older than the newest
// put, go as soon as the hand reaches them.
type tokenCache struct {
	maxN, maxBytes int

	mu sync.RWMutex
	// gen is the newest key-set generation put; entries of older ones are
	// stale. genAny entries never are.
	gen uint64
	// index maps the first 8 bytes of a key to its position in the ring,
	// which holds the whole key: two keys that share a prefix cost one of
	// them its place, never a wrong answer. Keys and positions are not
	// pointers, so the GC never scans the index.
	index map[uint64]uint32
	// ring is the clock's ring of slots, in chunks so that growing it
	// never copies it. It grows while both bounds allow, up to maxN slots.
	ring  [][]tokenCacheSlot
	size  int // slots in the ring
	hand  int // the next slot the clock looks at once the ring stops growing
	n     int // occupied slots
	bytes int // what the occupied slots' entries and the ring's chunks occupy
}

// tokenCacheSlot is one position of the ring; exp is 0 when it is free. A
// nil c in an occupied slot is a negative entry (putUntil).
type tokenCacheSlot struct {
	c    *claims
	key  [32]byte
	exp  int64 // the entry's end, Unix nanoseconds
	gen  uint64
	size int32
	used atomic.Bool // set by a hit, cleared as the hand passes
}

// genAny is the generation of entries that no key set vouches for (answers
// of the IdP's introspection or userinfo endpoint): a new key set does not
// make them stale.
const genAny = ^uint64(0)

// cachedClaims is one allocation holding a cached token's claims and the
// times they point to; their strings share a second one (packClaims).
type cachedClaims struct {
	c             claims
	exp, nbf, iat jwt.NumericDate
}

const tokenCacheChunk = 512 // slots per chunk of the ring

// The sizes the byte count adds up. A Go map of 8-byte keys and 4-byte
// values (16-byte slots in groups of eight with a control word), kept
// between 7/16 and 7/8 full as it grows, costs about 26 bytes an entry on
// average.
const (
	tokenCacheChunkSize = tokenCacheChunk * int(unsafe.Sizeof(tokenCacheSlot{}))
	tokenCacheIndexSize = 26
)

var cachedClaimsSize = allocSize(int(unsafe.Sizeof(cachedClaims{})))

func newTokenCache(maxN, maxBytes int) *tokenCache {
	return &tokenCache{maxN: maxN, maxBytes: maxBytes, index: make(map[uint64]uint32)}
}

func indexKey(key [32]byte) uint64 { return binary.LittleEndian.Uint64(key[:8]) }

func (tc *tokenCache) slot(i int) *tokenCacheSlot {
	return &tc.ring[i/tokenCacheChunk][i%tokenCacheChunk]
}

// get returns the claims cached for key under key-set generation gen while
// now is before the entry's end; (nil, true) is a negative entry, a token
// known to be invalid. The claims are shared: callers must not change them.
func (tc *tokenCache) get(key [32]byte, gen uint64, now time.Time) (*claims, bool) {
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	i, ok := tc.index[indexKey(key)]
	if !ok {
		return nil, false
	}
	s := tc.slot(int(i))
	if s.key != key || s.gen != gen || now.UnixNano() >= s.exp {
		return nil, false
	}
	if !s.used.Load() {
		// Only the first hit since the hand passed writes: a token sent
		// again and again does not bounce its cache line between cores.
		s.used.Store(true)
	}
	return s.c, true
}

// put caches a compact copy of c (packClaims) for key under key-set
// generation gen, until c's exp: putUntil with c's exp.
func (tc *tokenCache) put(key [32]byte, c *claims, gen uint64, now time.Time) {
	if c.Expiry == nil {
		return
	}
	tc.putUntil(key, c, gen, c.Expiry.Time(), now)
}

// putUntil caches a compact copy of c for key under key-set generation gen
// until exp: for an answer of the IdP, the earlier of the token's exp and
// the tenant's cache_seconds. A nil c is a negative entry. A put under an
// older key set than the newest put is dropped (its key may be withdrawn);
// an entry already ended at now, or larger than the whole byte budget, is
// not kept.
func (tc *tokenCache) putUntil(key [32]byte, c *claims, gen uint64, until, now time.Time) {
	if tc.maxN <= 0 || !now.Before(until) {
		return // ended: accepted within the leeway only, not worth keeping
	}
	var cc *claims
	size := tokenCacheIndexSize
	if c != nil {
		packed, blob := packClaims(c)
		cc, size = &packed.c, tokenCacheEntrySize(blob)
	}
	exp := until.UnixNano()

	tc.mu.Lock()
	defer tc.mu.Unlock()
	if gen != genAny {
		if gen < tc.gen {
			return
		}
		tc.gen = gen
	}
	if i, ok := tc.index[indexKey(key)]; ok {
		// The same token verified twice at once, or another with the same
		// index key: either way this one takes the place.
		tc.evict(int(i))
	}
	if size+tokenCacheChunkSize > tc.maxBytes {
		return
	}
	i := tc.freeSlot(size, now)
	if i < 0 {
		return
	}
	s := tc.slot(i)
	s.c, s.key, s.exp, s.gen, s.size = cc, key, exp, gen, int32(size)
	s.used.Store(false)
	tc.index[indexKey(key)] = uint32(i)
	tc.n++
	tc.bytes += size
}

// freeSlot returns a free slot for a new entry of size bytes, making room
// for it within both bounds: it grows the ring while that fits, and
// otherwise takes the slot at the hand, evicting what the clock finds there.
// It returns -1 when nothing can be evicted to make room.
func (tc *tokenCache) freeSlot(size int, now time.Time) int {
	if tc.hand == tc.size {
		if tc.size < tc.maxN && tc.bytes+size+tc.growth() <= tc.maxBytes {
			tc.grow()
		} else {
			tc.hand = 0
		}
	}
	// Second chance for entries hit since the hand last passed, but for a
	// bounded number of them: a put stays cheap even when every entry is in
	// use.
	nowNano := now.UnixNano()
	for skips := 0; ; skips++ {
		if tc.hand == tc.size {
			tc.hand = 0
		}
		s := tc.slot(tc.hand)
		if s.exp == 0 || skips >= 32 || nowNano >= s.exp || tc.stale(s) || !s.used.Load() {
			break
		}
		s.used.Store(false)
		tc.hand++
	}
	i := tc.hand
	tc.evict(i)
	tc.hand++
	if !tc.shrinkTo(tc.maxBytes-size, i) {
		return -1
	}
	return i
}

// shrinkTo evicts entries after the hand, whatever their marks, until the
// cache occupies at most limit bytes; keep is a slot not to evict. It
// reports whether the limit was reached.
func (tc *tokenCache) shrinkTo(limit, keep int) bool {
	for tries := 0; tc.bytes > limit; tries++ {
		if tries > tc.size {
			return false
		}
		if tc.hand >= tc.size {
			tc.hand = 0
		}
		if tc.hand != keep {
			tc.evict(tc.hand)
		}
		tc.hand++
	}
	return true
}

// stale reports whether s is of a key set older than the newest put.
func (tc *tokenCache) stale(s *tokenCacheSlot) bool {
	return s.gen != genAny && s.gen != tc.gen
}

// evict frees slot i, if it is occupied.
func (tc *tokenCache) evict(i int) {
	s := tc.slot(i)
	if s.exp == 0 {
		return
	}
	delete(tc.index, indexKey(s.key))
	tc.bytes -= int(s.size)
	tc.n--
	s.c, s.key, s.exp, s.gen, s.size = nil, [32]byte{}, 0, 0, 0
	s.used.Store(false)
}

// remove drops the entry for key, if any. A nil cache holds nothing.
func (tc *tokenCache) remove(key [32]byte) {
	if tc == nil {
		return
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if i, ok := tc.index[indexKey(key)]; ok && tc.slot(int(i)).key == key {
		tc.evict(int(i))
	}
}

// removeFunc drops every entry whose claims match and returns how many it
// dropped. It scans the whole ring under the write lock, so it is for rare
// events (a revocation), never for the request path. Negative entries (nil
// claims) refuse already and are kept.
func (tc *tokenCache) removeFunc(match func(*claims) bool) int {
	if tc == nil {
		return 0
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	n := 0
	for i := range tc.size {
		if s := tc.slot(i); s.exp != 0 && s.c != nil && match(s.c) {
			tc.evict(i)
			n++
		}
	}
	return n
}

// growth is what growing the ring by one slot adds to the byte count: a new
// chunk when the last one is full.
func (tc *tokenCache) growth() int {
	if tc.size%tokenCacheChunk == 0 {
		return tokenCacheChunkSize
	}
	return 0
}

// grow adds a slot at the end of the ring.
func (tc *tokenCache) grow() {
	if tc.size%tokenCacheChunk == 0 {
		tc.ring = append(tc.ring, make([]tokenCacheSlot, tokenCacheChunk))
		tc.bytes += tokenCacheChunkSize
	}
	tc.size++
}

// tokenCacheEntrySize is what an entry with the given string blob occupies
// beyond its slot (the ring's capacity is counted as it grows): its
// cachedClaims, the blob, and its share of the index.
func tokenCacheEntrySize(blob string) int {
	return cachedClaimsSize + allocSize(len(blob)) + tokenCacheIndexSize
}

// packClaims copies c into one cachedClaims and its strings into one string
// (the blob), two allocations in all where the decoder made one per claim.
// Only what a hit needs is kept: the issuer, subject, tenant id and session
// id (revocations match on them), the names, the email and email_verified,
// the times, and the confirmation (cnf: the binding is checked on every
// request, from the cache too). Audience, azp, client_id, nonce, typ and the ID-token
// markers were checked when the token was verified, and are left out. Fields it does not know are
// copied as they are (TestTokenCacheKnowsEveryClaim makes adding one to
// claims a conscious choice here).
func packClaims(c *claims) (*cachedClaims, string) {
	cc := &cachedClaims{c: *c}
	cc.c.Audience, cc.c.AuthorizedParty, cc.c.ClientID, cc.c.Nonce, cc.c.Type = nil, "", "", "", ""
	cc.c.AccessTokenHash, cc.c.CodeHash, cc.c.alg = markerClaim{}, markerClaim{}, ""
	if c.Expiry != nil {
		cc.exp = *c.Expiry
		cc.c.Expiry = &cc.exp
	}
	if c.NotBefore != nil {
		cc.nbf = *c.NotBefore
		cc.c.NotBefore = &cc.nbf
	}
	if c.IssuedAt != nil {
		cc.iat = *c.IssuedAt
		cc.c.IssuedAt = &cc.iat
	}
	strs := [...]*string{
		&cc.c.Issuer, &cc.c.Subject, (*string)(&cc.c.TenantID), (*string)(&cc.c.SessionID),
		(*string)(&cc.c.Name), (*string)(&cc.c.PreferredUsername), (*string)(&cc.c.Email),
		&cc.c.Confirmation.JKT,
	}
	n := 0
	for _, s := range strs {
		n += len(*s)
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range strs {
		b.WriteString(*s)
	}
	blob := b.String()
	off := 0
	for _, s := range strs {
		l := len(*s)
		*s = blob[off : off+l]
		off += l
	}
	return cc, blob
}

// allocSize rounds an allocation of n bytes up to about the size class the
// Go allocator gives it (within a few percent: the classes step by 16 bytes
// up to 256 and by an eighth of the size beyond).
func allocSize(n int) int {
	switch {
	case n == 0:
		return 0
	case n <= 8:
		return 8
	case n <= 256:
		return (n + 15) &^ 15
	}
	step := 1
	for step*16 < n {
		step *= 2
	}
	return (n + step - 1) / step * step
}

// len reports the number of entries, 0 for a nil (absent) cache.
func (tc *tokenCache) len() int {
	if tc == nil {
		return 0
	}
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	return tc.n
}

// byteSize reports the bytes the cache occupies as it counts them, 0 for a
// nil cache.
func (tc *tokenCache) byteSize() int {
	if tc == nil {
		return 0
	}
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	return tc.bytes
}
