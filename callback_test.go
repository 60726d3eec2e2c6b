package main

// The callback at GET /v1/auth/login (and POST with state, form_post): the
// state taken once, the cookie, the code exchange with the kept verifier and
// nonce, and the way back to return_to.

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCallbackSignsIn(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})

	s := siBegin(t, a, "/v1/auth/authorize")
	w := siCallback(t, a, f, s)
	h := siHandoff(t, w, testReturnTo)
	if loc := w.Header().Get("Location"); loc != testReturnTo+"?handoff="+h {
		t.Errorf("callback Location %q; want return_to with only the handoff added", loc)
	}
	for hdr, want := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
		if got := w.Header().Get(hdr); got != want {
			t.Errorf("callback: %s = %q; want %q", hdr, got, want)
		}
	}
	// The code went to the IdP with the verifier of the challenge sent at
	// /authorize, and the tenant's redirect_uri.
	var form url.Values
	f.set(func(f *fakeIDP) { form = f.lastForm })
	if got, want := s256(form.Get("code_verifier")), s.authURL.Query().Get("code_challenge"); got != want {
		t.Errorf("code exchange: S256(code_verifier) = %q; want the challenge %q sent to the IdP", got, want)
	}
	if form.Get("redirect_uri") != testRedirectURI || form.Get("grant_type") != "authorization_code" {
		t.Errorf("code exchange form %v; want grant_type authorization_code and redirect_uri %s", form, testRedirectURI)
	}

	w = a.do("POST", "/v1/auth/login", "handoff="+h)
	if !tokCheck(t, "/v1/auth/login", "handoff", w, 200, "") {
		return
	}
	d := tokCheckTokens(t, "/v1/auth/login", "handoff", w)
	idt, _ := d["id_token"].(string)
	if _, err := a.srv.tenants[0].prov.verify(context.Background(), idt, kindIDToken, s.nonce); err != nil {
		t.Errorf("the handoff's id_token does not verify with the sign-in's nonce: %v", err)
	}
	if d["refresh_token"] != "rt-from-idp" {
		t.Errorf("the handoff's refresh_token = %v; want the IdP's", d["refresh_token"])
	}

	// A return_to with a query keeps it; the handoff is appended.
	s = siBegin(t, a, "/v1/auth/authorize?return_to="+url.QueryEscape(testReturnToQuery))
	w = siCallback(t, a, f, s)
	h = siHandoff(t, w, testReturnToQuery)
	if loc := w.Header().Get("Location"); loc != testReturnToQuery+"&handoff="+h {
		t.Errorf("callback Location %q; want %s&handoff=…", loc, testReturnToQuery)
	}

	// form_post: the IdP posts code and state to /v1/auth/login.
	s = siBegin(t, a, "/v1/auth/authorize")
	body := url.Values{"code": {f.authorize(s.authURL.String())}, "state": {s.state}}.Encode()
	w = a.do("POST", "/v1/auth/login", body, append(s.cookieHdr(), "Content-Type", "application/x-www-form-urlencoded")...)
	h = siHandoff(t, w, testReturnTo)
	tokCheck(t, "/v1/auth/login", "handoff of a form_post sign-in", a.do("POST", "/v1/auth/login", "handoff="+h), 200, "")
}

