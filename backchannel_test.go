package main

// POST /v1/auth/backchannel-logout: every check of the logout token
// attacked, replays, and the revocation by subject and by session applied to
// cached and freshly verified tokens alike, across a restart, until pruned.

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// backchannel posts a logout token as an IdP does.
func (a *testApp) backchannel(logoutToken string) *httptest.ResponseRecorder {
	a.t.Helper()
	return a.do("POST", "/v1/auth/backchannel-logout", url.Values{"logout_token": {logoutToken}}.Encode())
}

// bcCheck checks a back-channel logout answer.
func bcCheck(t *testing.T, step string, w *httptest.ResponseRecorder, wantStatus int, wantCode string) {
	t.Helper()
	tokCheck(t, "/v1/auth/backchannel-logout", step, w, wantStatus, wantCode)
}

func TestBackchannelLogoutRefusesBadTokens(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	access := f.accessToken(map[string]any{"sid": "sess-1"})
	checkRegister(t, "before", a.register(access), 200)

	evil := newTestKey(t, jose.RS256, "k1", 2) // same kid, another key
	now := time.Now()
	noEvent := map[string]any{"events": map[string]any{"http://schemas.openid.net/event/other": map[string]any{}}}
	tests := []struct{ name, token string }{
		{"bad signature", flipSig(t, f.logoutToken())},
		{"signed by another key", signWith(t, evil, f.logoutClaims(), map[jose.HeaderKey]any{"typ": "logout+jwt"})},
		{"payload swapped", swapPayload(t, f.logoutToken(), f.logoutClaims(map[string]any{"sub": "someone-else"}))},
		{"wrong iss", f.logoutToken(map[string]any{"iss": "https://evil.example"})},
		{"iss with a trailing slash", f.logoutToken(map[string]any{"iss": f.issuer + "/"})},
		{"wrong aud", f.logoutToken(map[string]any{"aud": "another-client"})},
		{"no aud", f.logoutToken(map[string]any{"aud": nil})},
		{"no events", f.logoutToken(map[string]any{"events": nil})},
		{"events not an object", f.logoutToken(map[string]any{"events": backchannelLogoutEvent})},
		{"events without the logout event", f.logoutToken(noEvent)},
		{"logout event not an object", f.logoutToken(map[string]any{"events": map[string]any{backchannelLogoutEvent: "yes"}})},
		{"nonce present", f.logoutToken(map[string]any{"nonce": "n-1"})},
		{"nonce present but empty", f.logoutToken(map[string]any{"nonce": ""})},
		{"no jti", f.logoutToken(map[string]any{"jti": nil})},
		{"empty jti", f.logoutToken(map[string]any{"jti": ""})},
		{"jti not a string", f.logoutToken(map[string]any{"jti": 42})},
		{"neither sid nor sub", f.logoutToken(map[string]any{"sid": nil, "sub": nil})},
		{"sid not a string", f.logoutToken(map[string]any{"sid": 7, "sub": nil})},
		{"expired", f.logoutToken(map[string]any{"exp": now.Add(-2 * time.Minute).Unix()})},
		{"no iat", f.logoutToken(map[string]any{"iat": nil})},
		{"iat too old", f.logoutToken(map[string]any{"iat": now.Add(-3 * time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()})},
		{"iat in the future", f.logoutToken(map[string]any{"iat": now.Add(3 * time.Minute).Unix()})},
		{"typ secevent+jwt", signWith(t, f.key(), f.logoutClaims(), map[jose.HeaderKey]any{"typ": "secevent+jwt"})},
		{"typ dpop+jwt", signWith(t, f.key(), f.logoutClaims(), map[jose.HeaderKey]any{"typ": "dpop+jwt"})},
		{"typ not a string", signWith(t, f.key(), f.logoutClaims(), map[jose.HeaderKey]any{"typ": 7})},
		{"typ at+jwt", signWith(t, f.key(), f.logoutClaims(), map[jose.HeaderKey]any{"typ": "at+jwt"})},
		{"an access token", access},
		{"an access token typed at+jwt", signWith(t, f.key(), f.accessClaims(map[string]any{"sid": "sess-1"}), map[jose.HeaderKey]any{"typ": "at+jwt"})},
		{"an ID token", f.idToken("n-1", map[string]any{"sid": "sess-1"})},
		{"an ID token with events", f.idToken("n-1", map[string]any{"sid": "sess-1", "jti": "j", "events": map[string]any{backchannelLogoutEvent: map[string]any{}}})},
		{"alg none", craft(t, map[string]any{"alg": "none", "typ": "logout+jwt"}, f.logoutClaims(), nil)},
		{"HS256 with the public key", hmacToken(t, []byte("secret"), map[string]any{"alg": "HS256", "kid": "k1", "typ": "logout+jwt"}, f.logoutClaims())},
		{"not a JWT", "garbage"},
	}
	for _, tc := range tests {
		w := a.backchannel(tc.token)
		bcCheck(t, tc.name, w, 400, "SW_BAD_REQUEST")
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("POST /v1/auth/backchannel-logout (%s): Cache-Control %q; want no-store", tc.name, cc)
		}
	}
	bcCheck(t, "no logout_token", a.do("POST", "/v1/auth/backchannel-logout", "token=x"), 400, "SW_BAD_REQUEST")
	// None of them revoked anything.
	checkRegister(t, "after the refused logout tokens", a.register(access), 200)
	if n := a.srv.tenants[0].prov.revoked.n.Load(); n != 0 {
		t.Errorf("refused logout tokens left %d revocations", n)
	}
}

