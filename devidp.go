package main

// The embedded development OpenID Connect provider behind -dev and the
// handler tests. It plays a standards-following IdP (Keycloak-like) for one
// confidential client and two demo users, with every state in memory, and
// shares no code with the service. This file holds its type, users, keys,
// discovery and routes, and what its endpoints share; devidp_authorize.go
// the authorization endpoint and login, devidp_token.go the token endpoint,
// its tokens, userinfo and logout; devidp_introspect.go the opaque access
// tokens of a second client and the introspection endpoint; devidp_pages.go
// the HTML pages.

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// devClientID and devClientSecret are the confidential client the dev IdP knows.
const (
	devClientID     = "scaiwave-dev"
	devClientSecret = "scaiwave-dev-secret"
)

const (
	devKeyFile      = "scaiwave-dev-idp-key.pem"
	devKeyBits      = 2048
	devCodeTTL      = 60 * time.Second
	devMaxBody      = 64 << 10
	devMaxTokenLen  = 16 << 10
	devDefaultScope = "openid profile email"
	devSweepEvery   = time.Minute
	devBasicRealm   = `Basic realm="scaiwave-dev-idp", charset="UTF-8"`
	devUnreserved   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
	devBase64URL    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	devAutoSubmitJS = "document.forms[0].submit()"
)

// devUser is a demo account.
type devUser struct {
	Username, Password, Subject, Name, Email string
}

// devUsers returns the demo accounts, alice (alice-password) and bob
// (bob-password). Their subjects are fixed so that participants created in a
// dev database survive a restart.
func devUsers() []devUser {
	return []devUser{
		{Username: "alice", Password: "alice-password", Subject: "2f1c6b8e-4a7d-4e0b-9c35-8d21f0a6b7c4", Name: "Alice Example", Email: "alice@example.com"},
		{Username: "bob", Password: "bob-password", Subject: "7b9e2d41-c3a8-4f56-a0e7-1d4c9b8f3e62", Name: "Bob Example", Email: "bob@example.com"},
	}
}

// devIDP is an OpenID Connect provider for two confidential clients
// (devClientID, whose access tokens are JWTs, and devOpaqueClientID, whose
// are opaque) and the devUsers accounts: authorization code (with PKCE S256,
// devClientID only), password and rotating refresh token grants, RS256 tokens
// signed with one RSA key, and introspection. Codes, opaque access tokens and
// refresh tokens live in memory only.
type devIDP struct {
	// Tests may set these before the handler serves its first request.
	now        func() time.Time
	accessTTL  time.Duration // access and ID tokens
	refreshTTL time.Duration
	// backchannelLogoutURI, when set, is sent a back-channel logout token
	// when a user signs out at the end-session endpoint;
	// postLogoutRedirectURIs are the client's registered return addresses.
	backchannelLogoutURI   string
	postLogoutRedirectURIs []string

	issuer     string // exactly as configured: the iss of every token
	base       string // issuer without a trailing slash, prefix of every endpoint URL
	basePath   string // the issuer's path without a trailing slash, prefix of every route
	key        *rsa.PrivateKey
	kid        string
	atSigner   jose.Signer // typ at+jwt (RFC 9068)
	idSigner   jose.Signer // typ JWT
	ltSigner   jose.Signer // typ logout+jwt (back-channel logout)
	users      []devUser
	discovery  []byte
	jwks       []byte
	tokenCalls atomic.Int64

	opaque devOpaqueTokens // access tokens of devOpaqueClientID

	mu        sync.Mutex
	codes     map[string]*devCode
	refresh   map[string]*devGrant
	nextSweep time.Time
	// revokedAccess holds the jti of access tokens revoked before their
	// exp (at the revocation endpoint), until that exp.
	revokedAccess map[string]time.Time
}

