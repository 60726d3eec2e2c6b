package interop

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// cacheSeconds is access_tokens.cache_seconds in the service's config: a
// token revoked at the provider must be refused within this many seconds.
const cacheSeconds = 1

// idp is a running provider as the scenario sees it.
type idp struct {
	issuer string
	// introspection is where the harness (and, for Hydra, the service)
	// asks about a token: discovery's endpoint, or Hydra's admin one.
	introspection string
	// logoutTokens receives each back-channel logout token the provider
	// sent, with the service's answer; nil when the provider sends none.
	logoutTokens chan delivery
}

// tenantConfig is the service's tenant for a peer: the access_tokens block
// (SPEC.md, "Access tokens that are not JWTs") with validation auto and a
// short cache so that revocation shows within seconds.
func (p *peer) tenantConfig(d *idp, redirectURI, returnTo string) map[string]any {
	at := map[string]any{
		"validation":    "auto",
		"cache_seconds": cacheSeconds,
	}
	if p.serviceIntrospects {
		at["introspection_endpoint"] = d.introspection
	}
	t := map[string]any{
		"id":            p.tenantID,
		"issuer":        d.issuer,
		"client_id":     p.clientID,
		"client_secret": p.clientSecret,
		"redirect_uri":  redirectURI,
		"scopes":        p.scopes,
		"features": map[string]any{"auth": map[string]any{
			"refresh_token_rotation": true,
			"password_grant_enabled": p.passwordGrant,
		}},
		"access_tokens": at,
		// Where the browser sign-in (browser_chromium) returns: a path the
		// service does not serve; the browser only needs to arrive there.
		"post_login_redirect_uris": []string{returnTo},
	}
	if len(p.audiences) > 0 {
		t["audiences"] = p.audiences
	}
	return t
}

// session is what a sign-in through the service gave, with the browser
// (cookie jar) that signed in at the provider.
type session struct {
	access, refresh, idToken string
	browser                  *browser
}

// env is one provider and one service set up for it; the steps of the
// scenario share it, in order.
type env struct {
	p           *peer
	idp         *idp
	disc        discovery
	svc         *service
	redirectURI string
	returnTo    string // the tenant's post_login_redirect_uris[0]

	sess        *session // from code_flow_pkce, replaced by refresh_rotation
	idTokens    []string // every ID token relayed for sess, first one first
	logoutToken string   // from backchannel_logout
}

func setup(t *testing.T, p *peer) *env {
	t.Helper()
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	redirectURI := base + "/v1/auth/login"
	d := p.start(t, p, base, redirectURI)
	t.Logf("provider issuer %s", d.issuer)
	disc := fetchDiscovery(t, d.issuer)
	if d.introspection == "" {
		d.introspection = disc.IntrospectionEndpoint
	}
	returnTo := base + "/app/signed-in"
	svc := startService(t, port, p.tenantConfig(d, redirectURI, returnTo))
	return &env{p: p, idp: d, disc: disc, svc: svc, redirectURI: redirectURI, returnTo: returnTo}
}

// login signs in at the provider with PKCE S256 and posts the code to the
// service's /v1/auth/login, as a native app or SPA would.
func (e *env) login(t *testing.T) *session {
	t.Helper()
	az := e.authorize(t, e.p.authParams)
	a := callAPI(t, e.svc, "/v1/auth/login", az.form, "")
	if a.status != http.StatusOK {
		t.Fatalf("/v1/auth/login: want 200, got %s", a.describe())
	}
	s := checkTokenData(t, "/v1/auth/login", a)
	describeAccessToken(t, "ID token", s.idToken)
	describeAccessToken(t, "access token", s.access)
	s.browser = az.browser
	if s.refresh == "" {
		t.Errorf("/v1/auth/login: no refresh_token although offline_access was granted")
	}
	return s
}

// authorization is what a sign-in at the provider gave: the body for the
// service's /v1/auth/login (code, code_verifier, nonce, redirect_uri) and
// the browser (cookie jar) that signed in.
type authorization struct {
	form    map[string]string
	browser *browser
}

// authorize signs in at the provider's own pages with PKCE S256 and the
// extra authorization request parameters, and checks the redirect: no
// error, our state, a code.
func (e *env) authorize(t *testing.T, extra url.Values) authorization {
	t.Helper()
	state, nonce, pk := randomString(16), randomString(16), newPKCE()
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {e.p.clientID},
		"redirect_uri":          {e.redirectURI},
		"scope":                 {strings.Join(e.p.scopes, " ")},
		"state":                 {state},
		"nonce":                 {nonce},
		"code_challenge":        {pk.challenge},
		"code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		q[k] = v
	}
	b := newBrowser(t, e.redirectURI, e.p.username, e.p.password)
	cb, err := b.signIn(e.disc.AuthorizationEndpoint + "?" + q.Encode())
	if err != nil {
		t.Fatalf("sign-in at the provider: %v", err)
	}
	if errCode := cb.Get("error"); errCode != "" {
		t.Fatalf("the provider redirected with error=%s: %s", errCode, cb.Get("error_description"))
	}
	if cb.Get("state") != state {
		t.Fatalf("the redirect's state is not ours")
	}
	code := cb.Get("code")
	if code == "" {
		t.Fatalf("the redirect carries no code (fields: %v)", fieldNames(cb))
	}
	if iss := cb.Get("iss"); iss != "" {
		t.Logf("the redirect carries iss (RFC 9207), equal to the issuer: %v", iss == e.disc.Issuer)
	}
	t.Logf("got an authorization code (%d chars)", len(code))
	return authorization{
		form: map[string]string{
			"code":          code,
			"code_verifier": pk.verifier,
			"nonce":         nonce,
			"redirect_uri":  e.redirectURI,
		},
		browser: b,
	}
}

