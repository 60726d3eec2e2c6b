package main

// GET /v1/auth/authorize: return_to, the app's code_challenge, the request
// sent to the IdP, the binding cookie, and the bound on pending sign-ins.
// The helpers here drive a browser's sign-in for callback_test.go and
// handoff_test.go too.

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// setClock makes the sealer and every tenant's handoff store read now;
// call it before the first request.
func (b *browserSignIn) setClock(now func() time.Time) {
	b.sealer.now = now
	for _, ts := range b.tenants {
		ts.handoffs.now = now
	}
}

// siState is one browser's sign-in in progress, as /authorize began it.
type siState struct {
	authURL *url.URL // where /authorize sent the browser
	state   string
	nonce   string
	cookie  *http.Cookie
}

// cookieHdr is the Cookie header that carries the sign-in's cookie.
func (s siState) cookieHdr() []string {
	return []string{"Cookie", s.cookie.Name + "=" + s.cookie.Value}
}

// siBegin sends GET target (an /authorize URL) and expects the 302 to the
// IdP that sets the binding cookie.
func siBegin(t *testing.T, a *testApp, target string, hdr ...string) siState {
	t.Helper()
	w := a.do("GET", target, "", hdr...)
	if w.Code != http.StatusFound {
		t.Fatalf("GET %s = %d %s; want 302", target, w.Code, w.Body)
	}
	u, err := url.Parse(w.Header().Get("Location"))
	if err != nil {
		t.Fatalf("GET %s: Location: %v", target, err)
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("GET %s: %d cookies set; want 1", target, len(cs))
	}
	return siState{authURL: u, state: u.Query().Get("state"), nonce: u.Query().Get("nonce"), cookie: cs[0]}
}

// siCallback signs in at the fake IdP and brings the browser back to GET
// /v1/auth/login with the code, the state and the cookie.
func siCallback(t *testing.T, a *testApp, f *fakeIDP, s siState) *httptest.ResponseRecorder {
	t.Helper()
	return siCallbackHdr(t, a, f, s, s.cookieHdr())
}

// siCallbackHdr is siCallback with the request's headers given, for a
// browser that holds more than the sign-in's cookie.
func siCallbackHdr(t *testing.T, a *testApp, f *fakeIDP, s siState, hdr []string) *httptest.ResponseRecorder {
	t.Helper()
	code := f.authorize(s.authURL.String())
	q := url.Values{"code": {code}, "state": {s.state}, "iss": {f.issuer}}
	return a.do("GET", "/v1/auth/login?"+q.Encode(), "", hdr...)
}

// siHandoff checks a 303 back to returnTo with a handoff, and returns it.
func siHandoff(t *testing.T, w *httptest.ResponseRecorder, returnTo string) string {
	t.Helper()
	loc := w.Header().Get("Location")
	if w.Code != http.StatusSeeOther {
		t.Fatalf("callback = %d %s; want 303", w.Code, w.Body)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("callback Location %q: %v", loc, err)
	}
	h := u.Query().Get("handoff")
	if !strings.HasPrefix(loc, returnTo) || !wellFormedRandom(h) {
		t.Fatalf("callback Location %q; want %s with a handoff", loc, returnTo)
	}
	return h
}

func TestAuthorizeRedirectsToIdP(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	w := a.do("GET", "/v1/auth/authorize", "")
	if w.Code != http.StatusFound {
		t.Fatalf("GET /v1/auth/authorize = %d %s; want 302", w.Code, w.Body)
	}
	for h, want := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
		if got := w.Header().Get(h); got != want {
			t.Errorf("GET /v1/auth/authorize: %s = %q; want %q", h, got, want)
		}
	}
	u, err := url.Parse(w.Header().Get("Location"))
	if err != nil || u.Scheme+"://"+u.Host+u.Path != f.issuer+"/authorize" {
		t.Fatalf("GET /v1/auth/authorize: Location %q; want the IdP's authorization endpoint", w.Header().Get("Location"))
	}
	q := u.Query()
	for k, want := range map[string]string{
		"response_type":         "code",
		"client_id":             testClientID,
		"redirect_uri":          testRedirectURI,
		"scope":                 "openid profile email",
		"code_challenge_method": "S256",
	} {
		if q.Get(k) != want {
			t.Errorf("authorization request %s = %q; want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if !wellFormedRandom(q.Get(k)) {
			t.Errorf("authorization request %s = %q; want 43 base64url characters", k, q.Get(k))
		}
	}
	// Nothing the app sent, and no verifier, goes to the IdP.
	if len(q) != 8 {
		t.Errorf("authorization request has parameters %v; want exactly the 8 above", q)
	}

	// Each sign-in gets values of its own.
	s1, s2 := siBegin(t, a, "/v1/auth/authorize"), siBegin(t, a, "/v1/auth/authorize")
	if s1.state == s2.state || s1.nonce == s2.nonce || s1.authURL.Query().Get("code_challenge") == s2.authURL.Query().Get("code_challenge") {
		t.Errorf("two sign-ins share a state, nonce or code_challenge")
	}
	if s1.state == s1.nonce {
		t.Errorf("state and nonce are one value")
	}
}

