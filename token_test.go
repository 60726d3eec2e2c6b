package main

// token_test.go: the three token endpoints (/login, /token, /refresh) through
// the real handler, against the fake IdP and hostile variants of it; the
// password grant's rate limits; and one end-to-end code flow against the
// development IdP.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tokAnswerFn is the type of fakeIDP.tokenFn.
type tokAnswerFn = func(url.Values, *http.Request) (int, any)

// tokAnswer makes the fake token endpoint answer status and body.
func tokAnswer(status int, body any) tokAnswerFn {
	return func(url.Values, *http.Request) (int, any) { return status, body }
}

// tokOAuthError is an RFC 6749 §5.2 error answer.
func tokOAuthError(status int, code string) tokAnswerFn {
	return tokAnswer(status, map[string]string{"error": code, "error_description": "refused by the test"})
}

// tokTokens is a good token response carrying idToken, none when "".
func (f *fakeIDP) tokTokens(idToken string) map[string]any {
	m := map[string]any{
		"access_token":  f.accessToken(),
		"token_type":    "Bearer",
		"expires_in":    300,
		"refresh_token": "rt-from-idp",
	}
	if idToken != "" {
		m["id_token"] = idToken
	}
	return m
}

// tokEndpoint is one of the three endpoints that talk to the token endpoint.
type tokEndpoint struct {
	path string
	// good succeeds against the fake IdP's defaultToken.
	good string
	// tagged is a well-formed request whose values are unique to tag, for
	// cases where the fake's answer does not depend on them.
	tagged   func(tag string) string
	grant    string
	rejected string // the code an OAuth error answer maps to
}

var tokEndpoints = []tokEndpoint{
	{
		path:     "/v1/auth/login",
		good:     "code=good-code",
		tagged:   func(tag string) string { return "code=code-" + tag },
		grant:    "authorization_code",
		rejected: "SW_AUTH_OIDC_FAILED",
	},
	{
		path:     "/v1/auth/token",
		good:     "grant_type=password&username=alice&password=alice-pw",
		tagged:   func(tag string) string { return "grant_type=password&username=user-" + tag + "&password=pw-" + tag },
		grant:    "password",
		rejected: "SW_AUTH_INVALID_CREDENTIALS",
	},
	{
		path:     "/v1/auth/refresh",
		good:     "refresh_token=rt-good",
		tagged:   func(tag string) string { return "refresh_token=rt-" + tag },
		grant:    "refresh_token",
		rejected: "SW_AUTH_REFRESH_FAILED",
	},
}

// tokCheck reports whether w has the wanted status and error code ("" for a
// success), and fails the test when not.
func tokCheck(t *testing.T, path, name string, w *httptest.ResponseRecorder, wantStatus int, wantCode string) bool {
	t.Helper()
	got := code(t, w)
	if w.Code != wantStatus || got != wantCode {
		t.Errorf("POST %s (%s) = %d %s; want %d %s (%s)", path, name, w.Code, got, wantStatus, wantCode, strings.TrimSpace(w.Body.String()))
		return false
	}
	return true
}

// tokCheckTokens checks the shape of a 200 token response and returns its
// data: an access token, token_type Bearer, and Cache-Control no-store.
func tokCheckTokens(t *testing.T, path, name string, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	d := decode(t, w).Data
	if s, _ := d["access_token"].(string); s == "" {
		t.Errorf("POST %s (%s): no access_token in %v", path, name, d)
	}
	if d["token_type"] != "Bearer" {
		t.Errorf("POST %s (%s): token_type = %v; want Bearer", path, name, d["token_type"])
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("POST %s (%s): Cache-Control = %q; want no-store", path, name, cc)
	}
	return d
}

// tokCheckRetryAfter checks that a 429 or 503 says, in whole seconds, when
// to come back.
func tokCheckRetryAfter(t *testing.T, path, name string, w *httptest.ResponseRecorder) int {
	t.Helper()
	ra := w.Header().Get("Retry-After")
	n, err := strconv.Atoi(ra)
	if err != nil || n <= 0 {
		t.Errorf("POST %s (%s) = %d: Retry-After %q; want a number of seconds > 0", path, name, w.Code, ra)
	}
	return n
}

