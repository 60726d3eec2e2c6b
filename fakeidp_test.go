package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Modes make one endpoint of the fake IdP misbehave.
const (
	modeOK      = ""
	modeDown    = "down"    // connection closed without an answer
	mode500     = "500"     // HTTP 500
	modeGarbage = "garbage" // 200 with a body that is not JSON
	modeSlow    = "slow"    // answers after fakeIDP.slow
	modeHuge    = "huge"    // 200 with a body over every limit
	modeHang    = "hang"    // holds the request until the client gives up, or fakeIDP.slow passes
)

// fakeIDP is an OpenID provider for tests that can be made to misbehave:
// wrong issuer, extra or hidden keys, down, slow, 500, garbage, and custom
// token answers. Its keys are made in the test.
type fakeIDP struct {
	t      testing.TB
	srv    *httptest.Server
	issuer string

	mu          sync.Mutex
	keys        []testKey
	extraJWKS   []json.RawMessage // published verbatim beside the keys
	discIssuer  string            // when set, discovery claims this issuer
	discExtra   map[string]any    // discovery members added or replaced
	caFile      string            // PEM of the https server's certificate, for ca_file
	discMode    string
	jwksMode    string
	tokenMode   string
	slow        time.Duration
	authMethods []string
	algs        []string
	// tokenFn answers the token endpoint; nil uses defaultToken.
	tokenFn func(form url.Values, r *http.Request) (int, any)
	// tokenHeader is added to every answer of the token endpoint.
	tokenHeader http.Header
	lastForm    url.Values
	lastBasic   [2]string
	// codes are the codes authorize issued, until redeemed.
	codes map[string]fakeCode
	// codeIDMods change the claims of the ID token a code redeems for.
	codeIDMods map[string]any

	// Introspection (RFC 7662) is in discovery only with introspect set.
	introspect            bool
	introspectMode        string
	introspectAuthMethods []string
	// introspectFn answers the introspection endpoint; nil answers the
	// opaque tokens made by opaqueToken, and active false to the rest.
	introspectFn        func(form url.Values, r *http.Request) (int, any)
	lastIntrospect      url.Values
	lastIntrospectBasic [2]string
	opaque              map[string]map[string]any // token → introspection answer
	userinfoMode        string
	// userinfoFn answers the userinfo endpoint for a bearer; nil answers
	// the opaque tokens' subjects with the tokens' names, 401 to the rest.
	userinfoFn func(bearer string) (int, any)

	// The revocation endpoint (RFC 7009), listed in discovery unless
	// noRevocation: how it misbehaves, the status it answers, the methods
	// discovery lists for it, and the requests it got.
	noRevocation  bool
	revokeMode    string
	revokeStatus  int // 0: 200
	revokeMethods []string
	revocations   []fakeRevocation
	// endSession lists an end_session_endpoint in discovery.
	endSession bool

	discHits, jwksHits, tokenHits, revokeHits atomic.Int64
	introspectHits, userinfoHits              atomic.Int64
	newConns                                  atomic.Int64 // connections accepted
	// inFlight and maxInFlight count requests being answered, every
	// endpoint together; cancelled counts the requests of modeHang whose
	// client gave up before the answer.
	inFlight, maxInFlight, cancelled atomic.Int64
}

const (
	testClientID     = "scaiwave"
	testClientSecret = "s3cret:&=+ %"
	testRedirectURI  = "https://app.example.com/v1/auth/login"
	testSubject      = "user-1"

	testReturnTo         = "https://app.example.com/signed-in"
	testReturnToQuery    = "https://app.example.com/cb?tab=home"
	testReturnToLoopback = "http://127.0.0.1:3000/cb"
)

// newFakeIDP starts a fake IdP on loopback with one RS256 key, kid "k1".
func newFakeIDP(t testing.TB) *fakeIDP {
	t.Helper()
	return startFakeIDP(t, false)
}

// newFakeIDPTLS is newFakeIDP over https, with an https issuer; its
// tenantConfig trusts the server's certificate through ca_file.
func newFakeIDPTLS(t testing.TB) *fakeIDP {
	t.Helper()
	return startFakeIDP(t, true)
}

