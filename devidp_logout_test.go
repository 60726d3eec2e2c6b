package main

// The development IdP's sign-out: revocation endpoint, end-session endpoint
// with registered post-logout URIs, and the back-channel logout token it
// sends, checked by the service's own verifier.

import (
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// devBasic is the dev client's HTTP Basic credentials.
func devBasic() http.Header {
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(devClientID+":"+devClientSecret)))
	return h
}

// devPasswordGrant signs alice in and returns the token answer.
func (e *devTestEnv) devPasswordGrant(t *testing.T) map[string]any {
	t.Helper()
	status, m := e.token(t, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}, "scope": {"openid profile offline_access"}})
	if status != 200 {
		t.Fatalf("password grant = %d %v", status, m)
	}
	return m
}

func TestDevIDPRevocation(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "/dev/idp")
	m := e.devPasswordGrant(t)
	revoke := func(tok string, h http.Header) int {
		resp, _ := e.postForm(t, e.idp.issuer+"/revoke", url.Values{"token": {tok}}, h)
		return resp.StatusCode
	}
	if got := revoke(m["refresh_token"].(string), nil); got != 401 {
		t.Errorf("POST /revoke without client authentication = %d; want 401", got)
	}
	if got := revoke("unknown", devBasic()); got != 200 {
		t.Errorf("POST /revoke of an unknown token = %d; want 200", got)
	}
	if got := revoke(m["refresh_token"].(string), devBasic()); got != 200 {
		t.Errorf("POST /revoke of the refresh token = %d; want 200", got)
	}
	status, r := e.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {m["refresh_token"].(string)}})
	devWantOAuthError(t, "refresh with a revoked token", status, r, 400, "invalid_grant")

	h := http.Header{}
	h.Set("Authorization", "Bearer "+m["access_token"].(string))
	if resp, _ := e.get(t, e.idp.issuer+"/userinfo", h); resp.StatusCode != 200 {
		t.Fatalf("GET /userinfo before revocation = %d", resp.StatusCode)
	}
	if got := revoke(m["access_token"].(string), devBasic()); got != 200 {
		t.Errorf("POST /revoke of the access token = %d; want 200", got)
	}
	if resp, _ := e.get(t, e.idp.issuer+"/userinfo", h); resp.StatusCode != 401 {
		t.Errorf("GET /userinfo with a revoked access token = %d; want 401", resp.StatusCode)
	}
}

func TestDevIDPEndSession(t *testing.T) {
	t.Parallel()
	e := newDevTestEnv(t, "/dev/idp")
	const registered = "http://localhost:3000/"
	e.idp.postLogoutRedirectURIs = []string{registered}
	var mu sync.Mutex
	var got []string // logout tokens received
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		got = append(got, r.PostForm.Get("logout_token"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
	}))
	t.Cleanup(rp.Close)
	e.idp.backchannelLogoutURI = rp.URL

	one, two := e.devPasswordGrant(t), e.devPasswordGrant(t)
	q := url.Values{"id_token_hint": {one["id_token"].(string)}, "post_logout_redirect_uri": {registered}, "state": {"s1"}}
	resp, _ := e.get(t, e.idp.issuer+"/logout?"+q.Encode(), nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != registered+"?state=s1" {
		t.Errorf("GET /logout (registered URI) = %d %q; want 303 to %s?state=s1", resp.StatusCode, loc, registered)
	}
	// That session's refresh token is dead, the other session's lives.
	status, r := e.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {one["refresh_token"].(string)}})
	devWantOAuthError(t, "refresh of the signed-out session", status, r, 400, "invalid_grant")
	if status, _ := e.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {two["refresh_token"].(string)}}); status != 200 {
		t.Errorf("refresh of another session = %d; want 200", status)
	}

	// The logout token passes the service's own checks and names the session.
	mu.Lock()
	tokens := append([]string(nil), got...)
	mu.Unlock()
	if len(tokens) != 1 {
		t.Fatalf("back-channel logout tokens sent: %d; want 1", len(tokens))
	}
	p := newProvider(&tenantConfig{ID: "dev", Issuer: e.idp.issuer, ClientID: devClientID}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	p.now = e.clock.now
	if err := p.refreshAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	lt, err := p.verifyLogoutToken(t.Context(), tokens[0])
	if err != nil {
		t.Fatalf("the dev IdP's logout token: %v", err)
	}
	var idc struct {
		Sub string `json:"sub"`
		Sid string `json:"sid"`
	}
	devVerify(t, e, one["id_token"].(string), "JWT", &idc)
	if lt.subject != idc.Sub || lt.session != idc.Sid || lt.session == "" {
		t.Errorf("logout token names sub %q sid %q; want the ID token's %q %q", lt.subject, lt.session, idc.Sub, idc.Sid)
	}

	for name, q := range map[string]url.Values{
		"unregistered URI":     {"client_id": {devClientID}, "post_logout_redirect_uri": {"http://localhost:3000/elsewhere"}},
		"URI without a client": {"post_logout_redirect_uri": {registered}},
		"another client":       {"client_id": {"other"}, "post_logout_redirect_uri": {registered}},
		"forged id_token_hint": {"id_token_hint": {"a.b.c"}},
		"remote URI":           {"client_id": {devClientID}, "post_logout_redirect_uri": {"https://evil.example/"}},
	} {
		resp, _ := e.get(t, e.idp.issuer+"/logout?"+q.Encode(), nil)
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
			t.Errorf("GET /logout (%s) = %d %q; want 400 and no redirect", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// logout_hint names a user: all of alice's sessions end, sub alone.
	resp, body := e.get(t, e.idp.issuer+"/logout?client_id="+devClientID+"&logout_hint=alice", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "back-channel logout") {
		t.Errorf("GET /logout?logout_hint=alice = %d; want the signed-out page saying the application was told:\n%s", resp.StatusCode, body)
	}
	mu.Lock()
	n := len(got)
	mu.Unlock()
	if n != 2 {
		t.Errorf("back-channel logout tokens after logout_hint: %d; want 2", n)
	}
}
