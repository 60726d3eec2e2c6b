package main

// The memory settings: defaults, validation, the flag, and the limit itself.

import (
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

// TestMain keeps the test binary's memory unlimited: the tests start the
// service through run many times over, and serve would otherwise put the
// whole test process under the service's default soft limit, as GOMEMLIMIT
// in the environment is the one thing it yields to.
func TestMain(m *testing.M) {
	if os.Getenv("GOMEMLIMIT") == "" {
		os.Setenv("GOMEMLIMIT", "off")
	}
	os.Exit(m.Run())
}

func TestMemoryConfig(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	tenants := func(n int) []any {
		var ts []any
		for i := range n {
			tj := fakeTenantJSON(f, string(rune('a'+i)), string(rune('a'+i))+".example")
			tj["client_id"] = "client-" + string(rune('a'+i)) // one issuer, so distinct clients
			ts = append(ts, tj)
		}
		return ts
	}
	for _, tt := range []struct {
		name           string
		doc            map[string]any
		wantErr        string
		wantLimit      int
		wantShareBytes int
	}{
		{"defaults", map[string]any{}, "", 48, 16 << 20},
		{"cache split among tenants", map[string]any{"token_cache_mb": 30, "tenants": tenants(3)}, "", 62, 10 << 20},
		{"limit given", map[string]any{"memory_limit_mb": 200}, "", 200, 16 << 20},
		{"no limit", map[string]any{"memory_limit_mb": 0}, "", 0, 16 << 20},
		{"limit below the cache", map[string]any{"memory_limit_mb": 20}, "memory_limit_mb: must be 0 (no limit) or between 32", 0, 0},
		{"limit below a larger cache", map[string]any{"memory_limit_mb": 100, "token_cache_mb": 90}, "memory_limit_mb: must be 0 (no limit) or between 106", 0, 0},
		{"negative limit", map[string]any{"memory_limit_mb": -1}, "memory_limit_mb: must be 0", 0, 0},
		{"limit too large", map[string]any{"memory_limit_mb": 1 << 21}, "memory_limit_mb: must be 0", 0, 0},
		{"no cache", map[string]any{"token_cache_mb": 0}, "token_cache_mb: must be between 1 and", 0, 0},
		{"limit a string", map[string]any{"memory_limit_mb": "64MiB"}, "memory_limit_mb: must be", 0, 0},
	} {
		doc := map[string]any{"tenants": []any{fakeTenantJSON(f, "acme")}}
		for k, v := range tt.doc {
			doc[k] = v
		}
		path := writeConfigFile(t, t.TempDir(), doc)
		cfg, err := loadConfig(path, noEnv)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: loadConfig = %v; want one line containing %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: loadConfig = %v", tt.name, err)
			continue
		}
		if *cfg.MemoryLimitMB != tt.wantLimit || cfg.Tenants[0].tokenCacheBytes != tt.wantShareBytes {
			t.Errorf("%s: memory limit %d MiB, a tenant's cache %d B; want %d, %d", tt.name,
				*cfg.MemoryLimitMB, cfg.Tenants[0].tokenCacheBytes, tt.wantLimit, tt.wantShareBytes)
		}
	}
}

// TestTokenCacheBudgetReachesProviders checks that each tenant's cache gets
// its share of token_cache_mb.
func TestTokenCacheBudgetReachesProviders(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a, b := f.tenantConfig(), f.tenantConfig()
	a.ID, a.Hosts, b.ID, b.Hosts, b.ClientID = "a", []string{"a.example"}, "b", []string{"b.example"}, "other"
	app := startTestApp(t, &config{TokenCacheMB: new(2), Tenants: []tenantConfig{a, b}}, t.TempDir()+"/test.db", false)
	for _, tn := range app.srv.tenants {
		if tn.prov.tokens != nil && tn.prov.tokens.maxBytes != 1<<20 {
			t.Errorf("tenant %s: token cache of %d B; want 1 MiB, half of token_cache_mb 2", tn.cfg.ID, tn.prov.tokens.maxBytes)
		}
	}
}

func TestMemoryLimitFlag(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	path := writeConfigFile(t, t.TempDir(), map[string]any{"memory_limit_mb": 100, "tenants": []any{fakeTenantJSON(f, "acme")}})
	for _, tt := range []struct {
		args      []string
		wantLimit int
		wantErr   string
	}{
		{[]string{"-config", path}, 100, ""},
		{[]string{"-config", path, "-memory-limit", "64"}, 64, ""},
		{[]string{"-config", path, "-memory-limit", "0"}, 0, ""},
		{[]string{"-config", path, "-memory-limit", "8"}, 0, "-memory-limit: must be 0 (no limit) or between 32"},
	} {
		o, _, err := parseFlags("scaiwave-auth", tt.args, noEnv, &strings.Builder{})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(path, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		err = applyOverrides(cfg, o)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != 2 {
				t.Errorf("%v: applyOverrides = %v (exit %d); want exit 2 with %q", tt.args, err, exitCode(err), tt.wantErr)
			}
			continue
		}
		if err != nil || *cfg.MemoryLimitMB != tt.wantLimit {
			t.Errorf("%v: memory limit %d MiB, %v; want %d", tt.args, *cfg.MemoryLimitMB, err, tt.wantLimit)
		}
	}
}

// TestApplyMemoryLimit sets the process's limit for real, so it is not
// parallel, and puts back what it found.
func TestApplyMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	debug.SetMemoryLimit(math.MaxInt64)
	if got := applyMemoryLimit(48, ""); got != "48MiB" || debug.SetMemoryLimit(-1) != 48<<20 {
		t.Errorf("applyMemoryLimit(48) = %q, limit %d; want 48MiB, %d", got, debug.SetMemoryLimit(-1), 48<<20)
	}
	if got := applyMemoryLimit(0, ""); got != "none" || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("applyMemoryLimit(0) = %q, limit %d; want none, no limit", got, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(300 << 20) // as GOMEMLIMIT=300MiB would have at start
	if got := applyMemoryLimit(48, "300MiB"); got != "GOMEMLIMIT=300MiB" || debug.SetMemoryLimit(-1) != 300<<20 {
		t.Errorf("applyMemoryLimit(48) under GOMEMLIMIT = %q, limit %d; want GOMEMLIMIT's own", got, debug.SetMemoryLimit(-1))
	}
}
