package main

// POST /v1/auth/login with handoff: one-time, handoffTTL, the app's
// code_verifier, CORS, and the bound on waiting handoffs.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// siSignIn runs a whole sign-in, /authorize query included, and returns
// the handoff it ends with.
func siSignIn(t *testing.T, a *testApp, f *fakeIDP, query string) string {
	t.Helper()
	return siHandoff(t, siCallback(t, a, f, siBegin(t, a, "/v1/auth/authorize"+query)), testReturnTo)
}

func TestHandoffRedeemedOnce(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	h := siSignIn(t, a, f, "")
	hits := f.tokenHits.Load()
	w := a.do("POST", "/v1/auth/login", "handoff="+h)
	if tokCheck(t, "/v1/auth/login", "handoff", w, 200, "") {
		tokCheckTokens(t, "/v1/auth/login", "handoff", w)
	}
	for _, name := range []string{"handoff again", "handoff a third time"} {
		tokCheck(t, "/v1/auth/login", name, a.do("POST", "/v1/auth/login", "handoff="+h), 401, "SW_AUTH_OIDC_FAILED")
	}
	if f.tokenHits.Load() != hits {
		t.Errorf("redeeming a handoff called the IdP; want it answered from memory")
	}
	// JSON, as fetch() sends it, works the same.
	h = siSignIn(t, a, f, "")
	tokCheck(t, "/v1/auth/login", "handoff in JSON", a.do("POST", "/v1/auth/login", `{"handoff":"`+h+`"}`, "Content-Type", "application/json"), 200, "")
}

func TestHandoffExpires(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	clock := &testClock{}
	a.srv.browser.setClock(clock.now)

	// SPEC.md: a handoff is valid 60 s.
	h := siSignIn(t, a, f, "")
	clock.advance(60 * time.Second)
	tokCheck(t, "/v1/auth/login", "handoff 60 s old", a.do("POST", "/v1/auth/login", "handoff="+h), 401, "SW_AUTH_OIDC_FAILED")

	// Redeemed late but in time, the lifetime counts from the IdP's answer.
	h = siSignIn(t, a, f, "")
	clock.advance(45 * time.Second)
	w := a.do("POST", "/v1/auth/login", "handoff="+h)
	if tokCheck(t, "/v1/auth/login", "handoff 45 s old", w, 200, "") {
		if got := decode(t, w).Data["expires_in"]; got != float64(300-45) {
			t.Errorf("POST /v1/auth/login (handoff 45 s old): expires_in = %v; want 255 (300 from the IdP, less 45)", got)
		}
	}
}

func TestHandoffCodeVerifier(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	withChallenge := "?code_challenge=" + s256(tokVerifier) + "&code_challenge_method=S256"
	other := strings.Repeat("x", 43)
	tests := []struct {
		name       string
		query      string // of /authorize
		redeem     string // the redemption's parameters besides handoff
		wantStatus int
		wantCode   string
	}{
		{"the right verifier", withChallenge, "code_verifier=" + tokVerifier, 200, ""},
		{"a wrong verifier", withChallenge, "code_verifier=" + other, 401, "SW_AUTH_OIDC_FAILED"},
		{"the challenge as the verifier", withChallenge, "code_verifier=" + s256(tokVerifier), 401, "SW_AUTH_OIDC_FAILED"},
		{"no verifier", withChallenge, "", 400, "SW_BAD_REQUEST"},
		{"a malformed verifier", withChallenge, "code_verifier=short", 400, "SW_BAD_REQUEST"},
		{"a verifier without a challenge", "", "code_verifier=" + tokVerifier, 401, "SW_AUTH_OIDC_FAILED"},
		{"neither", "", "", 200, ""},
	}
	for _, tc := range tests {
		h := siSignIn(t, a, f, tc.query)
		body := "handoff=" + h
		if tc.redeem != "" {
			body += "&" + tc.redeem
		}
		tokCheck(t, "/v1/auth/login", tc.name, a.do("POST", "/v1/auth/login", body), tc.wantStatus, tc.wantCode)
	}

	// A handoff is good for one attempt: tried without the verifier (a
	// leaked return_to URL), it is gone for the right one too.
	h := siSignIn(t, a, f, withChallenge)
	tokCheck(t, "/v1/auth/login", "handoff without its verifier", a.do("POST", "/v1/auth/login", "handoff="+h), 400, "SW_BAD_REQUEST")
	tokCheck(t, "/v1/auth/login", "handoff with its verifier after a try without", a.do("POST", "/v1/auth/login", "handoff="+h+"&code_verifier="+tokVerifier), 401, "SW_AUTH_OIDC_FAILED")
	h = siSignIn(t, a, f, withChallenge)
	tokCheck(t, "/v1/auth/login", "handoff with a wrong verifier", a.do("POST", "/v1/auth/login", "handoff="+h+"&code_verifier="+other), 401, "SW_AUTH_OIDC_FAILED")
	tokCheck(t, "/v1/auth/login", "handoff with its verifier after a wrong one", a.do("POST", "/v1/auth/login", "handoff="+h+"&code_verifier="+tokVerifier), 401, "SW_AUTH_OIDC_FAILED")
}

