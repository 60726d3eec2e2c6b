package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// TestAttackIDTokenAsBearer presents alice's ID token at /register, as a
// client that confuses the two, or one that got hold of an ID token meant
// for another app, would: a token with an ID-token marker (c_hash, payload
// typ ID) is refused, while access tokens that merely look alike still
// pass: Dex v2.45.1's carry at_hash and the nonce, Keycloak's a typ of
// Bearer. An ID token marked by at_hash alone is not told apart here: the
// record of relayed tokens refuses those the service passed on
// (relayed_test.go).
func TestAttackIDTokenAsBearer(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	atHash := "HK6E_P6Dh8Y93mRNtsDB1Q"
	tests := []struct {
		name       string
		mods       map[string]any
		wantStatus int
	}{
		{"Keycloak ID token (typ ID, at_hash, nonce, sid)", map[string]any{"typ": "ID", "at_hash": atHash, "nonce": "n-1", "sid": "s-1"}, 401},
		{"ID token with c_hash only", map[string]any{"c_hash": atHash}, 401},
		{"ID token with a non-string c_hash", map[string]any{"c_hash": 42}, 401},
		{"ID token with an empty c_hash", map[string]any{"c_hash": ""}, 401},
		{"at_hash alone is no marker (Dex v2.45.1 access tokens carry it)", map[string]any{"at_hash": atHash}, 200},
		{"payload typ ID only", map[string]any{"typ": "ID"}, 401},
		{"payload typ id in lower case", map[string]any{"typ": "id"}, 401},
		{"Dex access token with the nonce", map[string]any{"nonce": "n-1", "email_verified": true}, 200},
		{"Dex access token with at_hash and the nonce", map[string]any{"at_hash": atHash, "nonce": "n-1"}, 200},
		{"Keycloak access token (typ Bearer)", map[string]any{"typ": "Bearer", "sid": "s-1"}, 200},
		{"at_hash null", map[string]any{"at_hash": json.RawMessage("null")}, 200},
	}
	for _, tc := range tests {
		reason := ""
		if tc.wantStatus != 200 {
			reason = reasonTokenType
		}
		checkAccess(t, a, tc.name, f.accessToken(tc.mods), tc.wantStatus, reason)
	}
	// The same token is still a good ID token where one belongs.
	keycloakID := f.idToken("n-1", map[string]any{"typ": "ID", "at_hash": atHash})
	if _, err := a.srv.tenants[0].prov.verify(t.Context(), keycloakID, kindIDToken, "n-1"); err != nil {
		t.Errorf("verify (Keycloak ID token as an ID token) = %v; want accepted", err)
	}
}

// TestAttackAtHashSubstitution has the IdP's answer carry an access token
// for mallory beside an ID token for alice, whose at_hash names alice's
// access token: each endpoint refuses the answer rather than pass
// mallory's token on as alice's sign-in.
func TestAttackAtHashSubstitution(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	aliceAT := f.accessToken(map[string]any{"sub": "alice"})
	malloryAT := f.accessToken(map[string]any{"sub": "mallory"})
	aliceID := f.idToken("", map[string]any{"sub": "alice", "at_hash": atHashOf(t, jose.RS256, aliceAT)})
	answer := func(at, id string) tokAnswerFn {
		return tokAnswer(200, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 300, "id_token": id})
	}
	wantCode := map[string]string{
		"/v1/auth/login":   "SW_AUTH_OIDC_FAILED",
		"/v1/auth/token":   "SW_AUTH_OIDC_FAILED",
		"/v1/auth/refresh": "SW_AUTH_REFRESH_FAILED",
	}
	for i, ep := range tokEndpoints {
		// Each request its own refresh token, so no replayed answer hides the check.
		body := ep.tagged(fmt.Sprint("sub-", i))
		f.set(func(f *fakeIDP) { f.tokenFn = answer(malloryAT, aliceID) })
		w := a.do("POST", ep.path, body)
		if tokCheck(t, ep.path, "mallory's access token beside alice's ID token", w, 401, wantCode[ep.path]) &&
			strings.Contains(w.Body.String(), malloryAT) {
			t.Errorf("POST %s: the refused answer carries mallory's access token", ep.path)
		}
		f.set(func(f *fakeIDP) { f.tokenFn = answer(aliceAT, aliceID) })
		if w := a.do("POST", ep.path, ep.tagged(fmt.Sprint("good-", i))); tokCheck(t, ep.path, "alice's access token beside her ID token", w, 200, "") {
			if got := decode(t, w).Data["access_token"]; got != aliceAT {
				t.Errorf("POST %s: access_token is not alice's", ep.path)
			}
		}
		typed := answer(aliceAT, f.idToken("", map[string]any{"sub": "alice", "at_hash": 42}))
		f.set(func(f *fakeIDP) { f.tokenFn = typed })
		tokCheck(t, ep.path, "at_hash not a string", a.do("POST", ep.path, ep.tagged(fmt.Sprint("typed-", i))), 401, wantCode[ep.path])
	}
}

// TestVerifyAtHashPerAlgorithm: at_hash is the left half of the hash that
// the ID token's own algorithm uses (SHA-512 for EdDSA), and an ID token
// without one is accepted.
func TestVerifyAtHashPerAlgorithm(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	algs := []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
		jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}
	keys := map[jose.SignatureAlgorithm]testKey{}
	for i, alg := range algs {
		keys[alg] = f.addKey(newTestKey(t, alg, fmt.Sprint("key-", i), i))
	}
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	at := f.accessToken()
	login := func(name, id string, wantStatus int, wantCode string) {
		t.Helper()
		m := f.tokTokens(id)
		m["access_token"] = at
		f.set(func(f *fakeIDP) { f.tokenFn = tokAnswer(200, m) })
		tokCheck(t, "/v1/auth/login", name, a.do("POST", "/v1/auth/login", "code=c&code_verifier="+tokVerifier), wantStatus, wantCode)
	}
	for _, alg := range algs {
		k := keys[alg]
		good := signWith(t, k, f.idClaims("", map[string]any{"at_hash": atHashOf(t, alg, at)}), nil)
		login(string(alg)+" with the access token's at_hash", good, 200, "")
		other := signWith(t, k, f.idClaims("", map[string]any{"at_hash": atHashOf(t, alg, at+"x")}), nil)
		login(string(alg)+" with another token's at_hash", other, 401, "SW_AUTH_OIDC_FAILED")
	}
	// SHA-256 where the algorithm asks for SHA-384: refused.
	wrongHash := signWith(t, keys[jose.ES384], f.idClaims("", map[string]any{"at_hash": atHashOf(t, jose.ES256, at)}), nil)
	login("ES384 with a SHA-256 at_hash", wrongHash, 401, "SW_AUTH_OIDC_FAILED")
	login("no at_hash", signWith(t, keys[jose.RS256], f.idClaims(""), nil), 200, "")
}
