package main

// End to end: a browser signs in at the development IdP, and the client
// bootstraps, logs in, registers and refreshes through the service.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	e2eFormTag  = regexp.MustCompile(`(?is)<form\b[^>]*>`)
	e2eInputTag = regexp.MustCompile(`(?is)<input\b[^>]*>`)
	e2eAttr     = regexp.MustCompile(`([a-zA-Z_:-]+)\s*=\s*"([^"]*)"`)
)

func e2eAttrs(tag string) map[string]string {
	m := map[string]string{}
	for _, a := range e2eAttr.FindAllStringSubmatch(tag, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2])
	}
	return m
}

// e2eBrowser is a browser for the code flow: it shows the login page of the
// authorization URL, fills in the form and submits it, and returns where the
// IdP redirected to. It follows no redirects, so that the redirect to the
// (unreachable) redirect URI can be read.
func e2eBrowser(t *testing.T, authURL *url.URL, username, password string) *url.URL {
	t.Helper()
	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get(authURL.String())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s = %d %s; want the login page", authURL, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	formTag := e2eFormTag.FindString(string(page))
	if formTag == "" {
		t.Fatalf("login page has no form: %s", page)
	}
	fa := e2eAttrs(formTag)
	if !strings.EqualFold(fa["method"], "post") {
		t.Fatalf("login form method %q; want post", fa["method"])
	}
	action, err := authURL.Parse(fa["action"])
	if err != nil {
		t.Fatalf("login form action %q: %v", fa["action"], err)
	}
	form := url.Values{}
	visible := map[string]bool{}
	for _, tag := range e2eInputTag.FindAllString(string(page), -1) {
		ia := e2eAttrs(tag)
		if strings.EqualFold(ia["type"], "hidden") {
			form.Add(ia["name"], ia["value"])
		} else {
			visible[ia["name"]] = true
		}
	}
	if !visible["username"] || !visible["password"] {
		t.Fatalf("login form has inputs %v; want username and password", visible)
	}
	form.Set("username", username)
	form.Set("password", password)
	resp, err = client.PostForm(action.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		t.Fatalf("POST %s (login form) = %d; want a redirect: %s", action, resp.StatusCode, body)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("login redirect: %v", err)
	}
	return loc
}

