package main

// The dev IdP's second client with opaque access tokens, and its
// introspection endpoint.

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// basicAuth is an Authorization header for client_secret_basic.
func basicAuth(id, secret string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))}}
}

// introspect posts token to the dev IdP's introspection endpoint with h and
// decodes the answer.
func (e *devTestEnv) introspect(t *testing.T, token string, h http.Header) (int, map[string]any) {
	t.Helper()
	resp, body := e.postForm(t, e.idp.issuer+"/introspect", url.Values{"token": {token}}, h)
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("POST /introspect: %v in %q", err, body)
	}
	return resp.StatusCode, m
}

func TestDevIDPOpaqueTokens(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "/idp")
	opaque := basicAuth(devOpaqueClientID, devOpaqueClientSecret)
	status, tok := e.tokenWith(t, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}}, opaque)
	at, _ := tok["access_token"].(string)
	if status != 200 || at == "" || strings.Contains(at, ".") {
		t.Fatalf("POST /token (password, opaque client) = %d %v; want an opaque access token", status, tok)
	}
	var id map[string]any
	devVerify(t, e, tok["id_token"].(string), "JWT", &id)
	if id["aud"] != devOpaqueClientID || id["at_hash"] == nil {
		t.Errorf("the opaque client's ID token has aud %v, at_hash %v; want %s and one", id["aud"], id["at_hash"], devOpaqueClientID)
	}

	// Either client may introspect, with basic or post credentials.
	for name, h := range map[string]http.Header{"opaque client": opaque, "JWT client": basicAuth(devClientID, devClientSecret)} {
		status, m := e.introspect(t, at, h)
		if status != 200 || m["active"] != true || m["sub"] != devAlice(t).Subject || m["client_id"] != devOpaqueClientID ||
			m["token_type"] != "Bearer" || m["iss"] != e.idp.issuer || m["name"] != "Alice Example" || m["exp"] == nil {
			t.Errorf("POST /introspect (%s) = %d %v", name, status, m)
		}
	}
	resp, body := e.postForm(t, e.idp.issuer+"/introspect", url.Values{"token": {at}, "client_id": {devClientID}, "client_secret": {devClientSecret}}, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"active":true`) {
		t.Errorf("POST /introspect (client_secret_post) = %d %s", resp.StatusCode, body)
	}

	// userinfo takes the opaque token too.
	resp, body = e.get(t, e.srv.URL+"/idp/userinfo", http.Header{"Authorization": {"Bearer " + at}})
	if resp.StatusCode != 200 || !strings.Contains(body, `"name":"Alice Example"`) {
		t.Errorf("GET /userinfo with the opaque token = %d %s", resp.StatusCode, body)
	}

	// A JWT access token of the other client, and a refresh token.
	_, jwtTok := e.token(t, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob-password"}})
	if _, m := e.introspect(t, jwtTok["access_token"].(string), opaque); m["active"] != true || m["client_id"] != devClientID {
		t.Errorf("POST /introspect (JWT access token) = %v; want active, client_id %s", m, devClientID)
	}
	if _, m := e.introspect(t, tok["refresh_token"].(string), opaque); m["active"] != true || m["token_type"] != "refresh_token" {
		t.Errorf("POST /introspect (refresh token) = %v; want active with token_type refresh_token", m)
	}

	// The refresh grant keeps the client's kind of token; the other client
	// cannot use its refresh token.
	status, m := e.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	devWantOAuthError(t, "POST /token (refresh, another client's token)", status, m, http.StatusBadRequest, "invalid_grant")
	status, next := e.tokenWith(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, opaque)
	if nat, _ := next["access_token"].(string); status != 200 || nat == "" || strings.Contains(nat, ".") {
		t.Errorf("POST /token (refresh, opaque client) = %d %v; want a new opaque token", status, next)
	}

	// Unknown and expired tokens are inactive, with nothing else said.
	for name, tk := range map[string]string{"unknown": "no-such-token", "expired": at} {
		if name == "expired" {
			e.clock.advance(e.idp.accessTTL + time.Second)
		}
		if status, m := e.introspect(t, tk, opaque); status != 200 || m["active"] != false || len(m) != 1 {
			t.Errorf("POST /introspect (%s) = %d %v; want only active false", name, status, m)
		}
	}
}

func TestDevIDPIntrospectionErrors(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "")
	for _, tc := range []struct {
		name       string
		form       url.Values
		h          http.Header
		wantStatus int
		wantErr    string
	}{
		{"no client", url.Values{"token": {"x"}}, nil, 401, "invalid_client"},
		{"wrong secret", url.Values{"token": {"x"}}, basicAuth(devOpaqueClientID, devClientSecret), 401, "invalid_client"},
		{"no token", url.Values{}, basicAuth(devClientID, devClientSecret), 400, "invalid_request"},
		{"token twice", url.Values{"token": {"a", "b"}}, basicAuth(devClientID, devClientSecret), 400, "invalid_request"},
	} {
		resp, body := e.postForm(t, e.idp.issuer+"/introspect", tc.form, tc.h)
		var m map[string]any
		json.Unmarshal([]byte(body), &m)
		devWantOAuthError(t, "POST /introspect ("+tc.name+")", resp.StatusCode, m, tc.wantStatus, tc.wantErr)
	}
}

// TestDevIDPOpaqueTokensBounded: a flood of sign-ins keeps at most the
// bound of opaque tokens, the newest among them.
func TestDevIDPOpaqueTokensBounded(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "")
	e.idp.opaque.max = 5
	var last string
	for range 20 {
		_, tok := e.tokenWith(t, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob-password"}},
			basicAuth(devOpaqueClientID, devOpaqueClientSecret))
		last, _ = tok["access_token"].(string)
	}
	e.idp.opaque.mu.Lock()
	n := len(e.idp.opaque.m)
	e.idp.opaque.mu.Unlock()
	if n > 5 {
		t.Errorf("20 sign-ins left %d opaque tokens; want at most 5", n)
	}
	if _, m := e.introspect(t, last, basicAuth(devClientID, devClientSecret)); m["active"] != true {
		t.Errorf("the newest opaque token is not active: %v", m)
	}
}
