package main

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
)

// Memory settings: the token cache's budget and the soft memory limit.
const (
	// defaultTokenCacheMB is token_cache_mb's default, for all tenants
	// together.
	defaultTokenCacheMB = 16
	// memoryHeadroomMB is what the default memory limit allows beside the
	// token cache: the runtime, the participant cache, connections and
	// bodies in flight, and room for the collector to work in
	// (docs/operations.md, "Sizing the box").
	memoryHeadroomMB = 32
	// minMemoryHeadroomMB is the least a configured limit must leave beside
	// the token cache: below it the collector would run all the time.
	minMemoryHeadroomMB = 16
	maxMemoryMB         = 1 << 20 // 1 TiB
)

// validateMemory applies the defaults of token_cache_mb and memory_limit_mb,
// checks them, and gives each tenant its even share of the token cache.
func (c *config) validateMemory() error {
	if c.TokenCacheMB == nil {
		c.TokenCacheMB = new(defaultTokenCacheMB)
	}
	if mb := *c.TokenCacheMB; mb < 1 || mb > maxMemoryMB {
		return configErrorf("token_cache_mb: must be between 1 and %d (MiB), not %d", maxMemoryMB, mb)
	}
	if c.MemoryLimitMB == nil {
		c.MemoryLimitMB = new(*c.TokenCacheMB + memoryHeadroomMB)
	}
	if err := checkMemoryLimit(*c.MemoryLimitMB, *c.TokenCacheMB); err != nil {
		return configErrorf("memory_limit_mb: %v", err)
	}
	if n := len(c.Tenants); n > 0 {
		share := *c.TokenCacheMB << 20 / n
		for i := range c.Tenants {
			c.Tenants[i].tokenCacheBytes = share
		}
	}
	return nil
}

// checkMemoryLimit checks a memory limit of mb MiB (0: none) beside a token
// cache of cacheMB MiB.
func checkMemoryLimit(mb, cacheMB int) error {
	if mb == 0 {
		return nil
	}
	if least := cacheMB + minMemoryHeadroomMB; mb < least || mb > maxMemoryMB {
		return fmt.Errorf("must be 0 (no limit) or between %d (the token cache's %d MiB and %d) and %d (MiB), not %d",
			least, cacheMB, minMemoryHeadroomMB, maxMemoryMB, mb)
	}
	return nil
}

// applyMemoryLimit sets the Go runtime's soft memory limit to mb MiB (0: no
// limit, the collector paced by GOGC alone), unless GOMEMLIMIT is set in the
// process's environment (gomemlimit): the runtime applied that at start, and
// it wins. It returns what is in force, for the log.
func applyMemoryLimit(mb int, gomemlimit string) string {
	if gomemlimit != "" {
		return "GOMEMLIMIT=" + gomemlimit
	}
	limit := int64(math.MaxInt64)
	if mb > 0 {
		limit = int64(mb) << 20
	}
	debug.SetMemoryLimit(limit)
	if mb == 0 {
		return "none"
	}
	return strconv.Itoa(mb) + "MiB"
}
