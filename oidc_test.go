package main

// The provider's side of talking to the IdP: discovery and the last good
// document when the IdP goes away, connection reuse, the token client
// (client authentication, the IdP's failures and slowness, on each endpoint
// that calls it) and the refresh flights.

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

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
		good:     "code=good-code&code_verifier=" + tokVerifier,
		tagged:   func(tag string) string { return "code=code-" + tag + "&code_verifier=" + tokVerifier },
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

// TestRefreshAnswersLeaveMemory: a replayed answer (which holds tokens) is
// dropped once the window has passed, without waiting for the map to fill.
func TestRefreshAnswersLeaveMemory(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newRefreshFlights(clock, refreshReplayWindow)
	answer := func(context.Context) (*tokenResponse, error) { return &tokenResponse{AccessToken: "a"}, nil }
	if _, err := f.do(context.Background(), refreshFlightKey{token: [32]byte{1}}, answer); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(refreshReplayWindow + time.Second)
	mu.Unlock()
	if _, err := f.do(context.Background(), refreshFlightKey{token: [32]byte{2}}, answer); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	_, kept := f.m[refreshFlightKey{token: [32]byte{1}}]
	f.mu.Unlock()
	if kept {
		t.Error("an answer older than the replay window is still in memory")
	}
}

func TestDiscoveryIssuerMismatchNotReady(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.set(func(f *fakeIDP) { f.discIssuer = f.issuer + "/evil" })
	a := newTestApp(t, []tenantConfig{f.tenantConfig()}, true)
	for range 50 {
		if f.discHits.Load() > 0 {
			break
		}
		a.waitFor(10e6)
	}
	if w := a.do("GET", "/v1/auth/config", ""); w.Code != 503 {
		t.Fatalf("GET /v1/auth/config with a wrong discovery issuer = %d; want 503", w.Code)
	}
}

// TestIdPConnectionsAreReused: grants through the service keep using the
// connections they opened to the IdP instead of dialing each time.
func TestIdPConnectionsAreReused(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	before := f.newConns.Load()
	const n = 30
	for range n {
		w := a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw")
		if w.Code != 200 {
			t.Fatalf("POST /v1/auth/token = %d %s", w.Code, w.Body)
		}
	}
	if dialed := f.newConns.Load() - before; dialed > 2 {
		t.Errorf("%d sequential grants opened %d new connections to the IdP; want them reused (at most 2)", n, dialed)
	}
}

// TestIdPDownWhileServing: after the IdP goes away, a failed metadata
// refresh keeps the last good discovery document and keys, so /config and
// /register keep working, and /readyz stays 200.
func TestIdPDownWhileServing(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	tok := f.accessToken(map[string]any{"sub": "while-down"})
	f.set(func(f *fakeIDP) { f.discMode, f.jwksMode, f.tokenMode = modeDown, modeDown, modeDown })
	if err := a.srv.tenants[0].prov.refreshAll(context.Background()); err == nil {
		t.Fatal("metadata refresh against a downed IdP succeeded")
	}
	if w := a.register(tok); w.Code != 200 {
		t.Errorf("POST /v1/auth/register with the IdP down = %d %s; want 200 from the cached keys", w.Code, w.Body)
	}
	if w := a.do("GET", "/v1/auth/config", ""); w.Code != 200 {
		t.Errorf("GET /v1/auth/config with the IdP down = %d; want 200 from the last good document", w.Code)
	}
	if w := a.do("GET", "/readyz", ""); w.Code != 200 {
		t.Errorf("GET /readyz with the IdP down after a good start = %d; want 200", w.Code)
	}
	if w := a.do("POST", "/v1/auth/refresh", "refresh_token=rt-good"); w.Code != 503 || code(t, w) != "SW_AUTH_IDP_UNAVAILABLE" {
		t.Errorf("POST /v1/auth/refresh with the IdP down = %d %s; want 503 SW_AUTH_IDP_UNAVAILABLE", w.Code, code(t, w))
	}
}
