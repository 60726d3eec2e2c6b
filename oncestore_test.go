package main

import (
	"fmt"
	"testing"
	"time"
)

func newTestOnceStore(ttl time.Duration, maxEntries, maxBytes int) (*onceStore[string], *testClock) {
	s := newOnceStore[string](ttl, maxEntries, maxBytes)
	clock := &testClock{}
	s.now = clock.now
	return s, clock
}

func TestOnceStoreTakesOnce(t *testing.T) {
	t.Parallel()
	s, _ := newTestOnceStore(time.Minute, 10, 1000)
	s.put(onceKeyOf("a"), "value a", 7)
	if _, ok := s.take(onceKeyOf("b")); ok {
		t.Errorf("take(b) found a value that was never put")
	}
	if v, ok := s.take(onceKeyOf("a")); !ok || v != "value a" {
		t.Errorf("take(a) = %q, %v; want value a, true", v, ok)
	}
	if v, ok := s.take(onceKeyOf("a")); ok {
		t.Errorf("second take(a) = %q, true; want nothing: a value is taken once", v)
	}
	if n, b, _ := s.stats(); n != 0 || b != 0 {
		t.Errorf("after taking everything: %d entries, %d bytes; want 0, 0", n, b)
	}
}

func TestOnceStoreExpires(t *testing.T) {
	t.Parallel()
	s, clock := newTestOnceStore(time.Minute, 10, 1000)
	s.put(onceKeyOf("early"), "early", 1)
	clock.advance(30 * time.Second)
	s.put(onceKeyOf("late"), "late", 1)
	clock.advance(30 * time.Second) // early is exactly a minute old
	if _, ok := s.take(onceKeyOf("early")); ok {
		t.Errorf("take of an entry at its ttl succeeded; want it expired")
	}
	if _, ok := s.take(onceKeyOf("late")); !ok {
		t.Errorf("take of an entry half its ttl old failed")
	}

	// The sweep drops expired entries with nobody asking for them.
	s.put(onceKeyOf("idle"), "idle", 5)
	clock.advance(2 * time.Minute)
	s.sweep()
	if n, b, _ := s.stats(); n != 0 || b != 0 {
		t.Errorf("after a sweep past the ttl: %d entries, %d bytes; want 0, 0", n, b)
	}
}

func TestOnceStoreBoundedInEntries(t *testing.T) {
	t.Parallel()
	const max = 50
	s, _ := newTestOnceStore(time.Minute, max, 1<<30)
	evicted := 0
	for i := range 3 * max {
		evicted += s.put(onceKeyOf(fmt.Sprint(i)), fmt.Sprint(i), 1)
		if n, _, _ := s.stats(); n > max {
			t.Fatalf("after %d puts: %d entries; want at most %d", i+1, n, max)
		}
	}
	if _, _, ev := s.stats(); evicted != 2*max || ev != 2*max {
		t.Errorf("put reported %d evictions, stats %d; want %d", evicted, ev, 2*max)
	}
	// The oldest went first; the newest are all there.
	if _, ok := s.take(onceKeyOf(fmt.Sprint(2*max - 1))); ok {
		t.Errorf("entry %d, among the oldest, is still there", 2*max-1)
	}
	for i := 2 * max; i < 3*max; i++ {
		if _, ok := s.take(onceKeyOf(fmt.Sprint(i))); !ok {
			t.Errorf("entry %d, among the newest %d, was dropped", i, max)
		}
	}
}

func TestOnceStoreBoundedInBytes(t *testing.T) {
	t.Parallel()
	s, _ := newTestOnceStore(time.Minute, 1000, 100)
	for i := range 10 {
		s.put(onceKeyOf(fmt.Sprint(i)), "", 30)
		if _, b, _ := s.stats(); b > 100 {
			t.Fatalf("after %d puts of 30 bytes: %d bytes; want at most 100", i+1, b)
		}
	}
	if n, b, _ := s.stats(); n != 3 || b != 90 {
		t.Errorf("%d entries, %d bytes; want the 3 newest, 90 bytes", n, b)
	}
	// An entry bigger than the whole bound is not kept, and costs the
	// others nothing.
	if ev := s.put(onceKeyOf("huge"), "", 101); ev != 1 {
		t.Errorf("put of an entry over the bound reported %d dropped; want 1", ev)
	}
	if _, ok := s.take(onceKeyOf("huge")); ok {
		t.Errorf("an entry over the bound was kept")
	}
	if n, b, _ := s.stats(); n != 3 || b != 90 {
		t.Errorf("after an entry over the bound: %d entries, %d bytes; want 3, 90 as before", n, b)
	}
}
