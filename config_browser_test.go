package main

import (
	"slices"
	"strings"
	"testing"
)

func TestPostLoginRedirectURIsValid(t *testing.T) {
	t.Parallel()
	uris := []string{
		"https://app.example.com/signed-in",
		"https://app.example.com:8443/cb?tab=home",
		"http://127.0.0.1:3000/cb",
		"http://localhost:5173/",
		"http://[::1]:8080/cb",
		"https://app.example.com/cb?",
	}
	cfg, err := parseConfig([]byte(cfgJSON(tenants(cfgTenant("acme", "post_login_redirect_uris", uris)))), noEnv)
	if err != nil {
		t.Fatalf("parseConfig (valid post_login_redirect_uris) = %v", err)
	}
	// Kept byte for byte: return_to is compared with them exactly.
	if got := cfg.Tenants[0].PostLoginRedirectURIs; !slices.Equal(got, uris) {
		t.Errorf("post_login_redirect_uris = %q; want %q as written", got, uris)
	}
}

func TestPostLoginRedirectURIsInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, uri, wantErr string
	}{
		{"relative", "/signed-in", "is not an absolute URL"},
		{"no host", "https:///signed-in", "is not an absolute URL"},
		{"no scheme", "app.example.com/signed-in", "is not an absolute URL"},
		{"http on a public host", "http://app.example.com/signed-in", "must be https unless the host is loopback"},
		{"http on a private address", "http://10.0.0.5/cb", "must be https unless the host is loopback"},
		{"http on a look-alike of localhost", "http://localhost.evil.example/cb", "must be https unless the host is loopback"},
		{"javascript scheme", "javascript://app.example.com/%0aalert(1)", "must be https unless the host is loopback"},
		{"fragment", "https://app.example.com/cb#top", "must not have a fragment"},
		{"empty fragment", "https://app.example.com/cb#", "must not have a fragment"},
		{"user info", "https://user@app.example.com/cb", "must not have user info"},
		{"a space", "https://app.example.com/signed in", "must not contain spaces or control characters"},
		{"a line break", "https://app.example.com/cb\r\nX: y", "must not contain spaces or control characters"},
		{"a handoff parameter already", "https://app.example.com/cb?handoff=x", "must not have the handoff parameter"},
		{"an error parameter already", "https://app.example.com/cb?a=1&error=", "must not have the error parameter"},
		{"malformed query", "https://app.example.com/cb?a=%zz", "malformed query"},
	}
	for _, tc := range tests {
		in := cfgJSON(tenants(cfgTenant("acme", "post_login_redirect_uris", []string{"https://ok.example/cb", tc.uri})))
		_, err := parseConfig([]byte(in), noEnv)
		want := "tenants[0].post_login_redirect_uris[1]: "
		if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("parseConfig (post_login_redirect_uris %s) = %v; want %s…%s", tc.name, err, want, tc.wantErr)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("parseConfig (post_login_redirect_uris %s) = %q; want one line", tc.name, err)
		}
	}
}

// TestRequireHandoffPKCEConfig: on unless the file says false.
func TestRequireHandoffPKCEConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		auth map[string]any
		want bool
	}{
		{map[string]any{}, true},
		{map[string]any{"require_handoff_pkce": true}, true},
		{map[string]any{"require_handoff_pkce": false}, false},
	} {
		cfg, err := parseConfig([]byte(cfgJSON(tenants(cfgTenant("acme", "features", map[string]any{"auth": tc.auth})))), noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Tenants[0].requireHandoffPKCE(); got != tc.want {
			t.Errorf("features.auth %v: requireHandoffPKCE() = %v; want %v", tc.auth, got, tc.want)
		}
	}
}