// devCode is an issued authorization code. A used code is kept until it
// expires so that a replay can be told apart from a made-up code.
type devCode struct {
	req      devAuthRequest
	user     devUser
	authTime time.Time
	expires  time.Time
	used     bool
	session  *devSession // set once tokens were issued from the code
}

// devSession ties together the refresh tokens descending from one sign-in,
// so a replayed code or a sign-out can revoke them all; its id is the sid
// of the tokens issued in it. Guarded by devIDP.mu.
type devSession struct {
	id      string
	revoked bool
}

func newDevSession() *devSession { return &devSession{id: devRandom(12)} }

// devGrant is what a refresh token stands for.
type devGrant struct {
	clientID string
	user     devUser
	scope    string // as originally granted; a refresh may narrow the access token's, never this
	authTime time.Time
	expires  time.Time
	session  *devSession
}

// newDevIDP makes an IdP whose issuer is exactly issuer, an absolute http(s)
// URL whose path (if any) is made of unreserved characters. With keyDir set,
// the RSA signing key is read from keyDir/scaiwave-dev-idp-key.pem, or
// generated and written there (mode 0600) so tokens survive a restart; with
// keyDir empty the key lives in memory only. Errors name what was wrong with
// the issuer or the key file.
func newDevIDP(issuer, keyDir string) (*devIDP, error) {
	basePath, err := devIssuerPath(issuer)
	if err != nil {
		return nil, err
	}
	key, err := devLoadOrCreateKey(keyDir)
	if err != nil {
		return nil, err
	}
	kid, err := devKeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	d := &devIDP{
		now:        time.Now,
		accessTTL:  5 * time.Minute,
		refreshTTL: 8 * time.Hour,
		issuer:     issuer,
		base:       strings.TrimSuffix(issuer, "/"),
		basePath:   basePath,
		key:        key,
		kid:        kid,
		users:      devUsers(),
		codes:      map[string]*devCode{},
		refresh:    map[string]*devGrant{},

		revokedAccess: map[string]time.Time{},
	}
	if d.atSigner, err = devNewSigner(key, kid, "at+jwt"); err != nil {
		return nil, err
	}
	if d.idSigner, err = devNewSigner(key, kid, "JWT"); err != nil {
		return nil, err
	}
	if d.ltSigner, err = devNewSigner(key, kid, "logout+jwt"); err != nil {
		return nil, err
	}
	if d.discovery, err = json.Marshal(d.discoveryDocument()); err != nil {
		return nil, fmt.Errorf("encode dev idp discovery: %w", err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"}}}
	if d.jwks, err = json.Marshal(set); err != nil {
		return nil, fmt.Errorf("encode dev idp jwks: %w", err)
	}
	return d, nil
}

// devIssuerPath checks that issuer is an absolute http(s) URL without user
// info, query or fragment and returns its path without a trailing slash, the
// prefix of every route. The path may hold only unreserved characters so it
// can go into ServeMux patterns as it is.
func devIssuerPath(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("dev idp issuer %q: must be an absolute http(s) URL without user info, query or fragment", issuer)
	}
	p := strings.TrimSuffix(u.EscapedPath(), "/")
	for _, seg := range strings.Split(p, "/")[1:] {
		if seg == "" || seg == "." || seg == ".." || strings.Trim(seg, devUnreserved) != "" {
			return "", fmt.Errorf("dev idp issuer %q: path segments must be non-empty and hold only letters, digits and -._~", issuer)
		}
	}
	return p, nil
}

// devLoadOrCreateKey returns the signing key kept in dir, creating it on first
// use; with dir empty it returns a fresh in-memory key.
func devLoadOrCreateKey(dir string) (*rsa.PrivateKey, error) {
	if dir == "" {
		return rsa.GenerateKey(rand.Reader, devKeyBits)
	}
	path := filepath.Join(dir, devKeyFile)
	key, err := devReadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create dev idp key dir: %w", err)
	}
	if key, err = rsa.GenerateKey(rand.Reader, devKeyBits); err != nil {
		return nil, fmt.Errorf("generate dev idp key: %w", err)
	}
	err = devWriteKey(path, key)
	if errors.Is(err, fs.ErrExist) {
		// Another process created the key meanwhile: sign with the one on disk.
		return devReadKey(path)
	}
	return key, err
}

