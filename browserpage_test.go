package main

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// browserAccept is what Chromium sends when it navigates.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"

func TestPrefersHTML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		accept string
		want   bool
	}{
		{browserAccept, true},
		{"text/html", true},
		{"", false},
		{"*/*", false},
		{"application/json", false},
		{"application/json, text/html", false},
		{"text/html;q=0.5, application/json", false},
		{"text/html, application/json;q=0.5", true},
		{"text/html;q=0", false},
		{"garbage;;;", false},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", tc.accept)
		if got := prefersHTML(r); got != tc.want {
			t.Errorf("prefersHTML(Accept %q) = %v; want %v", tc.accept, got, tc.want)
		}
	}
}

// TestBrowserErrorPages: what a browser gets from /authorize and the
// callback when they fail, and what code gets from the same requests.
func TestBrowserErrorPages(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	tc := f.tenantConfig()
	tc.Features.Auth.RequireHandoffPKCE = nil
	tc.PostLoginRedirectURIs = append([]string{"https://app.example.com/cb?a=1&b=2"}, tc.PostLoginRedirectURIs...)
	a := newTestApp(t, []tenantConfig{tc})
	secretCode, state := "CODE-"+randomValue(), randomValue()
	callback := "/v1/auth/login?" + url.Values{"code": {secretCode}, "state": {state}}.Encode()
	tests := []struct {
		name, target string
		wantStatus   int
		wantText     string
	}{
		{"callback with an unknown state", callback, 400, "This sign-in has expired"},
		{"callback without a state", "/v1/auth/login?code=" + secretCode, 400, "This sign-in link is not valid"},
		{"authorize without code_challenge", "/v1/auth/authorize", 400, "This sign-in link is not valid"},
		{"authorize with an unlisted return_to", "/v1/auth/authorize?return_to=https://evil.example/&code_challenge=" + s256(tokVerifier) + "&code_challenge_method=S256", 400, "This sign-in link is not valid"},
	}
	for _, tt := range tests {
		w := a.do("GET", tt.target, "", "Accept", browserAccept)
		body := w.Body.String()
		name := "GET " + tt.target + " (" + tt.name + ", a browser)"
		if w.Code != tt.wantStatus || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
			t.Errorf("%s = %d %s; want %d text/html", name, w.Code, w.Header().Get("Content-Type"), tt.wantStatus)
			continue
		}
		for _, want := range []string{tt.wantText, `href="https://app.example.com/cb?a=1&amp;b=2"`, "SW_BAD_REQUEST"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: the page lacks %q:\n%s", name, want, body)
			}
		}
		for _, never := range []string{secretCode, state, "<script", "evil.example"} {
			if strings.Contains(body, never) {
				t.Errorf("%s: the page holds %q:\n%s", name, never, body)
			}
		}
		for h, want := range map[string]string{"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Frame-Options": "DENY"} {
			if got := w.Header().Get(h); got != want {
				t.Errorf("%s: %s = %q; want %q", name, h, got, want)
			}
		}
		// The same request from code: the envelope.
		w = a.do("GET", tt.target, "", "Accept", "*/*")
		if got := code(t, w); w.Code != tt.wantStatus || got != "SW_BAD_REQUEST" {
			t.Errorf("GET %s (%s, Accept */*) = %d %s; want %d SW_BAD_REQUEST in the envelope", tt.target, tt.name, w.Code, got, tt.wantStatus)
		}
	}
}

func TestBrowserErrorPageBeforeDiscovery(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.set(func(f *fakeIDP) { f.discMode = mode500 })
	a := newTestApp(t, []tenantConfig{f.tenantConfig()}, true)
	w := a.do("GET", "/v1/auth/authorize", "", "Accept", browserAccept)
	if w.Code != 503 || !strings.Contains(w.Body.String(), "Sign-in is unavailable right now") || w.Header().Get("Retry-After") == "" {
		t.Errorf("GET /v1/auth/authorize before discovery (a browser) = %d, Retry-After %q:\n%s; want 503, a page, Retry-After",
			w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}