func TestBackchannelLogoutJTIOnce(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	lt := f.logoutToken()
	bcCheck(t, "first", a.backchannel(lt), 200, "")
	bcCheck(t, "replayed", a.backchannel(lt), 400, "SW_BAD_REQUEST")
	// Another token with the same jti is a replay too.
	jti := newUUID()
	bcCheck(t, "fresh jti", a.backchannel(f.logoutToken(map[string]any{"jti": jti})), 200, "")
	bcCheck(t, "same jti, other token", a.backchannel(f.logoutToken(map[string]any{"jti": jti, "sid": "sess-2"})), 400, "SW_BAD_REQUEST")
	// And after a restart.
	b := a.restart()
	bcCheck(t, "replayed after a restart", b.backchannel(lt), 400, "SW_BAD_REQUEST")
}

func TestBackchannelLogoutBySubject(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	now := time.Now()
	before := f.accessToken(map[string]any{"iat": now.Add(-time.Minute).Unix()})
	atLogout := f.accessToken(map[string]any{"iat": now.Unix(), "sid": "sess-9"})
	unseen := f.accessToken(map[string]any{"iat": now.Add(-2 * time.Minute).Unix(), "name": "never cached"})
	noIAT := f.accessToken(map[string]any{"iat": nil})
	other := f.accessToken(map[string]any{"sub": "someone-else"})
	for _, tok := range []string{before, atLogout, noIAT, other} {
		checkRegister(t, "before the logout", a.register(tok), 200)
		checkRegister(t, "before the logout, from the cache", a.register(tok), 200)
	}
	bcCheck(t, "logout of the subject", a.backchannel(f.logoutToken(map[string]any{"sid": nil, "iat": now.Unix()})), 200, "")
	for name, tok := range map[string]string{"cached, issued before": before, "cached, issued in the same second": atLogout,
		"issued before, never seen": unseen, "cached, without iat": noIAT} {
		checkRegister(t, name, a.register(tok), 401)
	}
	checkRegister(t, "another subject", a.register(other), 200)
	after := f.accessToken(map[string]any{"iat": now.Add(time.Second).Unix()})
	checkRegister(t, "a sign-in after the logout", a.register(after), 200)
	checkRegister(t, "a sign-in after the logout, again", a.register(after), 200)

	// A restart reads the revocation back from the store.
	b := a.restart()
	checkRegister(t, "after a restart, issued before", b.register(before), 401)
	checkRegister(t, "after a restart, a sign-in after the logout", b.register(after), 200)
}

func TestBackchannelLogoutBySession(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	now := time.Now().Add(-time.Second)
	s1 := f.accessToken(map[string]any{"sid": "sess-1", "iat": now.Unix()})
	s2 := f.accessToken(map[string]any{"sid": "sess-2", "iat": now.Unix()})
	noSID := f.accessToken(map[string]any{"iat": now.Unix()})
	for _, tok := range []string{s1, s2, noSID} {
		checkRegister(t, "before the logout", a.register(tok), 200)
	}
	// sid and sub: that session, and the subject's tokens naming none.
	bcCheck(t, "logout of session 1", a.backchannel(f.logoutToken()), 200, "")
	checkRegister(t, "session 1", a.register(s1), 401)
	checkRegister(t, "no sid", a.register(noSID), 401)
	checkRegister(t, "session 2 of the same subject", a.register(s2), 200)
	// sid alone: that session only.
	s3 := f.accessToken(map[string]any{"sid": "sess-3", "iat": now.Unix()})
	checkRegister(t, "session 3 before its logout", a.register(s3), 200)
	bcCheck(t, "logout of session 3 by sid alone", a.backchannel(f.logoutToken(map[string]any{"sid": "sess-3", "sub": nil})), 200, "")
	checkRegister(t, "session 3", a.register(s3), 401)
	checkRegister(t, "session 2, after session 3's logout", a.register(s2), 200)
}

