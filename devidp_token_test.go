package main

// The development IdP's token endpoint: the code exchange, the password
// grant, refresh rotation and refused requests.

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestDevIDPCodeExchangeErrors(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "")
	withPKCE := e.authorizeParams(devTestVerifier)
	noPKCE := e.authorizeParams(devTestVerifier)
	noPKCE.Del("code_challenge")
	noPKCE.Del("code_challenge_method")

	tests := []struct {
		name     string
		params   url.Values
		edit     func(url.Values)
		advance  time.Duration
		wantCode string
	}{
		{"wrong verifier", withPKCE, func(v url.Values) { v.Set("code_verifier", strings.Repeat("a", 43)) }, 0, "invalid_grant"},
		{"missing verifier", withPKCE, func(v url.Values) { v.Del("code_verifier") }, 0, "invalid_grant"},
		{"verifier without challenge", noPKCE, func(url.Values) {}, 0, "invalid_grant"},
		{"redirect_uri differs", withPKCE, func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9999/callback") }, 0, "invalid_grant"},
		{"redirect_uri missing", withPKCE, func(v url.Values) { v.Del("redirect_uri") }, 0, "invalid_request"},
		{"unknown code", withPKCE, func(v url.Values) { v.Set("code", "made-up") }, 0, "invalid_grant"},
		{"expired code", withPKCE, func(url.Values) {}, 61 * time.Second, "invalid_grant"},
	}
	for _, tt := range tests {
		code := e.code(t, tt.params)
		e.clock.advance(tt.advance)
		form := url.Values{
			"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {tt.params.Get("redirect_uri")}, "code_verifier": {devTestVerifier},
		}
		tt.edit(form)
		status, m := e.token(t, form)
		devWantOAuthError(t, "POST /token ("+tt.name+")", status, m, http.StatusBadRequest, tt.wantCode)
	}

	// Without PKCE and without a verifier the exchange succeeds.
	code := e.code(t, noPKCE)
	status, m := e.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {noPKCE.Get("redirect_uri")}})
	if status != http.StatusOK {
		t.Errorf("POST /token (no PKCE) = %d %v; want 200", status, m)
	}
}

func TestDevIDPPasswordGrant(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "")
	// client_secret_post.
	form := url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob-password"},
		"client_id": {devClientID}, "client_secret": {devClientSecret}}
	status, tok := e.tokenWith(t, form, nil)
	if status != http.StatusOK || tok["scope"] != devDefaultScope || tok["id_token"] == nil || tok["refresh_token"] == nil {
		t.Fatalf("POST /token (password) = %d %v", status, tok)
	}
	var c map[string]any
	devVerify(t, e, tok["access_token"].(string), "at+jwt", &c)
	if c["preferred_username"] != "bob" || c["email"] != "bob@example.com" {
		t.Errorf("access token claims = %v", c)
	}

	// Without openid there is no ID token, and only the scope's claims.
	status, tok = e.token(t, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob-password"}, "scope": {"profile"}})
	if status != http.StatusOK || tok["id_token"] != nil || tok["scope"] != "profile" {
		t.Errorf("POST /token (password, scope profile) = %d %v", status, tok)
	}

	status, m := e.token(t, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"alice-password"}})
	devWantOAuthError(t, "POST /token (bad password)", status, m, http.StatusBadRequest, "invalid_grant")
	if m["error_description"] != "invalid user credentials" {
		t.Errorf("error_description = %v", m["error_description"])
	}
	status, m = e.token(t, url.Values{"grant_type": {"password"}, "username": {"bob"}})
	devWantOAuthError(t, "POST /token (no password)", status, m, http.StatusBadRequest, "invalid_request")
	status, m = e.token(t, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob-password"}, "scope": {"openid admin"}})
	devWantOAuthError(t, "POST /token (unknown scope)", status, m, http.StatusBadRequest, "invalid_scope")
}

