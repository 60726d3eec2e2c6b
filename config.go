package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// config is the JSON configuration file. Field names follow SPEC.md; unknown
// fields are rejected so that a typo cannot silently disable a check.
type config struct {
	Addr     string `json:"addr"`
	Database string `json:"database"`
	// DatabaseURLFile and DatabaseURLEnv hold the database setting (a
	// PostgreSQL URL with its password) outside the file; at most one of
	// the three is set.
	DatabaseURLFile string         `json:"database_url_file"`
	DatabaseURLEnv  string         `json:"database_url_env"`
	MetricsAddr     string         `json:"metrics_addr"`
	TrustedProxies  []string       `json:"trusted_proxies"`
	Tenants         []tenantConfig `json:"tenants"`
	// MaxConnections and MaxBodyBytesInFlight are the caps of
	// config_limits.go.
	MaxConnections       int   `json:"max_connections"`
	MaxBodyBytesInFlight int64 `json:"max_body_bytes_in_flight"`
	// MemoryLimitMB and TokenCacheMB: see validateMemory (memlimit.go).
	MemoryLimitMB *int `json:"memory_limit_mb"`
	TokenCacheMB  *int `json:"token_cache_mb"`

	trustedNets []netip.Prefix
}

// tenantConfig is one tenant: an OIDC client registration at one IdP.
type tenantConfig struct {
	ID               string         `json:"id"`
	Hosts            []string       `json:"hosts"`
	Issuer           string         `json:"issuer"`
	ClientID         string         `json:"client_id"`
	ClientSecret     string         `json:"client_secret"`
	ClientSecretFile string         `json:"client_secret_file"`
	ClientSecretEnv  string         `json:"client_secret_env"`
	RedirectURI      string         `json:"redirect_uri"`
	Scopes           []string       `json:"scopes"`
	Audiences        []string       `json:"audiences"`
	CORSOrigins      []string       `json:"cors_origins"`
	CAFile           string         `json:"ca_file"`
	Features         tenantFeatures `json:"features"`

	// The issuer rules (config_issuers.go, issuer.go): an Entra ID
	// multi-tenant template, where its discovery document lives, and the
	// further issuers and the header type of bearer access tokens.
	AllowedIssuerTenants []string           `json:"allowed_issuer_tenants"`
	DiscoveryURL         string             `json:"discovery_url"`
	AccessTokens         accessTokensConfig `json:"access_tokens"`
	// PostLogoutRedirectURI is where the IdP's end-session endpoint sends
	// the browser back after /v1/auth/logout's end_session_url.
	PostLogoutRedirectURI string `json:"post_logout_redirect_uri"`

	// PostLoginRedirectURIs are where the browser sign-in may send the
	// browser back to (exact URLs; the first is the default).
	PostLoginRedirectURIs []string `json:"post_login_redirect_uris"`

	// secret is the resolved client secret, from whichever source was set.
	secret string
	// roots is the pool built from CAFile, nil for the system roots.
	roots *x509.CertPool
	// tokenCacheBytes is the tenant's share of token_cache_mb; 0 before
	// validation, which newProvider takes as the default budget.
	tokenCacheBytes int
}

type tenantFeatures struct {
	Auth authFeatures `json:"auth"`
}

type authFeatures struct {
	PasswordGrantEnabled bool  `json:"password_grant_enabled"`
	RefreshTokenRotation *bool `json:"refresh_token_rotation"`
	RequirePKCE          *bool `json:"require_pkce"`
	RequireHandoffPKCE   *bool `json:"require_handoff_pkce"`
	// RefreshReplaySeconds is how long a refresh's answer is given again to
	// the same refresh token (nil: refreshReplayWindow's 10 s; 0: only to
	// the callers already waiting for it).
	RefreshReplaySeconds *int `json:"refresh_replay_seconds"`
}

// maxRefreshReplaySeconds bounds refresh_replay_seconds: the answer is a
// stolen token's prize for that long.
const maxRefreshReplaySeconds = 60

// refreshReplay is how long a refresh's answer is given again to the same
// refresh token: features.auth.refresh_replay_seconds, 10 s by default.
func (t *tenantConfig) refreshReplay() time.Duration {
	if r := t.Features.Auth.RefreshReplaySeconds; r != nil {
		return time.Duration(*r) * time.Second
	}
	return refreshReplayWindow
}

