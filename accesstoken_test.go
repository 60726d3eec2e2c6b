package main

// Answers about opaque tokens in the verified-token cache: their lifetime
// (exp against cache_seconds, with a fixed clock), the negative entries,
// one call for concurrent requests, the tenant in the key, and floods of
// distinct tokens that must keep the IdP and memory bounded.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	josejson "github.com/go-jose/go-jose/v4/json"
)

// stopClock fixes the provider's clock at a test clock and returns it.
func (a *testApp) stopClock(i int) *testClock {
	c := &testClock{}
	a.srv.tenants[i].prov.now = c.now
	return c
}

func TestIntrospectionCacheLifetime(t *testing.T) {
	t.Parallel()
	secs := func(n int) *int { return &n }
	tests := []struct {
		name      string
		cacheSecs *int // nil: the default, 60
		exp       time.Duration
		active    bool
		// steps: advance the clock by d, then register; wantCall says
		// whether the IdP is asked.
		steps []struct {
			d        time.Duration
			wantCall bool
		}
	}{
		{"exp before cache_seconds", nil, 30 * time.Second, true, []struct {
			d        time.Duration
			wantCall bool
		}{{0, true}, {29 * time.Second, false}, {2 * time.Second, true}}},
		{"cache_seconds before exp", secs(60), 5 * time.Minute, true, []struct {
			d        time.Duration
			wantCall bool
		}{{0, true}, {59 * time.Second, false}, {2 * time.Second, true}, {30 * time.Second, false}}},
		{"inactive: 10 s", nil, 5 * time.Minute, false, []struct {
			d        time.Duration
			wantCall bool
		}{{0, true}, {9 * time.Second, false}, {2 * time.Second, true}}},
		{"cache_seconds 0: every time", secs(0), 5 * time.Minute, true, []struct {
			d        time.Duration
			wantCall bool
		}{{0, true}, {0, true}, {time.Second, true}}},
		{"cache_seconds 0, inactive: every time", secs(0), 5 * time.Minute, false, []struct {
			d        time.Duration
			wantCall bool
		}{{0, true}, {0, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, a := newIntrospectionApp(t, func(f *fakeIDP, cfg *tenantConfig) { cfg.AccessTokens.CacheSeconds = tc.cacheSecs })
			clock := a.stopClock(0)
			exp := time.Now().Add(tc.exp).Unix()
			tok := f.opaqueToken(map[string]any{"exp": exp, "active": tc.active})
			want := 200
			if !tc.active {
				want = 401
			}
			for i, st := range tc.steps {
				clock.advance(st.d)
				before := f.introspectHits.Load()
				w := a.register(tok)
				if i < 2 || tc.active && time.Duration(clock.offset.Load()) < tc.exp {
					tokCheck(t, "/v1/auth/register", fmt.Sprintf("%s, step %d", tc.name, i), w, want, map[bool]string{true: "", false: "SW_AUTH_UNAUTHENTICATED"}[want == 200])
				}
				if called := f.introspectHits.Load() > before; called != st.wantCall {
					t.Errorf("%s, step %d (clock +%v): IdP asked %v; want %v", tc.name, i, time.Duration(clock.offset.Load()), called, st.wantCall)
				}
			}
		})
	}
}

// TestIntrospectionRevokedStopsWithinCacheSeconds: a token the IdP stops
// calling active is refused once cache_seconds have passed.
func TestIntrospectionRevokedStopsWithinCacheSeconds(t *testing.T) {
	t.Parallel()
	f, a := newIntrospectionApp(t, func(f *fakeIDP, cfg *tenantConfig) { n := 30; cfg.AccessTokens.CacheSeconds = &n })
	clock := a.stopClock(0)
	tok := f.opaqueToken()
	if w := a.register(tok); w.Code != 200 {
		t.Fatalf("POST /v1/auth/register = %d", w.Code)
	}
	f.set(func(f *fakeIDP) { f.opaque[tok] = map[string]any{"active": false} })
	clock.advance(29 * time.Second)
	if w := a.register(tok); w.Code != 200 {
		t.Errorf("POST /v1/auth/register within cache_seconds of the answer = %d; want 200 from the cache", w.Code)
	}
	clock.advance(2 * time.Second)
	if w := a.register(tok); w.Code != 401 {
		t.Errorf("POST /v1/auth/register after cache_seconds, token revoked = %d; want 401", w.Code)
	}
}

// TestIntrospectionSingleFlight: concurrent requests with one token make
// one call, and all get its answer.
func TestIntrospectionSingleFlight(t *testing.T) {
	t.Parallel()
	f, a := newIntrospectionApp(t, nil)
	tok := f.opaqueToken()
	slow := f.defaultIntrospect
	f.set(func(f *fakeIDP) {
		f.introspectFn = func(form url.Values, r *http.Request) (int, any) {
			time.Sleep(200 * time.Millisecond)
			return slow(form, r)
		}
	})
	const n = 20
	var wg sync.WaitGroup
	var ok atomic.Int64
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			if w := a.register(tok); w.Code == 200 {
				ok.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := f.introspectHits.Load(); got != 1 {
		t.Errorf("%d concurrent requests with one opaque token made %d introspection calls; want 1", n, got)
	}
	if ok.Load() != n {
		t.Errorf("%d of %d concurrent requests got 200", ok.Load(), n)
	}
}

// TestIntrospectionTenantInKey: one token, two tenants: the answer of one
// tenant's IdP never stands for the other's.
func TestIntrospectionTenantInKey(t *testing.T) {
	t.Parallel()
	fa, fb := newFakeIDP(t), newFakeIDP(t)
	for _, f := range []*fakeIDP{fa, fb} {
		f.set(func(f *fakeIDP) { f.introspect = true })
	}
	ta, tb := fa.tenantConfig(), fb.tenantConfig()
	ta.ID, ta.Hosts = "a", []string{"a.example"}
	tb.ID, tb.Hosts = "b", []string{"b.example"}
	a := newTestApp(t, []tenantConfig{ta, tb})
	tok := fa.opaqueToken() // active at a's IdP only
	reg := func(host string) int {
		return a.do("POST", "http://"+host+"/v1/auth/register", "", "Authorization", "Bearer "+tok).Code
	}
	if got := reg("a.example"); got != 200 {
		t.Fatalf("POST /v1/auth/register at tenant a = %d; want 200", got)
	}
	if got := reg("b.example"); got != 401 {
		t.Errorf("POST /v1/auth/register at tenant b with a's token = %d; want 401", got)
	}
	if fb.introspectHits.Load() != 1 {
		t.Errorf("tenant b's IdP was asked %d times; want once", fb.introspectHits.Load())
	}
	if remoteKey("a", tok) == remoteKey("b", tok) {
		t.Error("the cache key does not depend on the tenant")
	}
}

// TestIntrospectionFloodBounded: a flood of distinct opaque tokens against
// an introspection endpoint that never answers: the IdP sees at most the
// cap, the callers get 503, every call is cancelled once its caller left,
// and nothing stays in memory.
func TestIntrospectionFloodBounded(t *testing.T) {
	t.Parallel()
	f, a := newIntrospectionApp(t, nil)
	f.set(func(f *fakeIDP) { f.introspectMode, f.slow = modeHang, time.Minute })
	p := a.srv.tenants[0].prov
	const n = 300
	var wg sync.WaitGroup
	var got503 atomic.Int64
	deadline := time.Now().Add(500 * time.Millisecond)
	maxSeen := f.maxBefore(deadline)
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			defer cancel()
			w := a.doFrom(ctx, "", "POST", "/v1/auth/register", "", "Authorization", fmt.Sprintf("Bearer flood-%d", i))
			if w.Code == 503 {
				got503.Add(1)
			}
		})
	}
	wg.Wait()
	if got503.Load() != n {
		t.Errorf("%d of %d flooded requests got 503; want all", got503.Load(), n)
	}
	if max := <-maxSeen; max > idpMaxInFlight {
		t.Errorf("the introspection endpoint saw %d calls in flight; want at most %d", max, idpMaxInFlight)
	}
	if !waitUntil(5*time.Second, func() bool { return f.inFlight.Load() == 0 }) {
		t.Errorf("5 s after the flood, %d introspection calls still open; want them cancelled", f.inFlight.Load())
	}
	if c, h := f.cancelled.Load(), f.introspectHits.Load(); c != h || h == 0 {
		t.Errorf("%d of %d introspection calls cancelled; want all, and some", c, h)
	}
	if !waitUntil(time.Second, func() bool { return p.remote.len() == 0 }) || p.tokens.len() != 0 {
		t.Errorf("after the flood: %d flights, %d cache entries; want none (no answer came)", p.remote.len(), p.tokens.len())
	}
}

