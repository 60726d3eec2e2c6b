package main

// The access_tokens block of a tenant: defaults, every refusal naming its
// field, the introspection secret's sources, and the userinfo warning.

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseConfigAccessTokensErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const secret = "introspection-secret-that-must-never-leak"
	secretFile := writeTestFile(t, dir, "secret", secret+"\n")
	emptyFile := writeTestFile(t, dir, "empty", "\n")
	at := func(kv ...any) string {
		return cfgJSON(tenants(cfgTenant("acme", "access_tokens", setKeys(map[string]any{}, kv))))
	}
	loopback := func(kv ...any) string {
		return cfgJSON(tenants(cfgTenant("acme", "issuer", "http://127.0.0.1:9000/idp", "access_tokens", setKeys(map[string]any{}, kv))))
	}
	tests := []struct {
		name, in, wantErr string
	}{
		{"unknown field", at("introspection_url", "https://idp.example.com/i"), `tenants[0].access_tokens: unknown field "introspection_url"`},
		{"not an object", cfgJSON(tenants(cfgTenant("acme", "access_tokens", "auto"))), "tenants[0].access_tokens: must be an object, not string"},
		{"unknown validation", at("validation", "opaque"), `tenants[0].access_tokens.validation: "opaque" is not one of auto, jwt, introspection, userinfo`},
		{"validation in capitals", at("validation", "JWT"), `tenants[0].access_tokens.validation: "JWT" is not one of`},
		{"validation a bool", at("validation", true), "tenants[0].access_tokens.validation: must be a string, not bool"},
		{"cache_seconds negative", at("cache_seconds", -1), "tenants[0].access_tokens.cache_seconds: -1 is not from 0 to 3600"},
		{"cache_seconds over an hour", at("cache_seconds", 3601), "tenants[0].access_tokens.cache_seconds: 3601 is not from 0 to 3600"},
		{"cache_seconds a string", at("cache_seconds", "60"), "tenants[0].access_tokens.cache_seconds: must be a whole number, not string"},
		{"cache_seconds a fraction", at("cache_seconds", 1.5), "tenants[0].access_tokens.cache_seconds: must be a whole number, not number 1.5"},
		{"endpoint not absolute", at("introspection_endpoint", "/introspect"), `tenants[0].access_tokens.introspection_endpoint: "/introspect" is not an absolute URL`},
		{"endpoint plain http", at("introspection_endpoint", "http://idp.example.com/introspect"), `tenants[0].access_tokens.introspection_endpoint: "http://idp.example.com/introspect" must use the issuer's scheme`},
		{"endpoint http loopback for an https issuer", at("introspection_endpoint", "http://127.0.0.1:8080/introspect"), "must use the issuer's scheme"},
		{"endpoint http elsewhere for a loopback issuer", loopback("introspection_endpoint", "http://idp.example.com/introspect"), "must use the issuer's scheme"},
		{"endpoint with user info", at("introspection_endpoint", "https://u:p@idp.example.com/introspect"), "introspection_endpoint: must not have user info or a fragment"},
		{"endpoint with a fragment", at("introspection_endpoint", "https://idp.example.com/introspect#x"), "introspection_endpoint: must not have user info or a fragment"},
		{"endpoint another scheme", at("introspection_endpoint", "ftp://idp.example.com/introspect"), "must use the issuer's scheme"},
		{"google tokeninfo, other path", at("introspection_endpoint", "http://oauth2.googleapis.com/tokeninfo"), "must use the issuer's scheme"},
		{"endpoint with validation jwt", at("validation", "jwt", "introspection_endpoint", "https://idp.example.com/i"), `tenants[0].access_tokens.introspection_endpoint: not used with validation "jwt"`},
		{"client id with validation userinfo", at("validation", "userinfo", "introspection_client_id", "api"), `tenants[0].access_tokens.introspection_client_id: not used with validation "userinfo"`},
		{"secret without client id", at("introspection_client_secret", secret), "tenants[0].access_tokens.introspection_client_secret: needs introspection_client_id"},
		{"two secret sources", at("introspection_client_id", "api", "introspection_client_secret", secret, "introspection_client_secret_env", "X"), "tenants[0].access_tokens.introspection_client_secret: set only one of"},
		{"secret file missing", at("introspection_client_id", "api", "introspection_client_secret_file", dir+"/none"), "tenants[0].access_tokens.introspection_client_secret_file: no such file or directory"},
		{"secret file empty", at("introspection_client_id", "api", "introspection_client_secret_file", emptyFile), "tenants[0].access_tokens.introspection_client_secret_file: " + emptyFile + " is empty"},
		{"secret env unset", at("introspection_client_id", "api", "introspection_client_secret_env", "NO_SUCH_VAR"), "tenants[0].access_tokens.introspection_client_secret_env: environment variable NO_SUCH_VAR is unset or empty"},
	}
	for _, tc := range tests {
		_, err := parseConfig([]byte(tc.in), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("parseConfig (%s) = %v; want an error containing %q", tc.name, err, tc.wantErr)
			continue
		}
		if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), secret) {
			t.Errorf("parseConfig (%s): error %q is not one line without the secret", tc.name, err)
		}
	}
	// The file's contents stay out of every message, even a good one's.
	if _, err := parseConfig([]byte(at("introspection_client_id", "api", "introspection_client_secret_file", secretFile, "cache_seconds", -5)), noEnv); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("parseConfig with a secret file and a bad cache_seconds = %v; want an error without the secret", err)
	}
}

