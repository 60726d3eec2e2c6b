package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// devTestEnv is a dev IdP served over real HTTP, with a client that does not
// follow redirects.
type devTestEnv struct {
	idp    *devIDP
	srv    *httptest.Server
	client *http.Client
	clock  *testClock
}

// newDevTestEnv serves a dev IdP whose issuer is the server URL plus path.
func newDevTestEnv(t *testing.T, path string) *devTestEnv {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	idp, err := newDevIDP(srv.URL+path, "")
	if err != nil {
		t.Fatalf("newDevIDP: %v", err)
	}
	clock := &testClock{}
	idp.now = clock.now
	mux.Handle(path+"/", idp.Handler())
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &devTestEnv{idp: idp, srv: srv, client: client, clock: clock}
}

func (e *devTestEnv) get(t *testing.T, rawURL string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return e.do(t, req)
}

func (e *devTestEnv) postForm(t *testing.T, rawURL string, form url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	return e.do(t, req)
}

func (e *devTestEnv) do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// token posts to the token endpoint with client_secret_basic and decodes the JSON answer.
func (e *devTestEnv) token(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(devClientID+":"+devClientSecret)))
	return e.tokenWith(t, form, h)
}

func (e *devTestEnv) tokenWith(t *testing.T, form url.Values, h http.Header) (int, map[string]any) {
	t.Helper()
	resp, body := e.postForm(t, e.idp.issuer+"/token", form, h)
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("POST /token Cache-Control = %q; want no-store", cc)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("POST /token Content-Type = %q; want application/json", ct)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("POST /token: %v in %q", err, body)
	}
	return resp.StatusCode, m
}

func devWantOAuthError(t *testing.T, what string, status int, m map[string]any, wantStatus int, wantErr string) {
	t.Helper()
	if status != wantStatus || m["error"] != wantErr {
		t.Errorf("%s = %d %v; want %d %s", what, status, m["error"], wantStatus, wantErr)
	}
}

