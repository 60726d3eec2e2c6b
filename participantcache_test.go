package main

import "testing"

// TestParticipantCacheRefusesRowsReadBeforeAClear covers the race between a
// register that read a row and a delete in another process: the row read
// before the clear must not be cached after it.
func TestParticipantCacheRefusesRowsReadBeforeAClear(t *testing.T) {
	t.Parallel()
	c := newParticipantCache(10)
	part := participant{ID: "p1", TenantID: "t", Issuer: "i", Subject: "s"}
	key := principal{"t", "i", "s"}
	before := c.epoch()
	c.clear() // the delete elsewhere, noticed by watchGeneration
	c.put(part, before)
	if _, ok := c.get(key); ok {
		t.Fatal("a row read before the clear was cached after it")
	}
	c.put(part, c.epoch())
	if _, ok := c.get(key); !ok {
		t.Fatal("a row read after the clear was not cached")
	}
}