// --- /v1/auth/login ---

// --- client authentication ---

func TestClientAuthentication(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		authMethods []string // the IdP's discovery; nil lists none
		secret      string
		want        string // basic, post or public
	}{
		{"default is client_secret_basic", nil, testClientSecret, "basic"},
		{"IdP lists both", []string{"client_secret_basic", "client_secret_post"}, testClientSecret, "basic"},
		{"IdP lists only client_secret_post", []string{"client_secret_post"}, testClientSecret, "post"},
		{"IdP lists post and private_key_jwt", []string{"private_key_jwt", "client_secret_post"}, testClientSecret, "post"},
		{"public client", nil, "", "public"},
		{"public client, IdP lists only post", []string{"client_secret_post"}, "", "public"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeIDP(t)
			var mu sync.Mutex
			var authz []string
			f.set(func(f *fakeIDP) {
				f.authMethods = tc.authMethods
				f.tokenFn = func(form url.Values, r *http.Request) (int, any) {
					mu.Lock()
					authz = r.Header.Values("Authorization")
					mu.Unlock()
					return f.defaultToken(form, r)
				}
			})
			tc0 := f.tenantConfig()
			tc0.ClientSecret = tc.secret
			a := newTestApp(t, []tenantConfig{tc0})
			for _, ep := range tokEndpoints {
				w := a.do("POST", ep.path, ep.good)
				tokCheck(t, ep.path, tc.name, w, 200, "")
				var form url.Values
				var basic [2]string
				f.set(func(f *fakeIDP) { form, basic = f.lastForm, f.lastBasic })
				mu.Lock()
				gotAuthz := authz
				mu.Unlock()
				if form.Get("grant_type") != ep.grant {
					t.Errorf("POST %s (%s): IdP got grant_type %q; want %s", ep.path, tc.name, form.Get("grant_type"), ep.grant)
				}
				switch tc.want {
				case "basic":
					user, err1 := url.QueryUnescape(basic[0])
					pass, err2 := url.QueryUnescape(basic[1])
					if err1 != nil || err2 != nil || user != testClientID || pass != testClientSecret {
						t.Errorf("POST %s (%s): Basic credentials decode to %q, %q (%v, %v); want %q, %q", ep.path, tc.name, user, pass, err1, err2, testClientID, testClientSecret)
					}
					// RFC 6749 §2.3.1: form-urlencoded before base64, so the
					// secret's ':' cannot split the pair in the wrong place.
					if basic[1] != url.QueryEscape(testClientSecret) {
						t.Errorf("POST %s (%s): raw Basic password %q; want %q", ep.path, tc.name, basic[1], url.QueryEscape(testClientSecret))
					}
					if form.Has("client_secret") || form.Has("client_id") {
						t.Errorf("POST %s (%s): Basic auth, yet the body has client credentials: %v", ep.path, tc.name, form)
					}
				case "post":
					if form.Get("client_id") != testClientID || form.Get("client_secret") != testClientSecret {
						t.Errorf("POST %s (%s): body client_id %q client_secret %q; want %q %q", ep.path, tc.name, form.Get("client_id"), form.Get("client_secret"), testClientID, testClientSecret)
					}
					if len(gotAuthz) != 0 {
						t.Errorf("POST %s (%s): client_secret_post, yet Authorization %q", ep.path, tc.name, gotAuthz)
					}
				case "public":
					if form.Get("client_id") != testClientID || form.Has("client_secret") {
						t.Errorf("POST %s (%s): body %v; want client_id %q and no client_secret", ep.path, tc.name, form, testClientID)
					}
					if len(gotAuthz) != 0 {
						t.Errorf("POST %s (%s): public client, yet Authorization %q", ep.path, tc.name, gotAuthz)
					}
				}
			}
		})
	}
}

// --- IdP failures, on all three endpoints ---