// authorizeParams is a valid authorization request with PKCE S256 for verifier.
func (e *devTestEnv) authorizeParams(verifier string) url.Values {
	sum := sha256.Sum256([]byte(verifier))
	return url.Values{
		"client_id":             {devClientID},
		"redirect_uri":          {"http://127.0.0.1:9999/callback?app=1"},
		"response_type":         {"code"},
		"scope":                 {"openid profile email offline_access"},
		"state":                 {"st-123"},
		"nonce":                 {"n-456"},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
}

// login posts credentials with the authorization request and returns the Location.
func (e *devTestEnv) login(t *testing.T, params url.Values, username, password string) *url.URL {
	t.Helper()
	form := url.Values{"username": {username}, "password": {password}}
	for k, v := range params {
		form[k] = v
	}
	resp, body := e.postForm(t, e.idp.issuer+"/authorize", form, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /authorize = %d; want 303: %s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// code runs the browser part of the code flow for alice and returns the code.
func (e *devTestEnv) code(t *testing.T, params url.Values) string {
	t.Helper()
	code := e.login(t, params, "alice", "alice-password").Query().Get("code")
	if code == "" {
		t.Fatal("no code in the redirect")
	}
	return code
}

const devTestVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-with-more-entropy"

func devAlice(t *testing.T) devUser {
	t.Helper()
	for _, u := range devUsers() {
		if u.Username == "alice" {
			return u
		}
	}
	t.Fatal("no alice")
	return devUser{}
}

// devVerify checks a token's signature with the IdP's published JWKS and its typ.
func devVerify(t *testing.T, e *devTestEnv, raw, wantTyp string, claims any) {
	t.Helper()
	_, body := e.get(t, e.idp.issuer+"/jwks", nil)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatalf("jwks: %v", err)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	h := tok.Headers[0]
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS", h.KeyID, len(keys))
	}
	if typ := h.ExtraHeaders[jose.HeaderType]; typ != wantTyp {
		t.Errorf("typ = %v; want %s", typ, wantTyp)
	}
	if err := tok.Claims(keys[0].Key, claims); err != nil {
		t.Fatalf("verify token: %v", err)
	}
}

func TestDevIDPDiscovery(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"", "/dev/idp"} {
		e := newDevTestEnv(t, path)
		resp, body := e.get(t, e.idp.issuer+"/.well-known/openid-configuration", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET discovery (%q) = %d", path, resp.StatusCode)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatal(err)
		}
		if doc["issuer"] != e.srv.URL+path {
			t.Errorf("issuer = %v; want %s", doc["issuer"], e.srv.URL+path)
		}
		for field, suffix := range map[string]string{
			"authorization_endpoint": "/authorize", "token_endpoint": "/token", "userinfo_endpoint": "/userinfo",
			"jwks_uri": "/jwks", "end_session_endpoint": "/logout",
		} {
			if doc[field] != e.srv.URL+path+suffix {
				t.Errorf("%s = %v; want %s", field, doc[field], e.srv.URL+path+suffix)
			}
		}
		for field, want := range map[string]string{
			"response_types_supported":              "code",
			"response_modes_supported":              "query form_post",
			"grant_types_supported":                 "authorization_code password refresh_token",
			"subject_types_supported":               "public",
			"id_token_signing_alg_values_supported": "RS256",
			"token_endpoint_auth_methods_supported": "client_secret_basic client_secret_post",
			"code_challenge_methods_supported":      "S256",
			"scopes_supported":                      "openid profile email offline_access",
		} {
			var got []string
			list, _ := doc[field].([]any)
			for _, v := range list {
				got = append(got, v.(string))
			}
			if strings.Join(got, " ") != want {
				t.Errorf("%s = %v; want %s", field, doc[field], want)
			}
		}
		if _, ok := doc["claims_supported"].([]any); !ok {
			t.Errorf("claims_supported missing")
		}
		// Every advertised GET endpoint is routed under the issuer path.
		if resp, _ := e.get(t, doc["jwks_uri"].(string), nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET jwks_uri = %d", resp.StatusCode)
		}
	}
}

func TestDevIDPNewRejectsBadIssuer(t *testing.T) {
	t.Parallel()
	for _, issuer := range []string{"", "/dev/idp", "ftp://x/", "http://x/a?b", "http://x/a#f", "http://x/{a}", "http://x//a", "http://x/a/../b"} {
		if _, err := newDevIDP(issuer, ""); err == nil {
			t.Errorf("newDevIDP(%q) succeeded; want an error", issuer)
		}
	}
}

func TestDevIDPJWKSVerifiesMintedToken(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "")
	resp, body := e.get(t, e.srv.URL+"/jwks", nil)
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=300") {
		t.Errorf("GET /jwks Cache-Control = %q; want max-age=300", cc)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatal(err)
	}
	_, kid := e.idp.signingKey()
	if len(set.Keys) != 1 {
		t.Fatalf("jwks has %d keys; want 1", len(set.Keys))
	}
	k := set.Keys[0]
	if _, ok := k.Key.(*rsa.PublicKey); !ok || k.KeyID != kid || k.Use != "sig" || k.Algorithm != "RS256" {
		t.Errorf("jwk = %T kid %q use %q alg %q; want RSA public, %q, sig, RS256", k.Key, k.KeyID, k.Use, k.Algorithm, kid)
	}
	if !strings.Contains(body, `"kty":"RSA"`) {
		t.Errorf("jwks lacks kty RSA: %s", body)
	}

	alice := devAlice(t)
	var c map[string]any
	devVerify(t, e, e.idp.mintAccessToken(alice, time.Minute), "at+jwt", &c)
	for k, want := range map[string]any{
		"iss": e.srv.URL, "sub": alice.Subject, "aud": devClientID, "azp": devClientID, "scope": devDefaultScope,
		"name": "Alice Example", "preferred_username": "alice", "email": "alice@example.com", "email_verified": true,
	} {
		if c[k] != want {
			t.Errorf("access token %s = %v; want %v", k, c[k], want)
		}
	}
	if c["jti"] == "" || c["nbf"] != nil || c["exp"].(float64)-c["iat"].(float64) != 60 {
		t.Errorf("access token jti/nbf/exp/iat = %v/%v/%v/%v", c["jti"], c["nbf"], c["exp"], c["iat"])
	}

	var id map[string]any
	devVerify(t, e, e.idp.mintIDToken(alice, "n1", time.Minute), "JWT", &id)
	if id["nonce"] != "n1" || id["aud"] != devClientID || id["auth_time"] == nil {
		t.Errorf("id token claims = %v", id)
	}
}