func startFakeIDP(t testing.TB, useTLS bool) *fakeIDP {
	t.Helper()
	f := &fakeIDP{t: t, slow: 3 * time.Second}
	f.keys = []testKey{newTestKey(t, jose.RS256, "k1", 0)}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.newConns.Add(1)
		}
	}
	if useTLS {
		f.srv.StartTLS()
		f.caFile = filepath.Join(t.TempDir(), "idp-ca.pem")
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
		if err := os.WriteFile(f.caFile, pemBytes, 0o600); err != nil {
			t.Fatal(err)
		}
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.srv.Close)
	f.issuer = f.srv.URL
	return f
}

func (f *fakeIDP) set(fn func(f *fakeIDP)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeIDP) serve(w http.ResponseWriter, r *http.Request) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for m := f.maxInFlight.Load(); n > m && !f.maxInFlight.CompareAndSwap(m, n); m = f.maxInFlight.Load() {
	}
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		f.discHits.Add(1)
		f.mu.Lock()
		mode, iss, methods, algs, extra := f.discMode, f.discIssuer, f.authMethods, f.algs, f.discExtra
		noRevocation, revokeMethods, endSession := f.noRevocation, f.revokeMethods, f.endSession
		introspect, imethods := f.introspect, f.introspectAuthMethods
		f.mu.Unlock()
		if f.misbehave(w, r, mode) {
			return
		}
		if iss == "" {
			iss = f.issuer
		}
		doc := map[string]any{
			"issuer":                           iss,
			"authorization_endpoint":           f.issuer + "/authorize",
			"token_endpoint":                   f.issuer + "/token",
			"jwks_uri":                         f.issuer + "/jwks",
			"userinfo_endpoint":                f.issuer + "/userinfo",
			"code_challenge_methods_supported": []string{"S256"},
		}
		if methods != nil {
			doc["token_endpoint_auth_methods_supported"] = methods
		}
		if algs != nil {
			doc["id_token_signing_alg_values_supported"] = algs
		}
		if introspect {
			doc["introspection_endpoint"] = f.issuer + "/introspect"
		}
		if imethods != nil {
			doc["introspection_endpoint_auth_methods_supported"] = imethods
		}
		if !noRevocation {
			doc["revocation_endpoint"] = f.issuer + "/revoke"
		}
		if revokeMethods != nil {
			doc["revocation_endpoint_auth_methods_supported"] = revokeMethods
		}
		if endSession {
			doc["end_session_endpoint"] = f.issuer + "/logout?tenant=acme"
		}
		for k, v := range extra {
			doc[k] = v
		}
		writeTestJSON(w, 200, doc)
	case "/jwks":
		f.jwksHits.Add(1)
		f.mu.Lock()
		mode := f.jwksMode
		f.mu.Unlock()
		if f.misbehave(w, r, mode) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(f.jwksJSON())
	case "/token":
		f.tokenHits.Add(1)
		f.mu.Lock()
		mode, fn, th := f.tokenMode, f.tokenFn, f.tokenHeader
		f.mu.Unlock()
		for k, v := range th {
			w.Header()[k] = v
		}
		if f.misbehave(w, r, mode) {
			return
		}
		r.ParseForm()
		f.mu.Lock()
		f.lastForm = r.PostForm
		u, p, _ := r.BasicAuth()
		f.lastBasic = [2]string{u, p}
		f.mu.Unlock()
		if fn == nil {
			fn = f.defaultToken
		}
		status, body := fn(r.PostForm, r)
		w.Header().Set("Cache-Control", "no-store")
		writeTestJSON(w, status, body)
	case "/introspect":
		f.introspectHits.Add(1)
		f.mu.Lock()
		mode, fn := f.introspectMode, f.introspectFn
		f.mu.Unlock()
		if f.misbehave(w, r, mode) {
			return
		}
		r.ParseForm()
		f.mu.Lock()
		f.lastIntrospect = r.PostForm
		u, p, _ := r.BasicAuth()
		f.lastIntrospectBasic = [2]string{u, p}
		f.mu.Unlock()
		if fn == nil {
			fn = f.defaultIntrospect
		}
		status, body := fn(r.PostForm, r)
		writeTestJSON(w, status, body)
	case "/userinfo":
		f.userinfoHits.Add(1)
		f.mu.Lock()
		mode, fn := f.userinfoMode, f.userinfoFn
		f.mu.Unlock()
		if f.misbehave(w, r, mode) {
			return
		}
		if fn == nil {
			fn = f.defaultUserinfo
		}
		status, body := fn(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		writeTestJSON(w, status, body)
	case "/revoke":
		f.revokeHits.Add(1)
		f.mu.Lock()
		mode, status := f.revokeMode, f.revokeStatus
		f.mu.Unlock()
		if f.misbehave(w, r, mode) {
			return
		}
		r.ParseForm()
		u, p, _ := r.BasicAuth()
		f.mu.Lock()
		f.revocations = append(f.revocations, fakeRevocation{form: r.PostForm, basic: [2]string{u, p}})
		f.mu.Unlock()
		if status == 0 {
			status = 200
		}
		writeTestJSON(w, status, map[string]string{})
	default:
		http.NotFound(w, r)
	}
}