func TestTokenEndpointIdPFailures(t *testing.T) {
	t.Parallel()
	const rejected = "(the endpoint's own code)"
	for _, ep := range tokEndpoints {
		t.Run(strings.TrimPrefix(ep.path, "/v1/auth/"), func(t *testing.T) {
			t.Parallel()
			f := newFakeIDP(t)
			a := newTestApp(t, []tenantConfig{f.tenantConfig()})
			good := func(mods map[string]any) tokAnswerFn {
				return tokAnswer(200, withMods(f.tokTokens(f.idToken("")), mods))
			}
			tests := []struct {
				name       string
				mode       string
				answer     tokAnswerFn
				wantStatus int
				wantCode   string
			}{
				{"400 invalid_grant", modeOK, tokOAuthError(400, "invalid_grant"), 401, rejected},
				{"401 invalid_grant", modeOK, tokOAuthError(401, "invalid_grant"), 401, rejected},
				{"400 invalid_request (Dex, reused refresh token)", modeOK, tokOAuthError(400, "invalid_request"), 401, rejected},
				{"400 invalid_scope", modeOK, tokOAuthError(400, "invalid_scope"), 401, rejected},
				{"401 invalid_client", modeOK, tokOAuthError(401, "invalid_client"), 500, "SW_INTERNAL"},
				{"400 invalid_client", modeOK, tokOAuthError(400, "invalid_client"), 500, "SW_INTERNAL"},
				{"400 unauthorized_client", modeOK, tokOAuthError(400, "unauthorized_client"), 500, "SW_INTERNAL"},
				{"500", mode500, nil, 503, "SW_AUTH_IDP_UNAVAILABLE"},
				{"500 with an OAuth error", modeOK, tokOAuthError(500, "invalid_grant"), 503, "SW_AUTH_IDP_UNAVAILABLE"},
				{"503 temporarily_unavailable", modeOK, tokOAuthError(503, "temporarily_unavailable"), 503, "SW_AUTH_IDP_UNAVAILABLE"},
				{"garbage", modeGarbage, nil, 503, "SW_AUTH_IDP_UNAVAILABLE"},
				{"down", modeDown, nil, 503, "SW_AUTH_IDP_UNAVAILABLE"},
				{"huge", modeHuge, nil, 503, "SW_AUTH_IDP_UNAVAILABLE"},
				{"400 without an error field", modeOK, tokAnswer(400, map[string]string{"message": "bad request"}), 503, "SW_AUTH_IDP_UNAVAILABLE"},
				{"400 with an empty error", modeOK, tokAnswer(400, map[string]string{"error": ""}), 503, "SW_AUTH_IDP_UNAVAILABLE"},
				{"401 not JSON", modeOK, tokAnswer(401, "<html>unauthorized</html>"), 503, "SW_AUTH_IDP_UNAVAILABLE"},
				{"200 without access_token", modeOK, good(map[string]any{"access_token": ""}), 503, "SW_AUTH_IDP_UNAVAILABLE"},
				{"200 JSON list", modeOK, tokAnswer(200, []string{"access_token"}), 503, "SW_AUTH_IDP_UNAVAILABLE"},
				{"200 expires_in not a number", modeOK, good(map[string]any{"expires_in": "soon"}), 503, "SW_AUTH_IDP_UNAVAILABLE"},
				{"token_type mac", modeOK, good(map[string]any{"token_type": "mac"}), 503, "SW_AUTH_IDP_UNAVAILABLE"},
				{"token_type bearer (lowercase)", modeOK, good(map[string]any{"token_type": "bearer"}), 200, ""},
				{"token_type missing", modeOK, good(map[string]any{"token_type": nil}), 200, ""},
				{"expires_in as a string", modeOK, good(map[string]any{"expires_in": "300"}), 200, ""},
			}
			for i, tc := range tests {
				f.set(func(f *fakeIDP) { f.tokenMode, f.tokenFn = tc.mode, tc.answer })
				wantCode := tc.wantCode
				if wantCode == rejected {
					wantCode = ep.rejected
				}
				before := f.tokenHits.Load()
				w := a.do("POST", ep.path, ep.tagged(strconv.Itoa(i)))
				if f.tokenHits.Load() == before {
					t.Errorf("POST %s (%s): the IdP was not asked", ep.path, tc.name)
				}
				if !tokCheck(t, ep.path, tc.name, w, tc.wantStatus, wantCode) {
					continue
				}
				switch w.Code {
				case 200:
					if d := tokCheckTokens(t, ep.path, tc.name, w); d["expires_in"] != float64(300) {
						t.Errorf("POST %s (%s): expires_in = %v; want 300", ep.path, tc.name, d["expires_in"])
					}
				case 503:
					tokCheckRetryAfter(t, ep.path, tc.name, w)
				case 500:
					if b := w.Body.String(); strings.Contains(b, "s3cret") || strings.Contains(b, "refused by the test") || strings.Contains(b, "invalid_client") {
						t.Errorf("POST %s (%s): body says too much: %s", ep.path, tc.name, b)
					}
				}
			}
		})
	}
}