// devReadKey reads an RSA private key of at least 2048 bits from a PEM file
// (PKCS #8 or PKCS #1). A missing file gives an error matching fs.ErrNotExist.
func devReadKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read dev idp key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("dev idp key %s: no PEM block", path)
	}
	var parsed any
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("dev idp key %s: unexpected PEM block %q", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("dev idp key %s: %w", path, err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("dev idp key %s: not an RSA key", path)
	}
	if key.N.BitLen() < devKeyBits {
		return nil, fmt.Errorf("dev idp key %s: RSA key has %d bits, want at least %d", path, key.N.BitLen(), devKeyBits)
	}
	return key, nil
}

// devWriteKey writes key to path with mode 0600, failing with an error
// matching fs.ErrExist when path already exists. The file appears complete
// or not at all.
func devWriteKey(path string, key *rsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode dev idp key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".scaiwave-dev-idp-key-*") // mode 0600
	if err != nil {
		return fmt.Errorf("write dev idp key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write dev idp key: %w", err)
	}
	// Link, unlike Rename, refuses to replace a key another process already uses.
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("write dev idp key: %w", err)
	}
	return nil
}

// devKeyID is the RFC 7638 thumbprint of pub: stable for a key, so a restart
// with the same key file keeps the same kid.
func devKeyID(pub *rsa.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("dev idp key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

func devNewSigner(key *rsa.PrivateKey, kid, typ string) (jose.Signer, error) {
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		return nil, fmt.Errorf("dev idp signer: %w", err)
	}
	return s, nil
}

// Handler serves every endpoint at the issuer's path plus its suffix, so it
// can be mounted under that path on a bigger mux or be a whole server. Unknown
// paths get 404, known paths with another method 405.
func (d *devIDP) Handler() http.Handler {
	p := d.basePath
	mux := http.NewServeMux()
	mux.Handle("GET "+p+"/.well-known/openid-configuration", devServeCached(d.discovery))
	mux.Handle("GET "+p+"/jwks", devServeCached(d.jwks))
	mux.Handle("GET "+p+"/authorize", d.handleAuthorize())
	mux.Handle("POST "+p+"/authorize", d.handleLogin())
	mux.Handle("POST "+p+"/token", d.handleToken())
	mux.Handle("POST "+p+"/introspect", d.handleIntrospect())
	userinfo := d.handleUserinfo()
	mux.Handle("GET "+p+"/userinfo", userinfo)
	mux.Handle("POST "+p+"/userinfo", userinfo)
	logout := d.handleEndSession()
	mux.Handle("GET "+p+"/logout", logout)
	mux.Handle("POST "+p+"/logout", logout)
	mux.Handle("POST "+p+"/revoke", d.handleRevoke())
	return mux
}

func (d *devIDP) discoveryDocument() map[string]any {
	return map[string]any{
		"issuer":                                d.issuer,
		"authorization_endpoint":                d.base + "/authorize",
		"token_endpoint":                        d.base + "/token",
		"userinfo_endpoint":                     d.base + "/userinfo",
		"jwks_uri":                              d.base + "/jwks",
		"end_session_endpoint":                  d.base + "/logout",
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query", "form_post"},
		"grant_types_supported":                 []string{"authorization_code", "password", "refresh_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{string(jose.RS256)},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":      []string{"S256"},
		"dpop_signing_alg_values_supported":     []string{"ES256", "ES384", "RS256", "PS256", "EdDSA"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"claims_supported": []string{"iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "at_hash", "sid",
			"name", "preferred_username", "email", "email_verified"},
		"authorization_response_iss_parameter_supported": true,
		// Discovery defaults request_uri_parameter_supported to true: say no.
		"request_parameter_supported":     false,
		"request_uri_parameter_supported": false,
		"claims_parameter_supported":      false,

		// Sign-out: RFC 7009 revocation and OpenID Connect Back-Channel Logout.
		"revocation_endpoint":                        d.base + "/revoke",
		"revocation_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"backchannel_logout_supported":               true,
		"backchannel_logout_session_supported":       true,

		// Introspection (RFC 7662), for the opaque tokens of devOpaqueClientID.
		"introspection_endpoint":                        d.base + "/introspect",
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	}
}

// devServeCached serves a fixed, public JSON document that clients may cache.
func devServeCached(body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(body)
	})
}

// --- shared by the endpoints ---

// devOAuthError is an OAuth 2.0 error answer. Descriptions are fixed text,
// never an echo of the request, so they stay within RFC 6749's character set.
type devOAuthError struct {
	status int
	code   string
	desc   string
}

func (e *devOAuthError) Error() string { return e.code + ": " + e.desc }

func devInvalidRequest(desc string) error {
	return &devOAuthError{http.StatusBadRequest, "invalid_request", desc}
}

func devInvalidGrant(desc string) error {
	return &devOAuthError{http.StatusBadRequest, "invalid_grant", desc}
}

func devInvalidScope(desc string) error {
	return &devOAuthError{http.StatusBadRequest, "invalid_scope", desc}
}

// devLoopbackURL reports whether raw is an absolute http(s) URL without user
// info or fragment on a loopback host, as RFC 8252 allows native apps (any
// port, any path).
func devLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.IsLoopback()
}

