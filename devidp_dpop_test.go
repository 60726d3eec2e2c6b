package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestRunDevDPoP signs in through -dev with a DPoP key, as docs/dpop.md
// shows: the dev IdP binds the tokens to the key, and register, refresh and
// sign-out work with proofs from it, while the bound token as a plain
// bearer, or with another key's proof, is refused.
func TestRunDevDPoP(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	base := "http://" + addr
	c := newTestClient(t)
	r := startRun(t, []string{"-dev", "-addr", addr, "-db", filepath.Join(t.TempDir(), "dev.db")}, nil)
	waitStatus(t, r, c, base+"/readyz", 200, 10*time.Second)
	key, other := newDPoPKey(t, jose.ES256), newDPoPKey(t, jose.ES256)

	send := func(path string, form url.Values, auth, proof string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body) // all of it, so the connection is reused
		var e struct{ Data map[string]any }
		json.Unmarshal(b, &e)
		return resp.StatusCode, e.Data
	}
	status, e := call(t, c, "GET", base+"/v1/auth/config", nil, "")
	tokenURL, _ := e.Data["token_endpoint"].(string)
	if status != 200 || tokenURL == "" || e.Data["dpop_signing_alg_values_supported"] == nil {
		t.Fatalf("GET /v1/auth/config = %d %+v; want the token endpoint and DPoP algorithms", status, e)
	}

	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}}
	status, d := send("/v1/auth/token", form, "", key.proof(t, "POST", tokenURL, ""))
	at, _ := d["access_token"].(string)
	rt, _ := d["refresh_token"].(string)
	if status != 200 || d["token_type"] != "DPoP" || at == "" {
		t.Fatalf("POST /v1/auth/token with a proof = %d %+v; want 200 token_type DPoP", status, d)
	}
	reg := base + "/v1/auth/register"
	if status, d := send("/v1/auth/register", nil, "DPoP "+at, key.proof(t, "POST", reg, at)); status != 200 || d["participant_id"] == nil {
		t.Fatalf("POST /v1/auth/register, DPoP = %d %+v; want 200", status, d)
	}
	if status, _ := send("/v1/auth/register", nil, "Bearer "+at, ""); status != 401 {
		t.Errorf("POST /v1/auth/register, the bound token as Bearer = %d; want 401", status)
	}
	if status, _ := send("/v1/auth/register", nil, "DPoP "+at, other.proof(t, "POST", reg, at)); status != 401 {
		t.Errorf("POST /v1/auth/register, another key's proof = %d; want 401", status)
	}
	status, d = send("/v1/auth/refresh", url.Values{"refresh_token": {rt}}, "", key.proof(t, "POST", tokenURL, ""))
	at2, _ := d["access_token"].(string)
	if status != 200 || d["token_type"] != "DPoP" || at2 == "" {
		t.Fatalf("POST /v1/auth/refresh with a proof = %d %+v; want 200 token_type DPoP", status, d)
	}
	status, d = send("/v1/auth/logout", url.Values{"refresh_token": {rt}}, "DPoP "+at2, key.proof(t, "POST", base+"/v1/auth/logout", at2))
	if status != 200 || d["revoked"] != true {
		t.Fatalf("POST /v1/auth/logout with a proof = %d %+v; want 200 revoked", status, d)
	}
	if status, _ := send("/v1/auth/register", nil, "DPoP "+at2, key.proof(t, "POST", reg, at2)); status != 401 {
		t.Errorf("POST /v1/auth/register after sign-out = %d; want 401", status)
	}
	c.CloseIdleConnections()
	// 10 s: a connection the service's IdP client dialed to itself and has
	// not used yet is idle to Shutdown only after 5 s (net/http StateNew).
	if err := r.stop(t, 10*time.Second); err != nil {
		t.Fatalf("-dev run after cancel = %v; want nil", err)
	}
}
