package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunDev runs -dev on a loopback port: the banner, a password grant for
// the demo user, a registration, and, after a restart on the same database
// and port, the token minted before still verifies.
func TestRunDev(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "dev.db")
	addr := freeAddr(t)
	base := "http://" + addr
	args := []string{"-dev", "-addr", addr, "-db", db}
	c := newTestClient(t)

	r := startRun(t, args, nil)
	waitStatus(t, r, c, base+"/readyz", 200, 10*time.Second)
	banner := r.stdout.String()
	for _, want := range []string{
		base, "alice", "alice-password",
		"curl -s " + base + "/v1/auth/config",
		"curl -s -X POST " + base + "/v1/auth/token -d grant_type=password -d username=alice -d password=alice-password",
		"curl -s -X POST " + base + "/v1/auth/register",
		"curl -s -X POST " + base + "/v1/auth/refresh",
		"curl -s -X POST " + base + "/v1/auth/login -d code=$CODE -d code_verifier=$VERIFIER",
		"-d code_challenge=$CHALLENGE -d code_challenge_method=S256",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("-dev banner lacks %q:\n%s", want, banner)
		}
	}
	// form_post to /v1/auth/login cannot carry a verifier, so the tenant
	// refuses it: the banner must not suggest it.
	if strings.Contains(banner, "form_post") {
		t.Errorf("-dev banner suggests form_post, which the tenant's require_pkce refuses:\n%s", banner)
	}

	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}}
	status, e := call(t, c, "POST", base+"/v1/auth/token", form, "")
	token, _ := e.Data["access_token"].(string)
	if status != 200 || token == "" {
		t.Fatalf("POST /v1/auth/token for alice = %d %+v; want 200 with an access token", status, e)
	}
	status, e = call(t, c, "POST", base+"/v1/auth/register", nil, token)
	participant, _ := e.Data["participant_id"].(string)
	if status != 200 || participant == "" || e.Data["tenant_id"] != "dev" {
		t.Fatalf("POST /v1/auth/register with alice's token = %d %+v", status, e)
	}
	status, _ = call(t, c, "POST", base+"/v1/auth/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wrong"}}, "")
	if status != 401 {
		t.Errorf("POST /v1/auth/token with a wrong password = %d; want 401", status)
	}
	c.CloseIdleConnections()
	if err := r.stop(t, 5*time.Second); err != nil {
		t.Fatalf("-dev run after cancel = %v; want nil", err)
	}
	for _, p := range []string{db, filepath.Join(dir, devKeyFile)} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("after -dev: %v", err)
		}
	}

	r = startRun(t, args, nil)
	waitStatus(t, r, c, base+"/readyz", 200, 10*time.Second)
	status, e = call(t, c, "POST", base+"/v1/auth/register", nil, token)
	if status != 200 || e.Data["participant_id"] != participant {
		t.Errorf("POST /v1/auth/register after a restart with the earlier token = %d %+v; want 200 and participant %s", status, e, participant)
	}
	c.CloseIdleConnections()
	if err := r.stop(t, 5*time.Second); err != nil {
		t.Fatalf("second -dev run after cancel = %v; want nil", err)
	}
}