// TestAuthorizeKeepsEndpointQuery: an authorization endpoint with a query
// of its own (Azure AD B2C names its policy there) keeps it, and loses a
// fragment, which RFC 6749 §3.1 does not allow it.
func TestAuthorizeKeepsEndpointQuery(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.set(func(f *fakeIDP) {
		f.discExtra = map[string]any{"authorization_endpoint": f.issuer + "/authorize?p=b2c_1_signin#frag"}
	})
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	s := siBegin(t, a, "/v1/auth/authorize")
	if q := s.authURL.Query(); q.Get("p") != "b2c_1_signin" || q.Get("state") == "" || s.authURL.Fragment != "" {
		t.Errorf("GET /v1/auth/authorize: Location %s; want the endpoint's p=b2c_1_signin beside ours, and no fragment", s.authURL)
	}
	siHandoff(t, siCallback(t, a, f, s), testReturnTo)
}

func TestAuthorizeReturnTo(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})

	// Where a sign-in goes back to shows in its error redirect.
	returnsTo := func(s siState) string {
		w := a.do("GET", "/v1/auth/login?"+url.Values{"state": {s.state}, "error": {"access_denied"}}.Encode(), "", s.cookieHdr()...)
		loc, _, _ := strings.Cut(w.Header().Get("Location"), "error=")
		return loc
	}
	ok := []struct{ name, query, want string }{
		{"absent: the first", "", testReturnTo + "?"},
		{"the first", "?return_to=" + url.QueryEscape(testReturnTo), testReturnTo + "?"},
		{"one with a query", "?return_to=" + url.QueryEscape(testReturnToQuery), testReturnToQuery + "&"},
		{"loopback http", "?return_to=" + url.QueryEscape(testReturnToLoopback), testReturnToLoopback + "?"},
	}
	for _, tc := range ok {
		s := siBegin(t, a, "/v1/auth/authorize"+tc.query)
		if got := returnsTo(s); got != tc.want {
			t.Errorf("GET /v1/auth/authorize (%s): goes back to %q; want %q", tc.name, got, tc.want)
		}
	}

	bad := []string{
		"",
		testReturnTo + "/",
		testReturnTo + "?x=1",
		testReturnTo + "#frag",
		testReturnTo + "#",
		testReturnTo + "-evil",
		strings.TrimSuffix(testReturnTo, "-in"),
		testReturnTo + "/../signed-in",
		"https://app.example.com/%73igned-in",
		"https://APP.example.com/signed-in",
		"https://app.example.com.evil.example/signed-in",
		"https://app.example.com@evil.example/signed-in",
		"https://evil.example/?" + testReturnTo,
		"http://app.example.com/signed-in",
		"https://app.example.com:443/signed-in",
		"https://app.example.com:8443/signed-in",
		"//app.example.com/signed-in",
		"/signed-in",
		" " + testReturnTo,
		testReturnToQuery + "&handoff=x",
		"https://app.example.com/cb",
		"http://127.0.0.1:3001/cb",
		"http://localhost:3000/cb",
		"https://127.0.0.1:3000/cb",
	}
	for _, rt := range bad {
		target := "/v1/auth/authorize?return_to=" + url.QueryEscape(rt)
		w := a.do("GET", target, "")
		if w.Code != 400 || code(t, w) != "SW_BAD_REQUEST" {
			t.Errorf("GET /v1/auth/authorize (return_to %q) = %d %s; want 400 SW_BAD_REQUEST", rt, w.Code, w.Body)
		}
		if loc, c := w.Header().Get("Location"), w.Header().Get("Set-Cookie"); loc != "" || c != "" {
			t.Errorf("GET /v1/auth/authorize (return_to %q): Location %q, Set-Cookie %q; want neither", rt, loc, c)
		}
	}

	// The same parameter twice is refused, not resolved either way.
	w := a.do("GET", "/v1/auth/authorize?return_to="+url.QueryEscape(testReturnTo)+"&return_to="+url.QueryEscape("https://evil.example/"), "")
	if w.Code != 400 {
		t.Errorf("GET /v1/auth/authorize (return_to twice) = %d; want 400", w.Code)
	}

	// A tenant without post_login_redirect_uris has the browser sign-in off.
	off := f.tenantConfig()
	off.PostLoginRedirectURIs = nil
	b := newTestApp(t, []tenantConfig{off})
	w = b.do("GET", "/v1/auth/authorize", "")
	if got := code(t, w); w.Code != 400 || got != "SW_BAD_REQUEST" || w.Header().Get("Location") != "" {
		t.Errorf("GET /v1/auth/authorize (no post_login_redirect_uris) = %d %s; want 400 SW_BAD_REQUEST", w.Code, got)
	}
}