func TestTokenEndpointSlowIdP(t *testing.T) {
	t.Parallel()
	const deadline = 250 * time.Millisecond
	for _, ep := range tokEndpoints {
		t.Run(strings.TrimPrefix(ep.path, "/v1/auth/"), func(t *testing.T) {
			t.Parallel()
			f := newFakeIDP(t)
			a := newTestApp(t, []tenantConfig{f.tenantConfig()})
			// Slower than the caller will wait, far shorter than
			// idpRequestTimeout: the caller's deadline must end the wait.
			f.set(func(f *fakeIDP) { f.tokenMode, f.slow = modeSlow, 1500*time.Millisecond })
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			w := a.doFrom(ctx, "192.0.2.1:1234", "POST", ep.path, ep.good)
			took := time.Since(start)
			if tokCheck(t, ep.path, "IdP slower than the request's deadline", w, 503, "SW_AUTH_IDP_UNAVAILABLE") {
				tokCheckRetryAfter(t, ep.path, "slow", w)
			}
			if took > deadline+2*time.Second {
				t.Errorf("POST %s with a slow IdP took %v; want an answer within 2s of the %v deadline", ep.path, took, deadline)
			}
		})
	}
}

// --- /v1/auth/token ---

func TestPasswordGrantDisabled(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	tc := f.tenantConfig()
	tc.Features.Auth.PasswordGrantEnabled = false
	a := newTestApp(t, []tenantConfig{tc})
	for _, body := range []string{
		"grant_type=password&username=alice&password=alice-pw",
		"grant_type=password",
		"",
	} {
		w := a.do("POST", "/v1/auth/token", body)
		tokCheck(t, "/v1/auth/token", "disabled, body "+strconv.Quote(body), w, 403, "SW_AUTH_PASSWORD_GRANT_DISABLED")
	}
	if n := f.tokenHits.Load(); n != 0 {
		t.Errorf("the IdP was called %d times with the password grant disabled", n)
	}
	if w := a.do("GET", "/v1/auth/config", ""); decode(t, w).Data["password_grant_enabled"] != false {
		t.Errorf("GET /v1/auth/config: password_grant_enabled = %v; want false", decode(t, w).Data["password_grant_enabled"])
	}
}