// maxBefore returns, once deadline is 100 ms away, the most requests the
// fake IdP has had in flight at once. Up to then no caller of a flood test
// has left, so no call was cancelled: the count is the cap at work alone.
// After it, a cancelled call may still look open to the IdP for as long as
// the close takes to reach it, which a loaded machine can stretch.
func (f *fakeIDP) maxBefore(deadline time.Time) <-chan int64 {
	c := make(chan int64, 1)
	go func() {
		time.Sleep(time.Until(deadline.Add(-100 * time.Millisecond)))
		c <- f.maxInFlight.Load()
	}()
	return c
}

// rawBody is a test answer written as it is, not as JSON.
type rawBody string

// opaqueToken makes a random opaque access token that the default
// introspection endpoint calls active, with answer claims for testSubject;
// mods change them (a nil value deletes the claim).
func (f *fakeIDP) opaqueToken(mods ...map[string]any) string {
	now := time.Now()
	answer := withMods(map[string]any{
		"active":             true,
		"iss":                f.issuer,
		"sub":                testSubject,
		"client_id":          testClientID,
		"scope":              "openid profile email",
		"token_type":         "Bearer",
		"exp":                now.Add(5 * time.Minute).Unix(),
		"iat":                now.Unix(),
		"name":               "Opaque User",
		"preferred_username": "ouser",
		"email":              "opaque.user@example.com",
	}, mods...)
	tok := "opq_" + rand.Text()
	f.mu.Lock()
	if f.opaque == nil {
		f.opaque = map[string]map[string]any{}
	}
	f.opaque[tok] = answer
	f.mu.Unlock()
	return tok
}

// registerOpaque makes tok, whatever its shape, a token the default
// introspection endpoint calls active, with opaqueToken's answer.
func (f *fakeIDP) registerOpaque(tok string) {
	src := f.opaqueToken()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opaque[tok] = f.opaque[src]
}

// defaultIntrospect answers the opaque tokens of opaqueToken, and active
// false to any other token.
func (f *fakeIDP) defaultIntrospect(form url.Values, r *http.Request) (int, any) {
	f.mu.Lock()
	answer, ok := f.opaque[form.Get("token")]
	f.mu.Unlock()
	if !ok {
		return 200, map[string]any{"active": false}
	}
	return 200, answer
}

// defaultUserinfo answers an opaque token of opaqueToken with its subject
// and a name of its own, and 401 to any other bearer.
func (f *fakeIDP) defaultUserinfo(bearer string) (int, any) {
	f.mu.Lock()
	answer, ok := f.opaque[bearer]
	f.mu.Unlock()
	if !ok {
		return 401, map[string]any{"error": "invalid_token"}
	}
	return 200, map[string]any{"sub": answer["sub"], "name": "Userinfo Name", "email": "from.userinfo@example.com"}
}

// fakeRevocation is one request the revocation endpoint got.
type fakeRevocation struct {
	form  url.Values
	basic [2]string // user and password of HTTP Basic, as sent (escaped)
}

// revoked returns the revocation requests so far.
func (f *fakeIDP) revoked() []fakeRevocation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRevocation(nil), f.revocations...)
}

// logoutToken is a valid back-channel logout token for testSubject in
// session "sess-1", typ logout+jwt, with a fresh jti; mods change the claims
// as for accessClaims.
func (f *fakeIDP) logoutToken(mods ...map[string]any) string {
	return signWith(f.t, f.key(), f.logoutClaims(mods...), map[jose.HeaderKey]any{"typ": "logout+jwt"})
}

