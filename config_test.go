package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// cfgTenant is a valid tenant as a JSON object; tests change or delete keys
// before marshalling it.
func cfgTenant(id string, kv ...any) map[string]any {
	t := map[string]any{
		"id":           id,
		"issuer":       "https://idp.example.com/realms/" + id,
		"client_id":    "scaiwave",
		"redirect_uri": "https://auth.example.com/v1/auth/login",
	}
	return setKeys(t, kv)
}

// setKeys is withMods for key, value pairs: a nil value deletes the key.
func setKeys(m map[string]any, kv []any) map[string]any {
	mods := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		mods[kv[i].(string)] = kv[i+1]
	}
	return withMods(m, mods)
}

// cfgJSON is a configuration document with the tenants and top-level
// key, value pairs.
func cfgJSON(tenants []map[string]any, kv ...any) string {
	doc := setKeys(map[string]any{"tenants": tenants}, kv)
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func tenants(ts ...map[string]any) []map[string]any { return ts }

func noEnv(string) string { return "" }

// writeTestFile writes content to name in dir and returns the path.
func writeTestFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// selfSignedPEM makes a CA certificate for the test and returns it with its
// PEM encoding. The key is thrown away.
func selfSignedPEM(t *testing.T) (*x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "scaiwave test private CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestParseConfigErrors feeds invalid documents to parseConfig. Each must fail
// with a *configError whose one-line message names the field at fault, and
// no message may carry the client secret.
func TestParseConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const secret = "pa55-w0rd-that-must-never-leak"
	secretFile := writeTestFile(t, dir, "secret", secret+"\n")
	emptyFile := writeTestFile(t, dir, "empty-secret", "")
	newlineFile := writeTestFile(t, dir, "newline-secret", "\r\n")
	notPEM := writeTestFile(t, dir, "not-a-cert.pem", "-----BEGIN NOTHING-----\n"+secret+"\n")
	missing := filepath.Join(dir, "no-such-file")
	env := func(k string) string {
		if k == "SET_SECRET" {
			return secret
		}
		return ""
	}
	a, b := cfgTenant("a", "hosts", []string{"a.example"}), cfgTenant("b", "hosts", []string{"b.example"})
	valid := cfgJSON(tenants(cfgTenant("acme")))

	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		// Decoding.
		{"empty file", "", "empty file"},
		{"only white space", " \n\t", "empty file"},
		{"array, not object", `[]`, "the configuration must be an object, not array"},
		{"string, not object", `"tenants"`, "the configuration must be an object, not string"},
		{"truncated", valid[:len(valid)-2], "unexpected end of file"},
		{"syntax error", `{"tenants": [,]}`, "invalid JSON at line 1, column 14: invalid character ','"},
		{"syntax error on a later line", "{\n  \"addr\": \"127.0.0.1:8080\",\n  \"tenants\": [\n    {\"id\": \"é\" \"issuer\": \"x\"}\n  ]\n}",
			"invalid JSON at line 4, column 16: invalid character '\"' after object key:value pair"},
		{"trailing garbage", valid + " x", "unexpected data after the JSON object"},
		{"second object", valid + "\n{}", "unexpected data after the JSON object"},
		{"unknown top-level field", cfgJSON(tenants(cfgTenant("acme")), "adr", ":80"), `unknown field "adr" (did you mean "addr"?)`},
		{"unknown tenant field", cfgJSON(tenants(cfgTenant("acme", "client_secert", secret))), `tenants[0]: unknown field "client_secert"`},
		{"unknown field in second tenant", cfgJSON(tenants(a, cfgTenant("b", "hosts", []string{"b.example"}, "scope", "openid"))), `tenants[1]: unknown field "scope"`},
		{"unknown features.auth field", cfgJSON(tenants(cfgTenant("acme", "features", map[string]any{"auth": map[string]any{"password_grant": true}}))), `tenants[0].features.auth: unknown field "password_grant" (did you mean "password_grant_enabled"?)`},
		{"misspelt features.auth field", cfgJSON(tenants(cfgTenant("acme", "features", map[string]any{"auth": map[string]any{"requre_pkce": true}}))),
			`tenants[0].features.auth: unknown field "requre_pkce" (did you mean "require_pkce"?)`},
		{"known fields in another case, then an unknown one", cfgJSON(tenants(cfgTenant("acme", "Features", map[string]any{"AUTH": map[string]any{"require_pkce": true, "requirepkce": 1}}))),
			`tenants[0].features.auth: unknown field "requirepkce" (did you mean "require_pkce"?)`},
		{"unknown features field", cfgJSON(tenants(cfgTenant("acme", "features", map[string]any{"authn": map[string]any{}}))), `tenants[0].features: unknown field "authn" (did you mean "auth"?)`},
		{"tenants not a list", `{"tenants": {"id": "acme"}}`, "tenants: must be a list, not object"},
		{"tenant not an object", `{"tenants": ["acme"]}`, "tenants[0]: must be an object, not string"},
		{"addr a number", cfgJSON(tenants(cfgTenant("acme")), "addr", 8080), "addr: must be a string, not number"},
		{"trusted_proxies a string", cfgJSON(tenants(cfgTenant("acme")), "trusted_proxies", "10.0.0.0/8"), "trusted_proxies: must be a list, not string"},
		{"client_id a number", cfgJSON(tenants(a, cfgTenant("b", "hosts", []string{"b.example"}, "client_id", 7))), "tenants[1].client_id: must be a string, not number"},
		{"scopes a string", cfgJSON(tenants(cfgTenant("acme", "scopes", "openid profile"))), "tenants[0].scopes: must be a list, not string"},
		{"client_secret a number", cfgJSON(tenants(cfgTenant("acme", "client_secret", 12345))), "tenants[0].client_secret: must be a string, not number"},
		{"password_grant_enabled a string", cfgJSON(tenants(cfgTenant("acme", "features", map[string]any{"auth": map[string]any{"password_grant_enabled": "yes"}}))),
			"tenants[0].features.auth.password_grant_enabled: must be true or false, not string"},
		{"refresh_token_rotation a number", cfgJSON(tenants(cfgTenant("acme", "features", map[string]any{"auth": map[string]any{"refresh_token_rotation": 0}}))),
			"tenants[0].features.auth.refresh_token_rotation: must be true or false, not number"},
		{"refresh_replay_seconds negative", cfgJSON(tenants(cfgTenant("acme", "features", map[string]any{"auth": map[string]any{"refresh_replay_seconds": -1}}))),
			"tenants[0].features.auth.refresh_replay_seconds: must be from 0 to 60, not -1"},
		{"refresh_replay_seconds over a minute", cfgJSON(tenants(cfgTenant("acme", "features", map[string]any{"auth": map[string]any{"refresh_replay_seconds": 61}}))),
			"tenants[0].features.auth.refresh_replay_seconds: must be from 0 to 60, not 61"},

		// Top level.
		{"no tenants key", `{"addr": "127.0.0.1:8080"}`, "tenants: at least one tenant is required"},
		{"empty tenants", `{"tenants": []}`, "tenants: at least one tenant is required"},
		{"null document", `null`, "tenants: at least one tenant is required"},
		{"addr without port", cfgJSON(tenants(cfgTenant("acme")), "addr", "127.0.0.1"), `addr: "127.0.0.1" must be host:port`},
		{"addr a bare port", cfgJSON(tenants(cfgTenant("acme")), "addr", "8080"), `addr: "8080" must be host:port`},
		{"addr with empty port", cfgJSON(tenants(cfgTenant("acme")), "addr", "localhost:"), `addr: "localhost:" must be host:port`},
		{"addr with a port out of range", cfgJSON(tenants(cfgTenant("acme")), "addr", "127.0.0.1:99999"), `addr: "127.0.0.1:99999": port must be a number from 0 to 65535`},
		{"metrics_addr with a named port", cfgJSON(tenants(cfgTenant("acme")), "metrics_addr", "127.0.0.1:http"), `metrics_addr: "127.0.0.1:http": port must be a number`},
		{"metrics_addr without port", cfgJSON(tenants(cfgTenant("acme")), "metrics_addr", "localhost"), `metrics_addr: "localhost" must be host:port`},
		{"trusted_proxies bad CIDR", cfgJSON(tenants(cfgTenant("acme")), "trusted_proxies", []string{"10.0.0.0/8", "10.0.0.0/33"}), `trusted_proxies[1]: "10.0.0.0/33" is not a CIDR`},
		{"trusted_proxies a name", cfgJSON(tenants(cfgTenant("acme")), "trusted_proxies", []string{"proxy.internal"}), `trusted_proxies[0]: "proxy.internal" is not a CIDR`},

		// Tenant identity and routing.
		{"missing id", cfgJSON(tenants(cfgTenant("acme", "id", nil))), "tenants[0].id: required"},
		{"id with a space", cfgJSON(tenants(cfgTenant("acme corp"))), "tenants[0].id: required, 1-64 letters"},
		{"id with a slash", cfgJSON(tenants(cfgTenant("acme/x"))), "tenants[0].id:"},
		{"id too long", cfgJSON(tenants(cfgTenant(strings.Repeat("a", 65)))), "tenants[0].id:"},
		{"id starting with a dash", cfgJSON(tenants(cfgTenant("-acme"))), "tenants[0].id:"},
		{"duplicate ids", cfgJSON(tenants(a, cfgTenant("a", "hosts", []string{"other.example"}))), `tenants[1].id: "a" is also the id of tenants[0]`},
		{"duplicate hosts, other case", cfgJSON(tenants(a, cfgTenant("b", "hosts", []string{"x.example", "A.Example"}))), `tenants[1].hosts[1]: "a.example" is also a host of tenant "a"`},
		{"duplicate hosts, trailing dot", cfgJSON(tenants(a, cfgTenant("b", "hosts", []string{"a.example."}))), `tenants[1].hosts[0]: "a.example" is also a host of tenant "a"`},
		{"first of several tenants without hosts", cfgJSON(tenants(cfgTenant("a"), b)), "tenants[0].hosts: required when there is more than one tenant"},
		{"second of several tenants without hosts", cfgJSON(tenants(a, cfgTenant("b"))), "tenants[1].hosts: required when there is more than one tenant"},
		{"host with port", cfgJSON(tenants(cfgTenant("acme", "hosts", []string{"auth.example:443"}))), "tenants[0].hosts[0]:"},
		{"host with scheme", cfgJSON(tenants(cfgTenant("acme", "hosts", []string{"https://auth.example"}))), "tenants[0].hosts[0]:"},
		{"empty host", cfgJSON(tenants(cfgTenant("acme", "hosts", []string{" "}))), "tenants[0].hosts[0]: must not be empty"},

		// Issuer.
		{"missing issuer", cfgJSON(tenants(cfgTenant("acme", "issuer", nil))), "tenants[0].issuer: required"},
		{"issuer without scheme", cfgJSON(tenants(cfgTenant("acme", "issuer", "idp.example.com/realms/acme"))), "tenants[0].issuer:"},
		{"issuer http on a public host", cfgJSON(tenants(a, cfgTenant("b", "hosts", []string{"b.example"}, "issuer", "http://idp.example.com/realms/b"))),
			"tenants[1].issuer: must be https unless the host is loopback"},
		{"issuer http on a private address", cfgJSON(tenants(cfgTenant("acme", "issuer", "http://10.0.0.5:8080"))), "tenants[0].issuer: must be https unless the host is loopback"},
		{"issuer http on a look-alike of localhost", cfgJSON(tenants(cfgTenant("acme", "issuer", "http://localhost.evil.example"))), "tenants[0].issuer: must be https unless the host is loopback"},
		{"issuer http on the unspecified address", cfgJSON(tenants(cfgTenant("acme", "issuer", "http://0.0.0.0:5556"))), "tenants[0].issuer: must be https unless the host is loopback"},
		{"issuer ftp", cfgJSON(tenants(cfgTenant("acme", "issuer", "ftp://idp.example.com"))), "tenants[0].issuer: must be https unless the host is loopback"},
		{"issuer with query", cfgJSON(tenants(cfgTenant("acme", "issuer", "https://idp.example.com/realms/acme?x=1"))), "tenants[0].issuer: must not have a query, fragment or user info"},
		{"issuer with fragment", cfgJSON(tenants(cfgTenant("acme", "issuer", "https://idp.example.com/realms/acme#frag"))), "tenants[0].issuer: must not have a query, fragment or user info"},
		// An empty query or fragment still ends up in the discovery URL.
		{"issuer with empty query", cfgJSON(tenants(cfgTenant("acme", "issuer", "https://idp.example.com/realms/acme?"))), "tenants[0].issuer: must not have a query, fragment or user info"},
		{"issuer with empty fragment", cfgJSON(tenants(cfgTenant("acme", "issuer", "https://idp.example.com/realms/acme#"))), "tenants[0].issuer: must not have a query, fragment or user info"},
		{"issuer with user info", cfgJSON(tenants(cfgTenant("acme", "issuer", "https://admin:"+secret+"@idp.example.com"))), "tenants[0].issuer: must not have a query, fragment or user info"},

		// Client credentials.
		{"missing client_id", cfgJSON(tenants(cfgTenant("acme", "client_id", nil))), "tenants[0].client_id: required"},
		{"empty client_id", cfgJSON(tenants(cfgTenant("acme", "client_id", ""))), "tenants[0].client_id: required"},
		{"secret and secret file", cfgJSON(tenants(cfgTenant("acme", "client_secret", secret, "client_secret_file", secretFile))),
			"tenants[0].client_secret: set only one of client_secret, client_secret_file and client_secret_env"},
		{"secret file and secret env", cfgJSON(tenants(cfgTenant("acme", "client_secret_file", secretFile, "client_secret_env", "SET_SECRET"))),
			"tenants[0].client_secret: set only one of"},
		{"all three secret sources", cfgJSON(tenants(cfgTenant("acme", "client_secret", secret, "client_secret_file", secretFile, "client_secret_env", "SET_SECRET"))),
			"tenants[0].client_secret: set only one of"},
		{"secret file missing", cfgJSON(tenants(cfgTenant("acme", "client_secret_file", missing))), "tenants[0].client_secret_file: no such file or directory"},
		{"secret file is a directory", cfgJSON(tenants(cfgTenant("acme", "client_secret_file", dir))), "tenants[0].client_secret_file:"},
		{"secret file empty", cfgJSON(tenants(cfgTenant("acme", "client_secret_file", emptyFile))), "tenants[0].client_secret_file: " + emptyFile + " is empty"},
		{"secret file only a line break", cfgJSON(tenants(cfgTenant("acme", "client_secret_file", newlineFile))), "tenants[0].client_secret_file: " + newlineFile + " is empty"},
		{"secret env unset", cfgJSON(tenants(cfgTenant("acme", "client_secret_env", "UNSET_SECRET"))), "tenants[0].client_secret_env: environment variable UNSET_SECRET is unset or empty"},
		// A secret that was read fine must not show up in a later field's error.
		{"secret file, then a bad redirect_uri", cfgJSON(tenants(cfgTenant("acme", "client_secret_file", secretFile, "redirect_uri", "/"+secret))), "tenants[0].redirect_uri:"},
		{"secret env, then a bad scope list", cfgJSON(tenants(cfgTenant("acme", "client_secret_env", "SET_SECRET", "scopes", []string{"profile"}))), `tenants[0].scopes: must contain "openid"`},
		{"inline secret, then a bad CA file", cfgJSON(tenants(cfgTenant("acme", "client_secret", secret, "ca_file", notPEM))), "tenants[0].ca_file:"},

		// Redirect URI and scopes.
		{"missing redirect_uri", cfgJSON(tenants(cfgTenant("acme", "redirect_uri", nil))), "tenants[0].redirect_uri: required"},
		{"relative redirect_uri", cfgJSON(tenants(cfgTenant("acme", "redirect_uri", "/v1/auth/login"))), "tenants[0].redirect_uri: must be an absolute URL without a fragment"},
		{"redirect_uri without host", cfgJSON(tenants(cfgTenant("acme", "redirect_uri", "https:///v1/auth/login"))), "tenants[0].redirect_uri: must be an absolute URL"},
		{"redirect_uri with fragment", cfgJSON(tenants(cfgTenant("acme", "redirect_uri", "https://auth.example.com/cb#x"))), "tenants[0].redirect_uri: must be an absolute URL without a fragment"},
		{"relative post_logout_redirect_uri", cfgJSON(tenants(cfgTenant("acme", "post_logout_redirect_uri", "/bye"))), "tenants[0].post_logout_redirect_uri: must be an absolute http(s) URL"},
		{"post_logout_redirect_uri with fragment", cfgJSON(tenants(cfgTenant("acme", "post_logout_redirect_uri", "https://app.example.com/#bye"))), "tenants[0].post_logout_redirect_uri: must be an absolute http(s) URL without a fragment"},
		{"post_logout_redirect_uri of another scheme", cfgJSON(tenants(cfgTenant("acme", "post_logout_redirect_uri", "javascript:alert(1)"))), "tenants[0].post_logout_redirect_uri: must be an absolute http(s) URL"},
		{"scopes without openid", cfgJSON(tenants(cfgTenant("acme", "scopes", []string{"profile", "email"}))), `tenants[0].scopes: must contain "openid"`},
		{"scope with a space", cfgJSON(tenants(cfgTenant("acme", "scopes", []string{"openid", "profile email"}))), `tenants[0].scopes[1]: "profile email" is not a valid scope`},
		{"empty scope", cfgJSON(tenants(cfgTenant("acme", "scopes", []string{"openid", ""}))), "tenants[0].scopes[1]:"},
		{"empty audience", cfgJSON(tenants(cfgTenant("acme", "audiences", []string{"api", ""}))), "tenants[0].audiences[1]: must not be empty"},

		// CORS and CA.
		{"cors origin with a path", cfgJSON(tenants(cfgTenant("acme", "cors_origins", []string{"https://app.example.com/app"}))), `tenants[0].cors_origins[0]: "https://app.example.com/app" must be an origin`},
		{"cors origin without scheme", cfgJSON(tenants(cfgTenant("acme", "cors_origins", []string{"https://ok.example", "app.example.com"}))), "tenants[0].cors_origins[1]:"},
		{"cors origin with query", cfgJSON(tenants(cfgTenant("acme", "cors_origins", []string{"https://app.example.com?x"}))), "tenants[0].cors_origins[0]:"},
		{"cors origin wildcard", cfgJSON(tenants(cfgTenant("acme", "cors_origins", []string{"*"}))), "tenants[0].cors_origins[0]:"},
		{"ca_file missing", cfgJSON(tenants(cfgTenant("acme", "ca_file", missing))), "tenants[0].ca_file: no such file or directory"},
		{"ca_file not PEM", cfgJSON(tenants(cfgTenant("acme", "ca_file", notPEM))), "tenants[0].ca_file: " + notPEM + " holds no PEM certificate"},
		{"ca_file is the secret", cfgJSON(tenants(cfgTenant("acme", "ca_file", secretFile))), "tenants[0].ca_file: " + secretFile + " holds no PEM certificate"},
	}
	for _, tc := range tests {
		cfg, err := parseConfig([]byte(tc.in), env)
		if err == nil {
			// The config is not printed: it holds the secret.
			t.Errorf("parseConfig (%s) succeeded with %d tenants; want error %q", tc.name, len(cfg.Tenants), tc.wantErr)
			continue
		}
		msg := err.Error()
		var ce *configError
		if !errors.As(err, &ce) {
			t.Errorf("parseConfig (%s) error %q is a %T; want *configError", tc.name, msg, err)
		}
		if !strings.Contains(msg, tc.wantErr) {
			t.Errorf("parseConfig (%s) = %q; want it to contain %q", tc.name, msg, tc.wantErr)
		}
		if strings.ContainsAny(msg, "\r\n") {
			t.Errorf("parseConfig (%s) = %q; want one line", tc.name, msg)
		}
		if strings.Contains(msg, secret) {
			t.Errorf("parseConfig (%s) = %q; the message carries the client secret", tc.name, msg)
		}
		if c := exitCode(err); c != 2 {
			t.Errorf("exitCode(parseConfig (%s)) = %d; want 2", tc.name, c)
		}
	}
}