func TestAuthorizeCodeChallenge(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	good := s256(tokVerifier)
	tests := []struct {
		name, query string
		wantStatus  int
	}{
		{"S256", "code_challenge=" + good + "&code_challenge_method=S256", 302},
		{"without a method", "code_challenge=" + good, 400},
		{"plain", "code_challenge=" + good + "&code_challenge_method=plain", 400},
		{"s256 in lower case", "code_challenge=" + good + "&code_challenge_method=s256", 400},
		{"method alone", "code_challenge_method=S256", 400},
		{"too short", "code_challenge=" + good[:42] + "&code_challenge_method=S256", 400},
		{"padded", "code_challenge=" + good[:42] + "%3D&code_challenge_method=S256", 400},
		{"a verifier, not a challenge", "code_challenge=" + tokVerifier + "&code_challenge_method=S256", 400},
		{"standard base64", "code_challenge=" + url.QueryEscape(good[:42]+"+") + "&code_challenge_method=S256", 400},
	}
	for _, tc := range tests {
		w := a.do("GET", "/v1/auth/authorize?"+tc.query, "")
		if w.Code != tc.wantStatus {
			t.Errorf("GET /v1/auth/authorize (%s) = %d %s; want %d", tc.name, w.Code, w.Body, tc.wantStatus)
			continue
		}
		if w.Code == 302 {
			// The app's challenge stays here; the IdP gets ours.
			u, _ := url.Parse(w.Header().Get("Location"))
			if c := u.Query().Get("code_challenge"); c == good || !wellFormedRandom(c) {
				t.Errorf("GET /v1/auth/authorize (%s): the IdP got code_challenge %q; want the service's own", tc.name, c)
			}
		} else if code(t, w) != "SW_BAD_REQUEST" {
			t.Errorf("GET /v1/auth/authorize (%s): code %s; want SW_BAD_REQUEST", tc.name, code(t, w))
		}
	}
}

func TestAuthorizeBeforeDiscovery(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.set(func(f *fakeIDP) { f.discMode = modeDown })
	a := newTestApp(t, []tenantConfig{f.tenantConfig()}, true)
	w := a.do("GET", "/v1/auth/authorize", "")
	if got := code(t, w); w.Code != 503 || got != "SW_AUTH_IDP_UNAVAILABLE" || w.Header().Get("Retry-After") == "" {
		t.Errorf("GET /v1/auth/authorize before discovery = %d %s (Retry-After %q); want 503 SW_AUTH_IDP_UNAVAILABLE with Retry-After",
			w.Code, got, w.Header().Get("Retry-After"))
	}
}

func TestAuthorizeCookie(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	tc := f.tenantConfig()
	a := startTestApp(t, &config{Tenants: []tenantConfig{tc}, TrustedProxies: []string{"10.0.0.0/8"}}, t.TempDir()+"/test.db", true)
	tests := []struct {
		name       string
		target     string
		remote     string
		hdr        []string
		wantSecure bool
	}{
		{"plain http", "http://auth.example/v1/auth/authorize", "", nil, false},
		{"TLS", "https://auth.example/v1/auth/authorize", "", nil, true},
		{"https at a trusted proxy", "http://auth.example/v1/auth/authorize", "10.1.2.3:5555", []string{"X-Forwarded-Proto", "https"}, true},
		{"https at a trusted proxy, upper case", "http://auth.example/v1/auth/authorize", "10.1.2.3:5555", []string{"X-Forwarded-Proto", "HTTPS"}, true},
		{"http at a trusted proxy", "http://auth.example/v1/auth/authorize", "10.1.2.3:5555", []string{"X-Forwarded-Proto", "http"}, false},
		{"https claimed by a client", "http://auth.example/v1/auth/authorize", "192.0.2.7:5555", []string{"X-Forwarded-Proto", "https"}, false},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", tc.target, nil)
		if tc.remote != "" {
			r.RemoteAddr = tc.remote
		}
		for i := 0; i+1 < len(tc.hdr); i += 2 {
			r.Header.Set(tc.hdr[i], tc.hdr[i+1])
		}
		w := httptest.NewRecorder()
		a.srv.ServeHTTP(w, r)
		raw := w.Header().Values("Set-Cookie")
		if w.Code != 302 || len(raw) != 1 {
			t.Errorf("GET /v1/auth/authorize (%s) = %d with %d cookies; want 302 with 1", tc.name, w.Code, len(raw))
			continue
		}
		c, err := http.ParseSetCookie(raw[0])
		if err != nil {
			t.Fatalf("GET /v1/auth/authorize (%s): Set-Cookie %q: %v", tc.name, raw[0], err)
		}
		state, _ := url.Parse(w.Header().Get("Location"))
		wantName, wantPath := "sw_signin_"+state.Query().Get("state"), "/v1/auth/"
		if tc.wantSecure {
			wantName, wantPath = "__Host-sw_signin_"+state.Query().Get("state"), "/"
		}
		if c.Name != wantName || c.Path != wantPath || c.Secure != tc.wantSecure || c.Domain != "" ||
			!c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.MaxAge != 600 || len(c.Value) < 100 {
			t.Errorf("GET /v1/auth/authorize (%s): Set-Cookie %q; want %s, Path=%s, Secure %v, no Domain, HttpOnly, SameSite=Lax, Max-Age=600",
				tc.name, raw[0], wantName, wantPath, tc.wantSecure)
		}
	}
}