// requireHandoffPKCE reports whether GET /v1/auth/authorize refuses a
// sign-in without the app's code_challenge (the default): without it, a
// handoff made for one browser can be redeemed by another (login CSRF).
func (t *tenantConfig) requireHandoffPKCE() bool {
	r := t.Features.Auth.RequireHandoffPKCE
	return r == nil || *r
}

// rotateRefreshTokens reports whether a new refresh token from the IdP is
// passed on (the default) rather than the one the client sent.
func (t *tenantConfig) rotateRefreshTokens() bool {
	r := t.Features.Auth.RefreshTokenRotation
	return r == nil || *r
}

// requirePKCE reports whether POST /v1/auth/login refuses a code that comes
// without a code_verifier (the default; RFC 9700 §2.1.1).
func (t *tenantConfig) requirePKCE() bool {
	r := t.Features.Auth.RequirePKCE
	return r == nil || *r
}

// configError is an invalid configuration; its message names the field.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

const (
	defaultAddr     = "127.0.0.1:8080"
	defaultDatabase = "scaiwave.db"
)

var tenantIDPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`)

// loadConfig reads, decodes and validates the file at path. Every failure is
// a *configError whose message starts with the file or the field at fault.
func loadConfig(path string, getenv func(string) string) (*config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, configErrorf("config %s: %v", path, errors.Unwrap(err))
	}
	cfg, err := parseConfig(b, getenv)
	if err != nil {
		return nil, configErrorf("config %s: %v", path, err)
	}
	return cfg, nil
}

// parseConfig decodes and validates a configuration document.
func parseConfig(b []byte, getenv func(string) string) (*config, error) {
	// Tenants are decoded one by one so that a decoding error can name the
	// tenant's index, which encoding/json's field paths leave out.
	var top struct {
		config
		Tenants []json.RawMessage `json:"tenants"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&top); err != nil {
		return nil, describeJSONError("", err, b, reflect.TypeOf(top))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, configErrorf("unexpected data after the JSON object")
	}
	cfg := top.config
	for i, raw := range top.Tenants {
		var t tenantConfig
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return nil, describeJSONError(fmt.Sprintf("tenants[%d]", i), err, raw, reflect.TypeOf(t))
		}
		cfg.Tenants = append(cfg.Tenants, t)
	}
	if err := cfg.validate(getenv); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// describeJSONError turns a decoding error into a one-line message that names
// the field where encoding/json knows it, and where doc says it otherwise;
// at is the path of doc, decoded as typ, "" for the whole document.
func describeJSONError(at string, err error, doc []byte, typ reflect.Type) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := strings.Trim(at+"."+typeErr.Field, ".")
		if field == "" {
			return configErrorf("the configuration must be %s, not %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
		}
		return configErrorf("%s: must be %s, not %s", field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		line, col := lineColumn(doc, syntaxErr.Offset)
		return configErrorf("invalid JSON at line %d, column %d: %v", line, col, syntaxErr)
	case strings.HasPrefix(err.Error(), "json: unknown field ") && describeUnknownField(at, doc, typ) != nil:
		return describeUnknownField(at, doc, typ)
	case strings.HasPrefix(err.Error(), "json: unknown field ") && at != "":
		return configErrorf("%s: unknown field %s", at, strings.TrimPrefix(err.Error(), "json: unknown field "))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return configErrorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.EOF):
		return configErrorf("empty file")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return configErrorf("invalid JSON: unexpected end of file")
	}
	return configErrorf("invalid JSON: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "slice":
		return "a list"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	case "ptr":
		return "true or false"
	case "int", "int64":
		return "a whole number"
	}
	return "a " + k
}