// TestParseConfigFull parses SPEC.md's example, with its secret file moved
// into a temporary directory, and checks every field arrives.
func TestParseConfigFull(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/config-full.json")
	if err != nil {
		t.Fatal(err)
	}
	// As committed, the file points at /run/secrets: only that fails.
	if _, err := parseConfig(raw, noEnv); err == nil || !strings.HasPrefix(err.Error(), "tenants[0].client_secret_file: ") {
		t.Fatalf("parseConfig (testdata/config-full.json as is) = %v; want a tenants[0].client_secret_file error", err)
	}

	secretPath := writeTestFile(t, t.TempDir(), "client-secret", "full-example-secret\r\n")
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	doc["tenants"].([]any)[0].(map[string]any)["client_secret_file"] = secretPath
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(b, noEnv)
	if err != nil {
		t.Fatalf("parseConfig (SPEC.md example) = %v", err)
	}
	if cfg.Addr != "127.0.0.1:8080" || cfg.Database != "/var/lib/scaiwave/auth.db" || cfg.MetricsAddr != "" {
		t.Errorf("addr, database, metrics_addr = %q, %q, %q", cfg.Addr, cfg.Database, cfg.MetricsAddr)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}; !slices.Equal(cfg.trustedNets, want) {
		t.Errorf("trusted networks = %v; want %v", cfg.trustedNets, want)
	}
	if len(cfg.Tenants) != 1 {
		t.Fatalf("%d tenants; want 1", len(cfg.Tenants))
	}
	tc := cfg.Tenants[0]
	for _, f := range []struct{ name, got, want string }{
		{"id", tc.ID, "acme"},
		{"issuer", tc.Issuer, "https://idp.example.com/realms/acme"},
		{"client_id", tc.ClientID, "scaiwave"},
		{"redirect_uri", tc.RedirectURI, "https://auth.acme.example/v1/auth/login"},
		{"post_logout_redirect_uri", tc.PostLogoutRedirectURI, "https://app.acme.example/"},
		{"secret (from the file, line break trimmed)", tc.secret, "full-example-secret"},
	} {
		if f.got != f.want {
			t.Errorf("tenant %s = %q; want %q", f.name, f.got, f.want)
		}
	}
	for _, f := range []struct {
		name      string
		got, want []string
	}{
		{"hosts", tc.Hosts, []string{"auth.acme.example"}},
		{"scopes", tc.Scopes, []string{"openid", "profile", "email", "offline_access"}},
		{"audiences", tc.Audiences, []string{"scaiwave"}},
		{"cors_origins", tc.CORSOrigins, []string{"https://app.acme.example"}},
		{"post_login_redirect_uris", tc.PostLoginRedirectURIs, []string{"https://app.acme.example/signed-in"}},
	} {
		if !slices.Equal(f.got, f.want) {
			t.Errorf("tenant %s = %q; want %q", f.name, f.got, f.want)
		}
	}
	if tc.Features.Auth.PasswordGrantEnabled || !tc.rotateRefreshTokens() || !tc.requirePKCE() {
		t.Errorf("password grant %v, rotation %v, require_pkce %v; want false, true, true", tc.Features.Auth.PasswordGrantEnabled, tc.rotateRefreshTokens(), tc.requirePKCE())
	}
	if tc.roots != nil {
		t.Errorf("roots set although ca_file is empty")
	}
	if a := tc.AccessTokens; a.Validation != validationAuto || a.cacheTTL != time.Minute || a.IntrospectionEndpoint != "" {
		t.Errorf("access_tokens = %q, %v, %q; want auto, 1m, no endpoint", a.Validation, a.cacheTTL, a.IntrospectionEndpoint)
	}
	if want := []string{"https://sts.idp.example.com/acme/"}; !slices.Equal(tc.AccessTokens.AcceptedIssuers, want) || tc.AccessTokens.RequireJWTType {
		t.Errorf("access_tokens = %+v; want accepted_issuers %q, require_jwt_type false", tc.AccessTokens, want)
	}
}

