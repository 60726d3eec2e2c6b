package main

// POST /v1/auth/login: the code exchange, its parameters, and the ID token
// that comes back.

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// tokVerifier is a well-formed PKCE code verifier (RFC 7636 §4.1).
const tokVerifier = "M25iVXpKU3puUjFaYWg3T1NDTDQtcW1ROUY5YXlwalNoc0hhakxifmZHag"

func TestLoginErrors(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})

	evilKey := newTestKey(t, jose.RS256, "k1", 1) // the IdP's kid, another private key
	past := time.Now().Add(-10 * time.Minute).Unix()
	answer := func(idToken string) tokAnswerFn { return tokAnswer(200, f.tokTokens(idToken)) }
	unsigned := craft(t, `{"alg":"none","typ":"JWT"}`, f.idClaims(""), nil)
	pk := "&code_verifier=" + tokVerifier

	tests := []struct {
		name       string
		query      string // appended to the path
		body       string
		json       bool        // body is JSON, else a form
		answer     tokAnswerFn // nil: defaultToken
		wantStatus int
		wantCode   string
		wantIdP    bool // the token endpoint is called
	}{
		{"code in form body", "", "code=good-code" + pk, false, nil, 200, "", true},
		{"code in query", "?code=good-code" + pk, "", false, nil, 200, "", true},
		{"code in JSON body", "", `{"code":"good-code","code_verifier":"` + tokVerifier + `"}`, true, nil, 200, "", true},
		{"code in query, JSON body", "?code=good-code", `{"nonce":"","code_verifier":"` + tokVerifier + `"}`, true, nil, 200, "", true},
		{"code in query and body alike", "?code=good-code", "code=good-code" + pk, false, nil, 200, "", true},
		{"code differs in query and body", "?code=good-code", "code=other", false, nil, 400, "SW_BAD_REQUEST", false},
		{"missing code", "", "redirect_uri=" + url.QueryEscape(testRedirectURI), false, nil, 400, "SW_BAD_REQUEST", false},
		{"empty code", "", `{"code":""}`, true, nil, 400, "SW_BAD_REQUEST", false},
		{"redirect_uri matches", "", "code=good-code&redirect_uri=" + url.QueryEscape(testRedirectURI) + pk, false, nil, 200, "", true},
		{"redirect_uri matches (JSON)", "", `{"code":"good-code","code_verifier":"` + tokVerifier + `","redirect_uri":"` + testRedirectURI + `"}`, true, nil, 200, "", true},
		{"redirect_uri of another app", "", "code=good-code&redirect_uri=" + url.QueryEscape("https://evil.example/cb"), false, nil, 400, "SW_AUTH_REDIRECT_MISMATCH", false},
		{"redirect_uri with a trailing slash", "", "code=good-code&redirect_uri=" + url.QueryEscape(testRedirectURI+"/"), false, nil, 400, "SW_AUTH_REDIRECT_MISMATCH", false},
		{"redirect_uri in other case", "?redirect_uri=" + url.QueryEscape(strings.ToUpper(testRedirectURI)), "code=good-code" + pk, false, nil, 400, "SW_AUTH_REDIRECT_MISMATCH", false},
		{"code_verifier well-formed", "", "code=good-code&code_verifier=" + tokVerifier, false, nil, 200, "", true},
		{"code_verifier too short", "", "code=good-code&code_verifier=" + tokVerifier[:42], false, nil, 400, "SW_BAD_REQUEST", false},
		{"code_verifier too long", "", "code=good-code&code_verifier=" + strings.Repeat("a", 129), false, nil, 400, "SW_BAD_REQUEST", false},
		{"code_verifier with a space", "", "code=good-code&code_verifier=" + url.QueryEscape(tokVerifier[:30]+" "+tokVerifier[31:]), false, nil, 400, "SW_BAD_REQUEST", false},
		{"code_verifier with a plus", "", "code=good-code&code_verifier=" + url.QueryEscape(tokVerifier[:30]+"+"+tokVerifier[31:]), false, nil, 400, "SW_BAD_REQUEST", false},
		{"IdP invalid_grant", "", "code=bad-code" + pk, false, nil, 401, "SW_AUTH_OIDC_FAILED", true},
		{"IdP answers without id_token", "", "code=x" + pk, false, answer(""), 401, "SW_AUTH_OIDC_FAILED", true},
		{"ID token: bad signature", "", "code=x" + pk, false, answer(signWith(t, evilKey, f.idClaims(""), nil)), 401, "SW_AUTH_OIDC_FAILED", true},
		{"ID token: unsigned (alg none)", "", "code=x" + pk, false, answer(unsigned), 401, "SW_AUTH_OIDC_FAILED", true},
		{"ID token: not a JWT", "", "code=x" + pk, false, answer("not-a-jwt"), 401, "SW_AUTH_OIDC_FAILED", true},
		{"ID token: wrong issuer", "", "code=x" + pk, false, answer(f.idToken("", map[string]any{"iss": f.issuer + "/other"})), 401, "SW_AUTH_OIDC_FAILED", true},
		{"ID token: wrong audience", "", "code=x" + pk, false, answer(f.idToken("", map[string]any{"aud": "another-client", "azp": nil})), 401, "SW_AUTH_OIDC_FAILED", true},
		{"ID token: azp of another client", "", "code=x" + pk, false, answer(f.idToken("", map[string]any{"aud": []string{testClientID, "other"}, "azp": "other"})), 401, "SW_AUTH_OIDC_FAILED", true},
		{"ID token: expired", "", "code=x" + pk, false, answer(f.idToken("", map[string]any{"exp": past, "iat": past - 300})), 401, "SW_AUTH_OIDC_FAILED", true},
		{"ID token: missing sub", "", "code=x" + pk, false, answer(f.idToken("", map[string]any{"sub": nil})), 401, "SW_AUTH_OIDC_FAILED", true},
		{"ID token: missing iat", "", "code=x" + pk, false, answer(f.idToken("", map[string]any{"iat": nil})), 401, "SW_AUTH_OIDC_FAILED", true},
		{"ID token: an access token (typ at+jwt)", "", "code=x" + pk, false, answer(signWith(t, f.key(), f.idClaims(""), map[jose.HeaderKey]any{"typ": "at+jwt"})), 401, "SW_AUTH_OIDC_FAILED", true},
		{"ID token: nonce mismatch", "", "code=x&nonce=n-1" + pk, false, answer(f.idToken("n-2")), 401, "SW_AUTH_OIDC_FAILED", true},
		{"ID token: nonce missing though sent", "", "code=x&nonce=n-1" + pk, false, answer(f.idToken("")), 401, "SW_AUTH_OIDC_FAILED", true},
		{"ID token: nonce matches", "", "code=x&nonce=n-1" + pk, false, answer(f.idToken("n-1")), 200, "", true},
		{"ID token: nonce matches (query)", "?nonce=n-1", "code=x" + pk, false, answer(f.idToken("n-1")), 200, "", true},
		{"ID token: nonce in token, none sent", "", "code=x" + pk, false, answer(f.idToken("n-1")), 200, "", true},
	}
	for _, tc := range tests {
		f.set(func(f *fakeIDP) { f.tokenFn = tc.answer })
		before := f.tokenHits.Load()
		hdr := []string{}
		if tc.json {
			hdr = []string{"Content-Type", "application/json"}
		}
		w := a.do("POST", "/v1/auth/login"+tc.query, tc.body, hdr...)
		if tokCheck(t, "/v1/auth/login", tc.name, w, tc.wantStatus, tc.wantCode) && w.Code == 200 {
			d := tokCheckTokens(t, "/v1/auth/login", tc.name, w)
			if s, _ := d["id_token"].(string); s == "" {
				t.Errorf("POST /v1/auth/login (%s): no id_token in %v", tc.name, d)
			}
		}
		if called := f.tokenHits.Load() > before; called != tc.wantIdP {
			t.Errorf("POST /v1/auth/login (%s): token endpoint called = %v; want %v", tc.name, called, tc.wantIdP)
		}
	}
}

