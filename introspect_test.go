package main

// Opaque access tokens at /v1/auth/register: RFC 7662 introspection against
// hostile answers, the request it sends, Google's tokeninfo, userinfo
// validation and fill-in, through the real mux against the fake IdP.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newIntrospectionApp is the service for one tenant at a fake IdP whose
// discovery names an introspection endpoint; mod, when not nil, changes the
// fake and the tenant before the service starts.
func newIntrospectionApp(t *testing.T, mod func(f *fakeIDP, tc *tenantConfig)) (*fakeIDP, *testApp) {
	t.Helper()
	f := newFakeIDP(t)
	f.set(func(f *fakeIDP) { f.introspect = true })
	tc := f.tenantConfig()
	if mod != nil {
		mod(f, &tc)
	}
	return f, newTestApp(t, []tenantConfig{tc})
}

// introspectAnswer makes the fake introspection endpoint answer status and
// body to every token.
func introspectAnswer(status int, body any) func(url.Values, *http.Request) (int, any) {
	return func(url.Values, *http.Request) (int, any) { return status, body }
}

func TestIntrospectionAnswers(t *testing.T) {
	t.Parallel()
	// Answers that name no kind are confirmed at userinfo, which knows
	// every token here as opaque-sub's access token.
	f, a := newIntrospectionApp(t, func(f *fakeIDP, _ *tenantConfig) {
		f.userinfoFn = func(string) (int, any) { return 200, map[string]any{"sub": "opaque-sub"} }
	})
	a.logLevel.Set(-8) // every line, to look for tokens in them
	now := time.Now()
	good := func(mods ...map[string]any) map[string]any {
		return withMods(map[string]any{
			"active": true, "iss": f.issuer, "sub": "opaque-sub", "client_id": testClientID,
			"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "token_type": "Bearer", "name": "O. Paque",
		}, mods...)
	}
	tests := []struct {
		name       string
		status     int
		body       any
		mode       string
		wantStatus int
		wantCode   string
	}{
		{"valid", 200, good(), "", 200, ""},
		{"zitadel's shape: client_id, no aud, iss or token_type", 200, good(map[string]any{"iss": nil, "token_type": nil, "iat": nil}), "", 200, ""},
		{"audience only", 200, good(map[string]any{"client_id": nil, "aud": []string{"other", testClientID}}), "", 200, ""},
		{"azp only", 200, good(map[string]any{"client_id": nil, "azp": testClientID}), "", 200, ""},
		{"no exp", 200, good(map[string]any{"exp": nil}), "", 200, ""},
		{"exp within the leeway", 200, good(map[string]any{"exp": now.Add(-30 * time.Second).Unix()}), "", 200, ""},
		{"active false", 200, good(map[string]any{"active": false}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"active missing", 200, good(map[string]any{"active": nil}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"active the string true", 200, good(map[string]any{"active": "true"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"active 1", 200, good(map[string]any{"active": 1}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"Active in capitals", 200, good(map[string]any{"active": nil, "Active": true}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"wrong iss", 200, good(map[string]any{"iss": "https://evil.example"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"iss with a trailing slash", 200, good(map[string]any{"iss": f.issuer + "/"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"another client's client_id", 200, good(map[string]any{"client_id": "other-app"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"another client's aud and azp", 200, good(map[string]any{"client_id": nil, "aud": "other-app", "azp": "other-app"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"no audience at all", 200, good(map[string]any{"client_id": nil}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"expired", 200, good(map[string]any{"exp": now.Add(-10 * time.Minute).Unix()}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"nbf in the future", 200, good(map[string]any{"nbf": now.Add(10 * time.Minute).Unix()}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"iat in the future", 200, good(map[string]any{"iat": now.Add(10 * time.Minute).Unix()}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"a refresh token", 200, good(map[string]any{"token_type": "refresh_token"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"a refresh token, RFC 8693 URN", 200, good(map[string]any{"token_type": "urn:ietf:params:oauth:token-type:refresh_token"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"no sub", 200, good(map[string]any{"sub": nil}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"Keycloak typ Bearer (shaped, not copied)", 200, good(map[string]any{"token_type": nil, "typ": "Bearer"}), "", 200, ""},
		{"Keycloak typ Refresh (shaped, not copied)", 200, good(map[string]any{"token_type": nil, "typ": "Refresh"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"Keycloak typ Offline (shaped, not copied)", 200, good(map[string]any{"token_type": nil, "typ": "Offline"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"Keycloak typ ID (shaped, not copied)", 200, good(map[string]any{"token_type": nil, "typ": "ID"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"Keycloak typ Logout (shaped, not copied)", 200, good(map[string]any{"token_type": nil, "typ": "Logout"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"token_type Bearer with typ Refresh", 200, good(map[string]any{"typ": "Refresh"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"token_use refresh_token beside token_type Bearer (Hydra v2.3.0)", 200, good(map[string]any{"token_use": "refresh_token"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"c_hash", 200, good(map[string]any{"c_hash": "x"}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"events", 200, good(map[string]any{"events": map[string]any{backchannelLogoutEvent: map[string]any{}}}), "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"at_hash and nonce alone are no markers", 200, good(map[string]any{"at_hash": "x", "nonce": "n"}), "", 200, ""},
		{"400 unsupported_token_type (oidc-provider, its JWTs)", 400, map[string]string{"error": "unsupported_token_type"}, "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"400 without an OAuth error", 400, rawBody("bad request"), "", 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"401 to our credentials", 401, map[string]string{"error": "invalid_client"}, "", 500, "SW_INTERNAL"},
		{"403 to our credentials", 403, rawBody("forbidden"), "", 500, "SW_INTERNAL"},
		{"404", 404, rawBody("not found"), "", 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"500", 0, nil, mode500, 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"502 with an active answer", 502, good(), "", 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"garbage", 0, nil, modeGarbage, 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"JSON null", 200, rawBody("null"), "", 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"JSON list", 200, rawBody(`[{"active":true}]`), "", 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"exp a string", 200, good(map[string]any{"exp": "tomorrow"}), "", 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"iss a number", 200, good(map[string]any{"iss": 7}), "", 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"huge", 0, nil, modeHuge, 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"down", 0, nil, modeDown, 503, "SW_AUTH_IDP_UNAVAILABLE"},
	}
	var sent []string
	for i, tc := range tests {
		f.set(func(f *fakeIDP) { f.introspectFn, f.introspectMode = introspectAnswer(tc.status, tc.body), tc.mode })
		tok := fmt.Sprintf("opaque-%d-%s", i, strings.Repeat("x", 20))
		sent = append(sent, tok)
		before := f.introspectHits.Load()
		w := a.register(tok)
		if f.introspectHits.Load() == before {
			t.Errorf("POST /v1/auth/register (%s): the introspection endpoint was not asked", tc.name)
		}
		if !tokCheck(t, "/v1/auth/register", tc.name, w, tc.wantStatus, tc.wantCode) {
			continue
		}
		switch w.Code {
		case 401:
			if h := w.Header().Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_token"`) {
				t.Errorf("POST /v1/auth/register (%s): WWW-Authenticate %q; want error=\"invalid_token\"", tc.name, h)
			}
		case 503:
			tokCheckRetryAfter(t, "/v1/auth/register", tc.name, w)
		}
	}
	logs := a.logs.String()
	for _, tok := range sent {
		if strings.Contains(logs, tok) {
			t.Fatalf("the log holds a bearer token: %s", logs)
		}
	}
	// Our credentials refused: a loud line naming the tenant.
	loud := false
	for _, l := range a.logs.logLines() {
		msg, _ := l["msg"].(string)
		loud = loud || (l["level"] == "ERROR" && l["tenant"] == "acme" && strings.Contains(msg, "refused this tenant's credentials"))
	}
	if !loud {
		t.Errorf("no ERROR line naming the tenant for the IdP refusing our credentials at introspection; log:\n%s", logs)
	}
}

// TestIntrospectionRequest checks what the service sends: the token and the
// hint in a form, and the client authentication the IdP asks for.
func TestIntrospectionRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		methods   []string
		mod       func(tc *tenantConfig)
		wantBasic [2]string // unescaped
		wantForm  map[string]string
	}{
		{"default: client_secret_basic", nil, nil, [2]string{testClientID, testClientSecret}, map[string]string{"client_secret": ""}},
		{"basic and post listed", []string{"client_secret_post", "client_secret_basic"}, nil, [2]string{testClientID, testClientSecret}, map[string]string{"client_secret": ""}},
		{"only client_secret_post", []string{"client_secret_post"}, nil, [2]string{}, map[string]string{"client_id": testClientID, "client_secret": testClientSecret}},
		{"introspection client of its own", nil, func(tc *tenantConfig) {
			tc.AccessTokens.IntrospectionClientID, tc.AccessTokens.IntrospectionClientSecret = "api-app", "api secret/+"
		}, [2]string{"api-app", "api secret/+"}, nil},
		{"introspection client without a secret", nil, func(tc *tenantConfig) { tc.AccessTokens.IntrospectionClientID = "hydra-admin" },
			[2]string{}, map[string]string{"client_id": "hydra-admin", "client_secret": ""}},
		{"public tenant client", nil, func(tc *tenantConfig) { tc.ClientSecret = "" }, [2]string{}, map[string]string{"client_id": testClientID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, a := newIntrospectionApp(t, func(f *fakeIDP, cfg *tenantConfig) {
				f.introspectAuthMethods = tc.methods
				if tc.mod != nil {
					tc.mod(cfg)
				}
			})
			tok := f.opaqueToken()
			if w := a.register(tok); w.Code != 200 {
				t.Fatalf("POST /v1/auth/register = %d %s", w.Code, w.Body)
			}
			var form url.Values
			var basic [2]string
			f.set(func(f *fakeIDP) { form, basic = f.lastIntrospect, f.lastIntrospectBasic })
			if form.Get("token") != tok || form.Get("token_type_hint") != "access_token" {
				t.Errorf("introspection form has token %v, hint %q; want the bearer and access_token", form.Get("token") == tok, form.Get("token_type_hint"))
			}
			user, _ := url.QueryUnescape(basic[0])
			pass, _ := url.QueryUnescape(basic[1])
			if [2]string{user, pass} != tc.wantBasic {
				t.Errorf("Basic credentials %q; want %q", [2]string{user, pass}, tc.wantBasic)
			}
			for k, v := range tc.wantForm {
				if form.Get(k) != v {
					t.Errorf("form %s = %q; want %q", k, form.Get(k), v)
				}
			}
		})
	}
}

// TestIntrospectionDisplayName: /register takes name and email from the
// answer; without any name, one userinfo call fills them. A userinfo
// refusal (4xx, or a 200 for another subject) means the token is no access
// token (SPEC.md Token kinds); a 5xx only leaves the names empty when the
// answer named an access token (token_type Bearer), and is the IdP failing
// (503) when it did not.
func TestIntrospectionDisplayName(t *testing.T) {
	t.Parallel()
	noNames := map[string]any{"name": nil, "preferred_username": nil, "email": nil}
	unnamed := map[string]any{"token_type": nil}
	tests := []struct {
		name         string
		mods         map[string]any
		userinfo     func(string) (int, any) // nil: the fake's default
		wantStatus   int
		wantName     string
		wantEmail    string
		wantUserinfo bool
	}{
		{"from the answer", nil, nil, 200, "Opaque User", "opaque.user@example.com", false},
		{"email only in the answer", map[string]any{"name": nil, "preferred_username": nil}, nil, 200, "opaque.user", "opaque.user@example.com", false},
		{"none: userinfo fills them", noNames, nil, 200, "Userinfo Name", "from.userinfo@example.com", true},
		{"none, userinfo fails", noNames, func(string) (int, any) { return 500, rawBody("down") }, 200, testSubject, "", true},
		{"none, userinfo for another subject", noNames, func(string) (int, any) {
			return 200, map[string]any{"sub": "someone-else", "name": "Mallory"}
		}, 401, "", "", true},
		{"none, userinfo refuses", withMods(noNames, map[string]any{"username": "the-username"}), func(string) (int, any) { return 401, nil }, 401, "", "", true},
		{"no kind named: names from the answer, userinfo confirms", unnamed, nil, 200, "Opaque User", "opaque.user@example.com", true},
		{"no kind named, userinfo 400", unnamed, func(string) (int, any) { return 400, map[string]any{"error": "invalid_token"} }, 401, "", "", true},
		{"no kind named, userinfo 500", unnamed, func(string) (int, any) { return 500, rawBody("down") }, 503, "", "", true},
		{"no kind named, RFC 7662 username", withMods(noNames, unnamed, map[string]any{"username": "the-username"}), func(string) (int, any) {
			return 200, map[string]any{"sub": testSubject}
		}, 200, "the-username", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, a := newIntrospectionApp(t, func(f *fakeIDP, _ *tenantConfig) { f.userinfoFn = tc.userinfo })
			w := a.register(f.opaqueToken(tc.mods))
			wantCode := map[int]string{401: "SW_AUTH_UNAUTHENTICATED", 503: "SW_AUTH_IDP_UNAVAILABLE"}[tc.wantStatus]
			if !tokCheck(t, "/v1/auth/register", tc.name, w, tc.wantStatus, wantCode) || tc.wantStatus != 200 {
				if got := f.userinfoHits.Load() > 0; got != tc.wantUserinfo {
					t.Errorf("POST /v1/auth/register (%s): userinfo called %v; want %v", tc.name, got, tc.wantUserinfo)
				}
				return
			}
			d := decode(t, w).Data
			if d["display_name"] != tc.wantName || d["email"] != tc.wantEmail {
				t.Errorf("POST /v1/auth/register (%s): display_name %v, email %v; want %q, %q", tc.name, d["display_name"], d["email"], tc.wantName, tc.wantEmail)
			}
			if got := f.userinfoHits.Load() > 0; got != tc.wantUserinfo {
				t.Errorf("POST /v1/auth/register (%s): userinfo called %v; want %v", tc.name, got, tc.wantUserinfo)
			}
		})
	}
}

// TestIntrospectionSamePrincipalAsJWT: an opaque token and a JWT of the same
// person register the same participant.
func TestIntrospectionSamePrincipalAsJWT(t *testing.T) {
	t.Parallel()
	f, a := newIntrospectionApp(t, nil)
	w1 := a.register(f.accessToken())
	w2 := a.register(f.opaqueToken(map[string]any{"iss": nil}))
	if w1.Code != 200 || w2.Code != 200 {
		t.Fatalf("POST /v1/auth/register = %d, %d; want 200, 200", w1.Code, w2.Code)
	}
	if p1, p2 := decode(t, w1).Data["participant_id"], decode(t, w2).Data["participant_id"]; p1 != p2 {
		t.Errorf("the JWT and the opaque token of one person gave participants %v and %v; want one", p1, p2)
	}
	if f.introspectHits.Load() != 1 {
		t.Errorf("introspection asked %d times; want once (for the opaque token only)", f.introspectHits.Load())
	}
}

// TestAccessTokenValidationModes: what each validation setting does with a
// JWT, a JWE-shaped token, a three-part token that is no JWS, and an
// opaque token.
func TestAccessTokenValidationModes(t *testing.T) {
	t.Parallel()
	jweLike := b64u([]byte(`{"alg":"A256GCMKW","enc":"A256GCM"}`)) + ".a.b.c.d"
	notJWS := b64u([]byte(`not json`)) + ".a.b"
	listAlg := b64u([]byte(`["alg"]`)) + ".a.b"
	tests := []struct {
		name          string
		mode          string
		introspect    bool // the IdP's discovery names the endpoint
		tok           func(f *fakeIDP) string
		wantStatus    int
		wantIntrospec bool
	}{
		{"auto, JWT: verified here", "", true, func(f *fakeIDP) string { return f.accessToken() }, 200, false},
		{"auto, forged JWT: refused here, never introspected", "", true, func(f *fakeIDP) string { return flipSig(f.t, f.accessToken()) }, 401, false},
		{"auto, opaque: introspected", "", true, func(f *fakeIDP) string { return f.opaqueToken() }, 200, true},
		{"auto, JWE-shaped (zitadel): introspected", "", true, func(f *fakeIDP) string { f.registerOpaque(jweLike); return jweLike }, 200, true},
		{"auto, three parts, header not JSON: introspected", "", true, func(f *fakeIDP) string { f.registerOpaque(notJWS); return notJWS }, 200, true},
		{"auto, three parts, header a list: introspected", "", true, func(f *fakeIDP) string { f.registerOpaque(listAlg); return listAlg }, 200, true},
		{"auto, opaque, no endpoint: refused", "", false, func(f *fakeIDP) string { return f.opaqueToken() }, 401, false},
		{"jwt, opaque: refused", "jwt", true, func(f *fakeIDP) string { return f.opaqueToken() }, 401, false},
		{"introspection, JWT: introspected too", "introspection", true, func(f *fakeIDP) string { tok := f.accessToken(); f.registerOpaque(tok); return tok }, 200, true},
		{"introspection, JWT the IdP does not know", "introspection", true, func(f *fakeIDP) string { return f.accessToken() }, 401, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, a := newIntrospectionApp(t, func(f *fakeIDP, cfg *tenantConfig) {
				f.introspect = tc.introspect
				cfg.AccessTokens.Validation = tc.mode
			})
			w := a.register(tc.tok(f))
			tokCheck(t, "/v1/auth/register", tc.name, w, tc.wantStatus, map[bool]string{true: "", false: "SW_AUTH_UNAUTHENTICATED"}[tc.wantStatus == 200])
			if got := f.introspectHits.Load() > 0; got != tc.wantIntrospec {
				t.Errorf("POST /v1/auth/register (%s): introspected %v; want %v", tc.name, got, tc.wantIntrospec)
			}
		})
	}
}

// TestIntrospectionNotReadyWithoutEndpoint: validation introspection with
// no endpoint from the configuration or discovery keeps the tenant out of
// /readyz and answers bearers 503; -check fails for it.
func TestIntrospectionNotReadyWithoutEndpoint(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	tc := f.tenantConfig()
	tc.AccessTokens.Validation = validationIntrospection
	a := newTestApp(t, []tenantConfig{tc}, true)
	p := a.srv.tenants[0].prov
	waitUntil(5*time.Second, func() bool { return p.disc.Load() != nil && p.keys.Load() != nil })
	if w := a.do("GET", "/readyz", ""); w.Code != 503 || !strings.Contains(w.Body.String(), "acme") {
		t.Errorf("GET /readyz = %d %s; want 503 naming the tenant", w.Code, w.Body)
	}
	w := a.register(f.opaqueToken())
	if tokCheck(t, "/v1/auth/register", "no introspection endpoint", w, 503, "SW_AUTH_IDP_UNAVAILABLE") {
		tokCheckRetryAfter(t, "/v1/auth/register", "no introspection endpoint", w)
	}
	if _, _, err := p.check(context.Background()); err == nil || !strings.Contains(err.Error(), "access_tokens.validation introspection") {
		t.Errorf("check = %v; want an error naming access_tokens.validation", err)
	}
	// Configured by hand, it is ready.
	tc2 := f.tenantConfig()
	tc2.AccessTokens.Validation = validationIntrospection
	tc2.AccessTokens.IntrospectionEndpoint = f.issuer + "/introspect"
	a2 := newTestApp(t, []tenantConfig{tc2})
	if w := a2.register(f.opaqueToken()); w.Code != 200 {
		t.Errorf("POST /v1/auth/register with a configured endpoint = %d %s; want 200", w.Code, w.Body)
	}
}

func TestUserinfoValidation(t *testing.T) {
	t.Parallel()
	f, a := newIntrospectionApp(t, func(f *fakeIDP, tc *tenantConfig) { tc.AccessTokens.Validation = validationUserinfo })
	tests := []struct {
		name       string
		answer     func(string) (int, any) // nil: the fake's default
		mode       string
		wantStatus int
		wantCode   string
	}{
		{"valid", nil, "", 200, ""},
		{"401", func(string) (int, any) { return 401, map[string]string{"error": "invalid_token"} }, "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"403", func(string) (int, any) { return 403, map[string]string{"error": "insufficient_scope"} }, "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"200 without sub", func(string) (int, any) { return 200, map[string]string{"name": "x"} }, "", 401, "SW_AUTH_UNAUTHENTICATED"},
		{"500", nil, mode500, 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"garbage", nil, modeGarbage, 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"400", func(string) (int, any) { return 400, nil }, "", 503, "SW_AUTH_IDP_UNAVAILABLE"},
	}
	for _, tc := range tests {
		f.set(func(f *fakeIDP) { f.userinfoFn, f.userinfoMode = tc.answer, tc.mode })
		w := a.register(f.opaqueToken())
		if tokCheck(t, "/v1/auth/register", "userinfo: "+tc.name, w, tc.wantStatus, tc.wantCode) && w.Code == 200 {
			if d := decode(t, w).Data; d["display_name"] != "Userinfo Name" {
				t.Errorf("POST /v1/auth/register (userinfo: %s): display_name %v; want userinfo's", tc.name, d["display_name"])
			}
		}
	}
	if f.introspectHits.Load() != 0 {
		t.Errorf("validation userinfo introspected %d times; want never", f.introspectHits.Load())
	}
}

// googleRoute sends requests for Google's tokeninfo URL to srv and the rest
// on as they are.
type googleRoute struct {
	base http.RoundTripper
	srv  *httptest.Server
}

func (g googleRoute) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.String() != googleTokeninfoURL {
		return g.base.RoundTrip(r)
	}
	return routeTo{g.srv}.RoundTrip(r)
}

func TestGoogleTokeninfo(t *testing.T) {
	t.Parallel()
	var answer atomic.Value // func(url.Values) (int, string)
	var sawGet, sawTokenInURL atomic.Bool
	google := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawGet.Store(sawGet.Load() || r.Method != http.MethodPost)
		sawTokenInURL.Store(sawTokenInURL.Load() || r.URL.RawQuery != "")
		r.ParseForm()
		status, body := answer.Load().(func(url.Values) (int, string))(r.PostForm)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(google.Close)
	f := newFakeIDP(t)
	tc := f.tenantConfig()
	tc.AccessTokens.IntrospectionEndpoint = googleTokeninfoURL
	a := newTestApp(t, []tenantConfig{tc})
	p := a.srv.tenants[0].prov
	p.client.Transport = googleRoute{base: p.client.Transport, srv: google}

	exp := time.Now().Add(time.Hour).Unix()
	info := func(aud, azp, expiresIn string) string {
		return fmt.Sprintf(`{"azp":%q,"aud":%q,"sub":"1057","scope":"openid email","exp":"%d","expires_in":%q,"email":"g@example.com","email_verified":"true","access_type":"online"}`, azp, aud, exp, expiresIn)
	}
	tests := []struct {
		name       string
		status     int
		body       string
		wantStatus int
	}{
		{"valid, aud ours", 200, info(testClientID, "other", "3599"), 200},
		{"valid, azp ours", 200, info("other", testClientID, "3599"), 200},
		{"another client's token", 200, info("other", "other", "3599"), 401},
		{"expires_in 0", 200, info(testClientID, testClientID, "0"), 401},
		{"invalid token", 400, `{"error":"invalid_token","error_description":"Invalid Value"}`, 401},
		{"500", 500, `oops`, 503},
	}
	for i, tc := range tests {
		answer.Store(func(form url.Values) (int, string) {
			if !strings.HasPrefix(form.Get("access_token"), "ya29.") {
				return 400, `{"error":"invalid_request"}`
			}
			return tc.status, tc.body
		})
		w := a.register(fmt.Sprintf("ya29.a0-token-%d", i))
		if w.Code != tc.wantStatus {
			t.Errorf("POST /v1/auth/register (tokeninfo: %s) = %d %s; want %d", tc.name, w.Code, w.Body, tc.wantStatus)
		}
		if tc.name == "valid, aud ours" && w.Code == 200 {
			if d := decode(t, w).Data; d["email"] != "g@example.com" {
				t.Errorf("tokeninfo email %v; want g@example.com", d["email"])
			}
		}
	}
	if sawGet.Load() || sawTokenInURL.Load() {
		t.Errorf("tokeninfo was asked with a GET or a query string; the token must go in a POST body")
	}
}

// FuzzIntrospectionAnswer feeds arbitrary bodies to the reading of a 200
// introspection answer: it must never panic, and whatever it accepts must
// meet the rules (an active answer with a subject, for this tenant).
func FuzzIntrospectionAnswer(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"sub":"u","client_id":"scaiwave"}`,
		`{"active":true,"sub":"u","aud":["x","scaiwave"],"exp":1700000100,"iss":"` + fuzzIssuer + `"}`,
		`{"active":"true","sub":"u","client_id":"scaiwave"}`,
		`{"active":true,"sub":"u","azp":"scaiwave","token_type":"refresh_token"}`,
		`{"active":true,"sub":"u","client_id":"scaiwave","exp":"soon"}`,
		`null`, `[]`, `{"active":true}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"ACTIVE":true,"Sub":"u","client_id":"scaiwave"}`))
	p := newFuzzProvider(f, http.NotFoundHandler())
	f.Fuzz(func(t *testing.T, body []byte) {
		ans, err := p.readIntrospection(context.Background(), "tok", body)
		if err != nil || ans.refusal != nil {
			return
		}
		// encoding/json into a map matches names exactly too.
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted %q, which encoding/json does not read: %v", body, err)
		}
		aud := fmt.Sprint(m["aud"])
		if m["active"] != true || ans.c.Subject == "" || m["sub"] != ans.c.Subject ||
			!(m["client_id"] == testClientID || m["azp"] == testClientID || aud == testClientID || strings.Contains(aud, testClientID)) {
			t.Fatalf("accepted %q", body)
		}
	})
}

// TestDiscoveredIntrospectionEndpointScheme: an https issuer whose
// discovery names a plain http introspection endpoint (even on loopback)
// never gets it used: bearer tokens and the client secret never go in the
// clear. The document is refused whole, as for any downgraded endpoint.
func TestDiscoveredIntrospectionEndpointScheme(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		endpoint, want string
	}{
		{"http://127.0.0.1:9/introspect", ""},
		{"http://idp.example.com/introspect", ""},
		{fuzzIssuer + "/introspect", fuzzIssuer + "/introspect"},
	} {
		doc := fuzzDiscoveryDoc()
		doc.IntrospectionEndpoint = tc.endpoint
		body, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		p := newFuzzProvider(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
		got := ""
		if d, err := p.fetchDiscovery(context.Background()); err == nil {
			got = d.IntrospectionEndpoint
		}
		if got != tc.want {
			t.Errorf("discovery naming %s: introspection endpoint %q; want %q", tc.endpoint, got, tc.want)
		}
	}
}

// TestIntrospectionSlowIdP: an introspection endpoint slower than the
// caller will wait: 503 with Retry-After when the caller's deadline ends,
// not when the IdP's timeout would, and nothing remembered.
func TestIntrospectionSlowIdP(t *testing.T) {
	t.Parallel()
	f, a := newIntrospectionApp(t, nil)
	f.set(func(f *fakeIDP) { f.introspectMode, f.slow = modeSlow, 1500*time.Millisecond })
	tok := f.opaqueToken()
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	w := a.doFrom(ctx, "", "POST", "/v1/auth/register", "", "Authorization", "Bearer "+tok)
	if tokCheck(t, "/v1/auth/register", "slow introspection", w, 503, "SW_AUTH_IDP_UNAVAILABLE") {
		tokCheckRetryAfter(t, "/v1/auth/register", "slow introspection", w)
	}
	// Once the IdP is quick again, the token is asked about anew and valid.
	f.set(func(f *fakeIDP) { f.introspectMode = modeOK })
	if w := a.register(tok); w.Code != 200 {
		t.Errorf("POST /v1/auth/register after the slow answer = %d %s; want 200", w.Code, w.Body)
	}
}