// e2eRandom is a random base64url string of n bytes.
func e2eRandom(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestE2ECodeFlowWithDevIDP(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(nil)
	d, err := newDevIDP("http://"+srv.Listener.Addr().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = d.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	if srv.URL != d.issuer {
		t.Fatalf("dev IdP issuer %q; server at %q", d.issuer, srv.URL)
	}
	const redirectURI = "http://127.0.0.1:1/cb"
	a := newTestApp(t, []tenantConfig{{
		ID:           "dev",
		Issuer:       srv.URL,
		ClientID:     devClientID,
		ClientSecret: devClientSecret,
		RedirectURI:  redirectURI,
		Scopes:       []string{"openid", "profile", "email", "offline_access"},
	}})
	alice := devUsers()[0]

	// The client bootstraps from /v1/auth/config.
	w := a.do("GET", "/v1/auth/config", "")
	if w.Code != 200 {
		t.Fatalf("GET /v1/auth/config = %d %s", w.Code, w.Body)
	}
	cfg := decode(t, w).Data
	if cfg["client_id"] != devClientID || cfg["redirect_uri"] != redirectURI || cfg["issuer"] != srv.URL {
		t.Fatalf("GET /v1/auth/config: %v", cfg)
	}
	methods, _ := cfg["code_challenge_methods_supported"].([]any)
	if len(methods) == 0 || methods[0] != "S256" {
		t.Fatalf("GET /v1/auth/config: code_challenge_methods_supported %v; want S256", cfg["code_challenge_methods_supported"])
	}
	var scopes []string
	for _, s := range cfg["scopes_supported"].([]any) {
		scopes = append(scopes, s.(string))
	}

	// signIn runs the browser part and returns the code, and the verifier
	// and nonce it was bound to.
	signIn := func(user devUser) (authCode, verifier, nonce string) {
		t.Helper()
		verifier, nonce = e2eRandom(32), e2eRandom(16)
		state := e2eRandom(16)
		sum := sha256.Sum256([]byte(verifier))
		authURL, err := url.Parse(cfg["authorization_endpoint"].(string))
		if err != nil {
			t.Fatal(err)
		}
		q := authURL.Query()
		q.Set("response_type", "code")
		q.Set("client_id", cfg["client_id"].(string))
		q.Set("redirect_uri", cfg["redirect_uri"].(string))
		q.Set("scope", strings.Join(scopes, " "))
		q.Set("state", state)
		q.Set("nonce", nonce)
		q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
		q.Set("code_challenge_method", "S256")
		authURL.RawQuery = q.Encode()
		loc := e2eBrowser(t, authURL, user.Username, user.Password)
		lq := loc.Query()
		if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirectURI {
			t.Fatalf("the IdP redirected to %s; want %s", got, redirectURI)
		}
		if lq.Get("error") != "" {
			t.Fatalf("the IdP redirected with error %s: %s", lq.Get("error"), lq.Get("error_description"))
		}
		if lq.Get("state") != state {
			t.Fatalf("redirect state %q; want %q", lq.Get("state"), state)
		}
		if iss := lq.Get("iss"); iss != "" && iss != srv.URL {
			t.Fatalf("redirect iss %q; want %q", iss, srv.URL)
		}
		if authCode = lq.Get("code"); authCode == "" {
			t.Fatalf("no code in the redirect %s", loc)
		}
		return authCode, verifier, nonce
	}

	authCode, verifier, nonce := signIn(alice)
	w = a.do("POST", "/v1/auth/login", url.Values{
		"code": {authCode}, "code_verifier": {verifier}, "redirect_uri": {redirectURI}, "nonce": {nonce},
	}.Encode())
	if !tokCheck(t, "/v1/auth/login", "code from the dev IdP", w, 200, "") {
		t.FailNow()
	}
	login := tokCheckTokens(t, "/v1/auth/login", "code from the dev IdP", w)
	rt1, _ := login["refresh_token"].(string)
	if rt1 == "" || login["id_token"] == nil {
		t.Fatalf("POST /v1/auth/login: data %v; want a refresh token (offline_access) and an ID token", login)
	}

	w = a.register(login["access_token"].(string))
	if w.Code != 200 {
		t.Fatalf("POST /v1/auth/register = %d %s", w.Code, w.Body)
	}
	part := decode(t, w).Data
	pid, _ := part["participant_id"].(string)
	if pid == "" || part["tenant_id"] != "dev" || part["display_name"] != alice.Name || part["email"] != alice.Email {
		t.Errorf("POST /v1/auth/register: %v; want %s's participant", part, alice.Username)
	}

	w = a.do("POST", "/v1/auth/refresh", url.Values{"refresh_token": {rt1}}.Encode())
	if !tokCheck(t, "/v1/auth/refresh", "refresh token from the dev IdP", w, 200, "") {
		t.FailNow()
	}
	refreshed := tokCheckTokens(t, "/v1/auth/refresh", "refresh token from the dev IdP", w)
	if refreshed["access_token"] == login["access_token"] || refreshed["refresh_token"] == rt1 || refreshed["refresh_token"] == "" {
		t.Errorf("POST /v1/auth/refresh: got the old tokens back; want new ones (the dev IdP rotates)")
	}
	w = a.register(refreshed["access_token"].(string))
	if w.Code != 200 || decode(t, w).Data["participant_id"] != pid {
		t.Errorf("POST /v1/auth/register with the refreshed token = %d %v; want 200 and participant %s", w.Code, decode(t, w).Data, pid)
	}

	// A second tab refreshing with the old token within the replay window
	// gets the same answer; the dev IdP, which rotates, would refuse it.
	calls := d.tokenRequests()
	w = a.do("POST", "/v1/auth/refresh", url.Values{"refresh_token": {rt1}}.Encode())
	if tokCheck(t, "/v1/auth/refresh", "old refresh token within the window", w, 200, "") {
		if again := decode(t, w).Data; again["access_token"] != refreshed["access_token"] || again["refresh_token"] != refreshed["refresh_token"] {
			t.Errorf("POST /v1/auth/refresh repeated: other tokens than the first answer")
		}
	}
	if d.tokenRequests() != calls {
		t.Errorf("POST /v1/auth/refresh repeated within the window reached the IdP")
	}

	// The code is used up: a replay is the IdP's refusal, not a 5xx. (The
	// dev IdP, as RFC 6749 §4.1.2 asks, then also revokes the session's
	// refresh tokens, so this comes after the refresh.)
	w = a.do("POST", "/v1/auth/login", url.Values{"code": {authCode}, "code_verifier": {verifier}, "nonce": {nonce}}.Encode())
	tokCheck(t, "/v1/auth/login", "replayed code", w, 401, "SW_AUTH_OIDC_FAILED")

	// The ID token binds the nonce the client sent.
	bob := devUsers()[1]
	authCode, verifier, _ = signIn(bob)
	w = a.do("POST", "/v1/auth/login", url.Values{"code": {authCode}, "code_verifier": {verifier}, "nonce": {"another-nonce"}}.Encode())
	tokCheck(t, "/v1/auth/login", "nonce of another sign-in", w, 401, "SW_AUTH_OIDC_FAILED")
	// And the code its PKCE verifier.
	authCode, _, nonce = signIn(bob)
	w = a.do("POST", "/v1/auth/login", url.Values{"code": {authCode}, "code_verifier": {tokVerifier}, "nonce": {nonce}}.Encode())
	tokCheck(t, "/v1/auth/login", "verifier of another sign-in", w, 401, "SW_AUTH_OIDC_FAILED")
}