func TestLoginAnswer(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	w := a.do("POST", "/v1/auth/login", "code=good-code&code_verifier="+tokVerifier)
	if !tokCheck(t, "/v1/auth/login", "good code", w, 200, "") {
		return
	}
	d := tokCheckTokens(t, "/v1/auth/login", "good code", w)
	if d["refresh_token"] != "rt-next" || d["expires_in"] != float64(300) {
		t.Errorf("POST /v1/auth/login: data %v; want the IdP's refresh_token rt-next and expires_in 300", d)
	}
	// The tokens are the IdP's, passed on as they came.
	if _, err := a.srv.tenants[0].prov.verify(context.Background(), d["access_token"].(string), kindAccessToken, ""); err != nil {
		t.Errorf("POST /v1/auth/login: access_token does not verify: %v", err)
	}
	if _, err := a.srv.tenants[0].prov.verify(context.Background(), d["id_token"].(string), kindIDToken, ""); err != nil {
		t.Errorf("POST /v1/auth/login: id_token does not verify: %v", err)
	}
}

func TestLoginPassesRedirectURIAndVerifier(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	tests := []struct {
		name         string
		body         string
		wantVerifier string // "" means absent
	}{
		{"with code_verifier", "code=good-code&code_verifier=" + tokVerifier, tokVerifier},
		{"with code_verifier and redirect_uri", "code=good-code&code_verifier=" + tokVerifier + "&redirect_uri=" + url.QueryEscape(testRedirectURI), tokVerifier},
	}
	for _, tc := range tests {
		w := a.do("POST", "/v1/auth/login", tc.body)
		tokCheck(t, "/v1/auth/login", tc.name, w, 200, "")
		var form url.Values
		f.set(func(f *fakeIDP) { form = f.lastForm })
		want := url.Values{"grant_type": {"authorization_code"}, "code": {"good-code"}, "redirect_uri": {testRedirectURI}}
		for k, v := range want {
			if form.Get(k) != v[0] {
				t.Errorf("POST /v1/auth/login (%s): IdP got %s=%q; want %q", tc.name, k, form.Get(k), v[0])
			}
		}
		if got, has := form.Get("code_verifier"), form.Has("code_verifier"); got != tc.wantVerifier || has != (tc.wantVerifier != "") {
			t.Errorf("POST /v1/auth/login (%s): IdP got code_verifier %q (present %v); want %q", tc.name, got, has, tc.wantVerifier)
		}
		if form.Has("nonce") || form.Has("client_secret") {
			t.Errorf("POST /v1/auth/login (%s): IdP got unexpected parameters %v", tc.name, form)
		}
	}
}

