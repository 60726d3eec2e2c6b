package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The benchmarks run beside their floors in one run, so that docs/performance.md can
// report ratios on this noisy machine:
//
//	go test -run '^$' -bench . -benchmem -count 6 | tee bench.txt
//	benchstat bench.txt

// BenchmarkVerifyRS256 is the floor: go-jose alone parsing, verifying and
// decoding the claims of the same kind of token the register benchmarks use.
func BenchmarkVerifyRS256(b *testing.B) {
	f := newFakeIDP(b)
	tok := f.accessToken()
	pub := f.key().priv.Public()
	b.ReportAllocs()
	for b.Loop() {
		t, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			b.Fatal(err)
		}
		var c jwt.Claims
		if err := t.Claims(pub, &c); err != nil {
			b.Fatal(err)
		}
	}
}

// registerBench is a service with one registered participant.
func registerBench(b *testing.B) (*fakeIDP, *testApp, string) {
	f := newFakeIDP(b)
	a := newTestApp(b, []tenantConfig{f.tenantConfig()})
	tok := f.accessToken()
	if w := a.register(tok); w.Code != 200 {
		b.Fatalf("register = %d %s", w.Code, w.Body)
	}
	return f, a, tok
}

// serveRegister runs the handler with one request built outside the loop,
// so that the benchmark measures the service, not httptest.NewRequest.
func serveRegister(b *testing.B, a *testApp, tok string) {
	req := httptest.NewRequest("POST", "/v1/auth/register", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		w := httptest.NewRecorder()
		a.srv.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("register = %d", w.Code)
		}
	}
}

// BenchmarkRegisterExisting is /v1/auth/register for a known participant
// with the verified-token cache off: a full verification every call.
func BenchmarkRegisterExisting(b *testing.B) {
	_, a, tok := registerBench(b)
	a.srv.tenants[0].prov.tokens = newTokenCache(0, 0)
	serveRegister(b, a, tok)
}

// BenchmarkRegisterCached is the same call with the same token again: a
// hash and two lookups.
func BenchmarkRegisterCached(b *testing.B) {
	_, a, tok := registerBench(b)
	serveRegister(b, a, tok)
}

// newParticipantTokens signs n tokens for distinct subjects, outside the
// timer: RSA signing costs more than what is measured.
func newParticipantTokens(b *testing.B, f *fakeIDP, n int) []string {
	b.StopTimer()
	defer b.StartTimer()
	toks := make([]string, n)
	for i := range toks {
		toks[i] = f.accessToken(map[string]any{"sub": fmt.Sprintf("bench-%d-%d", n, i)})
	}
	return toks
}

// BenchmarkRegisterNew creates a participant per call, each committed with
// synchronous=FULL before the answer: one fsync per call when serial.
func BenchmarkRegisterNew(b *testing.B) {
	f, a, _ := registerBench(b)
	toks := newParticipantTokens(b, f, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if w := a.register(toks[i]); w.Code != 200 {
			b.Fatalf("register = %d", w.Code)
		}
	}
}

// BenchmarkRegisterNewParallel is the same from 16 goroutines, where the
// writer commits waiting registrations together.
func BenchmarkRegisterNewParallel(b *testing.B) {
	f, a, _ := registerBench(b)
	toks := newParticipantTokens(b, f, b.N)
	next := make(chan string, len(toks))
	for _, t := range toks {
		next <- t
	}
	close(next)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if w := a.register(<-next); w.Code != 200 {
				b.Errorf("register = %d", w.Code)
				return
			}
		}
	})
}

