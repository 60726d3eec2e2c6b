package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// newPlainTrap starts a plain-http server on loopback that answers nothing
// useful and counts every connection made to it.
func newPlainTrap(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "trap", http.StatusTeapot)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, &conns
}

// TestAttackDiscoveryDowngrade serves, from an https issuer, a discovery
// document that names a plain-http endpoint on the host's loopback: the
// tenant never becomes ready, and nothing, least of all the client secret
// or a password, ever reaches that endpoint.
func TestAttackDiscoveryDowngrade(t *testing.T) {
	t.Parallel()
	trap, conns := newPlainTrap(t)
	tests := []struct {
		name   string
		member string
		extra  map[string]any
	}{
		{"token endpoint on plain http", "token_endpoint", map[string]any{"token_endpoint": trap + "/token"}},
		{"jwks_uri on plain http", "jwks_uri", map[string]any{"jwks_uri": trap + "/jwks"}},
		{"authorization endpoint on plain http", "authorization_endpoint", map[string]any{"authorization_endpoint": trap + "/authorize"}},
		{"userinfo endpoint on plain http", "userinfo_endpoint", map[string]any{"userinfo_endpoint": trap + "/userinfo"}},
		{"end_session endpoint on plain http", "end_session_endpoint", map[string]any{"end_session_endpoint": trap + "/logout"}},
		{"revocation endpoint on plain http", "revocation_endpoint", map[string]any{"revocation_endpoint": trap + "/revoke"}},
		{"introspection endpoint on plain http", "introspection_endpoint", map[string]any{"introspection_endpoint": trap + "/introspect"}},
		{"an endpoint of a later spec", "pushed_authorization_request_endpoint", map[string]any{"pushed_authorization_request_endpoint": trap + "/par"}},
		{"mTLS alias on plain http", "mtls_endpoint_aliases.token_endpoint", map[string]any{"mtls_endpoint_aliases": map[string]any{"token_endpoint": trap + "/token"}}},
		{"token endpoint on http, not loopback", "token_endpoint", map[string]any{"token_endpoint": "http://idp.example/token"}},
		{"token endpoint of another scheme", "token_endpoint", map[string]any{"token_endpoint": "ws://idp.example/token"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeIDPTLS(t)
			f.set(func(f *fakeIDP) { f.discExtra = tc.extra })
			a := newTestApp(t, []tenantConfig{f.tenantConfig()}, true)
			p := a.srv.tenants[0].prov
			err := p.refreshAll(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.member+":") {
				t.Errorf("discovery naming %v: refresh error %v; want one naming %s", tc.extra, err, tc.member)
			}
			if p.ready() || p.disc.Load() != nil {
				t.Errorf("discovery naming %v: tenant ready %v; want not ready", tc.extra, p.ready())
			}
			for _, req := range [][2]string{
				{"POST /v1/auth/token", "grant_type=password&username=alice&password=alice-pw"},
				{"POST /v1/auth/login", "code=good-code&code_verifier=" + tokVerifier},
				{"POST /v1/auth/refresh", "refresh_token=rt-good"},
				{"GET /v1/auth/config", ""},
				{"GET /readyz", ""},
			} {
				method, path, _ := strings.Cut(req[0], " ")
				if w := a.do(method, path, req[1]); w.Code != http.StatusServiceUnavailable {
					t.Errorf("%s with a downgrading discovery document = %d %s; want 503", req[0], w.Code, w.Body)
				}
			}
		})
	}
	t.Cleanup(func() {
		if n := conns.Load(); n != 0 {
			t.Errorf("the plain-http endpoint got %d connections; want none", n)
		}
	})
}

// TestDiscoveryDowngradeKeepsGoodCopy: a tenant that is ready over https
// and then gets a downgrading document keeps the good copy it has, and its
// grants keep going to the https token endpoint.
func TestDiscoveryDowngradeKeepsGoodCopy(t *testing.T) {
	t.Parallel()
	trap, conns := newPlainTrap(t)
	f := newFakeIDPTLS(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	password := "grant_type=password&username=alice&password=alice-pw"
	// The https setup works, so the refusals below are about the scheme.
	if w := a.do("POST", "/v1/auth/token", password); w.Code != 200 {
		t.Fatalf("POST /v1/auth/token over https = %d %s", w.Code, w.Body)
	}
	f.set(func(f *fakeIDP) { f.discExtra = map[string]any{"token_endpoint": trap + "/token"} })
	if err := a.srv.tenants[0].prov.refreshAll(context.Background()); err == nil {
		t.Fatal("refresh of a downgrading discovery document succeeded")
	}
	w := a.do("GET", "/v1/auth/config", "")
	if got, _ := decode(t, w).Data["token_endpoint"].(string); got != f.issuer+"/token" {
		t.Errorf("GET /v1/auth/config after a downgrading refresh: token_endpoint %q; want the good %q", got, f.issuer+"/token")
	}
	if w := a.do("POST", "/v1/auth/token", password); w.Code != 200 {
		t.Errorf("POST /v1/auth/token after a downgrading refresh = %d %s; want 200 from the good endpoint", w.Code, w.Body)
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the plain-http endpoint got %d connections; want none", n)
	}
}

// TestDiscoveryPlainHTTPOnLoopbackIssuer: an http issuer on loopback (a
// development setup) may name http endpoints on loopback, and https ones.
func TestDiscoveryPlainHTTPOnLoopbackIssuer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		doc     string
		wantErr string
	}{
		{`{"token_endpoint":"http://127.0.0.1:1/token","jwks_uri":"http://localhost:1/jwks"}`, ""},
		{`{"token_endpoint":"https://idp.example/token"}`, ""},
		{`{"token_endpoint":"http://idp.example/token"}`, "token_endpoint"},
		{`{"token_endpoint":"/relative","op_policy_uri":"http://idp.example/policy","scopes_supported":["openid"]}`, ""},
	} {
		err := checkEndpointSchemes("http://127.0.0.1:1", []byte(tc.doc))
		if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("checkEndpointSchemes(http issuer, %s) = %v; want error %q", tc.doc, err, tc.wantErr)
		}
	}
}
