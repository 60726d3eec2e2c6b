package main

// The key set: what parseJWKS keeps, rotation and withdrawal, and the
// refetch for an unknown kid with its throttle, under floods and a failing
// IdP.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestVerifyKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	k1 := f.key()
	oldTok := f.accessToken()
	checkRegister(t, "k1 before the rotation", a.register(oldTok), 200)
	checkRegister(t, "k1 again, from the cache", a.register(oldTok), 200)
	if n := a.srv.met.tokenCacheHits.Load(); tokenCacheEnabled && n != 1 {
		t.Fatalf("token cache hits after the same token twice = %d; want 1", n)
	}
	before := f.jwksHits.Load()

	// The IdP rotates, and signs with the new key at once (Dex does): the
	// first token that names it is accepted after one refetch.
	k2 := f.addKey(newTestKey(t, jose.RS256, "k2", 2))
	checkRegister(t, "first token signed with the new key k2", a.register(signWith(t, k2, f.accessClaims(), nil)), 200)
	if n := f.jwksHits.Load() - before; n != 1 {
		t.Errorf("JWKS fetches for the first k2 token = %d; want 1", n)
	}
	checkRegister(t, "second token signed with k2", a.register(signWith(t, k2, f.accessClaims(map[string]any{"sub": "other"}), nil)), 200)
	if n := f.jwksHits.Load() - before; n != 1 {
		t.Errorf("JWKS fetches after a second k2 token = %d; want still 1", n)
	}

	// The IdP withdraws k1; the scheduled refresh sees it.
	f.set(func(f *fakeIDP) { f.keys = f.keys[1:] })
	if err := p.fetchKeys(ctx, p.disc.Load().JWKSURI); err != nil {
		t.Fatalf("fetchKeys: %v", err)
	}
	checkRegister(t, "cached token signed with the withdrawn k1", a.register(oldTok), 401)
	checkAccess(t, a, "new token signed with the withdrawn k1", signWith(t, k1, f.accessClaims(map[string]any{"sub": "late"}), nil), 401, reasonUnknownKey)
	checkRegister(t, "k2 after k1 was withdrawn", a.register(signWith(t, k2, f.accessClaims(), nil)), 200)
}