// TestParseConfigDefaults checks what an omitted field becomes.
func TestParseConfigDefaults(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/config-minimal.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(raw, noEnv)
	if err != nil {
		t.Fatalf("parseConfig (testdata/config-minimal.json) = %v", err)
	}
	tc := cfg.Tenants[0]
	if want := []string{"openid", "profile", "email"}; !slices.Equal(tc.Scopes, want) {
		t.Errorf("default scopes = %q; want %q", tc.Scopes, want)
	}
	if want := []string{"scaiwave-public"}; !slices.Equal(tc.Audiences, want) {
		t.Errorf("default audiences = %q; want [client_id] %q", tc.Audiences, want)
	}
	if !tc.rotateRefreshTokens() {
		t.Errorf("refresh token rotation off by default; want on")
	}
	if tc.Features.Auth.PasswordGrantEnabled {
		t.Errorf("password grant on by default; want off")
	}
	if !tc.requirePKCE() {
		t.Errorf("require_pkce off by default; want on")
	}
	if tc.secret != "" || len(tc.Hosts) != 0 || len(tc.CORSOrigins) != 0 || tc.roots != nil {
		t.Errorf("public client with nothing else set: secret %q, hosts %q, cors %q, roots %v", tc.secret, tc.Hosts, tc.CORSOrigins, tc.roots)
	}
	if cfg.Addr != "" || cfg.Database != "" || cfg.MetricsAddr != "" || len(cfg.trustedNets) != 0 {
		t.Errorf("top level = %q, %q, %q, %v; want all empty (flags fill them)", cfg.Addr, cfg.Database, cfg.MetricsAddr, cfg.trustedNets)
	}
	// Explicit values replace the defaults, false included.
	cfg, err = parseConfig([]byte(cfgJSON(tenants(cfgTenant("acme", "scopes", []string{"openid"}, "audiences", []string{"api"},
		"features", map[string]any{"auth": map[string]any{"password_grant_enabled": true, "refresh_token_rotation": false, "require_pkce": false}})))), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	tc = cfg.Tenants[0]
	if !slices.Equal(tc.Scopes, []string{"openid"}) || !slices.Equal(tc.Audiences, []string{"api"}) ||
		!tc.Features.Auth.PasswordGrantEnabled || tc.rotateRefreshTokens() || tc.requirePKCE() {
		t.Errorf("explicit scopes %q, audiences %q, password grant %v, rotation %v, require_pkce %v; want [openid], [api], true, false, false",
			tc.Scopes, tc.Audiences, tc.Features.Auth.PasswordGrantEnabled, tc.rotateRefreshTokens(), tc.requirePKCE())
	}
}

// TestParseConfigMultiTenant parses several tenants on loopback http issuers,
// with hosts and origins to normalise and every secret source.
func TestParseConfigMultiTenant(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/config-multi.json")
	if err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		if k == "KC_CLIENT_SECRET" {
			return "kc-env-secret"
		}
		return ""
	}
	cfg, err := parseConfig(raw, env)
	if err != nil {
		t.Fatalf("parseConfig (testdata/config-multi.json) = %v", err)
	}
	if cfg.Addr != ":8443" || cfg.MetricsAddr != "127.0.0.1:9090" {
		t.Errorf("addr, metrics_addr = %q, %q", cfg.Addr, cfg.MetricsAddr)
	}
	if cfg.MaxConnections != 2048 || cfg.MaxBodyBytesInFlight != 16<<20 {
		t.Errorf("max_connections, max_body_bytes_in_flight = %d, %d; want 2048, %d", cfg.MaxConnections, cfg.MaxBodyBytesInFlight, 16<<20)
	}
	wantNets := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.7.9/32"), netip.MustParsePrefix("fd00::/8")}
	if !slices.Equal(cfg.trustedNets, wantNets) {
		t.Errorf("trusted networks = %v; want %v", cfg.trustedNets, wantNets)
	}
	if len(cfg.Tenants) != 3 {
		t.Fatalf("%d tenants; want 3", len(cfg.Tenants))
	}
	dex, kc, v6 := cfg.Tenants[0], cfg.Tenants[1], cfg.Tenants[2]
	if want := []string{"auth.dex.example", "login.dex.example"}; !slices.Equal(dex.Hosts, want) {
		t.Errorf("dex hosts = %q; want %q (lower case, no trailing dot)", dex.Hosts, want)
	}
	if want := []string{"https://app.dex.example"}; !slices.Equal(dex.CORSOrigins, want) {
		t.Errorf("dex cors_origins = %q; want %q", dex.CORSOrigins, want)
	}
	if dex.secret != "dex-inline-secret" || kc.secret != "kc-env-secret" || v6.secret != "" {
		t.Errorf("secrets = %q, %q, %q; want inline, from the environment, none", dex.secret, kc.secret, v6.secret)
	}
	if !slices.Equal(kc.Audiences, []string{"api", "scaiwave-kc"}) || !kc.Features.Auth.PasswordGrantEnabled || kc.rotateRefreshTokens() {
		t.Errorf("keycloak_2: audiences %q, password grant %v, rotation %v", kc.Audiences, kc.Features.Auth.PasswordGrantEnabled, kc.rotateRefreshTokens())
	}
	if !slices.Equal(v6.Hosts, []string{"::1"}) {
		t.Errorf("v6.local hosts = %q; want [::1] without brackets", v6.Hosts)
	}
}