// TestIntrospectionInactiveFloodBounded: distinct tokens the IdP calls
// inactive are remembered only up to the cache's bound.
func TestIntrospectionInactiveFloodBounded(t *testing.T) {
	t.Parallel()
	_, a := newIntrospectionApp(t, nil)
	p := a.srv.tenants[0].prov
	const bound = 50
	p.tokens = newTokenCache(bound, 1<<20)
	for i := range 4 * bound {
		if w := a.register(fmt.Sprintf("inactive-%d", i)); w.Code != 401 {
			t.Fatalf("POST /v1/auth/register with an inactive token = %d; want 401", w.Code)
		}
	}
	if got := p.tokens.len(); got > bound || got == 0 {
		t.Errorf("%d distinct inactive tokens left %d cache entries; want some, at most %d", 4*bound, got, bound)
	}
	if got := p.remote.len(); got != 0 {
		t.Errorf("%d flights left after every answer came; want 0", got)
	}
}

func TestLooksLikeJWS(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	seg := func(s string) string { return b64u([]byte(s)) }
	tests := []struct {
		name string
		tok  string
		want bool
	}{
		{"a signed access token", f.accessToken(), true},
		{"minimal header", seg(`{"alg":"RS256"}`) + ".e30.c2ln", true},
		{"alg after other members", seg(` { "kid" : {"alg":1}, "x":[{"alg":"no"}] ,"alg" : "ES256"}`) + ".a.b", true},
		{"alg none is still a JWS (refused later)", seg(`{"alg":"none"}`) + ".a.", true},
		{"JWE, five parts", seg(`{"alg":"A256GCMKW","enc":"A256GCM"}`) + ".a.b.c.d", false},
		{"two parts", seg(`{"alg":"RS256"}`) + ".a", false},
		{"four parts", seg(`{"alg":"RS256"}`) + ".a.b.c", false},
		{"no alg", seg(`{"typ":"JWT"}`) + ".a.b", false},
		{"alg a number", seg(`{"alg":256}`) + ".a.b", false},
		{"alg only nested", seg(`{"h":{"alg":"RS256"}}`) + ".a.b", false},
		{"alg only as a value", seg(`{"x":"alg"}`) + ".a.b", false},
		{"alg in a list", seg(`["alg","RS256"]`) + ".a.b", false},
		{"not JSON", seg(`alg RS256`) + ".a.b", false},
		{"truncated JSON", seg(`{"alg":"RS256"`) + ".a.b", false},
		{"key with an escaped quote", seg(`{"a\"lg":"x"}`) + ".a.b", false},
		{"empty header", ".a.b", false},
		{"padded base64", b64u([]byte(`{"alg":"RS256"}`)) + "==.a.b", false},
		{"opaque", "opq_2ZQ6VYFH5L", false},
		{"long header", seg(`{"pad":"`+strings.Repeat("x", 2000)+`","alg":"RS256"}`) + ".a.b", true},
	}
	for _, tc := range tests {
		if got := looksLikeJWS(tc.tok); got != tc.want {
			t.Errorf("looksLikeJWS(%s) = %v; want %v", tc.name, got, tc.want)
		}
	}
}