// grantBench measures a grant against the IdP's token endpoint directly and
// through the service over real loopback HTTP, with keep-alive on both.
func grantBench(b *testing.B, form func(i int) url.Values, viaService bool) {
	f := newFakeIDP(b)
	f.set(func(f *fakeIDP) {
		f.tokenFn = func(form url.Values, r *http.Request) (int, any) {
			return 200, map[string]any{
				"access_token": f.accessToken(), "token_type": "Bearer", "expires_in": 300,
				"refresh_token": "rt-next", "id_token": f.idToken(""),
			}
		}
	})
	target := f.issuer + "/token"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	if viaService {
		a := newTestApp(b, []tenantConfig{f.tenantConfig()})
		srv := httptest.NewServer(a.srv)
		b.Cleanup(srv.Close)
		target = srv.URL + "/v1/auth/token"
		if form(0).Get("grant_type") == "refresh_token" {
			target = srv.URL + "/v1/auth/refresh"
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		body := form(i).Encode()
		req, _ := http.NewRequest("POST", target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if !viaService {
			req.SetBasicAuth(url.QueryEscape(testClientID), url.QueryEscape(testClientSecret))
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

func passwordForm(int) url.Values {
	return url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-pw"}, "scope": {"openid profile email"}}
}

// refreshForm uses a new refresh token each time, so that the replay window
// never answers from memory.
func refreshForm(i int) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fmt.Sprintf("rt-%d", i)}}
}

func BenchmarkPasswordGrantDirect(b *testing.B)  { grantBench(b, passwordForm, false) }
func BenchmarkPasswordGrantService(b *testing.B) { grantBench(b, passwordForm, true) }
func BenchmarkRefreshGrantDirect(b *testing.B)   { grantBench(b, refreshForm, false) }
func BenchmarkRefreshGrantService(b *testing.B)  { grantBench(b, refreshForm, true) }

// introspectionBench is a service whose tenant introspects opaque tokens at
// the fake IdP, with one participant registered by an opaque token.
func introspectionBench(b *testing.B) (*fakeIDP, *testApp, string) {
	f := newFakeIDP(b)
	f.set(func(f *fakeIDP) { f.introspect = true })
	a := newTestApp(b, []tenantConfig{f.tenantConfig()})
	tok := f.opaqueToken()
	if w := a.register(tok); w.Code != 200 {
		b.Fatalf("register = %d %s", w.Code, w.Body)
	}
	return f, a, tok
}

// BenchmarkRegisterIntrospectedCached is /register with an opaque token
// whose introspection answer is in the cache: to compare with
// BenchmarkRegisterCached, the same for a JWT.
func BenchmarkRegisterIntrospectedCached(b *testing.B) {
	_, a, tok := introspectionBench(b)
	serveRegister(b, a, tok)
}

// cpuPerOp starts counting the process's CPU time; the function it returns
// reports it per operation as cpu-ns/op. On this shared machine the wall
// time of a loopback round trip mostly measures how long goroutines wait
// for a core that other processes hold; CPU time is what the service
// costs. Both IdP and service run in this process, so the floors count
// the fake IdP's CPU too.
func cpuPerOp(b *testing.B) func() {
	start := processCPU()
	return func() { b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op") }
}

// opaqueTokens makes n opaque tokens of one person, outside the timer.
func opaqueTokens(b *testing.B, f *fakeIDP, n int) []string {
	b.StopTimer()
	defer b.StartTimer()
	toks := make([]string, n)
	for i := range toks {
		toks[i] = f.opaqueToken()
	}
	return toks
}

// BenchmarkRegisterIntrospectCold is /register with a new opaque token each
// call: one introspection over loopback HTTP, then the known participant.
// The requests are built before the timer starts, as in serveRegister.
func BenchmarkRegisterIntrospectCold(b *testing.B) {
	f, a, _ := introspectionBench(b)
	toks := opaqueTokens(b, f, b.N)
	reqs := make([]*http.Request, len(toks))
	for i, tok := range toks {
		reqs[i] = httptest.NewRequest("POST", "/v1/auth/register", nil)
		reqs[i].Header.Set("Authorization", "Bearer "+tok)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuPerOp(b)()
	for i := range b.N {
		w := httptest.NewRecorder()
		a.srv.ServeHTTP(w, reqs[i])
		if w.Code != 200 {
			b.Fatalf("register = %d", w.Code)
		}
	}
}

// BenchmarkIntrospectDirect is the floor of BenchmarkRegisterIntrospectCold:
// the same introspection request sent to the fake IdP directly, over a
// kept-alive connection.
func BenchmarkIntrospectDirect(b *testing.B) {
	f, _, _ := introspectionBench(b)
	toks := opaqueTokens(b, f, b.N)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuPerOp(b)()
	for i := range b.N {
		body := url.Values{"token": {toks[i]}, "token_type_hint": {"access_token"}}.Encode()
		req, _ := http.NewRequest("POST", f.issuer+"/introspect", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.SetBasicAuth(url.QueryEscape(testClientID), url.QueryEscape(testClientSecret))
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkRegisterCold is /v1/auth/register for a known participant with
// a token never seen before, every call, and the verified-token cache full
// of others (cache) or absent (nocache): the difference is what the cache
// costs a miss. The tokens are ES256, quick to sign in numbers; run with at
// most 40000 calls, so that none is sent twice:
//
//	go test -run '^$' -bench RegisterCold -benchtime 20000x -count 6
func BenchmarkRegisterCold(b *testing.B) {
	f := newFakeIDP(b)
	key := f.addKey(newTestKey(b, jose.ES256, "e1", 0))
	a := newTestApp(b, []tenantConfig{f.tenantConfig()})
	if w := a.register(f.accessToken()); w.Code != 200 {
		b.Fatalf("register = %d %s", w.Code, w.Body)
	}
	toks := make([]string, 40_000)
	for i := range toks {
		toks[i] = signWith(b, key, f.accessClaims(map[string]any{"jti": fmt.Sprint(i)}), nil)
	}
	prov := a.srv.tenants[0].prov
	for _, mode := range []string{"cache", "nocache"} {
		b.Run(mode, func(b *testing.B) {
			if b.N > len(toks) {
				b.Fatalf("%d calls; at most %d tokens", b.N, len(toks))
			}
			prov.tokens = nil
			if mode == "cache" {
				// Full of other tokens, as under a stream of new ones.
				tc := newTokenCache(tokenCacheEntries, tokenCacheBytes)
				gen := prov.keys.Load().gen
				now := time.Now()
				for i := 0; i < 2*tokenCacheEntries && tc.byteSize() < tokenCacheBytes-tokenCacheBytes/100; i++ {
					c := realisticClaims(b, i, now.Add(time.Hour), 0)
					tc.put(sha256.Sum256([]byte(fmt.Sprint("fill-", i))), c, gen, now)
				}
				prov.tokens = tc
			}
			b.ReportAllocs()
			runtime.GC()
			cpu0 := processCPU()
			b.ResetTimer()
			for i := range b.N {
				// Made here, not beforehand: b.N live requests would weigh
				// on the collector more than the cache does.
				req := httptest.NewRequest("POST", "/v1/auth/register", nil)
				req.Header.Set("Authorization", "Bearer "+toks[i])
				w := httptest.NewRecorder()
				a.srv.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("register = %d", w.Code)
				}
			}
			b.StopTimer()
			// The process's CPU time, the collector's included: on a shared
			// machine it varies less than the time on the clock.
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
