package main

// What the service answers whatever went wrong: the bearer header read to
// the letter, errors mapped to the contract with nothing secret or upstream
// in them, and token answers never cached.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestTokenEndpointErrorsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	const (
		secretCode     = "c0de-SENSITIVE-7f3a"
		secretPassword = "pa55-SENSITIVE-91bc"
		secretRefresh  = "rt-SENSITIVE-4d2e"
	)
	// A careless IdP that echoes what it was sent, secret included, in its
	// error answers.
	echo := func(status int, code string) tokAnswerFn {
		return func(form url.Values, r *http.Request) (int, any) {
			all := form.Encode() + " " + r.Header.Get("Authorization") + " " + testClientSecret
			return status, map[string]string{"error": code, "error_description": all, "error_uri": "https://idp.example/e?" + all}
		}
	}
	f := newFakeIDP(t)
	cfg := f.tenantConfig()
	off := cfg
	// Another client at the same IdP: one issuer and client_id are one tenant.
	off.ID, off.Hosts, off.ClientID = "off", []string{"off.example.com"}, "scaiwave-off"
	off.Features.Auth.PasswordGrantEnabled = false
	cfg.Hosts = []string{"on.example.com"}
	a := newTestApp(t, []tenantConfig{cfg, off})
	login := "code=" + secretCode + "&code_verifier=" + tokVerifier
	password := "grant_type=password&username=alice&password=" + secretPassword
	refresh := "refresh_token=" + secretRefresh
	tests := []struct {
		name, path, body string
		answer           tokAnswerFn
		mode             string
	}{
		{"login, IdP invalid_grant", "/v1/auth/login", login, echo(400, "invalid_grant"), ""},
		{"login, IdP invalid_client", "/v1/auth/login", login, echo(401, "invalid_client"), ""},
		{"login, IdP 500", "/v1/auth/login", login, echo(500, "server_error"), ""},
		{"login, IdP 400 without error", "/v1/auth/login", login, echo(400, ""), ""},
		{"login, IdP garbage", "/v1/auth/login", login, nil, modeGarbage},
		{"login, redirect mismatch", "/v1/auth/login", login + "&redirect_uri=https://evil.example/" + secretCode, nil, ""},
		{"login, bad verifier", "/v1/auth/login", "code=" + secretCode + "&code_verifier=" + secretCode, nil, ""},
		{"login, code twice", "/v1/auth/login?code=" + secretCode, "code=" + secretCode + "x", nil, ""},
		{"login, evil ID token", "/v1/auth/login", login + "&nonce=" + secretCode, tokAnswer(200, f.tokTokens(f.idToken("other"))), ""},
		{"token, IdP invalid_grant", "/v1/auth/token", password, echo(400, "invalid_grant"), ""},
		{"token, IdP unauthorized_client", "/v1/auth/token", password, echo(400, "unauthorized_client"), ""},
		{"token, IdP 503", "/v1/auth/token", password, echo(503, "temporarily_unavailable"), ""},
		{"token, password twice", "/v1/auth/token", password + "&password=" + secretPassword, nil, ""},
		{"token, disabled", "http://off.example.com/v1/auth/token", password, nil, ""},
		{"token, JSON with a number", "/v1/auth/token", `{"password":"` + secretPassword + `","username":1}`, nil, ""},
		{"refresh, IdP invalid_grant", "/v1/auth/refresh", refresh, echo(400, "invalid_grant"), ""},
		{"refresh, IdP invalid_request", "/v1/auth/refresh", refresh, echo(400, "invalid_request"), ""},
		{"refresh, IdP invalid_client", "/v1/auth/refresh", refresh, echo(401, "invalid_client"), ""},
		{"refresh, IdP 502", "/v1/auth/refresh", refresh, echo(502, "bad_gateway"), ""},
		{"refresh, IdP huge", "/v1/auth/refresh", refresh, nil, modeHuge},
		{"refresh, given twice", "/v1/auth/refresh", refresh + "&refresh_token=" + secretRefresh, nil, ""},
	}
	forbidden := []string{secretCode, secretPassword, secretRefresh, testClientSecret, url.QueryEscape(testClientSecret), "s3cret", "SENSITIVE"}
	for _, tc := range tests {
		f.set(func(f *fakeIDP) { f.tokenFn, f.tokenMode = tc.answer, tc.mode })
		hdr := []string{}
		if strings.HasPrefix(tc.body, "{") {
			hdr = []string{"Content-Type", "application/json"}
		}
		target := tc.path
		if !strings.HasPrefix(target, "http") {
			target = "http://on.example.com" + target
		}
		w := a.do("POST", target, tc.body, hdr...)
		if w.Code < 400 {
			t.Errorf("POST %s (%s) = %d; want an error", tc.path, tc.name, w.Code)
			continue
		}
		raw := w.Body.String()
		for _, s := range forbidden {
			if strings.Contains(raw, s) {
				t.Errorf("POST %s (%s) = %d: body holds %q: %s", tc.path, tc.name, w.Code, s, raw)
			}
		}
		for name, vs := range w.Header() {
			for _, v := range vs {
				for _, s := range forbidden {
					if strings.Contains(v, s) {
						t.Errorf("POST %s (%s): header %s holds %q", tc.path, tc.name, name, s)
					}
				}
			}
		}
	}
}

