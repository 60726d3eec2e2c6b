package main

// POST /v1/auth/logout: the access token refused here from then on (cache
// included), RFC 7009 revocation at the IdP with client authentication,
// an IdP that fails, the end-session URL, and the refresh replay window.

import (
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// logout calls /v1/auth/logout with body and, when not "", a bearer token.
func (a *testApp) logout(body, bearer string) *httptest.ResponseRecorder {
	a.t.Helper()
	if bearer == "" {
		return a.do("POST", "/v1/auth/logout", body)
	}
	return a.do("POST", "/v1/auth/logout", body, "Authorization", "Bearer "+bearer)
}

// logoutRevoked checks a 200 from /logout and returns its revoked.
func logoutRevoked(t *testing.T, name string, w *httptest.ResponseRecorder) bool {
	t.Helper()
	if !tokCheck(t, "/v1/auth/logout", name, w, 200, "") {
		return false
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("POST /v1/auth/logout (%s): Cache-Control %q; want no-store", name, cc)
	}
	revoked, ok := decode(t, w).Data["revoked"].(bool)
	if !ok {
		t.Errorf("POST /v1/auth/logout (%s): no boolean revoked in %s", name, w.Body)
	}
	return revoked
}

func TestLogoutRevokesAtIdPAndHere(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		methods []string // the revocation endpoint's auth methods in discovery
		post    bool
	}{
		{"basic by default", nil, false},
		{"basic when both are listed", []string{"client_secret_post", "client_secret_basic"}, false},
		{"post when only it is listed", []string{"client_secret_post"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeIDP(t)
			f.set(func(f *fakeIDP) { f.revokeMethods = tc.methods })
			a := newTestApp(t, []tenantConfig{f.tenantConfig()})
			tok := f.accessToken()
			checkRegister(t, "before", a.register(tok), 200)
			checkRegister(t, "before, from the cache", a.register(tok), 200)

			if !logoutRevoked(t, tc.name, a.logout("refresh_token=rt-good", tok)) {
				t.Errorf("POST /v1/auth/logout (%s): revoked false; want true", tc.name)
			}
			checkRegister(t, "after the logout (it was cached)", a.register(tok), 401)
			checkRegister(t, "another token of the same user", a.register(f.accessToken(map[string]any{"name": "other"})), 200)

			got := map[string]fakeRevocation{}
			for _, rv := range f.revoked() {
				got[rv.form.Get("token_type_hint")] = rv
			}
			if len(got) != 2 || got["refresh_token"].form.Get("token") != "rt-good" || got["access_token"].form.Get("token") != tok {
				t.Fatalf("revocation requests %+v; want the refresh token and the access token, each with its hint", f.revoked())
			}
			for hint, rv := range got {
				if tc.post {
					if rv.basic != [2]string{} || rv.form.Get("client_id") != testClientID || rv.form.Get("client_secret") != testClientSecret {
						t.Errorf("%s revocation: basic %q, form %v; want client_secret_post", hint, rv.basic, rv.form)
					}
					continue
				}
				want := [2]string{url.QueryEscape(testClientID), url.QueryEscape(testClientSecret)}
				if rv.basic != want || rv.form.Has("client_secret") {
					t.Errorf("%s revocation: basic %q, form has client_secret %v; want basic %q", hint, rv.basic, rv.form.Has("client_secret"), want)
				}
			}
		})
	}
}

func TestLogoutWhenTheIdPFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(f *fakeIDP)
	}{
		{"down", func(f *fakeIDP) { f.revokeMode = modeDown }},
		{"5xx", func(f *fakeIDP) { f.revokeMode = mode500 }},
		{"slow", func(f *fakeIDP) { f.revokeMode, f.slow = modeSlow, time.Second }},
		{"unsupported_token_type", func(f *fakeIDP) { f.revokeStatus = 400 }},
		{"no revocation endpoint", func(f *fakeIDP) { f.noRevocation = true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeIDP(t)
			f.set(tc.setup)
			a := newTestApp(t, []tenantConfig{f.tenantConfig()})
			a.srv.tenants[0].prov.revokeWait = 200 * time.Millisecond
			tok := f.accessToken()
			checkRegister(t, "before", a.register(tok), 200)
			if logoutRevoked(t, tc.name, a.logout("refresh_token=rt-good", tok)) {
				t.Errorf("POST /v1/auth/logout (IdP %s): revoked true; want false", tc.name)
			}
			checkRegister(t, "after the logout, IdP "+tc.name, a.register(tok), 401)
		})
	}
}