func TestDevIDPUserinfo(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "")
	alice := devAlice(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, kid := e.idp.signingKey()
	forged := func() string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: other, KeyID: kid}},
			(&jose.SignerOptions{}).WithType("at+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		raw, err := jwt.Signed(s).Claims(map[string]any{"iss": e.idp.issuer, "sub": alice.Subject, "scope": "openid",
			"exp": now.Add(time.Minute).Unix(), "iat": now.Unix()}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}

	resp, body := e.get(t, e.srv.URL+"/userinfo", http.Header{"Authorization": {"Bearer " + e.idp.mintAccessToken(alice, time.Minute)}})
	var info map[string]any
	json.Unmarshal([]byte(body), &info)
	if resp.StatusCode != http.StatusOK || info["sub"] != alice.Subject || info["name"] != "Alice Example" ||
		info["email"] != "alice@example.com" || info["email_verified"] != true || info["preferred_username"] != "alice" {
		t.Errorf("GET /userinfo = %d %s", resp.StatusCode, body)
	}
	// POST works too.
	if resp, _ := e.postForm(t, e.srv.URL+"/userinfo", url.Values{}, http.Header{"Authorization": {"Bearer " + e.idp.mintAccessToken(alice, time.Minute)}}); resp.StatusCode != http.StatusOK {
		t.Errorf("POST /userinfo = %d; want 200", resp.StatusCode)
	}

	for name, tok := range map[string]string{
		"garbage":       "not-a-jwt",
		"expired":       e.idp.mintAccessToken(alice, -time.Minute),
		"id token":      e.idp.mintIDToken(alice, "", time.Minute),
		"other key":     forged(),
		"truncated sig": e.idp.mintAccessToken(alice, time.Minute) + "x",
	} {
		resp, _ := e.get(t, e.srv.URL+"/userinfo", http.Header{"Authorization": {"Bearer " + tok}})
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
			t.Errorf("GET /userinfo (%s) = %d %q; want 401 invalid_token", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	resp, _ = e.get(t, e.srv.URL+"/userinfo", nil)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("GET /userinfo (no token) = %d %q; want 401 Bearer", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestDevIDPKeyPersistence(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	a, err := newDevIDP("http://127.0.0.1:8080/dev/idp", dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newDevIDP("http://127.0.0.1:8080/dev/idp", dir)
	if err != nil {
		t.Fatal(err)
	}
	_, kidA := a.signingKey()
	_, kidB := b.signingKey()
	if kidA != kidB {
		t.Errorf("kid after restart = %q; want %q", kidB, kidA)
	}
	if _, err := b.verifyAccessToken(a.mintAccessToken(devAlice(t), time.Minute)); err != nil {
		t.Errorf("token from before the restart: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, devKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v; want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("key dir holds %d entries; want only the key file", len(entries))
	}

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, devKeyFile), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newDevIDP("http://127.0.0.1:8080", bad); err == nil {
		t.Errorf("newDevIDP with a garbage key file succeeded; want an error")
	}
}

func TestDevIDPRoutes(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "/dev/idp")
	tests := []struct {
		method, path string
		wantStatus   int
	}{
		{"GET", "/dev/idp/nope", 404},
		{"GET", "/dev/idp/token", 405},
		{"DELETE", "/dev/idp/jwks", 405},
		{"GET", "/dev/idp/logout", 200},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, e.srv.URL+tt.path, nil)
		if resp, _ := e.do(t, req); resp.StatusCode != tt.wantStatus {
			t.Errorf("%s %s = %d; want %d", tt.method, tt.path, resp.StatusCode, tt.wantStatus)
		}
	}

}

// Test-only hooks on the development IdP.

// signingKey returns the private key and its kid, for tests that forge tokens.
func (d *devIDP) signingKey() (*rsa.PrivateKey, string) { return d.key, d.kid }

// tokenRequests reports how many requests the token endpoint has served.
func (d *devIDP) tokenRequests() int64 { return d.tokenCalls.Load() }

// mintAccessToken returns a valid access token for u with the default scope,
// valid for ttl from now (a negative ttl makes an expired one). It panics if
// signing fails, which only a broken key can cause.
func (d *devIDP) mintAccessToken(u devUser, ttl time.Duration) string {
	now := d.now()
	tok, err := d.signAccessToken(u, devDefaultScope, now, now, ttl)
	if err != nil {
		panic("dev idp: " + err.Error())
	}
	return tok
}

// mintIDToken returns a valid ID token for u with the default scope's claims,
// carrying nonce when it is not empty, valid for ttl from now. It panics if
// signing fails, which only a broken key can cause.
func (d *devIDP) mintIDToken(u devUser, nonce string, ttl time.Duration) string {
	now := d.now()
	tok, err := d.signIDToken(u, devDefaultScope, nonce, "", now, now, ttl)
	if err != nil {
		panic("dev idp: " + err.Error())
	}
	return tok
}