// TestParseConfigLoopbackIssuers accepts http only where the host is loopback.
func TestParseConfigLoopbackIssuers(t *testing.T) {
	t.Parallel()
	for _, iss := range []string{
		"http://127.0.0.1:5556/dex",
		"http://127.0.0.1",
		"http://127.8.9.10:8080",
		"http://localhost/realms/acme",
		"http://LocalHost:8080",
		"http://[::1]:9000",
		"http://[::1]",
		"https://idp.example.com",
		"https://idp.example.com/realms/acme/",
	} {
		cfg, err := parseConfig([]byte(cfgJSON(tenants(cfgTenant("acme", "issuer", iss)))), noEnv)
		if err != nil {
			t.Errorf("parseConfig (issuer %s) = %v; want it accepted", iss, err)
			continue
		}
		if got := cfg.Tenants[0].Issuer; got != iss {
			t.Errorf("issuer %s became %s; it must stay exactly as configured", iss, got)
		}
	}
}

// TestParseConfigSecretSources resolves each kind of secret and never puts one
// into an error.
func TestParseConfigSecretSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeTestFile(t, dir, "s", "from-file\n")
	env := func(k string) string {
		if k == "MY_SECRET" {
			return "from-env"
		}
		return ""
	}
	for _, tc := range []struct {
		kv   []any
		want string
	}{
		{[]any{"client_secret", "inline"}, "inline"},
		{[]any{"client_secret_file", file}, "from-file"},
		{[]any{"client_secret_env", "MY_SECRET"}, "from-env"},
		{nil, ""},
	} {
		cfg, err := parseConfig([]byte(cfgJSON(tenants(cfgTenant("acme", tc.kv...)))), env)
		if err != nil {
			t.Errorf("parseConfig (%v) = %v", tc.kv, err)
			continue
		}
		if got := cfg.Tenants[0].secret; got != tc.want {
			t.Errorf("secret from %v = %q; want %q", tc.kv, got, tc.want)
		}
	}
}

