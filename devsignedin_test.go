package main

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestDevSignedInPage checks what a browser needs to run the dev app's
// page: its one script is the one the Content-Security-Policy admits, the
// page may call only its own origin, and it sends no Referer.
func TestDevSignedInPage(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	handleDevSignedIn().ServeHTTP(w, httptest.NewRequest("GET", devSignedInPath+"?handoff=x", nil))
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s = %d %s; want an HTML page", devSignedInPath, w.Code, w.Header().Get("Content-Type"))
	}
	scripts := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(w.Body.String(), -1)
	if len(scripts) != 1 {
		t.Fatalf("the page has %d inline scripts; want 1", len(scripts))
	}
	sum := sha256.Sum256([]byte(scripts[0][1]))
	csp := w.Header().Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'", "default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	for h, want := range map[string]string{"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Frame-Options": "DENY"} {
		if got := w.Header().Get(h); got != want {
			t.Errorf("GET %s: %s = %q; want %q", devSignedInPath, h, got, want)
		}
	}
	// hidden must win over the dl's display:grid, or a reload shows empty
	// Name and Email labels (issue 20).
	if !strings.Contains(w.Body.String(), "[hidden]{display:none !important}") {
		t.Errorf("the page's style lets display rules override hidden")
	}
	// The participant is written as text, never as markup.
	if strings.Contains(devSignedInJS, "innerHTML") || strings.Contains(devSignedInJS, "document.write") {
		t.Errorf("the page's script writes markup; want textContent only")
	}
}