func TestHandoffMalformed(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	h := siSignIn(t, a, f, "")
	tests := []struct {
		name, body string
		wantStatus int
		wantCode   string
	}{
		{"empty handoff", "handoff=", 400, "SW_BAD_REQUEST"},
		{"short handoff", "handoff=" + h[:42], 400, "SW_BAD_REQUEST"},
		{"padded handoff", "handoff=" + url.QueryEscape(h+"="), 400, "SW_BAD_REQUEST"},
		{"handoff and code", "handoff=" + h + "&code=good-code", 400, "SW_BAD_REQUEST"},
		{"handoff and state", "handoff=" + h + "&state=" + randomValue(), 400, "SW_BAD_REQUEST"},
		{"handoff twice", "handoff=" + h + "&handoff=" + h, 400, "SW_BAD_REQUEST"},
		{"a made-up handoff", "handoff=" + randomValue(), 401, "SW_AUTH_OIDC_FAILED"},
		// None of the above used up the real one.
		{"the real one", "handoff=" + h, 200, ""},
	}
	for _, tc := range tests {
		tokCheck(t, "/v1/auth/login", tc.name, a.do("POST", "/v1/auth/login", tc.body), tc.wantStatus, tc.wantCode)
	}
	// In the query, as any /login parameter may be.
	h = siSignIn(t, a, f, "")
	tokCheck(t, "/v1/auth/login", "handoff in the query", a.do("POST", "/v1/auth/login?handoff="+h, ""), 200, "")
}

// TestHandoffStaysWithItsTenant: a handoff made at one tenant's host is
// unknown at another's.
func TestHandoffStaysWithItsTenant(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	ta, tb := f.tenantConfig(), f.tenantConfig()
	ta.Hosts = []string{"a.example"}
	tb.ID, tb.Hosts, tb.ClientID = "b", []string{"b.example"}, "other-client"
	a := newTestApp(t, []tenantConfig{ta, tb})
	s := siBegin(t, a, "http://a.example/v1/auth/authorize")
	q := url.Values{"code": {f.authorize(s.authURL.String())}, "state": {s.state}}
	h := siHandoff(t, a.do("GET", "http://a.example/v1/auth/login?"+q.Encode(), "", s.cookieHdr()...), testReturnTo)
	tokCheck(t, "/v1/auth/login", "handoff at another tenant's host", a.do("POST", "http://b.example/v1/auth/login", "handoff="+h), 401, "SW_AUTH_OIDC_FAILED")
	tokCheck(t, "/v1/auth/login", "handoff at its own tenant's host, after", a.do("POST", "http://a.example/v1/auth/login", "handoff="+h), 200, "")
}

