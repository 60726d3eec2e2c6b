package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// TestPublicClientIsNamed: a tenant without a client secret is called a
// public client in the log at start, and when the IdP then refuses the
// client on the first sign-in, the 500 comes with an ERROR line that names
// the tenant and the missing secret; with a secret, or for a grant the IdP
// does not allow the client, the line names that cause instead.
func TestPublicClientIsNamed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		secret    string
		code      string
		wantStart bool
		wantCause string
	}{
		{"public client refused", "", "invalid_client", true, "the tenant has no client secret"},
		{"confidential client refused", testClientSecret, "invalid_client", false, "secret is its current one"},
		{"grant not allowed", testClientSecret, "unauthorized_client", false, "does not allow this client_id this grant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeIDP(t)
			tcfg := f.tenantConfig()
			tcfg.ClientSecret = tc.secret
			a := newTestApp(t, []tenantConfig{tcfg})
			started := false
			for _, l := range a.logs.logLines() {
				if l["level"] == "WARN" && l["tenant"] == "acme" && strings.Contains(l["msg"].(string), "this tenant is a public client") {
					started = true
				}
			}
			if started != tc.wantStart {
				t.Errorf("public client named at start: %v; want %v; log:\n%s", started, tc.wantStart, a.logs)
			}

			f.set(func(f *fakeIDP) { f.tokenMode, f.tokenFn = modeOK, tokOAuthError(401, tc.code) })
			w := a.do("POST", "/v1/auth/login", "code=good-code&code_verifier="+tokVerifier)
			tokCheck(t, "/v1/auth/login", tc.name, w, 500, "SW_INTERNAL")
			named := false
			for _, l := range a.logs.logLines() {
				if l["level"] == "ERROR" && l["tenant"] == "acme" && l["code"] == tc.code && l["client_id"] == testClientID {
					cause, _ := l["cause"].(string)
					named = strings.Contains(cause, tc.wantCause)
				}
			}
			if !named {
				t.Errorf("the IdP's %s: no ERROR line naming tenant acme, its client_id and the cause %q; log:\n%s", tc.code, tc.wantCause, a.logs)
			}
		})
	}
}

// TestRunCheckPublicClient: -check says which tenant is a public client.
func TestRunCheckPublicClient(t *testing.T) {
	t.Parallel()
	f, g := newFakeIDP(t), newFakeIDP(t)
	public := fakeTenantJSON(g, "public", "public.example.com")
	delete(public, "client_secret")
	path := writeConfigFile(t, t.TempDir(), map[string]any{"tenants": []any{fakeTenantJSON(f, "secret", "secret.example.com"), public}})
	var out strings.Builder
	err := run(context.Background(), []string{"scaiwave-auth", "-config", path, "-check", "-db", filepath.Join(t.TempDir(), "x.db")}, noEnv, &out, io.Discard)
	if err != nil {
		t.Fatalf("run -check = %v; output:\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || strings.Contains(lines[0], "public client") || !strings.HasPrefix(lines[1], "ok   public ") || !strings.Contains(lines[1], "this tenant is a public client") {
		t.Errorf("run -check printed:\n%s\nwant the tenant without a secret, and only it, called a public client", out.String())
	}
}