// FuzzLooksLikeJWS checks the hand-written header scan against decoding the
// header with encoding/json, for headers without escapes (which the scan
// leaves unread on purpose) and with at most one alg key.
func FuzzLooksLikeJWS(f *testing.F) {
	for _, s := range []string{`{"alg":"RS256"}`, `{"a":{"alg":"x"},"alg":"y"}`, `["alg"]`, `{"x":"alg"}`, `{"alg":1}`, ` {"alg" : "x" } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, header []byte) {
		got := looksLikeJWS(b64u(header) + ".a.b")
		if bytes.Contains(header, []byte(`\`)) || bytes.Count(header, []byte(`"alg"`)) > 1 {
			return
		}
		// go-jose's decoder, as verification reads the header: member
		// names are matched exactly (RFC 7515 §4), where encoding/json
		// would take "Alg" for "alg".
		var h struct {
			Alg *string `json:"alg"`
		}
		want := josejson.Unmarshal(header, &h) == nil && h.Alg != nil && isJSONObject(header)
		if got != want {
			t.Errorf("looksLikeJWS(header %q) = %v; go-jose's decoder says %v", header, got, want)
		}
	})
}

// TestOpaqueTokenSignOut: an opaque token signed out at /logout is refused
// here from then on, though its introspection answer is cached, and is
// revoked at the IdP; a back-channel logout of its subject refuses the
// cached answers of that subject's opaque tokens too.
func TestOpaqueTokenSignOut(t *testing.T) {
	t.Parallel()
	f, a := newIntrospectionApp(t, nil)
	tok, noExp, other := f.opaqueToken(), f.opaqueToken(map[string]any{"exp": nil}), f.opaqueToken(map[string]any{"sub": "someone-else"})
	for _, tk := range []string{tok, noExp, other} {
		checkRegister(t, "before", a.register(tk), 200)
		checkRegister(t, "before, from the cache", a.register(tk), 200)
	}
	for _, tk := range []string{tok, noExp} {
		if !logoutRevoked(t, "opaque token", a.logout("", tk)) {
			t.Errorf("POST /v1/auth/logout with an opaque token: revoked false; want true")
		}
		checkRegister(t, "after its logout (the answer was cached)", a.register(tk), 401)
	}
	revoked := map[string]bool{}
	for _, rv := range f.revoked() {
		revoked[rv.form.Get("token")] = rv.form.Get("token_type_hint") == "access_token"
	}
	if !revoked[tok] || !revoked[noExp] {
		t.Errorf("revocations at the IdP %+v; want both opaque tokens, hinted as access tokens", f.revoked())
	}
	checkRegister(t, "another subject's opaque token", a.register(other), 200)

	// A back-channel logout of the other subject refuses its cached answer.
	sub := f.opaqueToken(map[string]any{"sub": "bc-user", "iat": time.Now().Add(-time.Minute).Unix()})
	checkRegister(t, "before the back-channel logout", a.register(sub), 200)
	bcCheck(t, "back-channel logout of bc-user", a.backchannel(f.logoutToken(map[string]any{"sub": "bc-user", "sid": nil})), 200, "")
	checkRegister(t, "after the back-channel logout of its subject", a.register(sub), 401)
}

// TestIntrospectedUnverifiedEmail: an answer saying email_verified false
// stores no email, as for a JWT.
func TestIntrospectedUnverifiedEmail(t *testing.T) {
	t.Parallel()
	f, a := newIntrospectionApp(t, nil)
	w := a.register(f.opaqueToken(map[string]any{"sub": "unverified", "name": nil, "preferred_username": nil, "email_verified": false}))
	if d := decode(t, w).Data; w.Code != 200 || d["email"] != "" || d["display_name"] != "unverified" {
		t.Errorf("POST /v1/auth/register with an unverified email in the introspection answer = %d %v; want 200, no email, display name the sub", w.Code, d)
	}
}

// TestTokenCacheCountsOnce: in auto mode a bearer token is looked up in the
// cache before its shape is told, and each request still counts one hit or
// one miss, for a JWT and for an opaque token alike.
func TestTokenCacheCountsOnce(t *testing.T) {
	t.Parallel()
	skipWithoutTokenCache(t)
	f, a := newIntrospectionApp(t, nil)
	met := a.srv.met
	for _, tt := range []struct{ name, tok string }{{"JWT", f.accessToken()}, {"opaque", f.opaqueToken()}} {
		hits, misses := met.tokenCacheHits.Load(), met.tokenCacheMisses.Load()
		checkRegister(t, tt.name+", first", a.register(tt.tok), 200)
		checkRegister(t, tt.name+", again", a.register(tt.tok), 200)
		if h, m := met.tokenCacheHits.Load()-hits, met.tokenCacheMisses.Load()-misses; h != 1 || m != 1 {
			t.Errorf("%s token sent twice: %d hits, %d misses counted; want 1 and 1", tt.name, h, m)
		}
	}
}