func TestVerifyJWKSSkipsUnusableKeys(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	octSecret := []byte("0123456789abcdef0123456789abcdef")
	encKey := testRSAKey(3)
	mustJSON := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f.set(func(f *fakeIDP) {
		f.extraJWKS = []json.RawMessage{
			json.RawMessage(`{"kty":"XYZ","kid":"x1","alg":"XYZ256","foo":"bar"}`),
			mustJSON(map[string]string{"kty": "oct", "kid": "o1", "alg": "HS256", "k": b64u(octSecret)}),
			mustJSON(jose.JSONWebKey{Key: encKey.Public(), KeyID: "enc1", Algorithm: "RSA-OAEP", Use: "enc"}),
			mustJSON(jose.JSONWebKey{Key: weak.Public(), KeyID: "weak", Algorithm: "RS256", Use: "sig"}),
			json.RawMessage(`{"kty":"RSA","kid":"broken","n":"!!","e":"AQAB"}`),
			json.RawMessage(`"not an object"`),
		}
	})
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})

	keys, skipped, err := parseJWKS(f.jwksJSON())
	if err != nil || len(keys) != 1 || keys[0].KeyID != "k1" || len(skipped) != 6 {
		t.Errorf("parseJWKS = %d keys, %d skipped, %v; want only k1, 6 skipped", len(keys), len(skipped), err)
	}
	claims := f.accessClaims()
	checkAccess(t, a, "the real key beside unusable ones", f.accessToken(), 200, "")
	checkAccess(t, a, "HS256 with the published oct key", hmacToken(t, octSecret, map[string]any{"alg": "HS256", "kid": "o1"}, claims), 401, reasonAlgorithm)
	checkAccess(t, a, "RS256 naming the skipped oct key", signWith(t, testKey{kid: "o1", alg: jose.RS256, priv: testRSAKey(1)}, claims, nil), 401, reasonUnknownKey)
	checkAccess(t, a, "RS256 by the enc key", signWith(t, testKey{kid: "enc1", alg: jose.RS256, priv: encKey}, claims, nil), 401, reasonUnknownKey)
	checkAccess(t, a, "RS256 by the 1024-bit key", signWith(t, testKey{kid: "weak", alg: jose.RS256, priv: weak}, claims, nil), 401, reasonUnknownKey)
	checkAccess(t, a, "RS256 by the 1024-bit key, no kid", signWith(t, testKey{kid: "-", alg: jose.RS256, priv: weak}, claims, nil), 401, reasonSignature)
	checkAccess(t, a, "naming the unknown key type", craft(t, map[string]any{"alg": "RS256", "kid": "x1"}, claims, []byte("sig")), 401, reasonUnknownKey)

	// A key set with nothing usable is still a key set: it yields no keys
	// (TestAttackWithdrawnKeyFailsClosed). What is not a key set is an error.
	if keys, _, err := parseJWKS([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`)); err != nil || len(keys) != 0 {
		t.Errorf("parseJWKS of a set with only an oct key = %d keys, %v; want none and no error", len(keys), err)
	}
	for _, body := range []string{`{}`, `{"keys":null}`, `{"keys":{}}`, `{"Keys":[]}`, `[]`, `null`, `<html>`} {
		if _, _, err := parseJWKS([]byte(body)); err == nil {
			t.Errorf("parseJWKS(%s) = nil error; want an error (not a key set)", body)
		}
	}
}

// TestAttackWithdrawnKeyFailsClosed: the IdP withdraws its only signing key
// and publishes an encryption key alone. After the refresh nothing
// verifies, neither a new token signed with the withdrawn key nor one the
// cache held, and the tenant is not ready; once the IdP publishes a signing
// key again, tokens signed with it pass and the tenant is ready.
func TestAttackWithdrawnKeyFailsClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	cached := f.accessToken()
	checkRegister(t, "k1 before the withdrawal", a.register(cached), 200)
	checkRegister(t, "k1 again, from the cache", a.register(cached), 200)

	encJWK, err := json.Marshal(jose.JSONWebKey{Key: testRSAKey(3).Public(), KeyID: "enc1", Algorithm: "RSA-OAEP", Use: "enc"})
	if err != nil {
		t.Fatal(err)
	}
	f.set(func(f *fakeIDP) {
		f.keys[0].hidden = true // the IdP can still sign with it; it no longer publishes it
		f.extraJWKS = []json.RawMessage{encJWK}
	})
	if err := p.fetchKeys(ctx, p.disc.Load().JWKSURI); !errors.Is(err, errNoUsableKeys) {
		t.Fatalf("fetchKeys of a set with only an enc key = %v; want errNoUsableKeys", err)
	}
	if _, _, err := p.check(ctx); !errors.Is(err, errNoUsableKeys) {
		t.Errorf("-check's fetch of a set with only an enc key = %v; want errNoUsableKeys", err)
	}
	checkRegister(t, "cached token signed with the withdrawn k1", a.register(cached), 401)
	checkAccess(t, a, "new token signed with the withdrawn k1", f.accessToken(map[string]any{"sub": "late"}), 401, reasonUnknownKey)
	noKid := f.key()
	noKid.kid = "-"
	checkAccess(t, a, "new token signed with the withdrawn k1, no kid", signWith(t, noKid, f.accessClaims(), nil), 401, reasonUnknownKey)
	if w := a.do("GET", "/readyz", ""); w.Code != 503 {
		t.Errorf("GET /readyz with no usable key = %d %s; want 503", w.Code, w.Body)
	}
	if w := a.do("POST", "/v1/auth/login", "code=good-code&code_verifier="+tokVerifier); w.Code != 401 {
		t.Errorf("POST /v1/auth/login with no usable key = %d %s; want 401 (the ID token cannot verify)", w.Code, w.Body)
	}

	// The IdP publishes a new signing key: the tenant recovers.
	k2 := f.addKey(newTestKey(t, jose.ES256, "k2", 0))
	if err := p.fetchKeys(ctx, p.disc.Load().JWKSURI); err != nil {
		t.Fatalf("fetchKeys after the IdP published k2 = %v", err)
	}
	if w := a.do("GET", "/readyz", ""); w.Code != 200 {
		t.Errorf("GET /readyz with k2 published = %d %s; want 200", w.Code, w.Body)
	}
	checkRegister(t, "token signed with k2", a.register(signWith(t, k2, f.accessClaims(), nil)), 200)
	checkRegister(t, "cached token signed with k1, after k2", a.register(cached), 401)
}

// shiftClock makes the provider's clock run past the kid refetch interval,
// so the first unknown kid of the test may refetch whatever the startup
// fetch did. It must be called before any request.
func shiftClock(p *provider) {
	p.now = func() time.Time { return time.Now().Add(kidRefetchInterval + time.Second) }
}

func TestAttackKidFlood(t *testing.T) {
	t.Parallel()
	for _, concurrent := range []bool{false, true} {
		name := "sequential"
		if concurrent {
			name = "concurrent"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeIDP(t)
			e1 := f.addKey(newTestKey(t, jose.ES256, "e1", 0))
			a := newTestApp(t, []tenantConfig{f.tenantConfig()})
			shiftClock(a.srv.tenants[0].prov)
			const n = 200
			toks := make([]string, n)
			for i := range toks {
				var b [8]byte
				rand.Read(b[:])
				k := e1
				k.kid = hex.EncodeToString(b[:])
				toks[i] = signWith(t, k, f.accessClaims(), nil)
			}
			start := time.Now()
			codes := make([]int, n)
			if concurrent {
				var wg sync.WaitGroup
				for i := range toks {
					wg.Add(1)
					go func() {
						defer wg.Done()
						codes[i] = a.register(toks[i]).Code
					}()
				}
				wg.Wait()
			} else {
				for i := range toks {
					codes[i] = a.register(toks[i]).Code
				}
			}
			took := time.Since(start)
			for i, c := range codes {
				if c != 401 {
					t.Errorf("POST /v1/auth/register (random kid %d) = %d; want 401", i, c)
					break
				}
			}
			// One startup fetch, then at most one refetch per 10 s.
			if hits := f.jwksHits.Load(); hits > 2 {
				t.Errorf("%d tokens with random kids in %v caused %d JWKS fetches; want at most 2 (startup and one refetch)", n, took, hits)
			}
			if took > 5*time.Second {
				t.Errorf("%d tokens with random kids took %v", n, took)
			}
			checkRegister(t, "known kid after the flood", a.register(signWith(t, e1, f.accessClaims(), nil)), 200)
		})
	}
}

func TestVerifyJWKSMisbehavingOnRefetch(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{modeSlow, modeDown, mode500, modeGarbage, modeHuge} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f := newFakeIDP(t)
			f.slow = 1500 * time.Millisecond
			a := newTestApp(t, []tenantConfig{f.tenantConfig()})
			p := a.srv.tenants[0].prov
			shiftClock(p)
			genBefore := p.keys.Load().gen
			f.set(func(f *fakeIDP) { f.jwksMode = mode })
			k1 := f.key()
			unknown := k1
			unknown.kid = "rotated"

			type result struct {
				w    *httptest.ResponseRecorder
				took time.Duration
			}
			done := make(chan result, 1)
			first := signWith(t, unknown, f.accessClaims(), nil)
			go func() {
				start := time.Now()
				w := a.register(first)
				done <- result{w, time.Since(start)}
			}()
			deadline := time.Now().Add(2 * time.Second)
			for f.jwksHits.Load() < 2 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if f.jwksHits.Load() < 2 {
				t.Fatalf("an unknown kid caused no JWKS refetch")
			}

			// While the refetch is failing or in flight, a known kid is
			// answered from the cached keys without waiting for it.
			start := time.Now()
			checkRegister(t, "known kid during the refetch ("+mode+")", a.register(f.accessToken()), 200)
			if took := time.Since(start); took > time.Second {
				t.Errorf("known kid during a %s refetch took %v; want no wait", mode, took)
			}
			// A caller with a deadline is not held past it.
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			r := httptest.NewRequestWithContext(ctx, "POST", "/v1/auth/register", nil)
			r.Header.Set("Authorization", "Bearer "+signWith(t, unknown, f.accessClaims(map[string]any{"sub": "b"}), nil))
			w := httptest.NewRecorder()
			start = time.Now()
			a.srv.ServeHTTP(w, r)
			checkRegister(t, "unknown kid with a 200 ms deadline ("+mode+")", w, 401)
			if took := time.Since(start); took > time.Second {
				t.Errorf("unknown kid with a 200 ms deadline during a %s refetch took %v", mode, took)
			}

			res := <-done
			checkRegister(t, "unknown kid that triggered the refetch ("+mode+")", res.w, 401)
			if res.took > idpRequestTimeout+2*time.Second {
				t.Errorf("unknown kid during a %s refetch took %v; want it bounded", mode, res.took)
			}
			// The failed refetch kept the cached keys.
			if ks := p.keys.Load(); ks.gen != genBefore || !hasKid(ks, "k1") {
				t.Errorf("after a %s refetch: key set gen %d (was %d), has k1 %v; want the cached keys kept", mode, ks.gen, genBefore, hasKid(ks, "k1"))
			}
			checkRegister(t, "known kid after the refetch ("+mode+")", a.register(f.accessToken(map[string]any{"sub": "after"})), 200)
		})
	}
}