// validate applies defaults and checks every field, stopping at the first
// problem.
func (c *config) validate(getenv func(string) string) error {
	if c.Addr != "" {
		if err := checkListenAddr(c.Addr); err != nil {
			return configErrorf("addr: %v", err)
		}
	}
	if c.MetricsAddr != "" {
		if err := checkListenAddr(c.MetricsAddr); err != nil {
			return configErrorf("metrics_addr: %v", err)
		}
	}
	if err := c.resolveDatabase(getenv); err != nil {
		return err
	}
	for i, s := range c.TrustedProxies {
		p, err := parsePrefix(s)
		if err != nil {
			return configErrorf("trusted_proxies[%d]: %q is not a CIDR or IP address", i, s)
		}
		c.trustedNets = append(c.trustedNets, p)
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	if len(c.Tenants) == 0 {
		return configErrorf("tenants: at least one tenant is required")
	}
	if err := c.validateMemory(); err != nil {
		return err
	}
	ids := map[string]int{}
	hosts := map[string]string{}
	for i := range c.Tenants {
		t := &c.Tenants[i]
		if err := t.validate(getenv); err != nil {
			return configErrorf("tenants[%d].%v", i, err)
		}
		if j, dup := ids[t.ID]; dup {
			return configErrorf("tenants[%d].id: %q is also the id of tenants[%d]", i, t.ID, j)
		}
		ids[t.ID] = i
		if len(c.Tenants) > 1 && len(t.Hosts) == 0 {
			return configErrorf("tenants[%d].hosts: required when there is more than one tenant", i)
		}
		for j, h := range t.Hosts {
			if other, dup := hosts[h]; dup {
				return configErrorf("tenants[%d].hosts[%d]: %q is also a host of tenant %q", i, j, h, other)
			}
			hosts[h] = t.ID
		}
	}
	return checkDistinctClients(c.Tenants)
}

// validate checks one tenant; its error message starts with the field name so
// that the caller can prefix the tenant's index.
func (t *tenantConfig) validate(getenv func(string) string) error {
	if !tenantIDPattern.MatchString(t.ID) {
		return configErrorf("id: required, 1-64 letters, digits, '.', '_' or '-'")
	}
	for j, h := range t.Hosts {
		norm, err := normalizeHost(h)
		if err != nil {
			return configErrorf("hosts[%d]: %v", j, err)
		}
		t.Hosts[j] = norm
	}
	if err := t.validateIssuer(); err != nil {
		return err
	}
	if t.ClientID == "" {
		return configErrorf("client_id: required")
	}
	if err := t.resolveSecret(getenv); err != nil {
		return err
	}
	if t.RedirectURI == "" {
		return configErrorf("redirect_uri: required (the URI registered at the IdP that receives the code)")
	}
	if u, err := url.Parse(t.RedirectURI); err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
		return configErrorf("redirect_uri: must be an absolute URL without a fragment")
	}
	if r := t.Features.Auth.RefreshReplaySeconds; r != nil && (*r < 0 || *r > maxRefreshReplaySeconds) {
		return configErrorf("features.auth.refresh_replay_seconds: must be from 0 to %d, not %d", maxRefreshReplaySeconds, *r)
	}
	if len(t.Scopes) == 0 {
		t.Scopes = []string{"openid", "profile", "email"}
	}
	for j, s := range t.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			return configErrorf("scopes[%d]: %q is not a valid scope", j, s)
		}
	}
	if !slices.Contains(t.Scopes, "openid") {
		return configErrorf("scopes: must contain \"openid\"")
	}
	if len(t.Audiences) == 0 {
		t.Audiences = []string{t.ClientID}
	}
	for j, a := range t.Audiences {
		if a == "" {
			return configErrorf("audiences[%d]: must not be empty", j)
		}
	}
	for j, o := range t.CORSOrigins {
		norm, err := normalizeOrigin(o)
		if err != nil {
			return configErrorf("cors_origins[%d]: %v", j, err)
		}
		t.CORSOrigins[j] = norm
	}
	if err := t.AccessTokens.validate(t.Issuer, getenv); err != nil {
		return err
	}
	if err := t.validateLogout(); err != nil {
		return err
	}
	if err := checkPostLoginRedirectURIs(t.PostLoginRedirectURIs); err != nil {
		return err
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return configErrorf("ca_file: %v", errors.Unwrap(err))
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return configErrorf("ca_file: %s holds no PEM certificate", printable(t.CAFile))
		}
		t.roots = pool
	}
	return nil
}