// devParseScope normalises a space-delimited scope (duplicates dropped, order
// kept) and refuses values the IdP does not offer with invalid_scope.
func devParseScope(s string) (string, error) {
	var out []string
	for _, w := range strings.Fields(s) {
		switch w {
		case "openid", "profile", "email", "offline_access":
		default:
			return "", devInvalidScope("unsupported scope value")
		}
		if !devHasWord(strings.Join(out, " "), w) {
			out = append(out, w)
		}
	}
	return strings.Join(out, " "), nil
}

// devHasWord reports whether the space-delimited list holds word.
func devHasWord(list, word string) bool {
	for _, w := range strings.Fields(list) {
		if w == word {
			return true
		}
	}
	return false
}

// checkPassword returns the user with these credentials. Both comparisons are
// constant-time and always made.
func (d *devIDP) checkPassword(username, password string) (devUser, bool) {
	for _, u := range d.users {
		nameOK := devEqual(u.Username, username)
		passOK := devEqual(u.Password, password)
		if nameOK && passOK {
			return u, true
		}
	}
	return devUser{}, false
}

func (d *devIDP) userBySubject(sub string) (devUser, bool) {
	for _, u := range d.users {
		if u.Subject == sub {
			return u, true
		}
	}
	return devUser{}, false
}

func devEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// devRandom returns n random bytes, base64url-encoded.
func devRandom(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails since Go 1.24
	return base64.RawURLEncoding.EncodeToString(b)
}

// sweepLocked drops expired codes and dead refresh tokens so memory stays
// bounded, at most once a minute so a busy endpoint doesn't scan per request.
func (d *devIDP) sweepLocked(now time.Time) {
	if now.Before(d.nextSweep) {
		return
	}
	d.nextSweep = now.Add(devSweepEvery)
	for k, c := range d.codes {
		if !now.Before(c.expires) {
			delete(d.codes, k)
		}
	}
	for k, g := range d.refresh {
		if !now.Before(g.expires) || g.session.revoked {
			delete(d.refresh, k)
		}
	}
	for jti, exp := range d.revokedAccess {
		if !now.Before(exp) {
			delete(d.revokedAccess, jti)
		}
	}
}