func TestDevIDPRefreshRotation(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "")
	_, tok := e.token(t, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}})
	rt1 := tok["refresh_token"].(string)

	status, tok := e.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}})
	if status != http.StatusOK {
		t.Fatalf("POST /token (refresh) = %d %v", status, tok)
	}
	rt2 := tok["refresh_token"].(string)
	if rt2 == "" || rt2 == rt1 {
		t.Errorf("refresh token not rotated")
	}
	var id map[string]any
	devVerify(t, e, tok["id_token"].(string), "JWT", &id)
	if _, ok := id["nonce"]; ok {
		t.Errorf("refreshed id token has a nonce")
	}

	status, m := e.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}})
	devWantOAuthError(t, "POST /token (old refresh token)", status, m, http.StatusBadRequest, "invalid_grant")

	status, m = e.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}, "scope": {"openid offline_access"}})
	devWantOAuthError(t, "POST /token (wider scope)", status, m, http.StatusBadRequest, "invalid_scope")

	// A narrower scope applies to the access token; the new refresh token keeps the original.
	status, tok = e.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}, "scope": {"openid"}})
	if status != http.StatusOK || tok["scope"] != "openid" {
		t.Fatalf("POST /token (narrower scope) = %d %v", status, tok)
	}
	rt3 := tok["refresh_token"].(string)
	status, tok = e.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt3}, "scope": {"openid email"}})
	if status != http.StatusOK {
		t.Fatalf("POST /token (back to original scope) = %d %v", status, tok)
	}

	e.clock.advance(e.idp.refreshTTL + time.Second)
	status, m = e.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	devWantOAuthError(t, "POST /token (expired refresh token)", status, m, http.StatusBadRequest, "invalid_grant")
}

func TestDevIDPTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "")
	basic := func(id, secret string) http.Header {
		h := http.Header{}
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+secret)))
		return h
	}
	good := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}}
	with := func(extra url.Values) url.Values {
		v := url.Values{}
		for k, vals := range good {
			v[k] = vals
		}
		for k, vals := range extra {
			v[k] = vals
		}
		return v
	}
	tests := []struct {
		name       string
		form       url.Values
		header     http.Header
		wantStatus int
		wantError  string
	}{
		{"wrong basic secret", good, basic(devClientID, "wrong"), 401, "invalid_client"},
		{"wrong client id", good, basic("other", devClientSecret), 401, "invalid_client"},
		{"wrong post secret", with(url.Values{"client_id": {devClientID}, "client_secret": {"wrong"}}), nil, 401, "invalid_client"},
		{"no client auth", good, nil, 401, "invalid_client"},
		{"public client", with(url.Values{"client_id": {devClientID}}), nil, 401, "invalid_client"},
		{"bearer instead of basic", good, http.Header{"Authorization": {"Bearer x"}}, 401, "invalid_client"},
		{"basic and post", with(url.Values{"client_secret": {devClientSecret}}), basic(devClientID, devClientSecret), 400, "invalid_request"},
		{"unknown grant", url.Values{"grant_type": {"client_credentials"}}, basic(devClientID, devClientSecret), 400, "unsupported_grant_type"},
		{"no grant", url.Values{}, basic(devClientID, devClientSecret), 400, "invalid_request"},
		{"no code", url.Values{"grant_type": {"authorization_code"}}, basic(devClientID, devClientSecret), 400, "invalid_request"},
		{"no refresh token", url.Values{"grant_type": {"refresh_token"}}, basic(devClientID, devClientSecret), 400, "invalid_request"},
	}
	for _, tt := range tests {
		status, m := e.tokenWith(t, tt.form, tt.header)
		devWantOAuthError(t, "POST /token ("+tt.name+")", status, m, tt.wantStatus, tt.wantError)
	}

	// invalid_client carries a Basic challenge.
	resp, _ := e.postForm(t, e.srv.URL+"/token", good, basic(devClientID, "wrong"))
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("invalid_client WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
	}

	// Wrong content type and an oversized body.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/token", strings.NewReader(`{"grant_type":"password"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, body := e.do(t, req); resp.StatusCode != 400 || !strings.Contains(body, "invalid_request") {
		t.Errorf("POST /token (json) = %d %s; want 400 invalid_request", resp.StatusCode, body)
	}
	big := with(url.Values{"pad": {strings.Repeat("x", 70<<10)}})
	if resp, _ := e.postForm(t, e.srv.URL+"/token", big, basic(devClientID, devClientSecret)); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /token (70 KiB) = %d; want 413", resp.StatusCode)
	}
}