// TestCallbackRefusals sends the callback every way it can go wrong: a
// state that is not a pending one, or a cookie that does not bind it, gets
// 400 in the envelope without the IdP hearing of it; a known state with the
// IdP's error, or a code that fails, goes back to return_to with error=.
func TestCallbackRefusals(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	clock := &testClock{}
	a.srv.browser.setClock(clock.now)
	begin := func() siState { return siBegin(t, a, "/v1/auth/authorize") }
	cb := func(q url.Values) string { return "/v1/auth/login?" + q.Encode() }
	withCode := func(s siState) url.Values {
		return url.Values{"code": {f.authorize(s.authURL.String())}, "state": {s.state}}
	}

	type request struct {
		method, target, body string
		hdr                  []string
	}
	tests := []struct {
		name       string
		setup      func() request
		wantStatus int
		wantCode   string // for a 400
		wantError  string // error= for a 303; "" for a handoff
		wantIdP    bool
	}{
		{"unknown state", func() request {
			s := begin()
			return request{"GET", cb(url.Values{"code": {"c"}, "state": {randomValue()}}), "", s.cookieHdr()}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"no state", func() request {
			return request{"GET", cb(url.Values{"code": {"c"}}), "", begin().cookieHdr()}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"empty state", func() request {
			return request{"GET", cb(url.Values{"code": {"c"}, "state": {""}}), "", begin().cookieHdr()}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"state given twice", func() request {
			s := begin()
			return request{"GET", cb(withCode(s)) + "&state=" + s.state, "", s.cookieHdr()}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"replayed state", func() request {
			// The callback cleared the cookie, so a browser replaying the
			// URL (the back button) comes without it.
			s := begin()
			q := withCode(s)
			w := a.do("GET", cb(q), "", s.cookieHdr()...)
			siHandoff(t, w, testReturnTo)
			if c := w.Result().Cookies(); len(c) != 1 || c[0].Name != s.cookie.Name || c[0].MaxAge >= 0 {
				t.Errorf("callback Set-Cookie %v; want %s deleted", c, s.cookie.Name)
			}
			return request{"GET", cb(q), "", nil}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"replayed state and code with a copy of the cleared cookie", func() request {
			// No server record of used states exists; what refuses this
			// is the IdP, which redeems a code once (RFC 6749 §4.1.2).
			s := begin()
			q := withCode(s)
			siHandoff(t, a.do("GET", cb(q), "", s.cookieHdr()...), testReturnTo)
			return request{"GET", cb(q), "", s.cookieHdr()}
		}, 303, "", "server_error", true},
		{"expired state", func() request {
			s := begin()
			clock.advance(10 * time.Minute) // SPEC.md: pending sign-ins live 10 minutes
			return request{"GET", cb(withCode(s)), "", s.cookieHdr()}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"a state nearly 10 minutes old", func() request {
			s := begin()
			clock.advance(10*time.Minute - time.Second)
			return request{"GET", cb(withCode(s)), "", s.cookieHdr()}
		}, 303, "", "", true},
		{"no cookie", func() request {
			return request{"GET", cb(withCode(begin())), "", nil}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"the right cookie after a try without it", func() request {
			// A try without the cookie uses nothing up: whoever learns a
			// state cannot spoil its browser's sign-in.
			s := begin()
			a.do("GET", cb(withCode(s)), "")
			return request{"GET", cb(withCode(s)), "", s.cookieHdr()}
		}, 303, "", "", true},
		{"another browser's cookie", func() request {
			s, other := begin(), begin()
			return request{"GET", cb(withCode(s)), "", other.cookieHdr()}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"a cookie one character off", func() request {
			s := begin()
			v := []byte(s.cookie.Value)
			v[10] ^= 1
			return request{"GET", cb(withCode(s)), "", []string{"Cookie", s.cookie.Name + "=" + string(v)}}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"an empty cookie", func() request {
			s := begin()
			return request{"GET", cb(withCode(s)), "", []string{"Cookie", s.cookie.Name + "="}}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"the http cookie on an https callback", func() request {
			s := begin()
			return request{"GET", "https://auth.example" + cb(withCode(s)), "", s.cookieHdr()}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"the value under the https name over http", func() request {
			s := begin()
			return request{"GET", cb(withCode(s)), "", []string{"Cookie", "__Host-" + s.cookie.Name + "=" + s.cookie.Value}}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"form_post with an unknown state", func() request {
			s := begin()
			return request{"POST", "/v1/auth/login", url.Values{"code": {"c"}, "state": {randomValue()}}.Encode(), s.cookieHdr()}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"form_post without the cookie", func() request {
			return request{"POST", "/v1/auth/login", withCode(begin()).Encode(), nil}
		}, 400, "SW_BAD_REQUEST", "", false},

		{"IdP error", func() request {
			s := begin()
			q := url.Values{"state": {s.state}, "error": {"access_denied"}, "error_description": {"<b>The user said no</b>"}}
			return request{"GET", cb(q), "", s.cookieHdr()}
		}, 303, "", "access_denied", false},
		{"IdP error, OpenID Connect code", func() request {
			s := begin()
			return request{"GET", cb(url.Values{"state": {s.state}, "error": {"login_required"}}), "", s.cookieHdr()}
		}, 303, "", "login_required", false},
		{"IdP error that is no known code", func() request {
			s := begin()
			return request{"GET", cb(url.Values{"state": {s.state}, "error": {"<script>alert(1)</script>"}}), "", s.cookieHdr()}
		}, 303, "", "server_error", false},
		{"IdP error with a code too", func() request {
			s := begin()
			q := withCode(s)
			q.Set("error", "access_denied")
			return request{"GET", cb(q), "", s.cookieHdr()}
		}, 303, "", "access_denied", false},
		{"IdP error, unknown state", func() request {
			s := begin()
			return request{"GET", cb(url.Values{"state": {randomValue()}, "error": {"access_denied"}}), "", s.cookieHdr()}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"IdP error, wrong cookie", func() request {
			s, other := begin(), begin()
			return request{"GET", cb(url.Values{"state": {s.state}, "error": {"access_denied"}}), "", other.cookieHdr()}
		}, 400, "SW_BAD_REQUEST", "", false},
		{"iss of another issuer", func() request {
			s := begin()
			q := withCode(s)
			q.Set("iss", "https://evil.example")
			return request{"GET", cb(q), "", s.cookieHdr()}
		}, 303, "", "invalid_request", false},
		{"no code", func() request {
			s := begin()
			return request{"GET", cb(url.Values{"state": {s.state}}), "", s.cookieHdr()}
		}, 303, "", "invalid_request", false},
		{"a code the IdP refuses", func() request {
			s := begin()
			return request{"GET", cb(url.Values{"code": {"made-up"}, "state": {s.state}}), "", s.cookieHdr()}
		}, 303, "", "server_error", true},
		{"a code of another sign-in", func() request {
			s, other := begin(), begin()
			q := withCode(other) // its verifier is not s's
			q.Set("state", s.state)
			return request{"GET", cb(q), "", s.cookieHdr()}
		}, 303, "", "server_error", true},
	}
	for _, tc := range tests {
		rq := tc.setup()
		hits := f.tokenHits.Load()
		if rq.body != "" && len(rq.hdr)%2 == 0 {
			rq.hdr = append(rq.hdr, "Content-Type", "application/x-www-form-urlencoded")
		}
		w := a.do(rq.method, rq.target, rq.body, rq.hdr...)
		name := rq.method + " /v1/auth/login (" + tc.name + ")"
		if w.Code != tc.wantStatus {
			t.Errorf("%s = %d %s; want %d", name, w.Code, w.Body, tc.wantStatus)
			continue
		}
		switch w.Code {
		case 400:
			if got := code(t, w); got != tc.wantCode || w.Header().Get("Location") != "" {
				t.Errorf("%s = 400 %s, Location %q; want %s and no Location", name, got, w.Header().Get("Location"), tc.wantCode)
			}
		case 303:
			if tc.wantError == "" {
				siHandoff(t, w, testReturnTo)
			} else if loc, want := w.Header().Get("Location"), testReturnTo+"?error="+tc.wantError; loc != want {
				t.Errorf("%s: Location %q; want %q", name, loc, want)
			}
		}
		if called := f.tokenHits.Load() > hits; called != tc.wantIdP {
			t.Errorf("%s: token endpoint called = %v; want %v", name, called, tc.wantIdP)
		}
	}
}

// TestCallbackExchangeFails: once the state and cookie are good, what goes
// wrong at the IdP sends the browser back with a code the app can act on.
func TestCallbackExchangeFails(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	tests := []struct {
		name      string
		mode      string
		answer    tokAnswerFn
		wantError string
	}{
		{"IdP down", modeDown, nil, "temporarily_unavailable"},
		{"IdP 500", mode500, nil, "temporarily_unavailable"},
		{"our client refused", modeOK, tokOAuthError(401, "invalid_client"), "server_error"},
		{"no ID token", modeOK, tokAnswer(200, f.tokTokens("")), "server_error"},
		{"ID token of another nonce", modeOK, tokAnswer(200, f.tokTokens(f.idToken("another-nonce"))), "server_error"},
		{"ID token without a nonce", modeOK, tokAnswer(200, f.tokTokens(f.idToken(""))), "server_error"},
		{"ID token whose at_hash is another access token's", modeOK, nil, "server_error"},
	}
	for _, tc := range tests {
		s := siBegin(t, a, "/v1/auth/authorize")
		code := f.authorize(s.authURL.String())
		if tc.name == "ID token whose at_hash is another access token's" {
			// Right in every other way, nonce included: only at_hash is off.
			idt := f.idToken(s.nonce, map[string]any{"at_hash": atHashOf(t, f.key().alg, "another access token")})
			tc.answer = tokAnswer(200, f.tokTokens(idt))
		}
		f.set(func(f *fakeIDP) { f.tokenMode, f.tokenFn = tc.mode, tc.answer })
		w := a.do("GET", "/v1/auth/login?"+url.Values{"code": {code}, "state": {s.state}}.Encode(), "", s.cookieHdr()...)
		f.set(func(f *fakeIDP) { f.tokenMode, f.tokenFn = modeOK, nil })
		if loc, want := w.Header().Get("Location"), testReturnTo+"?error="+tc.wantError; w.Code != 303 || loc != want {
			t.Errorf("GET /v1/auth/login (%s) = %d, Location %q; want 303 to %s", tc.name, w.Code, loc, want)
		}
	}
}

// TestCallbackConcurrentSignIns: two tabs of one browser sign in at once,
// each with its own cookie, and finish in either order.
func TestCallbackConcurrentSignIns(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	tab1 := siBegin(t, a, "/v1/auth/authorize")
	tab2 := siBegin(t, a, "/v1/auth/authorize?return_to="+url.QueryEscape(testReturnToQuery), tab1.cookieHdr()...)
	if tab2.cookie.Name == tab1.cookie.Name {
		t.Errorf("the second sign-in in a browser replaced its cookie; want one cookie each")
	}
	both := []string{"Cookie", tab1.cookie.Name + "=" + tab1.cookie.Value + "; " + tab2.cookie.Name + "=" + tab2.cookie.Value}
	h2 := siHandoff(t, siCallbackHdr(t, a, f, tab2, both), testReturnToQuery)
	h1 := siHandoff(t, siCallbackHdr(t, a, f, tab1, both), testReturnTo)
	if h1 == h2 {
		t.Errorf("two sign-ins got one handoff")
	}
	for _, h := range []string{h1, h2} {
		tokCheck(t, "/v1/auth/login", "handoff of one of two tabs", a.do("POST", "/v1/auth/login", "handoff="+h), 200, "")
	}
}

// TestCallbackStaysWithItsTenant: a state begun at one tenant's host means
// nothing at another's.
func TestCallbackStaysWithItsTenant(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	ta, tb := f.tenantConfig(), f.tenantConfig()
	ta.Hosts = []string{"a.example"}
	tb.ID, tb.Hosts, tb.ClientID = "b", []string{"b.example"}, "other-client"
	a := newTestApp(t, []tenantConfig{ta, tb})
	s := siBegin(t, a, "http://a.example/v1/auth/authorize")
	q := url.Values{"code": {f.authorize(s.authURL.String())}, "state": {s.state}}
	w := a.do("GET", "http://b.example/v1/auth/login?"+q.Encode(), "", s.cookieHdr()...)
	if got := code(t, w); w.Code != 400 || got != "SW_BAD_REQUEST" {
		t.Errorf("GET /v1/auth/login at another tenant's host = %d %s; want 400 SW_BAD_REQUEST", w.Code, got)
	}
}

// TestCallbackLogsNoSecrets signs in, fails a sign-in and redeems a
// handoff with the service's log kept: no code, state, nonce, cookie,
// handoff or token is in it.
func TestCallbackLogsNoSecrets(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	logs := &syncBuffer{}
	a := startTestAppLog(t, &config{Tenants: []tenantConfig{f.tenantConfig()}}, t.TempDir()+"/test.db", true, logs)
	var secrets []string
	s := siBegin(t, a, "/v1/auth/authorize")
	code := f.authorize(s.authURL.String())
	w := a.do("GET", "/v1/auth/login?"+url.Values{"code": {code}, "state": {s.state}}.Encode(), "", s.cookieHdr()...)
	h := siHandoff(t, w, testReturnTo)
	w = a.do("POST", "/v1/auth/login", "handoff="+h)
	d := decode(t, w).Data
	a.do("POST", "/v1/auth/login", "handoff="+h) // replayed
	secrets = append(secrets, code, s.state, s.nonce, s.cookie.Value, h, d["access_token"].(string), d["id_token"].(string))

	s2 := siBegin(t, a, "/v1/auth/authorize")
	a.do("GET", "/v1/auth/login?"+url.Values{"code": {"made-up-code-value"}, "state": {s2.state}}.Encode(), "", s2.cookieHdr()...)
	s3 := siBegin(t, a, "/v1/auth/authorize")
	a.do("GET", "/v1/auth/login?"+url.Values{"code": {"code-without-cookie"}, "state": {s3.state}}.Encode(), "")
	secrets = append(secrets, "made-up-code-value", s2.state, "code-without-cookie", s3.state)

	out := logs.String()
	if !strings.Contains(out, "path=/v1/auth/login") {
		t.Fatalf("the log has no request line for /v1/auth/login:\n%s", out)
	}
	for _, sec := range secrets {
		if strings.Contains(out, sec) {
			t.Errorf("the log contains a secret value (%d characters, %.6s…)", len(sec), sec)
		}
	}
	if strings.Contains(out, f.issuer+"/authorize?") {
		t.Errorf("the log contains the authorization URL")
	}
}
