package main

// The verified-token cache: through the handler, on its own, and racing
// key-set refreshes that withdraw a key.

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// skipWithoutTokenCache skips a test that counts cache hits in a
// tokencacheoff build, which has no cache to count.
func skipWithoutTokenCache(t *testing.T) {
	t.Helper()
	if !tokenCacheEnabled {
		t.Skip("built with tokencacheoff: no verified-token cache")
	}
}

func TestTokenCacheThroughHandler(t *testing.T) {
	t.Parallel()
	skipWithoutTokenCache(t)
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	p.now = func() time.Time { return time.Unix(0, clock.Load()) } // before any request
	met := a.srv.met
	exp := time.Now().Add(5 * time.Minute).Truncate(time.Second)
	tok := f.accessToken(map[string]any{"exp": exp.Unix()})

	checkRegister(t, "first use", a.register(tok), 200)
	if h, m, n := met.tokenCacheHits.Load(), met.tokenCacheMisses.Load(), p.tokens.len(); h != 0 || m != 1 || n != 1 {
		t.Fatalf("after the first use: %d hits, %d misses, %d entries; want 0, 1, 1", h, m, n)
	}
	checkRegister(t, "second use", a.register(tok), 200)
	if h := met.tokenCacheHits.Load(); h != 1 {
		t.Errorf("after the same token twice: %d cache hits; want 1", h)
	}
	checkRegister(t, "another token", a.register(f.accessToken(map[string]any{"sub": "x"})), 200)
	if h, n := met.tokenCacheHits.Load(), p.tokens.len(); h != 1 || n != 2 {
		t.Errorf("after a different token: %d hits, %d entries; want 1, 2", h, n)
	}

	// Past exp but within the leeway: accepted, verified again, not cached.
	clock.Store(exp.Add(30 * time.Second).UnixNano())
	checkRegister(t, "cached token 30 s past exp", a.register(tok), 200)
	if h := met.tokenCacheHits.Load(); h != 1 {
		t.Errorf("token past its exp was served from the cache (%d hits; want 1)", h)
	}
	// Past the leeway: refused, whatever the cache holds.
	clock.Store(exp.Add(61 * time.Second).UnixNano())
	checkRegister(t, "cached token 61 s past exp", a.register(tok), 401)
	if h := met.tokenCacheHits.Load(); h != 1 {
		t.Errorf("expired token was served from the cache (%d hits; want 1)", h)
	}
}

func TestTokenCacheUnit(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	entry := func(i int, exp time.Time) ([32]byte, *claims) {
		key := sha256.Sum256([]byte(fmt.Sprint("tok-", i)))
		return key, &claims{Subject: fmt.Sprint("sub-", i), Expiry: jwt.NewNumericDate(exp)}
	}

	t.Run("expiry and generation", func(t *testing.T) {
		t.Parallel()
		tc := newTokenCache(10, 1<<20)
		exp := now.Add(time.Minute)
		k, c := entry(1, exp)
		tc.put(k, c, 3, now)
		if _, ok := tc.get(k, 3, exp.Add(-time.Second)); !ok {
			t.Error("get a second before exp = miss; want hit")
		}
		if _, ok := tc.get(k, 3, exp); ok {
			t.Error("get at exp = hit; want miss")
		}
		if _, ok := tc.get(k, 4, now); ok {
			t.Error("get under a newer key-set generation = hit; want miss")
		}
		k2, c2 := entry(2, now)
		tc.put(k2, c2, 3, now)
		if _, ok := tc.get(k2, 3, now.Add(-time.Second)); ok || tc.len() != 1 {
			t.Errorf("a token put at its exp was kept (len %d)", tc.len())
		}
	})
	t.Run("bounded in entries", func(t *testing.T) {
		t.Parallel()
		tc := newTokenCache(10, 1<<20)
		var last [32]byte
		for i := range 100 {
			k, c := entry(i, now.Add(time.Hour))
			tc.put(k, c, 1, now)
			last = k
			if n := tc.len(); n > 10 {
				t.Fatalf("after %d puts: %d entries; want at most 10", i+1, n)
			}
		}
		if _, ok := tc.get(last, 1, now); !ok {
			t.Error("the latest token was not kept in a full cache")
		}
	})
	t.Run("bounded in bytes", func(t *testing.T) {
		t.Parallel()
		tc := newTokenCache(1000, 2000)
		for i := range 100 {
			k, c := entry(i, now.Add(time.Hour))
			c.Name = looseString(strings.Repeat("n", 300))
			tc.put(k, c, 1, now)
			tc.mu.RLock()
			b := tc.bytes
			tc.mu.RUnlock()
			if b > 2000 {
				t.Fatalf("after %d puts: %d bytes; want at most 2000", i+1, b)
			}
		}
		k, c := entry(1000, now.Add(time.Hour))
		c.Email = looseString(strings.Repeat("e", 5000))
		tc.put(k, c, 1, now)
		if _, ok := tc.get(k, 1, now); ok {
			t.Error("an entry larger than the whole byte budget was stored")
		}
	})
	t.Run("stale entries go first", func(t *testing.T) {
		t.Parallel()
		tc := newTokenCache(3, 1<<20)
		for i := range 2 {
			k, c := entry(i, now.Add(time.Hour))
			tc.put(k, c, 1, now)
		}
		kc, cc := entry(10, now.Add(time.Hour))
		kd, cd := entry(11, now.Add(time.Hour))
		tc.put(kc, cc, 2, now)
		tc.put(kd, cd, 2, now)
		_, okC := tc.get(kc, 2, now)
		_, okD := tc.get(kd, 2, now)
		if !okC || !okD {
			t.Errorf("with stale entries to drop, a live entry was evicted (c %v, d %v)", okC, okD)
		}
	})
	t.Run("concurrent use", func(t *testing.T) {
		t.Parallel()
		tc := newTokenCache(50, 1<<20)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 200 {
					k, c := entry(g*1000+i, now.Add(time.Hour))
					tc.put(k, c, uint64(i%3), now)
					tc.get(k, uint64(i%3), now)
				}
			}()
		}
		wg.Wait()
		if n := tc.len(); n > 50 {
			t.Errorf("after concurrent puts: %d entries; want at most 50", n)
		}
	})
}