// checkTokenData checks the token data shape of /login and /refresh.
func checkTokenData(t *testing.T, path string, a *apiCall) *session {
	t.Helper()
	if a.data == nil {
		t.Fatalf("%s: 200 without a data object: %s", path, a.describe())
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", path, ct)
	}
	if cc := a.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("%s: Cache-Control %q, want no-store", path, cc)
	}
	str := func(k string) string { s, _ := a.data[k].(string); return s }
	s := &session{access: str("access_token"), refresh: str("refresh_token"), idToken: str("id_token")}
	if s.access == "" {
		t.Errorf("%s: data.access_token missing: %s", path, a.describe())
	}
	if tt := str("token_type"); tt != "Bearer" {
		t.Errorf("%s: data.token_type %q, want Bearer", path, tt)
	}
	if exp, ok := a.data["expires_in"].(float64); !ok || exp <= 0 {
		t.Errorf("%s: data.expires_in %v, want a positive number", path, a.data["expires_in"])
	}
	if path == "/v1/auth/login" && strings.Count(s.idToken, ".") != 2 {
		t.Errorf("%s: data.id_token is not a compact JWS (%d chars)", path, len(s.idToken))
	}
	t.Logf("%s: %s", path, a.describe())
	return s
}

// register calls /v1/auth/register with a bearer and checks the
// participant data of the contract.
func (e *env) register(t *testing.T, access, what string) {
	t.Helper()
	a := callAPI(t, e.svc, "/v1/auth/register", nil, access)
	if a.status != http.StatusOK {
		t.Fatalf("/v1/auth/register with an %s: want 200 with participant data, got %s", what, a.describe())
	}
	if a.data == nil {
		t.Fatalf("/v1/auth/register: 200 without data: %s", a.describe())
	}
	str := func(k string) string { s, _ := a.data[k].(string); return s }
	if str("participant_id") == "" {
		t.Errorf("data.participant_id missing")
	}
	if got := str("tenant_id"); got != e.p.tenantID {
		t.Errorf("data.tenant_id %q, want %q", got, e.p.tenantID)
	}
	if got := str("display_name"); got != e.p.wantName {
		t.Errorf("data.display_name %q, want %q (the name the provider holds for %s)", got, e.p.wantName, e.p.username)
	}
	if got := str("email"); got != e.p.wantEmail {
		t.Errorf("data.email %q, want %q", got, e.p.wantEmail)
	}
	if !strings.HasPrefix(str("personal_workspace_id"), "ws-") {
		t.Errorf("data.personal_workspace_id %q, want the ws- prefix", str("personal_workspace_id"))
	}
	t.Logf("/v1/auth/register: %s", a.describe())
}