// TestLoginRequirePKCE posts a leaked code alone, as an attacker who read
// it from a log or a referrer would: the service adds its own client secret
// to the exchange, so without PKCE that code alone would become tokens. By
// default such a request is refused before the IdP is asked; a tenant that
// sets require_pkce false redeems it.
func TestLoginRequirePKCE(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	strict := newTestApp(t, []tenantConfig{f.tenantConfig()})
	laxCfg := f.tenantConfig()
	off := false
	laxCfg.Features.Auth.RequirePKCE = &off
	lax := newTestApp(t, []tenantConfig{laxCfg})

	json := []string{"Content-Type", "application/json"}
	tests := []struct {
		name         string
		app          *testApp
		query, body  string
		hdr          []string
		wantStatus   int
		wantVerifier string // sent to the IdP; "" for absent
	}{
		{"code alone (form)", strict, "", "code=good-code", nil, 400, ""},
		{"code alone (query)", strict, "?code=good-code", "", nil, 400, ""},
		{"code alone (JSON)", strict, "", `{"code":"good-code"}`, json, 400, ""},
		{"code, nonce and redirect_uri but no verifier", strict, "", "code=good-code&nonce=n&redirect_uri=" + url.QueryEscape(testRedirectURI), nil, 400, ""},
		{"empty code_verifier", strict, "", "code=good-code&code_verifier=", nil, 400, ""},
		{"code with its verifier", strict, "", "code=good-code&code_verifier=" + tokVerifier, nil, 200, tokVerifier},
		{"require_pkce false: code alone", lax, "", "code=good-code", nil, 200, ""},
		{"require_pkce false: code with its verifier", lax, "", "code=good-code&code_verifier=" + tokVerifier, nil, 200, tokVerifier},
	}
	for _, tc := range tests {
		f.set(func(f *fakeIDP) { f.lastForm = nil })
		before := f.tokenHits.Load()
		w := tc.app.do("POST", "/v1/auth/login"+tc.query, tc.body, tc.hdr...)
		wantCode := ""
		if tc.wantStatus != 200 {
			wantCode = "SW_BAD_REQUEST"
		}
		if !tokCheck(t, "/v1/auth/login", tc.name, w, tc.wantStatus, wantCode) {
			continue
		}
		called := f.tokenHits.Load() > before
		if tc.wantStatus != 200 {
			if msg := decode(t, w).Error.Message; !strings.HasPrefix(msg, "code_verifier: ") {
				t.Errorf("POST /v1/auth/login (%s): message %q; want it to name code_verifier", tc.name, msg)
			}
			if called {
				t.Errorf("POST /v1/auth/login (%s): the code reached the IdP's token endpoint", tc.name)
			}
			continue
		}
		var form url.Values
		f.set(func(f *fakeIDP) { form = f.lastForm })
		if !called || form.Get("code_verifier") != tc.wantVerifier || form.Has("code_verifier") != (tc.wantVerifier != "") {
			t.Errorf("POST /v1/auth/login (%s): IdP called %v with code_verifier %q; want %q", tc.name, called, form.Get("code_verifier"), tc.wantVerifier)
		}
	}
}