func TestLogoutRequests(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	expired := f.accessToken(map[string]any{"exp": time.Now().Add(-5 * time.Minute).Unix(), "iat": time.Now().Add(-10 * time.Minute).Unix()})
	tests := []struct {
		name, body, bearer string
		wantStatus         int
		wantCode           string
	}{
		{"nothing to sign out", "", "", 400, "SW_BAD_REQUEST"},
		{"empty refresh_token", "refresh_token=", "", 400, "SW_BAD_REQUEST"},
		{"refresh_token twice", "refresh_token=a&refresh_token=b", "", 400, "SW_BAD_REQUEST"},
		{"id_token_hint not a JWT", "refresh_token=rt&id_token_hint=garbage", "", 400, "SW_BAD_REQUEST"},
		{"garbage bearer alone", "", "not.a.token", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"expired bearer alone", "", expired, 401, "SW_AUTH_UNAUTHENTICATED"},
		{"garbage bearer with a refresh token", "refresh_token=rt-1", "not.a.token", 200, ""},
		{"expired bearer with a refresh token", "refresh_token=rt-2", expired, 200, ""},
		{"refresh token alone", "refresh_token=rt-3", "", 200, ""},
	}
	for _, tc := range tests {
		tokCheck(t, "/v1/auth/logout", tc.name, a.logout(tc.body, tc.bearer), tc.wantStatus, tc.wantCode)
	}
	if w := a.do("POST", "/v1/auth/logout", "", "Authorization", "Basic eDp5"); code(t, w) != "SW_BAD_REQUEST" {
		t.Errorf("POST /v1/auth/logout (Basic credentials only) = %d %s; want 400 SW_BAD_REQUEST", w.Code, w.Body)
	}
	// What did not verify was not recorded, nor sent to the IdP.
	if n := p.revoked.n.Load(); n != 0 {
		t.Errorf("%d revocations after logouts with no valid access token; want 0", n)
	}
	for _, rv := range f.revoked() {
		if rv.form.Get("token_type_hint") != "refresh_token" {
			t.Errorf("the IdP was asked to revoke an access token that did not verify: %v", rv.form.Get("token_type_hint"))
		}
	}
	// Signing out twice: the second answers 200 too and asks the IdP again.
	tok := f.accessToken()
	logoutRevoked(t, "first", a.logout("", tok))
	before := f.revokeHits.Load()
	logoutRevoked(t, "again", a.logout("", tok))
	if f.revokeHits.Load() != before+1 {
		t.Errorf("a second sign-out did not ask the IdP to revoke the token again")
	}
}

func TestLogoutEndSessionURL(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.set(func(f *fakeIDP) { f.endSession = true })
	cfg := f.tenantConfig()
	cfg.PostLogoutRedirectURI = "https://app.example.com/signed-out?x=1"
	a := newTestApp(t, []tenantConfig{cfg})
	hint := f.idToken("n")
	w := a.logout("refresh_token=rt&id_token_hint="+hint, "")
	logoutRevoked(t, "with a hint", w)
	raw, _ := decode(t, w).Data["end_session_url"].(string)
	u, err := url.Parse(raw)
	if err != nil || !strings.HasPrefix(raw, f.issuer+"/logout?") {
		t.Fatalf("end_session_url = %q; want the IdP's end_session_endpoint", raw)
	}
	q := u.Query()
	want := url.Values{"tenant": {"acme"}, "client_id": {testClientID}, "id_token_hint": {hint}, "post_logout_redirect_uri": {cfg.PostLogoutRedirectURI}}
	if q.Encode() != want.Encode() {
		t.Errorf("end_session_url query = %v; want %v", q, want)
	}
	w = a.logout("refresh_token=rt", "")
	raw, _ = decode(t, w).Data["end_session_url"].(string)
	if u, _ := url.Parse(raw); u == nil || u.Query().Has("id_token_hint") || u.Query().Get("client_id") != testClientID {
		t.Errorf("end_session_url without a hint = %q; want client_id and no id_token_hint", raw)
	}

	// An IdP without an end-session endpoint: no URL.
	g := newFakeIDP(t)
	b := newTestApp(t, []tenantConfig{g.tenantConfig()})
	w = b.logout("refresh_token=rt", "")
	if _, ok := decode(t, w).Data["end_session_url"]; ok || w.Code != 200 {
		t.Errorf("POST /v1/auth/logout at an IdP without end_session_endpoint = %d %s; want 200 without end_session_url", w.Code, w.Body)
	}
}

func TestLogoutRefusesItsRefreshTokenAtRefresh(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	refresh := func(step string, wantStatus int, wantCode string, wantHits int64) {
		t.Helper()
		tokCheck(t, "/v1/auth/refresh", step, a.do("POST", "/v1/auth/refresh", "refresh_token=rt-good"), wantStatus, wantCode)
		if got := f.tokenHits.Load(); got != wantHits {
			t.Errorf("POST /v1/auth/refresh (%s): %d token endpoint calls; want %d", step, got, wantHits)
		}
	}
	refresh("first", 200, "", 1)
	refresh("replayed within the window", 200, "", 1)
	a.logout("refresh_token=rt-good", "")
	// Not answered from the replay window, and not asked at the IdP either:
	// the fake IdP has no revocation endpoint, and the token was signed out.
	refresh("after the logout", 401, "SW_AUTH_REFRESH_FAILED", 1)
}

// TestSignOutLogsNoToken signs out every way, with the IdP failing too so
// that its errors are logged, and looks for the tokens in the log.
func TestSignOutLogsNoToken(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.set(func(f *fakeIDP) { f.endSession, f.revokeMode = true, mode500 })
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a.srv.log = log
	a.srv.tenants[0].prov.log = log
	access, hint, lt := f.accessToken(), f.idToken("n"), f.logoutToken()
	secrets := []string{access, hint, lt, "rt-secret-value"}
	a.logout("refresh_token=rt-secret-value&id_token_hint="+hint, access)
	a.logout("refresh_token=rt-secret-value&id_token_hint=not-a-jwt", "")
	a.backchannel(lt)
	a.backchannel(lt) // replayed: refused and logged
	a.backchannel(flipSig(t, lt))
	logged := buf.String()
	if !strings.Contains(logged, "revocation") {
		t.Fatalf("the log does not show the failed revocations:\n%s", logged)
	}
	for _, s := range secrets {
		for _, part := range strings.Split(s, ".") {
			if len(part) > 8 && strings.Contains(logged, part) {
				t.Errorf("the log holds part of a token or code (%.12s…):\n%s", part, logged)
			}
		}
	}
}
