package main

import (
	"net/http/httptest"
	"net/url"
	"testing"
)

// The browser sign-in's own cost, before the IdP: /authorize (make the
// state, keep or seal it, set the cookie), and the callback up to the code
// exchange, with the fake IdP's token endpoint as the floor it shares.
//
//	go test -run '^$' -bench 'SignIn' -benchmem -count 6

// BenchmarkSignInAuthorize is one GET /v1/auth/authorize.
func BenchmarkSignInAuthorize(b *testing.B) {
	f := newFakeIDP(b)
	a := newTestApp(b, []tenantConfig{f.tenantConfig()})
	req := httptest.NewRequest("GET", "/v1/auth/authorize", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		a.srv.ServeHTTP(w, req)
		if w.Code != 302 {
			b.Fatalf("GET /v1/auth/authorize = %d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkSignInCallback is one callback, code exchange at the fake IdP
// included; the /authorize before it and the IdP's sign-in are not timed.
func BenchmarkSignInCallback(b *testing.B) {
	f := newFakeIDP(b)
	a := newTestApp(b, []tenantConfig{f.tenantConfig()})
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		w := httptest.NewRecorder()
		a.srv.ServeHTTP(w, httptest.NewRequest("GET", "/v1/auth/authorize", nil))
		u, _ := url.Parse(w.Header().Get("Location"))
		c := w.Result().Cookies()[0]
		q := url.Values{"code": {f.authorize(u.String())}, "state": {u.Query().Get("state")}}
		r := httptest.NewRequest("GET", "/v1/auth/login?"+q.Encode(), nil)
		r.AddCookie(c)
		w = httptest.NewRecorder()
		b.StartTimer()
		a.srv.ServeHTTP(w, r)
		if w.Code != 303 {
			b.Fatalf("callback = %d %s", w.Code, w.Body)
		}
	}
}
