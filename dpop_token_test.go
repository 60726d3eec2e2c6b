package main

// DPoP at the token endpoints: the proof reaches the IdP unchanged, the
// IdP's token_type, use_dpop_nonce and DPoP-Nonce come back, and the
// refresh single-flight never hands tokens bound to one key to a caller
// with a proof from another.

import (
	"crypto"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// dpopTokenEndpoint makes the fake IdP answer grants as a DPoP-enabled one
// does: with a proof, tokens bound to its key and token_type DPoP. It
// records the DPoP headers it got.
func dpopTokenEndpoint(f *fakeIDP) (got func() []string) {
	var mu sync.Mutex
	var proofs []string
	f.set(func(f *fakeIDP) {
		f.tokenFn = func(form url.Values, r *http.Request) (int, any) {
			status, body := f.defaultToken(form, r)
			m, ok := body.(map[string]any)
			proof := r.Header.Get("DPoP")
			if !ok || status != 200 || proof == "" {
				return status, body
			}
			mu.Lock()
			proofs = append(proofs, proof)
			mu.Unlock()
			jws, err := jose.ParseSignedCompact(proof, supportedAlgs)
			if err != nil {
				return 400, map[string]string{"error": "invalid_dpop_proof"}
			}
			jwk := jws.Signatures[0].Protected.JSONWebKey
			k := dpopKey{priv: nil}
			tp, _ := jwk.Thumbprint(crypto.SHA256)
			k.jkt = b64u(tp)
			at := f.boundToken(k)
			m["access_token"], m["token_type"] = at, "DPoP"
			m["id_token"] = f.idToken("", map[string]any{"at_hash": atHashOf(f.t, f.key().alg, at)})
			return 200, m
		}
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), proofs...)
	}
}

func TestDPoPTokenEndpointsPassTheProof(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	got := dpopTokenEndpoint(f)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	key := newDPoPKey(t, jose.ES256)
	tokenURL := f.issuer + "/token"
	tests := []struct {
		path, body string
	}{
		{"/v1/auth/login", "code=good-code&code_verifier=" + tokVerifier},
		{"/v1/auth/token", "grant_type=password&username=alice&password=alice-pw"},
		{"/v1/auth/refresh", "refresh_token=rt-good"},
	}
	for i, tc := range tests {
		proof := key.proof(t, "POST", tokenURL, "")
		w := a.do("POST", tc.path, tc.body, "DPoP", proof)
		if w.Code != 200 {
			t.Fatalf("POST %s with a proof = %d %s; want 200", tc.path, w.Code, w.Body)
		}
		if p := got(); len(p) != i+1 || p[i] != proof {
			t.Fatalf("POST %s: the IdP got DPoP headers %d, the last unchanged: %v; want the client's proof", tc.path, len(p), len(p) > 0 && p[len(p)-1] == proof)
		}
		d := decode(t, w).Data
		if d["token_type"] != "DPoP" {
			t.Errorf("POST %s: token_type %v; want DPoP, as the IdP answered", tc.path, d["token_type"])
		}
		// The token the IdP bound works with this key's proofs only.
		at, _ := d["access_token"].(string)
		if w := a.dpopRegister(at, key.proof(t, "POST", dpopTestURL, at)); w.Code != 200 {
			t.Errorf("POST %s: register with its bound token = %d %s; want 200", tc.path, w.Code, w.Body)
		}
		if w := a.register(at); w.Code != 401 {
			t.Errorf("POST %s: its bound token as Bearer = %d; want 401", tc.path, w.Code)
		}
	}
	// Without a proof, nothing is sent and the tokens are plain bearers.
	w := a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw")
	if w.Code != 200 || decode(t, w).Data["token_type"] != "Bearer" || len(got()) != 3 {
		t.Fatalf("POST /v1/auth/token without a proof = %d %s (%d proofs at the IdP); want 200 Bearer, none sent", w.Code, w.Body, len(got()))
	}
}

func TestDPoPTokenEndpointRefusesBadProofs(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	got := dpopTokenEndpoint(f)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	victim, attacker := newDPoPKey(t, jose.ES256), newDPoPKey(t, jose.ES256)
	tokenURL := f.issuer + "/token"
	hdr := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": victim.publicJWK(t)}
	tests := []struct {
		name  string
		proof string
	}{
		{"victim's jwk, attacker's signature", attacker.rawProof(t, hdr, attacker.claims("POST", tokenURL, ""))},
		{"typ JWT", victim.rawProof(t, withMods(hdr, map[string]any{"typ": "JWT"}), victim.claims("POST", tokenURL, ""))},
		{"alg none", craft(t, withMods(hdr, map[string]any{"alg": "none"}), victim.claims("POST", tokenURL, ""), nil)},
		{"not a JWS", "garbage"},
	}
	for _, tc := range tests {
		w := a.do("POST", "/v1/auth/refresh", "refresh_token=rt-good", "DPoP", tc.proof)
		if w.Code != 400 || code(t, w) != "SW_BAD_REQUEST" {
			t.Errorf("POST /v1/auth/refresh (%s) = %d %s; want 400 SW_BAD_REQUEST", tc.name, w.Code, w.Body)
		}
	}
	if n := len(got()); n != 0 {
		t.Errorf("the IdP got %d proofs; want none of these", n)
	}
}

