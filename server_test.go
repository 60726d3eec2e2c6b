package main

// The server around the handlers: CORS, tenants chosen by host, request ids.

import (
	"strings"
	"testing"
)

func TestCORS(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	w := a.do("OPTIONS", "/v1/auth/register", "", "Origin", "https://app.example.com", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization")
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight from a listed origin = %d %v", w.Code, w.Header())
	}
	w = a.do("OPTIONS", "/v1/auth/register", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if w.Header().Get("Access-Control-Allow-Origin") != "" || w.Header().Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("preflight from an unlisted origin got CORS headers: %v", w.Header())
	}
	w = a.do("GET", "/v1/auth/config", "", "Origin", "https://app.example.com")
	if w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("GET from a listed origin: Access-Control-Allow-Origin = %q", w.Header().Get("Access-Control-Allow-Origin"))
	}
	w = a.do("GET", "/v1/auth/config", "", "Origin", "https://evil.example")
	if w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("GET from an unlisted origin: Access-Control-Allow-Origin = %q", w.Header().Get("Access-Control-Allow-Origin"))
	}
}

func TestMultiTenantRoutingByHost(t *testing.T) {
	t.Parallel()
	f1, f2 := newFakeIDP(t), newFakeIDP(t)
	t1, t2 := f1.tenantConfig(), f2.tenantConfig()
	t1.ID, t1.Hosts = "one", []string{"one.example.com"}
	t2.ID, t2.Hosts = "two", []string{"Two.Example.com"}
	a := newTestApp(t, []tenantConfig{t1, t2})
	for _, tc := range []struct {
		host       string
		wantStatus int
		wantIssuer string
	}{
		{"one.example.com", 200, f1.issuer},
		{"ONE.example.com:8443", 200, f1.issuer},
		{"two.example.com", 200, f2.issuer},
		{"three.example.com", 404, ""},
	} {
		r := a.do("GET", "http://"+tc.host+"/v1/auth/config", "")
		if r.Code != tc.wantStatus {
			t.Errorf("GET /v1/auth/config (Host %s) = %d %s; want %d", tc.host, r.Code, code(t, r), tc.wantStatus)
			continue
		}
		if tc.wantStatus == 404 && code(t, r) != "SW_TENANT_NOT_FOUND" {
			t.Errorf("unknown host: code %s; want SW_TENANT_NOT_FOUND", code(t, r))
		}
		if tc.wantIssuer != "" && decode(t, r).Data["issuer"] != tc.wantIssuer {
			t.Errorf("Host %s routed to issuer %v; want %s", tc.host, decode(t, r).Data["issuer"], tc.wantIssuer)
		}
	}
	// A token of tenant one is not accepted by tenant two.
	tok := f1.accessToken()
	if r := a.do("POST", "http://two.example.com/v1/auth/register", "", "Authorization", "Bearer "+tok); r.Code != 401 {
		t.Errorf("tenant one's token at tenant two = %d; want 401", r.Code)
	}
	if r := a.do("POST", "http://one.example.com/v1/auth/register", "", "Authorization", "Bearer "+tok); r.Code != 200 {
		t.Errorf("tenant one's token at tenant one = %d %s; want 200", r.Code, r.Body)
	}
}

func TestRequestIDEchoed(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	if w := a.do("GET", "/healthz", "", "X-Request-Id", "abc-123"); w.Header().Get("X-Request-Id") != "abc-123" {
		t.Errorf("X-Request-Id = %q; want the client's abc-123", w.Header().Get("X-Request-Id"))
	}
	w := a.do("GET", "/healthz", "", "X-Request-Id", "bad id\twith spaces")
	if id := w.Header().Get("X-Request-Id"); id == "" || strings.ContainsAny(id, " \t") {
		t.Errorf("X-Request-Id for an unusable client id = %q; want a generated one", id)
	}
}
