package main

import (
	"crypto/sha256"
	"strings"
	"testing"
)

// TestTokenKey is not parallel: AllocsPerRun counts the process's
// allocations.
func TestTokenKey(t *testing.T) {
	for _, n := range []int{0, 1, 900, 4 << 10, 4<<10 + 1, maxTokenSize} {
		raw := strings.Repeat("t", n)
		if got, want := tokenKey(raw), sha256.Sum256([]byte(raw)); got != want {
			t.Errorf("tokenKey(%d bytes) = %x; want its SHA-256 %x", n, got, want)
		}
	}
	raw := strings.Repeat("t", 1500)
	if n := testing.AllocsPerRun(100, func() { tokenKey(raw) }); n != 0 {
		t.Errorf("tokenKey of a 1500-byte token: %v allocations; want 0", n)
	}
}