// TestParseConfigCAFile adds a PEM file's certificates to the system roots.
func TestParseConfigCAFile(t *testing.T) {
	t.Parallel()
	cert, pemBytes := selfSignedPEM(t)
	caFile := writeTestFile(t, t.TempDir(), "ca.pem", "comment lines are fine\n"+string(pemBytes))
	cfg, err := parseConfig([]byte(cfgJSON(tenants(cfgTenant("acme", "ca_file", caFile)))), noEnv)
	if err != nil {
		t.Fatalf("parseConfig (ca_file with a certificate) = %v", err)
	}
	roots := cfg.Tenants[0].roots
	if roots == nil {
		t.Fatal("roots not set from ca_file")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots}); err != nil {
		t.Errorf("the private CA does not verify against the tenant's roots: %v", err)
	}
}

// TestLoadConfig names the file in every error, and the field after it.
func TestLoadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	_, err := loadConfig(missing, noEnv)
	var ce *configError
	if !errors.As(err, &ce) || err.Error() != "config "+missing+": no such file or directory" {
		t.Errorf("loadConfig (missing file) = %v; want a *configError naming the file", err)
	}
	bad := writeTestFile(t, dir, "bad.json", cfgJSON(tenants(cfgTenant("acme", "issuer", "http://idp.example.com"))))
	_, err = loadConfig(bad, noEnv)
	if want := "config " + bad + ": tenants[0].issuer: must be https unless the host is loopback"; err == nil || err.Error() != want {
		t.Errorf("loadConfig (bad issuer) = %v; want %q", err, want)
	}
	good := writeTestFile(t, dir, "good.json", cfgJSON(tenants(cfgTenant("acme"))))
	if cfg, err := loadConfig(good, noEnv); err != nil || cfg.Tenants[0].ID != "acme" {
		t.Errorf("loadConfig (good file) = %v, %v", cfg, err)
	}
}

// TestUnknownFieldSuggestion: a typo is answered with the field meant, and a
// name that is no typo of any field with none.
func TestUnknownFieldSuggestion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		auth map[string]any
		want string
	}{
		{map[string]any{"requre_pkce": true}, `tenants[0].features.auth: unknown field "requre_pkce" (did you mean "require_pkce"?)`},
		{map[string]any{"Require_PKCE": true, "refresh_rotation": true}, `tenants[0].features.auth: unknown field "refresh_rotation"`},
		{map[string]any{"colour": "blue"}, `tenants[0].features.auth: unknown field "colour"`},
		{map[string]any{"pkce": true}, `tenants[0].features.auth: unknown field "pkce"`},
	}
	for _, tc := range tests {
		_, err := parseConfig([]byte(cfgJSON(tenants(cfgTenant("acme", "features", map[string]any{"auth": tc.auth})))), noEnv)
		if err == nil || err.Error() != tc.want {
			t.Errorf("features.auth %v: error %v; want exactly %q", tc.auth, err, tc.want)
		}
	}
	if got := didYouMean("databse", []string{"addr", "database", "tenants"}); got != "database" {
		t.Errorf(`didYouMean("databse") = %q; want "database"`, got)
	}
}