func TestRevocationsPruned(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	bcCheck(t, "logout", a.backchannel(f.logoutToken()), 200, "")
	tok := f.accessToken(map[string]any{"sub": "another-user"})
	if w := a.do("POST", "/v1/auth/logout", "", "Authorization", "Bearer "+tok); w.Code != 200 {
		t.Fatalf("POST /v1/auth/logout = %d %s", w.Code, w.Body)
	}
	if n := p.revoked.n.Load(); n != 3 { // sid, sub without sid, the token
		t.Fatalf("%d revocations in force; want 3", n)
	}
	ctx := context.Background()
	rows := func() int {
		return queryInt(t, a.store.r, `SELECT (SELECT count(*) FROM revocations) + (SELECT count(*) FROM logout_tokens)`)
	}
	if got := rows(); got != 4 {
		t.Fatalf("%d rows stored; want 4", got)
	}
	// Nothing goes while a token could still match.
	if err := a.srv.pruneRevocations(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, got := p.revoked.n.Load(), rows(); n != 2 || got != 2 {
		t.Errorf("an hour on: %d revocations, %d rows; want the subject's and the session's, 2 and 2", n, got)
	}
	// Past the retention, no token issued before the logout is valid.
	if err := a.srv.pruneRevocations(ctx, time.Now().Add(p.revoked.retention()+time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n, got := p.revoked.n.Load(), rows(); n != 0 || got != 0 {
		t.Errorf("past the retention: %d revocations, %d rows; want none", n, got)
	}
}

func TestRevocationRetentionFollowsTokenLifetimes(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	if got := p.revoked.retention(); got != minRevocationRetention+leeway {
		t.Errorf("retention with no token seen = %s; want %s", got, minRevocationRetention+leeway)
	}
	now := time.Now()
	long := f.accessToken(map[string]any{"iat": now.Unix(), "exp": now.Add(72 * time.Hour).Unix()})
	checkRegister(t, "a token valid for 72 h", a.register(long), 200)
	if got := p.revoked.retention(); got != 72*time.Hour+leeway {
		t.Errorf("retention after a 72 h token = %s; want %s", got, 72*time.Hour+leeway)
	}
	bcCheck(t, "logout", a.backchannel(f.logoutToken(map[string]any{"sid": nil, "iat": now.Unix()})), 200, "")
	if err := a.srv.pruneRevocations(context.Background(), now.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := p.revoked.n.Load(); n != 1 {
		t.Errorf("48 h after the logout, with 72 h tokens about: %d revocations; want the subject's kept", n)
	}
}

func TestRevocationsBounded(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	clock := &testClock{}
	p.now = clock.now
	p.revoked.max = 2
	logout := func(tok string) int {
		return a.do("POST", "/v1/auth/logout", "", "Authorization", "Bearer "+tok).Code
	}
	now := time.Now()
	short := f.accessToken(map[string]any{"sub": "a", "exp": now.Add(time.Minute).Unix()})
	for i, tok := range []string{short, f.accessToken(map[string]any{"sub": "b"})} {
		if got := logout(tok); got != 200 {
			t.Fatalf("logout %d = %d; want 200", i+1, got)
		}
	}
	third := f.accessToken(map[string]any{"sub": "c"})
	w := a.do("POST", "/v1/auth/logout", "", "Authorization", "Bearer "+third)
	tokCheck(t, "/v1/auth/logout", "over the bound", w, 429, "SW_RATE_LIMITED")
	tokCheckRetryAfter(t, "/v1/auth/logout", "over the bound", w)
	bcCheck(t, "back-channel over the bound", a.backchannel(f.logoutToken()), 429, "SW_RATE_LIMITED")
	if n := p.revoked.n.Load(); n != 2 {
		t.Errorf("%d revocations; want the bound, 2", n)
	}
	// Once the first token is past exp and the leeway, its place is free.
	clock.advance(time.Minute + leeway + time.Second)
	if got := logout(third); got != 200 {
		t.Errorf("logout once a revoked token expired = %d; want 200", got)
	}
	if n := p.revoked.n.Load(); n != 2 {
		t.Errorf("%d revocations; want 2", n)
	}
}

// TestBackchannelLogoutTyp: the specification only recommends explicit
// typing, and Casdoor v3.158.0 and Hydra v2.3.0 type their logout tokens
// JWT (Keycloak before 25 and Authentik before 2025.12 did too): logout+jwt,
// JWT in any case, or no typ are accepted; TestBackchannelLogoutRefusesBadTokens
// has the other types refused.
func TestBackchannelLogoutTyp(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	for _, typ := range []any{"logout+jwt", "application/logout+jwt", "JWT", "jwt", "application/jwt", nil} {
		opts := &jose.SignerOptions{}
		if typ != nil {
			opts = opts.WithHeader("typ", typ)
		}
		tok := signOpts(t, f.key().alg, f.key().priv, opts.WithHeader("kid", f.key().kid), f.logoutClaims())
		bcCheck(t, fmt.Sprintf("typ %v", typ), a.backchannel(tok), 200, "")
	}
}

// sidIDP makes f answer the password grant as Ory Hydra v2.3.0 answers a
// sign-in (testdata/idp-tokens/hydra-v2.3.0-*.json): an access token that
// names no sid (a JWT, or opaque and introspected when opaque is set), an
// opaque refresh token, and an ID token with at_hash and the session's sid;
// sign-in n gets sid "hydra-sid-n". The refresh grant, for a refresh token
// it issued, answers the same with the session's sid, or with an ID token
// naming none when refreshedSID is false. It returns the sid of each
// sign-in so far.
func sidIDP(t *testing.T, f *fakeIDP, opaque, refreshedSID bool) func() []string {
	var mu sync.Mutex
	var sids []string
	issued := map[string]string{} // refresh token -> sid
	f.set(func(f *fakeIDP) {
		f.tokenFn = func(form url.Values, _ *http.Request) (int, any) {
			mu.Lock()
			defer mu.Unlock()
			var sid string
			switch form.Get("grant_type") {
			case "password":
				sid = fmt.Sprint("hydra-sid-", len(sids))
				sids = append(sids, sid)
			case "refresh_token":
				var ok bool
				if sid, ok = issued[form.Get("refresh_token")]; !ok {
					return 400, map[string]string{"error": "invalid_grant"}
				}
			default:
				return 400, map[string]string{"error": "unsupported_grant_type"}
			}
			at := f.accessToken(map[string]any{"jti": rand.Text()})
			if opaque {
				at = f.opaqueToken()
			}
			rt := "ory_rt_" + rand.Text()
			issued[rt] = sid
			idSID := any(sid)
			if form.Get("grant_type") == "refresh_token" && !refreshedSID {
				idSID = nil
			}
			return 200, map[string]any{
				"access_token": at, "token_type": "bearer", "expires_in": 3599, "refresh_token": rt,
				"id_token": f.idToken("", map[string]any{"at_hash": atHashOf(t, f.key().alg, at), "sid": idSID, "jti": rand.Text()}),
			}
		}
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), sids...)
	}
}

// hydraLogoutToken is Ory Hydra v2.3.0's captured back-channel logout token
// (header typ JWT; payload aud, events, iat, iss, jti and sid, no sub and
// no exp) re-signed for f, for the session sid, with a fresh jti and iat.
func hydraLogoutToken(t *testing.T, f *fakeIDP, sid string) string {
	t.Helper()
	var ct capturedToken
	decodeUseNumber(t, loadCapture(t, "hydra-v2.3.0-opaque.json").Backchannel.LogoutToken, &ct)
	if _, ok := ct.Payload["sub"]; ok || ct.Header["typ"] != "JWT" {
		t.Fatalf("Hydra's captured logout token is no longer typ JWT with no sub: %v %v", ct.Header, ct.Payload)
	}
	p := withMods(ct.Payload, map[string]any{"iss": f.issuer, "aud": []string{testClientID}, "iat": time.Now().Unix(), "jti": rand.Text(), "sid": sid})
	k := f.key()
	return signOpts(t, k.alg, k.priv, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid), p)
}

// TestAttackBackchannelLogoutBySIDEndsRelayedSessions: Hydra v2.3.0's
// access tokens carry no sid, only its ID tokens do, and its logout tokens
// name only the sid. A back-channel logout must still end the session the
// service relayed with that sid, as /logout ends one: its access tokens are
// refused (the one cached by an earlier /register too, and the one a
// refresh gave), its refresh tokens by /refresh without asking the IdP,
// also after a restart; another session, with another sid, of the same
// subject goes on, until its own logout, which works on what a restart
// loaded. A refresh whose ID token names no sid stays in its session's.
func TestAttackBackchannelLogoutBySIDEndsRelayedSessions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                 string
		opaque, refreshedSID bool
	}{
		{"JWT access tokens (hydra-v2.3.0-jwt)", false, true},
		{"opaque access tokens, introspected (hydra-v2.3.0-opaque)", true, true},
		{"refreshed ID tokens naming no sid", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeIDP(t)
			f.set(func(f *fakeIDP) { f.introspect = tc.opaque })
			sids := sidIDP(t, f, tc.opaque, tc.refreshedSID)
			a := newTestApp(t, []tenantConfig{f.tenantConfig()})
			login := func() (at, rt string) {
				t.Helper()
				w := a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw")
				tokCheck(t, "/v1/auth/token", "sign-in", w, 200, "")
				d := tokCheckTokens(t, "/v1/auth/token", "sign-in", w)
				return tokenOf(d, "access_token"), tokenOf(d, "refresh_token")
			}
			refresh := func(a *testApp, step, rt string, wantStatus int, wantCode string) (string, string) {
				t.Helper()
				w := a.do("POST", "/v1/auth/refresh", url.Values{"refresh_token": {rt}}.Encode())
				tokCheck(t, "/v1/auth/refresh", step, w, wantStatus, wantCode)
				d := decode(t, w).Data
				return tokenOf(d, "access_token"), tokenOf(d, "refresh_token")
			}

			at1, rt1 := login()
			at2, rt2 := login()
			sid1, sid2 := sids()[0], sids()[1]
			checkRegister(t, "session 1's access token (cached from here)", a.register(at1), 200)
			checkRegister(t, "session 2's access token", a.register(at2), 200)
			at1b, rt1b := refresh(a, "session 1, refreshed", rt1, 200, "")

			bcCheck(t, "Hydra's logout token for session 1, sid only", a.backchannel(hydraLogoutToken(t, f, sid1)), 200, "")
			checkRegister(t, "session 1's access token, cached, after its logout", a.register(at1), 401)
			checkRegister(t, "session 1's refreshed access token, never used, after its logout", a.register(at1b), 401)
			hits := f.tokenHits.Load()
			refresh(a, "session 1's refresh token, after its logout", rt1b, 401, "SW_AUTH_REFRESH_FAILED")
			refresh(a, "session 1's first refresh token, after its logout", rt1, 401, "SW_AUTH_REFRESH_FAILED")
			if got := f.tokenHits.Load(); got != hits {
				t.Errorf("signed-out refresh tokens reached the IdP %d times; want never", got-hits)
			}
			checkRegister(t, "session 2's access token, after session 1's logout", a.register(at2), 200)
			at2b, rt2b := refresh(a, "session 2, after session 1's logout", rt2, 200, "")

			b := a.restart()
			checkRegister(t, "session 1's access token, after a restart", b.register(at1b), 401)
			refresh(b, "session 1's refresh token, after a restart", rt1b, 401, "SW_AUTH_REFRESH_FAILED")
			checkRegister(t, "session 2's access token, after a restart", b.register(at2b), 200)

			bcCheck(t, "Hydra's logout token for session 2, after a restart", b.backchannel(hydraLogoutToken(t, f, sid2)), 200, "")
			checkRegister(t, "session 2's first access token, after its logout", b.register(at2), 401)
			checkRegister(t, "session 2's refreshed access token, after its logout", b.register(at2b), 401)
			refresh(b, "session 2's refresh token, after its logout", rt2b, 401, "SW_AUTH_REFRESH_FAILED")
		})
	}
}

// TestBackchannelLogoutBySIDEndsBrowserSignIn: the sid of a browser
// sign-in's ID token, verified at the callback, is remembered when the app
// redeems the handoff, so a logout token naming it ends that session.
func TestBackchannelLogoutBySIDEndsBrowserSignIn(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	f.set(func(f *fakeIDP) { f.codeIDMods = map[string]any{"sid": "browser-sid"} })
	w := a.do("POST", "/v1/auth/login", "handoff="+siSignIn(t, a, f, ""))
	if !tokCheck(t, "/v1/auth/login", "handoff", w, 200, "") {
		return
	}
	at := tokenOf(decode(t, w).Data, "access_token")
	checkRegister(t, "the browser sign-in's access token", a.register(at), 200)
	bcCheck(t, "Hydra's logout token for another sid", a.backchannel(hydraLogoutToken(t, f, "other-sid")), 200, "")
	checkRegister(t, "the browser sign-in's access token, after another session's logout", a.register(at), 200)
	bcCheck(t, "Hydra's logout token for the sign-in's sid", a.backchannel(hydraLogoutToken(t, f, "browser-sid")), 200, "")
	checkRegister(t, "the browser sign-in's access token, after its session's logout", a.register(at), 401)
}
