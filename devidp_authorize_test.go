package main

// The development IdP's authorization endpoint and login page: the code
// flow, refused requests, and form_post.

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestDevIDPAuthorizationCodeFlow(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "/dev/idp")
	params := e.authorizeParams(devTestVerifier)
	params.Set("state", `"><script>alert(1)</script>`)

	resp, body := e.get(t, e.idp.issuer+"/authorize?"+params.Encode(), nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="/dev/idp/authorize"`) {
		t.Fatalf("GET /authorize = %d; want 200 with the login form: %s", resp.StatusCode, body)
	}
	if strings.Contains(body, "<script>alert") {
		t.Errorf("GET /authorize echoes the state unescaped")
	}

	// Wrong credentials re-render the form, without a redirect.
	form := url.Values{"username": {"alice"}, "password": {"nope"}}
	for k, v := range params {
		form[k] = v
	}
	resp, body = e.postForm(t, e.idp.issuer+"/authorize", form, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" || !strings.Contains(body, "invalid username or password") {
		t.Errorf("POST /authorize (bad password) = %d Location %q; want 200 with an error", resp.StatusCode, resp.Header.Get("Location"))
	}

	loc := e.login(t, params, "alice", "alice-password")
	q := loc.Query()
	if loc.Host != "127.0.0.1:9999" || loc.Path != "/callback" || q.Get("app") != "1" {
		t.Errorf("redirect = %s; want the redirect_uri with its query kept", loc)
	}
	if q.Get("state") != params.Get("state") || q.Get("iss") != e.idp.issuer || q.Get("code") == "" {
		t.Errorf("redirect query = %v; want code, state and iss", q)
	}

	before := e.idp.tokenRequests()
	// client_secret_basic with each part form-urlencoded: "%2D" must decode to "-".
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("scaiwave%2Ddev:scaiwave-dev%2Dsecret")))
	exchange := url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {params.Get("redirect_uri")}, "code_verifier": {devTestVerifier},
	}
	status, tok := e.tokenWith(t, exchange, h)
	if status != http.StatusOK {
		t.Fatalf("POST /token (code) = %d %v", status, tok)
	}
	if tok["token_type"] != "Bearer" || tok["expires_in"] != float64(300) || tok["refresh_token"] == "" ||
		tok["scope"] != "openid profile email offline_access" {
		t.Errorf("token response = %v", tok)
	}
	if got := e.idp.tokenRequests() - before; got != 1 {
		t.Errorf("tokenRequests grew by %d; want 1", got)
	}

	var id map[string]any
	devVerify(t, e, tok["id_token"].(string), "JWT", &id)
	sum := sha256.Sum256([]byte(tok["access_token"].(string)))
	if id["nonce"] != "n-456" || id["iss"] != e.idp.issuer || id["sub"] != devAlice(t).Subject ||
		id["at_hash"] != base64.RawURLEncoding.EncodeToString(sum[:16]) {
		t.Errorf("id token claims = %v", id)
	}

	// The access token works at userinfo.
	h = http.Header{}
	h.Set("Authorization", "Bearer "+tok["access_token"].(string))
	resp, body = e.get(t, e.idp.issuer+"/userinfo", h)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"preferred_username":"alice"`) {
		t.Errorf("GET /userinfo = %d %s", resp.StatusCode, body)
	}

	// A replayed code fails and revokes the refresh token issued from it.
	status, m := e.token(t, exchange)
	devWantOAuthError(t, "POST /token (code reuse)", status, m, http.StatusBadRequest, "invalid_grant")
	status, m = e.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	devWantOAuthError(t, "POST /token (refresh after code reuse)", status, m, http.StatusBadRequest, "invalid_grant")
}

func TestDevIDPAuthorizeRefusals(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "")
	tests := []struct {
		name      string
		edit      func(url.Values)
		wantPage  bool   // an error page, never a redirect
		wantError string // else the error sent to the redirect URI
	}{
		{"unknown client", func(v url.Values) { v.Set("client_id", "other") }, true, ""},
		{"non-loopback redirect", func(v url.Values) { v.Set("redirect_uri", "https://evil.example/cb") }, true, ""},
		{"loopback lookalike", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1.evil.example/cb") }, true, ""},
		{"relative redirect", func(v url.Values) { v.Set("redirect_uri", "/cb") }, true, ""},
		{"missing redirect", func(v url.Values) { v.Del("redirect_uri") }, true, ""},
		{"no openid", func(v url.Values) { v.Set("scope", "profile") }, false, "invalid_scope"},
		{"plain PKCE", func(v url.Values) { v.Set("code_challenge_method", "plain") }, false, "invalid_request"},
		{"PKCE without method", func(v url.Values) { v.Del("code_challenge_method") }, false, "invalid_request"},
		{"token response type", func(v url.Values) { v.Set("response_type", "token") }, false, "unsupported_response_type"},
		{"prompt none", func(v url.Values) { v.Set("prompt", "none") }, false, "login_required"},
		{"repeated parameter", func(v url.Values) { v.Add("state", "again") }, false, "invalid_request"},
	}
	for _, tt := range tests {
		params := e.authorizeParams(devTestVerifier)
		tt.edit(params)
		resp, _ := e.get(t, e.srv.URL+"/authorize?"+params.Encode(), nil)
		loc := resp.Header.Get("Location")
		if tt.wantPage {
			if resp.StatusCode != http.StatusBadRequest || loc != "" {
				t.Errorf("GET /authorize (%s) = %d Location %q; want 400 without redirect", tt.name, resp.StatusCode, loc)
			}
			continue
		}
		u, _ := url.Parse(loc)
		if resp.StatusCode != http.StatusFound || u.Query().Get("error") != tt.wantError || u.Query().Get("state") != params.Get("state") {
			t.Errorf("GET /authorize (%s) = %d Location %q; want 302 with error %s", tt.name, resp.StatusCode, loc, tt.wantError)
		}
	}
}

func TestDevIDPFormPost(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "")
	params := e.authorizeParams(devTestVerifier)
	params.Set("response_mode", "form_post")
	form := url.Values{"username": {"bob"}, "password": {"bob-password"}}
	for k, v := range params {
		form[k] = v
	}
	resp, body := e.postForm(t, e.srv.URL+"/authorize", form, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" {
		t.Fatalf("POST /authorize (form_post) = %d; want 200 without redirect", resp.StatusCode)
	}
	for _, want := range []string{`action="http://127.0.0.1:9999/callback?app=1"`, `name="code"`, `name="state" value="st-123"`, "document.forms[0].submit()"} {
		if !strings.Contains(body, want) {
			t.Errorf("form_post page lacks %s:\n%s", want, body)
		}
	}
}