// resolveDatabase reads the database setting from the one source that is
// set. The value is never quoted in a message: it may hold a password.
func (c *config) resolveDatabase(getenv func(string) string) error {
	set := 0
	for _, s := range []string{c.Database, c.DatabaseURLFile, c.DatabaseURLEnv} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		return configErrorf("database: set only one of database, database_url_file and database_url_env")
	}
	switch {
	case c.DatabaseURLFile != "":
		b, err := os.ReadFile(c.DatabaseURLFile)
		if err != nil {
			return configErrorf("database_url_file: %v", errors.Unwrap(err))
		}
		c.Database = strings.TrimRight(string(b), "\r\n")
		if c.Database == "" {
			return configErrorf("database_url_file: %s is empty", printable(c.DatabaseURLFile))
		}
	case c.DatabaseURLEnv != "":
		c.Database = getenv(c.DatabaseURLEnv)
		if c.Database == "" {
			return configErrorf("database_url_env: environment variable %s is unset or empty", printable(c.DatabaseURLEnv))
		}
	}
	return nil
}

// resolveSecret reads the client secret from the one source that is set.
func (t *tenantConfig) resolveSecret(getenv func(string) string) error {
	set := 0
	for _, s := range []string{t.ClientSecret, t.ClientSecretFile, t.ClientSecretEnv} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		return configErrorf("client_secret: set only one of client_secret, client_secret_file and client_secret_env")
	}
	switch {
	case t.ClientSecret != "":
		t.secret = t.ClientSecret
	case t.ClientSecretFile != "":
		b, err := os.ReadFile(t.ClientSecretFile)
		if err != nil {
			// The path is not secret; the contents never appear in a message.
			return configErrorf("client_secret_file: %v", errors.Unwrap(err))
		}
		t.secret = strings.TrimRight(string(b), "\r\n")
		if t.secret == "" {
			return configErrorf("client_secret_file: %s is empty", printable(t.ClientSecretFile))
		}
	case t.ClientSecretEnv != "":
		t.secret = getenv(t.ClientSecretEnv)
		if t.secret == "" {
			return configErrorf("client_secret_env: environment variable %s is unset or empty", printable(t.ClientSecretEnv))
		}
	}
	return nil
}

// checkIssuer requires an absolute https URL (http only on a loopback host)
// without query or fragment, as OpenID Connect Discovery §3 does.
func checkIssuer(s string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	// "https://idp/?" and "https://idp/#" parse with an empty query and
	// fragment, but would still break the discovery URL built from them.
	if u.RawQuery != "" || u.ForceQuery || strings.Contains(s, "#") || u.User != nil {
		return errors.New("must not have a query, fragment or user info")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return errors.New("must be https unless the host is loopback")
		}
	default:
		return errors.New("must be https unless the host is loopback")
	}
	return nil
}

// isLoopbackHost reports whether host (no port) is localhost or a loopback IP.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// normalizeHost lowercases a host name and rejects ports, paths and blanks,
// since routing ignores the port of the Host header. An IPv6 literal may be
// given with or without brackets and is kept without them, the form
// tenantFor compares; what is inside brackets must be such a literal, so
// that a normalized host is accepted again as it is.
func normalizeHost(h string) (string, error) {
	h = strings.ToLower(strings.TrimSpace(h))
	if h == "" {
		return "", errors.New("must not be empty")
	}
	if inner, ok := strings.CutPrefix(h, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		if !ok || !isIPv6Literal(inner) {
			return "", fmt.Errorf("%q must be a bare host name, or an IPv6 address in brackets", h)
		}
		return inner, nil
	}
	if isIPv6Literal(h) {
		return h, nil
	}
	if strings.ContainsAny(h, "/:@ ") {
		return "", fmt.Errorf("%q must be a bare host name, without scheme, port or path", h)
	}
	// One trailing dot is the DNS root, as tenantFor treats it; more are
	// not a host name.
	if n := strings.TrimSuffix(h, "."); n != "" && !strings.HasSuffix(n, ".") {
		return n, nil
	}
	return "", fmt.Errorf("%q is not a host name", h)
}

// printable returns s as it is when every character prints, else quoted, so
// that a message stays one readable line whatever a name in the file holds.
func printable(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return s
	}
	return strconv.Quote(s)
}

// isIPv6Literal reports whether s is an IPv6 address without a zone.
func isIPv6Literal(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6() && a.Zone() == ""
}

// normalizeOrigin checks a CORS origin (scheme://host[:port], nothing else)
// and returns it in the form browsers send.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q must be an origin like https://app.example.com", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("%q must be host:port", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", addr)
	}
	return nil
}