// refresh calls /v1/auth/refresh. When the provider rotates, the refresh
// token changes; when it returns none (LemonLDAP::NG), the service hands
// back the one that was sent (SPEC.md, refresh_token_rotation).
func (e *env) refresh(t *testing.T, s *session) *session {
	t.Helper()
	a := callAPI(t, e.svc, "/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, "")
	if a.status != http.StatusOK {
		t.Fatalf("/v1/auth/refresh: want 200, got %s", a.describe())
	}
	next := checkTokenData(t, "/v1/auth/refresh", a)
	switch {
	case next.refresh == "":
		t.Errorf("/v1/auth/refresh: no refresh_token in the answer")
	case e.p.rotates && next.refresh == s.refresh:
		t.Errorf("/v1/auth/refresh: the refresh token did not change, though the provider rotates refresh tokens")
	case !e.p.rotates && next.refresh != s.refresh:
		t.Errorf("/v1/auth/refresh: the provider returns no new refresh token, so the service must hand back the one sent")
	}
	next.browser = s.browser
	if next.access == s.access {
		t.Errorf("/v1/auth/refresh: the access token did not change")
	}
	return next
}

// revokeThenRefused checks that an access token the service accepts is
// refused once it was revoked at the provider (RFC 7009) and cache_seconds
// have passed.
func (e *env) revokeThenRefused(t *testing.T, access, what string) {
	t.Helper()
	before := callAPI(t, e.svc, "/v1/auth/register", nil, access)
	if e.disc.RevocationEndpoint == "" {
		t.Fatalf("the provider's discovery names no revocation_endpoint")
	}
	st, body := e.providerPost(t, e.disc.RevocationEndpoint, access)
	if st != http.StatusOK {
		t.Fatalf("revocation at the provider: status %d %s", st, body)
	}
	revoked := time.Now()
	t.Logf("revoked the access token at %s (200)", pathOf(e.disc.RevocationEndpoint))
	// The harness's own check that the revocation took: the provider now
	// calls the token inactive.
	if st, body := e.providerPost(t, e.idp.introspection, access); st != http.StatusOK || !strings.Contains(string(body), `"active":false`) {
		t.Errorf("after revocation the provider's introspection should say active=false, got %d %s", st, body)
	} else {
		t.Logf("the provider's introspection now says: %s", body)
	}
	// Refusal after revocation shows something only if the token was
	// accepted before it.
	if before.status != http.StatusOK {
		t.Fatalf("precondition: /v1/auth/register with the %s must answer 200 before revocation, got %s", what, before.describe())
	}

	// Refused from cache_seconds on; a little slack for the clock, bounded.
	time.Sleep(cacheSeconds*time.Second + 200*time.Millisecond)
	deadline := revoked.Add(cacheSeconds*time.Second + 3*time.Second)
	var a *apiCall
	for {
		a = callAPI(t, e.svc, "/v1/auth/register", nil, access)
		if a.status == http.StatusUnauthorized || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if a.status != http.StatusUnauthorized {
		t.Fatalf("/v1/auth/register %s after revocation (cache_seconds=%d): want 401, got %s", time.Since(revoked).Round(100*time.Millisecond), cacheSeconds, a.describe())
	}
	if a.code != "SW_AUTH_UNAUTHENTICATED" {
		t.Errorf("after revocation: code %q, want SW_AUTH_UNAUTHENTICATED", a.code)
	}
	if h := a.header.Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_token"`) {
		t.Errorf("after revocation: WWW-Authenticate %q, want error=\"invalid_token\"", h)
	}
	t.Logf("refused %s after revocation: %s", time.Since(revoked).Round(100*time.Millisecond), a.describe())
}

// probeIntrospection asks the provider itself (RFC 7662, with the tenant's
// client) about an access token and logs which claims the answer carries:
// what the service's introspection has to read. Token values are never
// logged; claim values that say who and for whom are.
func (e *env) probeIntrospection(t *testing.T, access string) {
	t.Helper()
	if e.idp.introspection == "" {
		t.Fatalf("the provider has no introspection endpoint")
	}
	st, body := e.providerPost(t, e.idp.introspection, access)
	if st != http.StatusOK {
		t.Fatalf("introspection at the provider: status %d %q", st, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("introspection answer is not JSON: %v", err)
	}
	t.Logf("introspection answer: %s", claimSummary(m))
	if m["active"] != true {
		t.Errorf("the provider says the fresh access token is not active")
	}
}

// providerPost sends token=tok (hint access_token) to a provider endpoint
// (introspection or revocation) with the tenant's client_secret_basic. The
// answer is the provider's JSON or an OAuth error, never the token itself.
func (e *env) providerPost(t *testing.T, endpoint, tok string) (int, []byte) {
	t.Helper()
	form := url.Values{"token": {tok}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(e.p.clientID), url.QueryEscape(e.p.clientSecret))
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", pathOf(endpoint), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, body
}

// describeAccessToken logs whether an access token is a JWT and, if so,
// its header and the claims that matter for audience checks. It returns
// the claims, or nil for an opaque token.
func describeAccessToken(t *testing.T, what, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		// zitadel/oidc's "opaque" tokens are compact JWEs (five parts)
		// whose header names an alg too: say so, since a JWS detector that
		// does not count the parts would take them for JWTs.
		var hdr map[string]any
		if hb, err := base64.RawURLEncoding.DecodeString(parts[0]); err == nil && json.Unmarshal(hb, &hdr) == nil {
			t.Logf("%s: opaque to the service, %d chars, %d dot-separated parts, first part a JSON header %s", what, len(tok), len(parts), claimSummary(hdr))
			return nil
		}
		t.Logf("%s: opaque (%d chars, %d dot-separated parts)", what, len(tok), len(parts))
		return nil
	}
	var hdr, claims map[string]any
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(cb, &claims) != nil {
		t.Logf("%s: three segments but not a readable JWS (%d chars)", what, len(tok))
		return nil
	}
	t.Logf("%s: JWT, header typ=%v alg=%v; claims %s", what, hdr["typ"], hdr["alg"], claimSummary(claims))
	return claims
}

// shown are the claims whose values are logged; the others are named only.
var shown = map[string]bool{
	"active": true, "iss": true, "aud": true, "azp": true, "client_id": true,
	"token_type": true, "scope": true, "sub": true, "typ": true,
	"email_verified": true, "alg": true, "enc": true, "kid": true,
}

func claimSummary(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		if shown[k] {
			v, _ := json.Marshal(m[k])
			fmt.Fprintf(&b, "%s=%s", k, v)
		} else {
			b.WriteString(k)
		}
	}
	return "{" + b.String() + "}"
}
