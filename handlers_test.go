package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	big := "code=" + strings.Repeat("a", maxBodyBytes+1)
	tests := []struct {
		name        string
		method, url string
		body        string
		hdr         []string
		wantStatus  int
		wantCode    string
		wantHeader  [2]string
	}{
		{"unknown path", "GET", "/nope", "", nil, 404, "SW_NOT_FOUND", [2]string{}},
		{"unknown api path", "POST", "/v1/auth/nope", "", nil, 404, "SW_NOT_FOUND", [2]string{}},
		{"GET on a POST route", "GET", "/v1/auth/token", "", nil, 405, "SW_METHOD_NOT_ALLOWED", [2]string{"Allow", "POST"}},
		{"DELETE on login", "DELETE", "/v1/auth/login", "", nil, 405, "SW_METHOD_NOT_ALLOWED", [2]string{"Allow", "GET, HEAD, POST"}},
		{"DELETE on config", "DELETE", "/v1/auth/config", "", nil, 405, "SW_METHOD_NOT_ALLOWED", [2]string{"Allow", "GET, HEAD"}},
		{"body over 64 KiB", "POST", "/v1/auth/login", big, nil, 413, "SW_REQUEST_TOO_LARGE", [2]string{}},
		{"text/plain body", "POST", "/v1/auth/login", "code=x", []string{"Content-Type", "text/plain"}, 415, "SW_UNSUPPORTED_MEDIA_TYPE", [2]string{}},
		{"JSON with a number", "POST", "/v1/auth/login", `{"code": 5}`, []string{"Content-Type", "application/json"}, 400, "SW_BAD_REQUEST", [2]string{}},
		{"JSON not an object", "POST", "/v1/auth/login", `["code"]`, []string{"Content-Type", "application/json"}, 400, "SW_BAD_REQUEST", [2]string{}},
		{"repeated parameter", "POST", "/v1/auth/login", "code=a&code=b", nil, 400, "SW_BAD_REQUEST", [2]string{}},
		{"missing code", "POST", "/v1/auth/login", "redirect_uri=x", nil, 400, "SW_BAD_REQUEST", [2]string{}},
		{"register without bearer", "POST", "/v1/auth/register", "", nil, 401, "SW_AUTH_UNAUTHENTICATED", [2]string{"WWW-Authenticate", `Bearer realm="scaiwave"`}},
	}
	for _, tc := range tests {
		w := a.do(tc.method, tc.url, tc.body, tc.hdr...)
		if got := code(t, w); w.Code != tc.wantStatus || got != tc.wantCode {
			t.Errorf("%s %s (%s) = %d %s; want %d %s", tc.method, tc.url, tc.name, w.Code, got, tc.wantStatus, tc.wantCode)
		}
		if tc.wantHeader[0] != "" && w.Header().Get(tc.wantHeader[0]) != tc.wantHeader[1] {
			t.Errorf("%s %s (%s): %s = %q; want %q", tc.method, tc.url, tc.name, tc.wantHeader[0], w.Header().Get(tc.wantHeader[0]), tc.wantHeader[1])
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s (%s): Content-Type %q", tc.method, tc.url, tc.name, ct)
		}
	}
}

func TestConfigEndpoint(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	w := a.do("GET", "/v1/auth/config", "")
	if w.Code != 200 {
		t.Fatalf("GET /v1/auth/config = %d %s", w.Code, w.Body)
	}
	d := decode(t, w).Data
	want := map[string]any{
		"issuer":                 f.issuer,
		"authorization_endpoint": f.issuer + "/authorize",
		"token_endpoint":         f.issuer + "/token",
		"jwks_uri":               f.issuer + "/jwks",
		"userinfo_endpoint":      f.issuer + "/userinfo",
		"redirect_uri":           testRedirectURI,
		"client_id":              testClientID,
		"password_grant_enabled": true,
	}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("config %s = %v; want %v", k, d[k], v)
		}
	}
	if s, _ := d["scopes_supported"].([]any); len(s) != 3 || s[0] != "openid" {
		t.Errorf("scopes_supported = %v; want the tenant's default scopes", d["scopes_supported"])
	}
	if _, ok := d["end_session_endpoint"]; ok {
		t.Errorf("end_session_endpoint present though the IdP has none")
	}
}

func TestConfigBeforeDiscoveryIs503(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.set(func(f *fakeIDP) { f.discMode = mode500 })
	a := newTestApp(t, []tenantConfig{f.tenantConfig()}, true)
	w := a.do("GET", "/v1/auth/config", "")
	if w.Code != 503 || code(t, w) != "SW_AUTH_IDP_UNAVAILABLE" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("GET /v1/auth/config with the IdP down = %d %s (Retry-After %q); want 503 SW_AUTH_IDP_UNAVAILABLE", w.Code, code(t, w), w.Header().Get("Retry-After"))
	}
	if w := a.do("GET", "/readyz", ""); w.Code != 503 {
		t.Errorf("GET /readyz with the IdP down = %d; want 503", w.Code)
	}
	if w := a.do("GET", "/healthz", ""); w.Code != 200 {
		t.Errorf("GET /healthz with the IdP down = %d; want 200", w.Code)
	}
	// The IdP comes back: the service becomes ready without a restart.
	f.set(func(f *fakeIDP) { f.discMode = modeOK })
	a.waitReady(10e9)
	if w := a.do("GET", "/v1/auth/config", ""); w.Code != 200 {
		t.Errorf("GET /v1/auth/config after the IdP recovered = %d", w.Code)
	}
}