// TestAuthorizeFloodKeepsSignIns is the flood of issue 18: 10,001
// /authorize requests from anyone, then the victim's callback still works,
// since no pending sign-in is kept on the server to be evicted.
func TestAuthorizeFloodKeepsSignIns(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	victim := siBegin(t, a, "/v1/auth/authorize")
	for i := range 10_001 {
		if w := a.do("GET", "/v1/auth/authorize", ""); w.Code != http.StatusFound {
			t.Fatalf("GET /v1/auth/authorize (flood, %d) = %d %s; want 302", i, w.Code, w.Body)
		}
	}
	siHandoff(t, siCallback(t, a, f, victim), testReturnTo)
}

// TestAuthorizeCookiesPerBrowser begins more sign-ins in one browser than it
// may hold: each adds its own cookie, and past maxSignInCookies the oldest
// is deleted; cookies that do not open are deleted too.
func TestAuthorizeCookiesPerBrowser(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	clock := &testClock{}
	a.srv.browser.setClock(clock.now)
	jar := map[string]string{} // the browser's sign-in cookies
	var names []string         // in the order they were set
	begin := func() *httptest.ResponseRecorder {
		var cs []string
		for n, v := range jar {
			cs = append(cs, n+"="+v)
		}
		w := a.do("GET", "/v1/auth/authorize", "", "Cookie", strings.Join(cs, "; "))
		for _, c := range w.Result().Cookies() {
			if c.MaxAge < 0 {
				delete(jar, c.Name)
			} else {
				jar[c.Name] = c.Value
				names = append(names, c.Name)
			}
		}
		return w
	}
	for range maxSignInCookies {
		begin()
		clock.advance(time.Second)
	}
	if len(jar) != maxSignInCookies {
		t.Fatalf("after %d sign-ins the browser holds %d sign-in cookies; want %d", maxSignInCookies, len(jar), maxSignInCookies)
	}
	begin()
	if _, ok := jar[names[0]]; ok || len(jar) != maxSignInCookies {
		t.Errorf("one sign-in past the cap: %d cookies, the oldest kept %v; want %d with the oldest deleted", len(jar), ok, maxSignInCookies)
	}
	jar["sw_signin_"+randomValue()] = "forged"
	begin()
	if len(jar) != maxSignInCookies {
		t.Errorf("with a forged sign-in cookie: %d cookies afterwards; want %d (the forged one deleted)", len(jar), maxSignInCookies)
	}
}

// TestAuthorizeRequiresHandoffPKCE: by default the app's code_challenge is
// required, so that a handoff can only be redeemed by the browser that
// began the sign-in; a tenant may turn that off.
func TestAuthorizeRequiresHandoffPKCE(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	on := f.tenantConfig()
	on.Features.Auth.RequireHandoffPKCE = nil // the default
	a := newTestApp(t, []tenantConfig{on})
	w := a.do("GET", "/v1/auth/authorize", "")
	if w.Code != 400 || code(t, w) != "SW_BAD_REQUEST" || w.Header().Get("Set-Cookie") != "" {
		t.Errorf("GET /v1/auth/authorize without code_challenge (default) = %d %s; want 400 SW_BAD_REQUEST, no cookie", w.Code, w.Body)
	}
	siBegin(t, a, "/v1/auth/authorize?code_challenge="+s256(tokVerifier)+"&code_challenge_method=S256")

	off := f.tenantConfig()
	no := false
	off.Features.Auth.RequireHandoffPKCE = &no
	siBegin(t, newTestApp(t, []tenantConfig{off}), "/v1/auth/authorize")
}