// registerWithAuth posts to /v1/auth/register with each value as its own
// Authorization header (none when values is empty).
func registerWithAuth(a *testApp, values ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/v1/auth/register", nil)
	for _, v := range values {
		r.Header.Add("Authorization", v)
	}
	w := httptest.NewRecorder()
	a.srv.ServeHTTP(w, r)
	return w
}

func TestBearerHeader(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	tok := f.accessToken()
	tests := []struct {
		name          string
		auth          []string
		wantStatus    int
		wantChallenge string
	}{
		{"Bearer", []string{"Bearer " + tok}, 200, ""},
		{"lowercase bearer", []string{"bearer " + tok}, 200, ""},
		{"uppercase BEARER", []string{"BEARER " + tok}, 200, ""},
		{"no Authorization header", nil, 401, `Bearer realm="scaiwave"`},
		{"empty Authorization header", []string{""}, 401, `Bearer realm="scaiwave"`},
		{"Bearer without a token", []string{"Bearer"}, 401, wantChallenge},
		{"Bearer and a space", []string{"Bearer "}, 401, wantChallenge},
		{"Bearer with two tokens", []string{"Bearer " + tok + " " + tok}, 401, wantChallenge},
		{"Bearer with two comma-separated tokens", []string{"Bearer " + tok + "," + tok}, 401, wantChallenge},
		// Another scheme is no bearer at all: no error code (RFC 6750 §3.1).
		{"Basic scheme", []string{"Basic dXNlcjpwYXNzd29yZA=="}, 401, `Bearer realm="scaiwave"`},
		{"Basic scheme carrying the token", []string{"Basic " + tok}, 401, `Bearer realm="scaiwave"`},
		{"token without a scheme", []string{tok}, 401, wantChallenge},
		{"two Authorization headers, both good", []string{"Bearer " + tok, "Bearer " + tok}, 401, wantChallenge},
		{"two Authorization headers, Bearer and Basic", []string{"Bearer " + tok, "Basic dXNlcjpwdw=="}, 401, wantChallenge},
		{"characters outside b64token", []string{"Bearer !!!.@@@.$$$"}, 401, wantChallenge},
		{"garbage b64token", []string{"Bearer abc.def.ghi"}, 401, wantChallenge},
	}
	for _, tc := range tests {
		w := registerWithAuth(a, tc.auth...)
		wantCode := ""
		if tc.wantStatus == 401 {
			wantCode = "SW_AUTH_UNAUTHENTICATED"
		}
		if got := code(t, w); w.Code != tc.wantStatus || got != wantCode {
			t.Errorf("POST /v1/auth/register (%s) = %d %s; want %d %s", tc.name, w.Code, got, tc.wantStatus, wantCode)
		}
		if h := w.Header().Get("WWW-Authenticate"); h != tc.wantChallenge {
			t.Errorf("POST /v1/auth/register (%s): WWW-Authenticate %q; want %q", tc.name, h, tc.wantChallenge)
		}
	}
	// The token in the query string is not a bearer credential here.
	r := httptest.NewRequest("POST", "/v1/auth/register?access_token="+tok, nil)
	w := httptest.NewRecorder()
	a.srv.ServeHTTP(w, r)
	if w.Code != 401 || code(t, w) != "SW_AUTH_UNAUTHENTICATED" {
		t.Errorf("POST /v1/auth/register (token in the query) = %d %s; want 401 SW_AUTH_UNAUTHENTICATED", w.Code, code(t, w))
	}
}

func TestTokenResponsesAreNotCached(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	for _, tc := range []struct{ path, body string }{
		{"/v1/auth/login", "code=good-code&code_verifier=" + tokVerifier},
		{"/v1/auth/token", "grant_type=password&username=alice&password=alice-pw"},
		{"/v1/auth/refresh", "refresh_token=rt-good"},
	} {
		w := a.do("POST", tc.path, tc.body)
		if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("POST %s = %d, Cache-Control %q; want 200 no-store (%s)", tc.path, w.Code, w.Header().Get("Cache-Control"), w.Body)
		}
	}
}

// TestClientGoneIsNot5xx: a request whose client disconnected while its
// registration was queued is logged as 499, not as a server error.
func TestClientGoneIsNot5xx(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest("POST", "/v1/auth/register", nil).WithContext(ctx)
	r.Header.Set("Authorization", "Bearer "+f.accessToken(map[string]any{"sub": "gone"}))
	w := httptest.NewRecorder()
	a.srv.ServeHTTP(w, r)
	if w.Code != statusClientClosed {
		t.Fatalf("register with the client gone = %d %s; want %d", w.Code, w.Body, statusClientClosed)
	}
}