func TestPasswordGrant(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	tests := []struct {
		name       string
		query      string // appended to the path
		body       string
		json       bool
		wantStatus int
		wantCode   string
		wantIdP    bool
		wantScope  string // sent to the IdP, when it is called
	}{
		{"right password", "", "grant_type=password&username=alice&password=alice-pw", false, 200, "", true, "openid profile email"},
		{"right password, JSON", "", `{"grant_type":"password","username":"alice","password":"alice-pw"}`, true, 200, "", true, "openid profile email"},
		{"scope passed through", "", "grant_type=password&username=alice&password=alice-pw&scope=openid+email", false, 200, "", true, "openid email"},
		{"wrong password", "", "grant_type=password&username=alice&password=nope", false, 401, "SW_AUTH_INVALID_CREDENTIALS", true, "openid profile email"},
		{"unknown user", "", "grant_type=password&username=mallory&password=alice-pw", false, 401, "SW_AUTH_INVALID_CREDENTIALS", true, "openid profile email"},
		{"grant_type missing", "", "username=alice&password=alice-pw", false, 400, "SW_BAD_REQUEST", false, ""},
		{"grant_type client_credentials", "", "grant_type=client_credentials&username=alice&password=alice-pw", false, 400, "SW_BAD_REQUEST", false, ""},
		{"grant_type Password", "", "grant_type=Password&username=alice&password=alice-pw", false, 400, "SW_BAD_REQUEST", false, ""},
		{"username missing", "", "grant_type=password&password=alice-pw", false, 400, "SW_BAD_REQUEST", false, ""},
		{"username empty", "", `{"grant_type":"password","username":"","password":"alice-pw"}`, true, 400, "SW_BAD_REQUEST", false, ""},
		{"password missing", "", "grant_type=password&username=alice", false, 400, "SW_BAD_REQUEST", false, ""},
		{"password given twice", "", "grant_type=password&username=alice&password=a&password=b", false, 400, "SW_BAD_REQUEST", false, ""},
		{"password in the query only", "?password=alice-pw", "grant_type=password&username=alice", false, 400, "SW_BAD_REQUEST", false, ""},
	}
	for _, tc := range tests {
		before := f.tokenHits.Load()
		hdr := []string{}
		if tc.json {
			hdr = []string{"Content-Type", "application/json"}
		}
		w := a.do("POST", "/v1/auth/token"+tc.query, tc.body, hdr...)
		if tokCheck(t, "/v1/auth/token", tc.name, w, tc.wantStatus, tc.wantCode) && w.Code == 200 {
			tokCheckTokens(t, "/v1/auth/token", tc.name, w)
		}
		called := f.tokenHits.Load() > before
		if called != tc.wantIdP {
			t.Errorf("POST /v1/auth/token (%s): token endpoint called = %v; want %v", tc.name, called, tc.wantIdP)
		}
		if called {
			var form url.Values
			f.set(func(f *fakeIDP) { form = f.lastForm })
			if form.Get("grant_type") != "password" || form.Get("scope") != tc.wantScope {
				t.Errorf("POST /v1/auth/token (%s): IdP got grant_type %q scope %q; want password, %q", tc.name, form.Get("grant_type"), form.Get("scope"), tc.wantScope)
			}
		}
	}
	// An ID token in the answer is verified.
	evil := tokAnswer(200, f.tokTokens(f.idToken("", map[string]any{"aud": "another-client", "azp": nil})))
	f.set(func(f *fakeIDP) { f.tokenFn = evil })
	w := a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw")
	tokCheck(t, "/v1/auth/token", "ID token for another client", w, 401, "SW_AUTH_OIDC_FAILED")
	// Without an ID token the answer is still good.
	noID := tokAnswer(200, f.tokTokens(""))
	f.set(func(f *fakeIDP) { f.tokenFn = noID })
	w = a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw")
	if tokCheck(t, "/v1/auth/token", "no ID token", w, 200, "") {
		tokCheckTokens(t, "/v1/auth/token", "no ID token", w)
	}
}

// --- /v1/auth/refresh ---

// --- response hygiene ---

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
	off.ID, off.Hosts = "off", []string{"off.example.com"}
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

// --- end to end, against the development IdP ---

// TestRefreshAnswersLeaveMemory: a replayed answer (which holds tokens) is
// dropped once the window has passed, without waiting for the map to fill.
func TestRefreshAnswersLeaveMemory(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newRefreshFlights(clock)
	answer := func(context.Context) (*tokenResponse, error) { return &tokenResponse{AccessToken: "a"}, nil }
	if _, err := f.do(context.Background(), [32]byte{1}, answer); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(refreshReplayWindow + time.Second)
	mu.Unlock()
	if _, err := f.do(context.Background(), [32]byte{2}, answer); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	_, kept := f.m[[32]byte{1}]
	f.mu.Unlock()
	if kept {
		t.Error("an answer older than the replay window is still in memory")
	}
}
