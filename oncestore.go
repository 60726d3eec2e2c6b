package main

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// onceKey is the key of an onceStore entry: the SHA-256 of the random value
// the client holds, so that a map lookup's timing says nothing about the
// value, and every key has the same small size.
type onceKey [32]byte

func onceKeyOf(s string) onceKey { return sha256.Sum256([]byte(s)) }

// onceStore holds values that are each taken at most once and live for one
// fixed time: the handoffs of finished browser sign-ins. It is bounded
// in entries and in bytes (as the caller counts them); past either bound the
// oldest entries are dropped to make room, so a flood of new entries costs
// the oldest pending ones, never memory. Every entry lives for the same ttl,
// so the oldest is also the first to expire and one list in insertion order
// serves expiry and eviction alike. A timer drops expired entries even when
// no request comes, so nothing is held much past its ttl.
type onceStore[V any] struct {
	ttl        time.Duration
	maxEntries int
	maxBytes   int
	now        func() time.Time

	mu      sync.Mutex
	m       map[onceKey]*list.Element
	order   list.List // of *onceEntry[V], oldest first
	bytes   int
	evicted int64
	timer   *time.Timer
}

type onceEntry[V any] struct {
	key     onceKey
	v       V
	size    int
	expires time.Time
}

// onceSweepDelay is the least time between two sweeps of a store: expired
// entries go in batches, at most this long after their time.
const onceSweepDelay = time.Second

func newOnceStore[V any](ttl time.Duration, maxEntries, maxBytes int) *onceStore[V] {
	return &onceStore[V]{ttl: ttl, maxEntries: maxEntries, maxBytes: maxBytes, now: time.Now, m: make(map[onceKey]*list.Element)}
}

// put stores v under key for the store's ttl; size is what v counts against
// maxBytes. It returns how many entries were dropped to make room: older
// ones, or v itself when it alone is over maxBytes.
func (s *onceStore[V]) put(key onceKey, v V, size int) (evicted int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.pruneLocked(now)
	if size > s.maxBytes {
		s.evicted++
		return 1
	}
	if el, ok := s.m[key]; ok {
		s.removeLocked(el)
	}
	s.m[key] = s.order.PushBack(&onceEntry[V]{key: key, v: v, size: size, expires: now.Add(s.ttl)})
	s.bytes += size
	for s.order.Len() > 0 && (s.order.Len() > s.maxEntries || s.bytes > s.maxBytes) {
		s.removeLocked(s.order.Front())
		evicted++
	}
	s.evicted += int64(evicted)
	if s.timer == nil && s.order.Len() > 0 {
		s.timer = time.AfterFunc(s.ttl, s.sweep)
	}
	return evicted
}

// take returns the value under key and removes it, so that a second take of
// the same key finds nothing. An expired entry is not returned.
func (s *onceStore[V]) take(key onceKey) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.pruneLocked(now)
	el, ok := s.m[key]
	if !ok {
		var zero V
		return zero, false
	}
	e := el.Value.(*onceEntry[V])
	s.removeLocked(el)
	if !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// stats reports the entries and bytes held, and the entries dropped so far
// to make room.
func (s *onceStore[V]) stats() (entries, bytes int, evicted int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len(), s.bytes, s.evicted
}

// sweep runs on the timer: it drops what expired and waits for the next
// entry's expiry, or stops when the store is empty.
func (s *onceStore[V]) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.pruneLocked(now)
	if s.order.Len() == 0 {
		s.timer = nil
		return
	}
	next := s.order.Front().Value.(*onceEntry[V]).expires.Sub(now)
	s.timer.Reset(max(next, onceSweepDelay))
}

func (s *onceStore[V]) pruneLocked(now time.Time) {
	for el := s.order.Front(); el != nil && !now.Before(el.Value.(*onceEntry[V]).expires); el = s.order.Front() {
		s.removeLocked(el)
	}
}

func (s *onceStore[V]) removeLocked(el *list.Element) {
	e := s.order.Remove(el).(*onceEntry[V])
	delete(s.m, e.key)
	s.bytes -= e.size
}