// TestHandoffCORS: the app redeems from its own origin, as fetch() does.
func TestHandoffCORS(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	const origin = "https://app.example.com"
	w := a.do("OPTIONS", "/v1/auth/login", "", "Origin", origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != origin || !strings.Contains(w.Header().Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("OPTIONS /v1/auth/login from %s = %d, headers %v; want 204 allowing POST", origin, w.Code, w.Header())
	}
	h := siSignIn(t, a, f, "")
	w = a.do("POST", "/v1/auth/login", `{"handoff":"`+h+`"}`, "Content-Type", "application/json", "Origin", origin)
	if tokCheck(t, "/v1/auth/login", "handoff from the app's origin", w, 200, "") && w.Header().Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("POST /v1/auth/login (handoff from %s): Access-Control-Allow-Origin %q; want the origin", origin, w.Header().Get("Access-Control-Allow-Origin"))
	}
	h = siSignIn(t, a, f, "")
	w = a.do("POST", "/v1/auth/login", "handoff="+h, "Origin", "https://evil.example")
	if w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("POST /v1/auth/login (handoff from another origin): Access-Control-Allow-Origin %q; want none", w.Header().Get("Access-Control-Allow-Origin"))
	}
}

// TestHandoffStoreBound fills a tenant's handoffs past their bounds, in
// count and in bytes: the oldest make room, so a real handoff pushed out is
// refused, and memory stays at the bound.
func TestHandoffStoreBound(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	ts := a.srv.browser.of(a.srv.tenants[0])
	oldest := siSignIn(t, a, f, "")
	small := &tokenResponse{AccessToken: "at", TokenType: "Bearer"}
	for range maxHandoffs {
		ts.handoffs.put(onceKeyOf(randomValue()), handoff{tokens: small}, handoffSize(small))
	}
	if n, _, _ := ts.handoffs.stats(); n != maxHandoffs {
		t.Errorf("%d handoffs after %d; want the bound, %d", n, maxHandoffs+1, maxHandoffs)
	}
	tokCheck(t, "/v1/auth/login", "the oldest handoff, pushed out", a.do("POST", "/v1/auth/login", "handoff="+oldest), 401, "SW_AUTH_OIDC_FAILED")

	// Tokens of a megabyte each (the most an IdP answer may be).
	big := &tokenResponse{AccessToken: strings.Repeat("a", maxIdPResponse), TokenType: "Bearer"}
	for range 2 * maxHandoffBytes / maxIdPResponse {
		ts.handoffs.put(onceKeyOf(randomValue()), handoff{tokens: big}, handoffSize(big))
		if _, b, _ := ts.handoffs.stats(); b > maxHandoffBytes {
			t.Fatalf("handoffs hold %d bytes; want at most %d", b, maxHandoffBytes)
		}
	}
	newest := siSignIn(t, a, f, "")
	tokCheck(t, "/v1/auth/login", "the newest handoff", a.do("POST", "/v1/auth/login", "handoff="+newest), 200, "")
}

// TestHandoffLoginCSRF is the login CSRF of issue 18: an attacker signs in
// as himself, keeps the handoff and sends the victim return_to?handoff=H.
// With the default configuration the attacker's sign-in had to carry a
// challenge of his own, so the victim's app, redeeming with its own verifier
// or with none, is refused.
func TestHandoffLoginCSRF(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	tc := f.tenantConfig()
	tc.Features.Auth.RequireHandoffPKCE = nil // the default
	a := newTestApp(t, []tenantConfig{tc})
	if w := a.do("GET", "/v1/auth/authorize", ""); w.Code != 400 {
		t.Errorf("GET /v1/auth/authorize without code_challenge = %d; want 400: a handoff that needs no verifier is redeemable by anyone", w.Code)
	}
	attackers := "?code_challenge=" + s256(tokVerifier) + "&code_challenge_method=S256"
	victims := strings.Repeat("v", 43)
	h := siSignIn(t, a, f, attackers)
	tokCheck(t, "/v1/auth/login", "the attacker's handoff with the victim's verifier", a.do("POST", "/v1/auth/login", "handoff="+h+"&code_verifier="+victims), 401, "SW_AUTH_OIDC_FAILED")
	h = siSignIn(t, a, f, attackers)
	tokCheck(t, "/v1/auth/login", "the attacker's handoff without a verifier", a.do("POST", "/v1/auth/login", "handoff="+h), 400, "SW_BAD_REQUEST")
}
