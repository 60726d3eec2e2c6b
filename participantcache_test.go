package main

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestParticipantCacheRefusesRowsReadBeforeAClear covers the race between a
// register that read a row and a delete in another process: the row read
// before the clear must not be cached after it.
func TestParticipantCacheRefusesRowsReadBeforeAClear(t *testing.T) {
	t.Parallel()
	c := newParticipantCache(1 << 20)
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

// testParticipant is participant i as the store reads it back: every string
// its own allocation.
func testParticipant(i, pad int) participant {
	long := strings.Repeat("x", pad)
	now := time.Now().UTC()
	return participant{
		ID:                  fmt.Sprintf("%08x-4a7d-4e0b-9c35-8d21f0a6b7c4", i),
		TenantID:            strings.Clone("acme"),
		Issuer:              strings.Clone("https://idp.example.com/realms/acme"),
		Subject:             fmt.Sprintf("%08x-c3a8-4f56-a0e7-1d4c9b8f3e62", i),
		DisplayName:         fmt.Sprintf("Load User %d%s", i, long),
		Email:               fmt.Sprintf("load%d%s@example.com", i, long),
		PersonalWorkspaceID: fmt.Sprintf("ws-%08x-9c35-4e0b-4a7d-8d21f0a6b7c4", i),
		CreatedAt:           now, UpdatedAt: now,
	}
}

// TestParticipantCacheAccounting holds the cache's byte count to what the
// heap grew by, within 20%, for typical participants and long ones. Not
// parallel: nothing else may allocate while it measures.
func TestParticipantCacheAccounting(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a cache of 20 000 participants")
	}
	for _, tt := range []struct {
		name   string
		n, pad int
	}{
		{"20k typical", 20_000, 0},
		{"2k with 1 KiB names and emails", 2_000, 1024},
	} {
		before := heapInUse()
		c := newParticipantCache(1 << 30)
		for i := range tt.n {
			c.put(testParticipant(i, tt.pad), 0)
		}
		grew := heapInUse() - before
		c.mu.RLock()
		counted, n := int64(c.bytes), len(c.m)
		c.mu.RUnlock()
		if n != tt.n {
			t.Fatalf("%s: %d entries; want %d", tt.name, n, tt.n)
		}
		checkCountedHeap(t, tt.name, tt.n, counted, grew)
		runtime.KeepAlive(c)
	}
}

// TestParticipantCacheByteCapHolds puts many times more participants than
// fit: the heap the cache holds stays within its budget (plus 20%).
func TestParticipantCacheByteCapHolds(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a 2 MiB cache several times over")
	}
	const budget = 2 << 20
	before := heapInUse()
	c := newParticipantCache(budget)
	for i := range 30_000 {
		c.put(testParticipant(i, i%3*100), 0)
		if c.bytes > budget {
			t.Fatalf("after %d puts the cache counts %d B; want at most %d", i+1, c.bytes, budget)
		}
	}
	grew := heapInUse() - before
	t.Logf("2 MiB budget, 30000 puts: %d entries kept, the heap grew %d B", len(c.m), grew)
	if grew > budget+budget/5 {
		t.Errorf("a cache with a %d B budget holds %d B of heap; want at most %d", budget, grew, budget+budget/5)
	}
	if n := len(c.m); n < 2_000 {
		t.Errorf("%d entries kept; want the budget used (2000 or more)", n)
	}
	c.put(testParticipant(-1, budget), 0)
	if _, ok := c.get(principal{"acme", "https://idp.example.com/realms/acme", testParticipant(-1, 0).Subject}); ok {
		t.Error("a participant larger than the whole budget was cached")
	}
	runtime.KeepAlive(c)
}