func TestDPoPRefreshFlightPerKey(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	got := dpopTokenEndpoint(f)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	victim, attacker := newDPoPKey(t, jose.ES256), newDPoPKey(t, jose.ES256)
	tokenURL := f.issuer + "/token"
	refresh := func(k *dpopKey) string {
		var w = a.do("POST", "/v1/auth/refresh", "refresh_token=rt-good")
		if k != nil {
			w = a.do("POST", "/v1/auth/refresh", "refresh_token=rt-good", "DPoP", k.proof(t, "POST", tokenURL, ""))
		}
		if w.Code != 200 {
			t.Fatalf("refresh = %d %s", w.Code, w.Body)
		}
		at, _ := decode(t, w).Data["access_token"].(string)
		return at
	}
	first := refresh(&victim)
	// Within the replay window, the same key gets the same answer without
	// asking the IdP again ...
	if again := refresh(&victim); again != first || len(got()) != 1 {
		t.Fatalf("a second refresh with the victim's key: same answer %v, %d IdP calls; want the same answer, 1 call", again == first, len(got()))
	}
	// ... but another key, or no proof, never gets the victim's tokens.
	if stolen := refresh(&attacker); stolen == first || len(got()) != 2 {
		t.Fatalf("a refresh with another key: got the victim's token %v, %d IdP calls; want its own call", stolen == first, len(got()))
	}
	if plain := refresh(nil); plain == first {
		t.Fatal("a refresh without a proof got the victim's bound token")
	}
}

func TestDPoPUseNonceFromTheIdP(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.set(func(f *fakeIDP) {
		f.tokenFn = tokOAuthError(400, "use_dpop_nonce")
		f.tokenHeader = http.Header{"Dpop-Nonce": {"eyJ7S_zG.eyJH0-Z.HX4w-7v"}}
	})
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	key := newDPoPKey(t, jose.ES256)
	for _, path := range []string{"/v1/auth/token", "/v1/auth/refresh", "/v1/auth/login"} {
		body := map[string]string{
			"/v1/auth/token":   "grant_type=password&username=alice&password=alice-pw",
			"/v1/auth/refresh": "refresh_token=rt-good",
			"/v1/auth/login":   "code=good-code&code_verifier=" + tokVerifier,
		}[path]
		w := a.do("POST", path, body, "DPoP", key.proof(t, "POST", f.issuer+"/token", ""))
		if w.Code != 400 || code(t, w) != "SW_BAD_REQUEST" || w.Header().Get("DPoP-Nonce") != "eyJ7S_zG.eyJH0-Z.HX4w-7v" {
			t.Errorf("POST %s, IdP says use_dpop_nonce = %d %s, DPoP-Nonce %q; want 400 with the IdP's nonce", path, w.Code, w.Body, w.Header().Get("DPoP-Nonce"))
		}
		if !strings.Contains(w.Body.String(), "use_dpop_nonce") {
			t.Errorf("POST %s: message %s does not name use_dpop_nonce", path, w.Body)
		}
	}
}

func TestDPoPTokenTypeWithoutProof(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	m := f.tokTokens("")
	m["token_type"] = "DPoP"
	f.set(func(f *fakeIDP) { f.tokenFn = tokAnswer(200, m) })
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	// A DPoP token for a request that sent no proof is not what was asked:
	// the client could not use it.
	if w := a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw"); w.Code != 503 {
		t.Fatalf("token_type DPoP without a proof = %d %s; want 503", w.Code, w.Body)
	}
}

func TestDPoPConfigAlgs(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.discExtra = map[string]any{"dpop_signing_alg_values_supported": []string{"ES256", "RS256"}}
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	w := a.do("GET", "/v1/auth/config", "")
	algs, _ := decode(t, w).Data["dpop_signing_alg_values_supported"].([]any)
	if len(algs) != 2 || algs[0] != "ES256" || algs[1] != "RS256" {
		t.Fatalf("/config dpop_signing_alg_values_supported = %v; want the IdP's [ES256 RS256]", algs)
	}
}

// TestDPoPNonceIsNoFailedPassword: an IdP that wants nonces answers
// use_dpop_nonce to every first try of a sign-in; that is no failed
// password attempt, and many sign-ins must not reach the limit.
func TestDPoPNonceIsNoFailedPassword(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.set(func(f *fakeIDP) {
		f.tokenFn = tokOAuthError(400, "use_dpop_nonce")
		f.tokenHeader = http.Header{"Dpop-Nonce": {"n-1"}}
	})
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	key := newDPoPKey(t, jose.ES256)
	for i := range pairFailLimit + 2 {
		w := a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw", "DPoP", key.proof(t, "POST", f.issuer+"/token", ""))
		if w.Code != 400 {
			t.Fatalf("attempt %d answered use_dpop_nonce by the IdP = %d %s; want 400 each time, never 429", i+1, w.Code, w.Body)
		}
	}
}
