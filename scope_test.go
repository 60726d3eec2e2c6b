package main

// The scope a client sends to /token and /refresh, narrowed to the tenant's
// before it reaches the IdP.

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestScopeIntersected sends scopes to /token and /refresh and checks, at
// the fake IdP, what was asked for: never a scope the tenant does not have.
func TestScopeIntersected(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	tc := f.tenantConfig()
	tc.Scopes = []string{"openid", "profile", "email", "offline_access"}
	a := newTestApp(t, []tenantConfig{tc})
	// Every refresh token rt-… is good, so that each case has its own and
	// none is answered from the replay of another.
	f.set(func(f *fakeIDP) {
		f.tokenFn = func(form url.Values, r *http.Request) (int, any) {
			if strings.HasPrefix(form.Get("refresh_token"), "rt-") {
				form = maps.Clone(form)
				form.Set("refresh_token", "rt-good")
			}
			return f.defaultToken(form, r)
		}
	})
	const all = "openid profile email offline_access"
	tests := []struct {
		name        string
		scope       string // "-" sends none
		wantStatus  int
		wantScope   string // at the IdP; "-" for no scope parameter
		wantRefresh string // at the IdP on /refresh, when it differs
	}{
		{"a scope beyond the tenant's", "openid offline_access admin:all", 200, "openid offline_access", ""},
		{"the tenant's own, reordered", "email openid", 200, "email openid", ""},
		{"repeats and extra spaces", "  openid  openid email ", 200, "openid email", ""},
		{"only one allowed among others", "admin:all openid write:all", 200, "openid", ""},
		{"none sent", "-", 200, all, "-"},
		{"empty", "", 200, all, "-"},
		{"blank", "   ", 200, all, "-"},
		{"nothing allowed", "admin:all", 400, "", ""},
		{"values are case-sensitive", "OPENID Profile", 400, "", ""},
	}
	for i, tc := range tests {
		for _, ep := range []struct{ path, grant string }{
			{"/v1/auth/token", "grant_type=password&username=alice&password=alice-pw"},
			{"/v1/auth/refresh", fmt.Sprintf("refresh_token=rt-%d", i)},
		} {
			name := tc.name + " on " + ep.path
			body := ep.grant
			if tc.scope != "-" {
				body += "&scope=" + url.QueryEscape(tc.scope)
			}
			before := f.tokenHits.Load()
			w := a.do("POST", ep.path, body)
			if !tokCheck(t, ep.path, name, w, tc.wantStatus, map[bool]string{true: "", false: "SW_BAD_REQUEST"}[tc.wantStatus == 200]) {
				continue
			}
			called := f.tokenHits.Load() > before
			if tc.wantStatus != 200 {
				if called {
					t.Errorf("POST %s (%s): the IdP was called", ep.path, name)
				}
				if msg := decode(t, w).Error.Message; !strings.HasPrefix(msg, "scope: ") {
					t.Errorf("POST %s (%s): message %q does not name the field", ep.path, name, msg)
				}
				continue
			}
			want := tc.wantScope
			if ep.path == "/v1/auth/refresh" && tc.wantRefresh != "" {
				want = tc.wantRefresh
			}
			var form url.Values
			f.set(func(f *fakeIDP) { form = f.lastForm })
			got := form.Get("scope")
			if !form.Has("scope") {
				got = "-"
			}
			if !called || got != want {
				t.Errorf("POST %s (%s): the IdP was called %v with scope %q; want true, %q", ep.path, name, called, got, want)
			}
		}
	}
}

// TestScopeRefusedBeforeCounting: a scope the tenant does not offer is a
// 400 before the password is tried, so it costs the address no attempt.
func TestScopeRefusedBeforeCounting(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	for range addrFailLimit + 1 {
		a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=wrong&scope=admin:all")
	}
	if n := f.tokenHits.Load(); n != 0 {
		t.Errorf("requests with a scope the tenant does not offer reached the IdP %d times; want 0", n)
	}
	w := a.do("POST", "/v1/auth/token", tokRightPassword)
	tokCheck(t, "/v1/auth/token", "right password after refused scopes", w, 200, "")
}