func TestParseConfigAccessTokens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secretFile := writeTestFile(t, dir, "secret", "from-file\r\n")
	env := func(k string) string {
		if k == "INTROSPECTION_SECRET" {
			return "from-env"
		}
		return ""
	}
	zero := 0
	tests := []struct {
		name       string
		issuer     string
		block      map[string]any // nil: no access_tokens block at all
		validation string
		endpoint   string
		clientID   string
		secret     string
		ttl        time.Duration
	}{
		{"no block", "", nil, "auto", "", "", "", 60 * time.Second},
		{"empty block", "", map[string]any{}, "auto", "", "", "", 60 * time.Second},
		{"cache_seconds 0", "", map[string]any{"cache_seconds": zero}, "auto", "", "", "", 0},
		{"cache_seconds at the bound", "", map[string]any{"cache_seconds": 3600}, "auto", "", "", "", time.Hour},
		{"jwt", "", map[string]any{"validation": "jwt"}, "jwt", "", "", "", 60 * time.Second},
		{"userinfo", "", map[string]any{"validation": "userinfo", "cache_seconds": 30}, "userinfo", "", "", "", 30 * time.Second},
		{"introspection with its own client, secret inline", "", map[string]any{"validation": "introspection", "introspection_endpoint": "https://idp.example.com/oauth/introspect",
			"introspection_client_id": "api", "introspection_client_secret": "inline"}, "introspection", "https://idp.example.com/oauth/introspect", "api", "inline", 60 * time.Second},
		{"secret from a file", "", map[string]any{"introspection_client_id": "api", "introspection_client_secret_file": secretFile}, "auto", "", "api", "from-file", 60 * time.Second},
		{"secret from the environment", "", map[string]any{"introspection_client_id": "api", "introspection_client_secret_env": "INTROSPECTION_SECRET"}, "auto", "", "api", "from-env", 60 * time.Second},
		{"client id without secret (Hydra's admin endpoint)", "", map[string]any{"introspection_client_id": "api"}, "auto", "", "api", "", 60 * time.Second},
		{"google tokeninfo", "https://accounts.google.com", map[string]any{"introspection_endpoint": googleTokeninfoURL}, "auto", googleTokeninfoURL, "", "", 60 * time.Second},
		{"loopback issuer, loopback http endpoint", "http://localhost:9000/idp", map[string]any{"introspection_endpoint": "http://127.0.0.1:9000/idp/introspect"}, "auto", "http://127.0.0.1:9000/idp/introspect", "", "", 60 * time.Second},
	}
	for _, tc := range tests {
		kv := []any{}
		if tc.issuer != "" {
			kv = append(kv, "issuer", tc.issuer)
		}
		if tc.block != nil {
			kv = append(kv, "access_tokens", tc.block)
		}
		cfg, err := parseConfig([]byte(cfgJSON(tenants(cfgTenant("acme", kv...)))), env)
		if err != nil {
			t.Errorf("parseConfig (%s) = %v", tc.name, err)
			continue
		}
		a := cfg.Tenants[0].AccessTokens
		if a.Validation != tc.validation || a.IntrospectionEndpoint != tc.endpoint || a.IntrospectionClientID != tc.clientID || a.introspectionSecret != tc.secret || a.cacheTTL != tc.ttl {
			t.Errorf("parseConfig (%s): validation %q, endpoint %q, client %q, secret %q, ttl %v; want %q, %q, %q, %q, %v", tc.name,
				a.Validation, a.IntrospectionEndpoint, a.IntrospectionClientID, a.introspectionSecret, a.cacheTTL,
				tc.validation, tc.endpoint, tc.clientID, tc.secret, tc.ttl)
		}
	}
}

// TestAccessTokensUserinfoWarning checks that validation userinfo says at
// start what it cannot check, and that the other modes say nothing.
func TestAccessTokensUserinfoWarning(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"userinfo", "auto", "jwt", "introspection"} {
		cfg, err := parseConfig([]byte(cfgJSON(tenants(cfgTenant("acme", "access_tokens", map[string]any{"validation": mode})))), noEnv)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Database = t.TempDir() + "/w.db"
		st, err := openStore(context.Background(), cfg.Database)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		newServer(cfg, st, slog.New(slog.NewJSONHandler(&buf, nil)), nil, nil)
		st.Close()
		warned := strings.Contains(buf.String(), `"level":"WARN"`) && strings.Contains(buf.String(), "userinfo") && strings.Contains(buf.String(), `"tenant":"acme"`)
		if warned != (mode == "userinfo") {
			t.Errorf("validation %s: start-up log %q; want a warning naming the tenant: %v", mode, buf.String(), mode == "userinfo")
		}
	}
}

// TestDeployConfigParses: the example in deploy/ is a valid configuration,
// its access_tokens block included, once its secret file exists.
func TestDeployConfigParses(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("deploy/scaiwave.json")
	if err != nil {
		t.Fatal(err)
	}
	secret := writeTestFile(t, t.TempDir(), "client-secret", "deploy-example\n")
	doc := strings.Replace(string(raw), "/run/credentials/scaiwave-auth.service/client-secret", secret, 1)
	cfg, err := parseConfig([]byte(doc), noEnv)
	if err != nil {
		t.Fatalf("parseConfig (deploy/scaiwave.json) = %v", err)
	}
	if a := cfg.Tenants[0].AccessTokens; a.Validation != validationAuto || a.cacheTTL != time.Minute {
		t.Errorf("deploy/scaiwave.json access_tokens = %q, %v; want auto, 1m", a.Validation, a.cacheTTL)
	}
}
