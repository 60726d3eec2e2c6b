package main

// POST /v1/auth/token: the password grant, on and off.

import (
	"net/url"
	"strconv"
	"testing"
)

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
