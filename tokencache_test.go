package main

// The verified-token cache: through the handler, on its own, and racing
// key-set refreshes that withdraw a key.

import (
	"context"
	"crypto/sha256"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
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
		const budget = 64 << 10
		tc := newTokenCache(1000, budget)
		for i := range 1000 {
			k, c := entry(i, now.Add(time.Hour))
			c.Name = looseString(strings.Repeat("n", 300))
			tc.put(k, c, 1, now)
			if b := tc.byteSize(); b > budget {
				t.Fatalf("after %d puts: %d bytes; want at most %d", i+1, b, budget)
			}
		}
		// Full as the cache counts: what is left is less than two entries.
		_, blob := packClaims(func() *claims {
			_, c := entry(0, now.Add(time.Hour))
			c.Name = looseString(strings.Repeat("n", 300))
			return c
		}())
		if left, size := budget-tc.byteSize(), tokenCacheEntrySize(blob); left >= 2*size {
			t.Errorf("a full %d-byte cache of %d-byte entries leaves %d bytes unused (%d entries); want the budget used", budget, size, left, tc.len())
		}
		k, c := entry(1000, now.Add(time.Hour))
		c.Email = looseString(strings.Repeat("e", budget))
		tc.put(k, c, 1, now)
		if _, ok := tc.get(k, 1, now); ok {
			t.Error("an entry larger than the whole byte budget was stored")
		}
	})
	t.Run("entries of an older key set go before those in use", func(t *testing.T) {
		t.Parallel()
		tc := newTokenCache(2, 1<<20)
		ka, ca := entry(1, now.Add(time.Hour))
		tc.put(ka, ca, 1, now)
		tc.get(ka, 1, now) // in use, but of a key set about to be replaced
		kb, cb := entry(2, now.Add(time.Hour))
		tc.put(kb, cb, 2, now)
		kc, cc := entry(3, now.Add(time.Hour))
		tc.put(kc, cc, 2, now)
		if _, ok := tc.get(kb, 2, now); !ok {
			t.Error("an entry of the current key set was evicted while a stale one took up room")
		}
		if _, ok := tc.get(ka, 2, now); ok {
			t.Error("an entry of an older key set answered under the newer one")
		}
		kd, cd := entry(4, now.Add(time.Hour))
		tc.put(kd, cd, 1, now)
		if _, ok := tc.get(kd, 1, now); ok {
			t.Error("a put under an older key set than the newest put was kept")
		}
	})
	t.Run("answers of the IdP outlive key sets; refusals are remembered", func(t *testing.T) {
		t.Parallel()
		tc := newTokenCache(10, 1<<20)
		kr, cr := entry(1, now.Add(time.Hour))
		tc.putUntil(kr, cr, genAny, now.Add(time.Minute), now)
		kn, _ := entry(2, now.Add(time.Hour))
		tc.putUntil(kn, nil, genAny, now.Add(10*time.Second), now)
		for g := range uint64(5) {
			k, c := entry(10+int(g), now.Add(time.Hour))
			tc.put(k, c, g, now)
		}
		if got, ok := tc.get(kr, genAny, now); !ok || got.Subject != cr.Subject {
			t.Errorf("an IdP answer after key set changes = %v, %v; want it", got, ok)
		}
		if _, ok := tc.get(kr, genAny, now.Add(time.Minute)); ok {
			t.Error("an IdP answer outlived its putUntil end")
		}
		if got, ok := tc.get(kn, genAny, now); !ok || got != nil {
			t.Errorf("a negative entry = %v, %v; want nil, true", got, ok)
		}
	})
	t.Run("remove and removeFunc", func(t *testing.T) {
		t.Parallel()
		tc := newTokenCache(10, 1<<20)
		var keys [][32]byte
		for i := range 6 {
			k, c := entry(i, now.Add(time.Hour))
			tc.put(k, c, 1, now)
			keys = append(keys, k)
		}
		kn, _ := entry(99, now.Add(time.Hour))
		tc.putUntil(kn, nil, genAny, now.Add(time.Minute), now)
		tc.remove(keys[0])
		if _, ok := tc.get(keys[0], 1, now); ok {
			t.Error("a removed entry answered")
		}
		n := tc.removeFunc(func(c *claims) bool { return c.Subject == "sub-1" || c.Subject == "sub-2" })
		_, ok1 := tc.get(keys[1], 1, now)
		_, ok3 := tc.get(keys[3], 1, now)
		_, okn := tc.get(kn, genAny, now)
		if n != 2 || ok1 || !ok3 || !okn || tc.len() != 4 {
			t.Errorf("removeFunc = %d, sub-1 kept %v, sub-3 kept %v, negative kept %v, %d entries; want 2, false, true, true, 4", n, ok1, ok3, okn, tc.len())
		}
		var none *tokenCache
		none.remove(keys[3])
		if none.removeFunc(func(*claims) bool { return true }) != 0 {
			t.Error("a nil cache removed something")
		}
	})
	t.Run("tokens in use outlive a flood of new ones", func(t *testing.T) {
		t.Parallel()
		tc := newTokenCache(100, 1<<20)
		hot, hc := entry(-1, now.Add(time.Hour))
		tc.put(hot, hc, 1, now)
		for i := range 2000 {
			k, c := entry(i, now.Add(time.Hour))
			tc.put(k, c, 1, now)
			if i%50 == 0 {
				if _, ok := tc.get(hot, 1, now); !ok {
					t.Fatalf("after %d tokens seen once, a token used every 50 requests was evicted", i)
				}
			}
		}
	})
	t.Run("an expired entry goes before one in use", func(t *testing.T) {
		t.Parallel()
		tc := newTokenCache(2, 1<<20)
		ka, ca := entry(1, now.Add(time.Minute))
		kb, cb := entry(2, now.Add(time.Hour))
		tc.put(ka, ca, 1, now)
		tc.put(kb, cb, 1, now)
		tc.get(ka, 1, now)
		tc.get(kb, 1, now)
		later := now.Add(2 * time.Minute)
		for i := range 2 {
			k, c := entry(10+i, now.Add(time.Hour))
			tc.put(k, c, 1, later)
		}
		if _, ok := tc.get(kb, 1, later); !ok {
			t.Error("a token in use was evicted while an expired one took up room")
		}
	})
	t.Run("keys that share an index prefix never answer for each other", func(t *testing.T) {
		t.Parallel()
		tc := newTokenCache(10, 1<<20)
		k1, c1 := entry(1, now.Add(time.Hour))
		k2, c2 := entry(2, now.Add(time.Hour))
		copy(k2[:8], k1[:8])
		tc.put(k1, c1, 1, now)
		if _, ok := tc.get(k2, 1, now); ok {
			t.Fatal("a key found the entry of another with the same first 8 bytes")
		}
		tc.put(k2, c2, 1, now)
		if got, ok := tc.get(k2, 1, now); !ok || got.Subject != c2.Subject {
			t.Errorf("get(k2) = %v, %v; want its own claims", got, ok)
		}
		if got, ok := tc.get(k1, 1, now); ok {
			t.Errorf("get(k1) after k2 took its index = %q; want a miss", got.Subject)
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

// realisticClaims decodes, as the verifier does, the payload of an access
// token of the kind Keycloak or the development IdP issue: a UUID subject,
// an audience, profile and email claims, and claims the cache leaves out.
// pad lengthens the name and email, to vary the entries' sizes.
func realisticClaims(t testing.TB, i int, exp time.Time, pad int) *claims {
	t.Helper()
	long := strings.Repeat("x", pad)
	payload := fmt.Sprintf(`{"iss":"https://idp.example.com/realms/acme","sub":"%08x-4a7d-4e0b-9c35-8d21f0a6b7c4",`+
		`"aud":["scaiwave","account"],"azp":"scaiwave","client_id":"scaiwave","exp":%d,"iat":%d,"auth_time":%d,`+
		`"jti":"%016x","scope":"openid profile email","sid":"%08x-c3a8-4f56-a0e7-1d4c9b8f3e62",`+
		`"name":"Load User %d%s","preferred_username":"load%d","email":"load%d%s@example.com","email_verified":true}`,
		i, exp.Unix(), exp.Unix()-300, exp.Unix()-300, i, i, i, long, i, i, long)
	var c claims
	if err := josejson.Unmarshal([]byte(payload), &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// heapInUse is the live heap after a full collection.
func heapInUse() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// checkCountedHeap logs what a cache of n entries counts against what the
// heap grew by while it was filled, and fails unless they are within 20%.
func checkCountedHeap(t *testing.T, name string, n int, counted, grew int64) {
	t.Helper()
	t.Logf("%s: heap grew %d B (%d B an entry), the cache counts %d B (%d B an entry)",
		name, grew, grew/int64(n), counted, counted/int64(n))
	if diff := counted - grew; diff > grew/5 || -diff > grew/5 {
		t.Errorf("%s: the cache counts %d B, the heap grew %d B; want within 20%%", name, counted, grew)
	}
}

// TestTokenCacheAccounting fills caches with claims decoded as the verifier
// decodes them and holds the cache's own byte count to what the heap grew
// by: within 20%, for typical entries and for long ones. It is not parallel,
// so that no other test allocates while it measures.
func TestTokenCacheAccounting(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a cache of 20 000 entries")
	}
	now := time.Now()
	for _, tt := range []struct {
		name string
		n    int
		pad  int
	}{
		{"20k typical", 20_000, 0},
		{"2k with 1 KiB names and emails", 2_000, 1024},
	} {
		before := heapInUse()
		tc := newTokenCache(1<<30, 1<<30)
		for i := range tt.n {
			c := realisticClaims(t, i, now.Add(time.Hour), tt.pad)
			tc.put(sha256.Sum256([]byte(fmt.Sprint(tt.name, i))), c, 1, now)
		}
		grew := heapInUse() - before
		counted := int64(tc.byteSize())
		if tc.len() != tt.n {
			t.Fatalf("%s: %d entries; want %d", tt.name, tc.len(), tt.n)
		}
		checkCountedHeap(t, tt.name, tt.n, counted, grew)
		runtime.KeepAlive(tc)
	}
}

// TestTokenCacheByteCapHolds puts many times more tokens than fit and checks
// that the heap the cache holds stays within its byte budget (plus 20%), and
// that the budget, not the entry cap, is what stopped it.
func TestTokenCacheByteCapHolds(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a 2 MiB cache several times over")
	}
	const budget = 2 << 20
	now := time.Now()
	before := heapInUse()
	tc := newTokenCache(1<<30, budget)
	for i := range 30_000 {
		tc.put(sha256.Sum256([]byte(fmt.Sprint("cap-", i))), realisticClaims(t, i, now.Add(time.Hour), i%3*100), 1, now)
		if b := tc.byteSize(); b > budget {
			t.Fatalf("after %d puts the cache counts %d B; want at most %d", i+1, b, budget)
		}
	}
	grew := heapInUse() - before
	t.Logf("2 MiB budget, 30000 puts: %d entries kept, the heap grew %d B", tc.len(), grew)
	if grew > budget+budget/5 {
		t.Errorf("a cache with a %d B budget holds %d B of heap; want at most %d", budget, grew, budget+budget/5)
	}
	if n := tc.len(); n < 2_500 || n >= 30_000 {
		t.Errorf("%d entries kept; want the byte budget to bite (between 2500 and 30000)", n)
	}
	runtime.KeepAlive(tc)
}

// TestTokenCacheKnowsEveryClaim fails when claims gains a field that
// packClaims neither packs nor leaves out on purpose: the byte count would
// miss what it holds. Teach packClaims the field, then list it here.
func TestTokenCacheKnowsEveryClaim(t *testing.T) {
	t.Parallel()
	known := map[string]string{
		"Issuer": "packed", "Subject": "packed", "Name": "packed", "PreferredUsername": "packed", "Email": "packed",
		"Expiry": "time", "NotBefore": "time", "IssuedAt": "time",
		"TenantID": "packed", "SessionID": "packed", "EmailVerified": "copied", "namedAccess": "copied", "Confirmation": "packed",
		"Audience": "dropped", "AuthorizedParty": "dropped", "ClientID": "dropped", "Nonce": "dropped",
		"AccessTokenHash": "dropped", "CodeHash": "dropped", "Type": "dropped", "alg": "dropped",
	}
	for f := range reflect.TypeFor[claims]().Fields() {
		if known[f.Name] == "" {
			t.Errorf("claims.%s is new to the token cache: pack it or drop it in packClaims (tokencache.go), and list it here", f.Name)
		}
	}

	now := time.Now()
	c := realisticClaims(t, 7, now.Add(time.Hour), 0)
	c.Nonce, c.NotBefore = "n-1", c.IssuedAt
	c.TenantID, c.SessionID = "0b2e7c1a-5d3f-4e8a-9c6b-1f2a3b4c5d6e", "sid-7"
	c.EmailVerified = claimBool{known: true, value: true}
	c.ClientID, c.Type = "client-7", "at+jwt"
	cc, blob := packClaims(c)
	got := cc.c
	if got.Issuer != c.Issuer || got.Subject != c.Subject || got.Name != c.Name ||
		got.PreferredUsername != c.PreferredUsername || got.Email != c.Email ||
		got.TenantID != c.TenantID || got.SessionID != c.SessionID || got.EmailVerified != c.EmailVerified {
		t.Errorf("packed claims %+v; want the strings and email_verified of %+v", got, *c)
	}
	if *got.Expiry != *c.Expiry || *got.IssuedAt != *c.IssuedAt || *got.NotBefore != *c.NotBefore {
		t.Errorf("packed times exp %v iat %v nbf %v; want %v %v %v", got.Expiry, got.IssuedAt, got.NotBefore, c.Expiry, c.IssuedAt, c.NotBefore)
	}
	if got.Audience != nil || got.AuthorizedParty != "" || got.ClientID != "" || got.Nonce != "" || got.Type != "" {
		t.Errorf("packed claims keep aud %q, azp %q, client_id %q, nonce %q, typ %q; want them left out",
			got.Audience, got.AuthorizedParty, got.ClientID, got.Nonce, got.Type)
	}
	want := len(c.Issuer) + len(c.Subject) + len(c.TenantID) + len(c.SessionID) + len(c.Name) + len(c.PreferredUsername) + len(c.Email)
	if len(blob) != want {
		t.Errorf("blob of %d bytes; want the seven strings' %d", len(blob), want)
	}
}

// BenchmarkTokenCachePutFull is a put into a full cache, the cold path's
// insert: its cost must not grow with the cache.
func BenchmarkTokenCachePutFull(b *testing.B) {
	now := time.Now()
	c := &claims{Issuer: "https://idp.example.com/realms/acme", Subject: "8d21f0a6-4a7d-4e0b-9c35-8d21f0a6b7c4",
		Name: "Load User", Email: "load@example.com", Expiry: jwt.NewNumericDate(now.Add(time.Hour))}
	for _, n := range []int{1_000, 50_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			tc := newTokenCache(n, 1<<30)
			keys := make([][32]byte, 4*n)
			for i := range keys {
				keys[i] = sha256.Sum256([]byte(fmt.Sprint(i)))
			}
			for i := range n {
				tc.put(keys[i], c, 1, now)
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				tc.put(keys[i%len(keys)], c, 1, now)
				i++
			}
		})
	}
}