// logoutClaims are valid logout token claims (OpenID Connect Back-Channel
// Logout 1.0 §2.4).
func (f *fakeIDP) logoutClaims(mods ...map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss":    f.issuer,
		"aud":    testClientID,
		"iat":    now.Unix(),
		"exp":    now.Add(2 * time.Minute).Unix(),
		"jti":    newUUID(),
		"sub":    testSubject,
		"sid":    "sess-1",
		"events": map[string]any{backchannelLogoutEvent: map[string]any{}},
	}
	return withMods(c, mods...)
}

// misbehave acts out a mode and reports whether it answered.
func (f *fakeIDP) misbehave(w http.ResponseWriter, r *http.Request, mode string) bool {
	switch mode {
	case modeDown:
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic("no hijacker")
		}
		c, _, _ := hj.Hijack()
		c.Close()
	case mode500:
		http.Error(w, "internal error", 500)
	case modeGarbage:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "<html>this is not json</html>")
	case modeSlow:
		time.Sleep(f.slow)
		return false
	case modeHang:
		// The server notices a client that went away only once it has
		// read the request body, as a real IdP does before working on it.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
			f.cancelled.Add(1)
			return true
		case <-time.After(f.slow):
			return false
		}
	case modeHuge:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"keys":[],"pad":"`+strings.Repeat("x", 2<<20)+`"}`)
	default:
		return false
	}
	return true
}

func (f *fakeIDP) jwksJSON() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var keys []json.RawMessage
	for _, k := range f.keys {
		if k.hidden {
			continue
		}
		b, err := json.Marshal(k.publicJWK())
		if err != nil {
			panic(err)
		}
		keys = append(keys, b)
	}
	keys = append(keys, f.extraJWKS...)
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

// key returns the fake IdP's current first signing key.
func (f *fakeIDP) key() testKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keys[0]
}

// addKey adds a signing key to the published set (unless hidden) and
// returns it.
func (f *fakeIDP) addKey(k testKey) testKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, k)
	return k
}

// accessClaims are valid access token claims for testSubject; mods change
// them (set a value to nil to delete the claim).
func (f *fakeIDP) accessClaims(mods ...map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss":                f.issuer,
		"sub":                testSubject,
		"aud":                testClientID,
		"azp":                testClientID,
		"exp":                now.Add(5 * time.Minute).Unix(),
		"iat":                now.Unix(),
		"name":               "Test User",
		"preferred_username": "tuser",
		"email":              "test.user@example.com",
	}
	return withMods(c, mods...)
}

// idClaims are valid ID token claims; nonce "" leaves it out.
func (f *fakeIDP) idClaims(nonce string, mods ...map[string]any) map[string]any {
	c := f.accessClaims()
	if nonce != "" {
		c["nonce"] = nonce
	}
	return withMods(c, mods...)
}

// withMods returns a copy of m with each of mods applied in turn: a nil
// value deletes the key, any other value sets it.
func withMods(m map[string]any, mods ...map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for _, mod := range mods {
		for k, v := range mod {
			if v == nil {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
	}
	return out
}

// accessToken is a valid access token signed with the first key.
func (f *fakeIDP) accessToken(mods ...map[string]any) string {
	return signWith(f.t, f.key(), f.accessClaims(mods...), nil)
}

// idToken is a valid ID token signed with the first key.
func (f *fakeIDP) idToken(nonce string, mods ...map[string]any) string {
	return signWith(f.t, f.key(), f.idClaims(nonce, mods...), nil)
}

// defaultToken answers like a friendly IdP: code "good-code", user
// alice/alice-pw and refresh token "rt-good" succeed (the refresh rotates to
// "rt-next"); everything else is invalid_grant.
func (f *fakeIDP) defaultToken(form url.Values, r *http.Request) (int, any) {
	ok := false
	switch form.Get("grant_type") {
	case "authorization_code":
		if c, issued := f.takeCode(form.Get("code")); issued {
			return f.redeemCode(c, form)
		}
		ok = form.Get("code") == "good-code"
	case "password":
		ok = form.Get("username") == "alice" && form.Get("password") == "alice-pw"
	case "refresh_token":
		ok = form.Get("refresh_token") == "rt-good"
	default:
		return 400, map[string]string{"error": "unsupported_grant_type"}
	}
	if !ok {
		return 400, map[string]string{"error": "invalid_grant", "error_description": "nope"}
	}
	// As real IdPs do, the ID token carries the at_hash of its access token.
	at := f.accessToken()
	return 200, map[string]any{
		"access_token":  at,
		"token_type":    "Bearer",
		"expires_in":    300,
		"refresh_token": "rt-next",
		"id_token":      f.idToken(form.Get("x-test-nonce"), map[string]any{"at_hash": atHashOf(f.t, f.key().alg, at)}),
	}
}

// tokAnswerFn is the type of fakeIDP.tokenFn.
type tokAnswerFn = func(url.Values, *http.Request) (int, any)

// tokAnswer makes the fake token endpoint answer status and body.
func tokAnswer(status int, body any) tokAnswerFn {
	return func(url.Values, *http.Request) (int, any) { return status, body }
}

// tokOAuthError is an RFC 6749 §5.2 error answer.
func tokOAuthError(status int, code string) tokAnswerFn {
	return tokAnswer(status, map[string]string{"error": code, "error_description": "refused by the test"})
}

// tokTokens is a good token response carrying idToken, none when "".
func (f *fakeIDP) tokTokens(idToken string) map[string]any {
	m := map[string]any{
		"access_token":  f.accessToken(),
		"token_type":    "Bearer",
		"expires_in":    300,
		"refresh_token": "rt-from-idp",
	}
	if idToken != "" {
		m["id_token"] = idToken
	}
	return m
}

// tenantConfig is a tenant pointed at this IdP with the password grant on.
func (f *fakeIDP) tenantConfig() tenantConfig {
	return tenantConfig{
		ID:           "acme",
		Issuer:       f.issuer,
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		RedirectURI:  testRedirectURI,
		CAFile:       f.caFile,
		CORSOrigins:  []string{"https://app.example.com"},
		// Most browser sign-in tests redeem handoffs without a verifier;
		// TestAuthorizeRequiresHandoffPKCE and the login CSRF test use the
		// default, which requires one.
		Features: tenantFeatures{Auth: authFeatures{PasswordGrantEnabled: true, RequireHandoffPKCE: new(false)}},

		PostLoginRedirectURIs: []string{testReturnTo, testReturnToQuery, testReturnToLoopback},
	}
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if raw, ok := v.(rawBody); ok {
		io.WriteString(w, string(raw))
		return
	}
	json.NewEncoder(w).Encode(v)
}

// fakeCode is what an issued code is bound to.
type fakeCode struct {
	nonce, challenge, redirectURI string
	idMods                        map[string]any // codeIDMods when it was taken
}

// authorize plays the IdP's authorization endpoint and a user who signs in:
// for an authorization URL the service made, it checks the request's
// parameters and returns a fresh code bound to its nonce, code_challenge
// and redirect_uri, which defaultToken redeems once, as a real IdP does.
func (f *fakeIDP) authorize(authURL string) string {
	f.t.Helper()
	u, err := url.Parse(authURL)
	if err != nil || u.Scheme+"://"+u.Host+u.Path != f.issuer+"/authorize" {
		f.t.Fatalf("authorization URL %q is not this IdP's authorization endpoint", authURL)
	}
	q := u.Query()
	for k, want := range map[string]string{"response_type": "code", "client_id": testClientID, "code_challenge_method": "S256"} {
		if q.Get(k) != want {
			f.t.Fatalf("authorization URL: %s = %q; want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge", "redirect_uri", "scope"} {
		if q.Get(k) == "" {
			f.t.Fatalf("authorization URL: no %s", k)
		}
	}
	code := "code-" + randomValue()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.codes == nil {
		f.codes = map[string]fakeCode{}
	}
	f.codes[code] = fakeCode{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirectURI: q.Get("redirect_uri")}
	return code
}

func (f *fakeIDP) takeCode(code string) (fakeCode, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.codes[code]
	delete(f.codes, code)
	c.idMods = f.codeIDMods
	return c, ok
}

// redeemCode answers a code exchange for an issued code: PKCE S256 and
// redirect_uri checked, the ID token carrying the code's nonce.
func (f *fakeIDP) redeemCode(c fakeCode, form url.Values) (int, any) {
	sum := sha256.Sum256([]byte(form.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
		return 400, map[string]string{"error": "invalid_grant", "error_description": "code_verifier does not match"}
	}
	if form.Get("redirect_uri") != c.redirectURI {
		return 400, map[string]string{"error": "invalid_grant", "error_description": "redirect_uri differs"}
	}
	return 200, f.tokTokens(f.idToken(c.nonce, c.idMods))
}