// TestTokenCacheWithdrawnKeyRace verifies tokens signed with a key while
// key-set refreshes withdraw it: no token may end up cached under the set
// without the key, where it would outlive its key until exp. It races, so
// it catches a cache that stores under the wrong generation in most rounds,
// and it never fails a correct one.
func TestTokenCacheWithdrawnKeyRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFakeIDP(t)
	e1 := f.addKey(newTestKey(t, jose.ES256, "e1", 0))
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	uri := p.disc.Load().JWKSURI
	var with []testKey
	f.set(func(f *fakeIDP) { with = f.keys })

	const rounds, perRound, workers = 4, 300, 4
	pool := make([]string, rounds*perRound)
	for i := range pool {
		pool[i] = signWith(t, e1, f.accessClaims(map[string]any{"sub": fmt.Sprintf("race-%d", i)}), nil)
	}
	leaked := 0
	for r := range rounds {
		toks := pool[r*perRound : (r+1)*perRound]
		// Publish the key (a new generation), verify fresh tokens on
		// several goroutines, and withdraw the key a third of the way in.
		f.set(func(f *fakeIDP) { f.keys = with })
		if err := p.fetchKeys(ctx, uri); err != nil {
			t.Fatalf("fetchKeys: %v", err)
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < int64(len(toks)); i = next.Add(1) - 1 {
					p.verifyAccess(ctx, toks[i])
				}
			}()
		}
		for next.Load() < perRound/3 {
			time.Sleep(50 * time.Microsecond)
		}
		f.set(func(f *fakeIDP) { f.keys = with[:1] })
		if err := p.fetchKeys(ctx, uri); err != nil {
			t.Fatalf("fetchKeys: %v", err)
		}
		wg.Wait()
		for _, tok := range toks {
			if _, err := p.verifyAccess(ctx, tok); err == nil {
				leaked++
			}
		}
	}
	if leaked > 0 {
		t.Errorf("%d tokens signed with a withdrawn key were still accepted after the key set refresh; want 0", leaked)
	}
}

func TestTokenCacheRemove(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tc := newTokenCache(10, 1<<20)
	exp := jwt.NewNumericDate(now.Add(time.Minute))
	for i, sub := range []string{"a", "b", "b", "c"} {
		tc.put([32]byte{byte(i)}, &claims{Subject: sub, Expiry: exp}, 1, now)
	}
	before := tc.bytes
	tc.remove([32]byte{0})
	if _, ok := tc.get([32]byte{0}, 1, now); ok || tc.len() != 3 || tc.bytes >= before {
		t.Errorf("after remove: entry found = %v, %d entries, %d bytes (was %d); want gone, 3, fewer", ok, tc.len(), tc.bytes, before)
	}
	tc.remove([32]byte{9}) // absent: no effect
	if n := tc.removeFunc(func(c *claims) bool { return c.Subject == "b" }); n != 2 {
		t.Errorf("removeFunc(sub b) = %d; want 2", n)
	}
	if _, ok := tc.get([32]byte{3}, 1, now); !ok || tc.len() != 1 {
		t.Errorf("after removeFunc: c found = %v, %d entries; want true, 1", ok, tc.len())
	}
	var none *tokenCache
	none.remove([32]byte{})
	if n := none.removeFunc(func(*claims) bool { return true }); n != 0 {
		t.Errorf("removeFunc on no cache = %d; want 0", n)
	}
}