func TestRegisterCreatesOnceAndUpdates(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	w := a.register(f.accessToken())
	if w.Code != 200 {
		t.Fatalf("POST /v1/auth/register = %d %s", w.Code, w.Body)
	}
	first := decode(t, w).Data
	if first["display_name"] != "Test User" || first["email"] != "test.user@example.com" || first["tenant_id"] != "acme" ||
		!strings.HasPrefix(first["personal_workspace_id"].(string), "ws-") {
		t.Errorf("register data = %v", first)
	}
	// Same principal, new claims: same ids, updated name and email.
	w = a.register(f.accessToken(map[string]any{"name": "Renamed", "email": "new@example.com"}))
	second := decode(t, w).Data
	if second["participant_id"] != first["participant_id"] || second["personal_workspace_id"] != first["personal_workspace_id"] {
		t.Errorf("second register changed ids: %v then %v", first, second)
	}
	if second["display_name"] != "Renamed" || second["email"] != "new@example.com" {
		t.Errorf("second register did not update claims: %v", second)
	}
}

func TestRegisterDisplayNameFallback(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	// A token without names asks userinfo, which fails here: the names
	// stay unknown (userinfonames_test.go has the rest).
	f.userinfoFn = func(string) (int, any) { return 503, rawBody("down") }
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	for i, tc := range []struct {
		mods map[string]any
		want string
	}{
		{map[string]any{"name": "Full Name"}, "Full Name"},
		{map[string]any{"name": nil, "preferred_username": "nick"}, "nick"},
		{map[string]any{"name": "  ", "preferred_username": nil, "email": "local.part@example.com"}, "local.part"},
		{map[string]any{"name": nil, "preferred_username": nil, "email": nil}, "sub-3"},
		{map[string]any{"name": 42, "preferred_username": "typed"}, "typed"},
	} {
		tc.mods["sub"] = "sub-" + string(rune('0'+i))
		w := a.register(f.accessToken(tc.mods))
		if got := decode(t, w).Data["display_name"]; got != tc.want {
			t.Errorf("display name for %v = %v; want %q", tc.mods, got, tc.want)
		}
	}
}

func TestRegisterConcurrentFirstCalls(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	tok := f.accessToken(map[string]any{"sub": "concurrent"})
	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := a.register(tok)
			if w.Code != 200 {
				t.Errorf("register %d = %d %s", i, w.Code, w.Body)
				return
			}
			ids[i] = decode(t, w).Data["participant_id"].(string)
		}()
	}
	wg.Wait()
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("concurrent registers gave different ids: %q and %q", ids[0], ids[i])
		}
	}
	var parts, spaces int
	a.store.r.QueryRow(`SELECT count(*) FROM participants WHERE subject = 'concurrent'`).Scan(&parts)
	a.store.r.QueryRow(`SELECT count(*) FROM workspaces w JOIN participants p ON p.id = w.owner_participant_id WHERE p.subject = 'concurrent'`).Scan(&spaces)
	if parts != 1 || spaces != 1 {
		t.Errorf("after %d concurrent registers: %d participants, %d workspaces; want 1 and 1", n, parts, spaces)
	}
}

// TestAttackReadyzTenantIDs asks /readyz of a multi-tenant service with a
// Host of nobody's, as a stranger enumerating customers would: the answer
// says ready or not and names no tenant. A tenant's own Host hears about
// that tenant only; a single tenant without hosts serves every Host and is
// named to all.
func TestAttackReadyzTenantIDs(t *testing.T) {
	t.Parallel()
	up, down := newFakeIDP(t), newFakeIDP(t)
	down.set(func(f *fakeIDP) { f.discMode = modeDown })
	acme := up.tenantConfig()
	acme.Hosts = []string{"auth.acme.example"}
	beta := down.tenantConfig()
	beta.ID, beta.Hosts = "beta-corp", []string{"auth.beta.example"}
	a := newTestApp(t, []tenantConfig{acme, beta}, true)
	a.srv.tenants[0].prov.refreshAll(context.Background())

	type readyz struct {
		Data  struct{ Tenants []string }
		Error struct{ Tenants []string }
	}
	check := func(name, host string, wantStatus int, wantTenants []string, mustNotName ...string) {
		t.Helper()
		w := a.do("GET", "http://"+host+"/readyz", "")
		var got readyz
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("GET /readyz (%s): %v", name, err)
		}
		tenants := append(got.Data.Tenants, got.Error.Tenants...)
		if w.Code != wantStatus || !slices.Equal(tenants, wantTenants) {
			t.Errorf("GET /readyz (%s) = %d tenants %q; want %d %q (%s)", name, w.Code, tenants, wantStatus, wantTenants, w.Body)
		}
		for _, id := range mustNotName {
			if strings.Contains(w.Body.String(), id) {
				t.Errorf("GET /readyz (%s) names tenant %s: %s", name, id, w.Body)
			}
		}
	}
	check("a Host of nobody's, a tenant down", "evil.example", 503, []string{}, "acme", "beta-corp")
	check("a probe by address, a tenant down", "10.1.2.3:8080", 503, []string{}, "acme", "beta-corp")
	check("the ready tenant's Host", "auth.acme.example", 200, []string{"acme"}, "beta-corp")
	check("the tenant that is down, its own Host", "AUTH.BETA.EXAMPLE:443", 503, []string{"beta-corp"}, "acme")

	down.set(func(f *fakeIDP) { f.discMode = modeOK })
	a.waitReady(10 * time.Second)
	check("a Host of nobody's, all ready", "evil.example", 200, []string{}, "acme", "beta-corp")

	single := newTestApp(t, []tenantConfig{newFakeIDP(t).tenantConfig()})
	if w := single.do("GET", "http://anything.example/readyz", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"tenants":["acme"]`) {
		t.Errorf("GET /readyz of a single tenant without hosts = %d %s; want 200 naming acme", w.Code, w.Body)
	}
}
