package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
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
		"\n  " + base + "/\n",
		"curl -s -u " + devOpaqueClientID + ":" + devOpaqueClientSecret + " " + base + devIDPPath + "/token -d grant_type=password -d username=alice -d password=alice-password",
		"curl -s -u " + devClientID + ":" + devClientSecret + " " + base + devIDPPath + "/introspect -d token=$OPAQUE_TOKEN",
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
	// The banner's opaque flow: a token of the opaque client straight from
	// the IdP, introspected by /register, for the same participant.
	req, _ := http.NewRequest("POST", base+devIDPPath+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(devOpaqueClientID, devOpaqueClientSecret)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var opaque struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&opaque)
	resp.Body.Close()
	if resp.StatusCode != 200 || opaque.AccessToken == "" || strings.Contains(opaque.AccessToken, ".") {
		t.Fatalf("POST %s/token for the opaque client = %d; want an opaque access token", devIDPPath, resp.StatusCode)
	}
	status, e = call(t, c, "POST", base+"/v1/auth/register", nil, opaque.AccessToken)
	if status != 200 || e.Data["participant_id"] != participant {
		t.Errorf("POST /v1/auth/register with alice's opaque token = %d %+v; want 200 and participant %s", status, e, participant)
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

// TestRunDevBrowserSignIn walks the browser sign-in through -dev with a
// cookie jar, as a browser would: /v1/auth/authorize with the app's PKCE
// challenge (required), the dev IdP's login form, the callback, and the dev
// app's page with a handoff, which redeems with the app's verifier to
// alice's tokens and participant.
func TestRunDevBrowserSignIn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	r := startRun(t, []string{"-dev", "-addr", addr, "-db", filepath.Join(dir, "dev.db")}, nil)
	c := newTestClient(t)
	waitStatus(t, r, c, base+"/readyz", 200, 10*time.Second)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{
		Jar:           jar,
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(browser.CloseIdleConnections)
	redirect := func(u string, want int) *url.URL {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if resp.StatusCode != want || err != nil {
			t.Fatalf("GET %s = %d (Location %v); want %d with a Location", u, resp.StatusCode, err, want)
		}
		return loc
	}
	alice := devUsers()[0]
	signIn := func(authorize string) (handoff string) {
		t.Helper()
		idp := redirect(authorize, http.StatusFound)
		if !strings.HasPrefix(idp.String(), base+devIDPPath+"/authorize?") {
			t.Fatalf("/v1/auth/authorize sent the browser to %s; want the dev IdP", idp)
		}
		callback := e2eBrowser(t, idp, alice.Username, alice.Password)
		if got := callback.Scheme + "://" + callback.Host + callback.Path; got != base+"/v1/auth/login" {
			t.Fatalf("the dev IdP sent the browser to %s; want the service's /v1/auth/login", got)
		}
		page := redirect(callback.String(), http.StatusSeeOther)
		if got := page.Scheme + "://" + page.Host + page.Path; got != base+devSignedInPath {
			t.Fatalf("the callback sent the browser to %s; want the dev app's page", got)
		}
		resp, err := browser.Get(page.String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "/v1/auth/register") {
			t.Fatalf("GET %s = %d %s; want the dev app's page", devSignedInPath, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return page.Query().Get("handoff")
	}

	if resp, err := browser.Get(base + "/v1/auth/authorize"); err != nil || resp.StatusCode != 400 {
		t.Fatalf("GET /v1/auth/authorize without code_challenge in -dev = %v %v; want 400 (require_handoff_pkce is on)", resp, err)
	} else {
		resp.Body.Close()
	}
	h := signIn(base + "/v1/auth/authorize?code_challenge=" + s256(tokVerifier) + "&code_challenge_method=S256")
	status, e := call(t, c, "POST", base+"/v1/auth/login", url.Values{"handoff": {h}, "code_verifier": {tokVerifier}}, "")
	token, _ := e.Data["access_token"].(string)
	if status != 200 || token == "" {
		t.Fatalf("POST /v1/auth/login with the handoff = %d %+v; want alice's tokens", status, e.Error)
	}
	status, e = call(t, c, "POST", base+"/v1/auth/register", nil, token)
	if status != 200 || e.Data["display_name"] != alice.Name || e.Data["email"] != alice.Email || e.Data["tenant_id"] != "dev" {
		t.Errorf("POST /v1/auth/register after the browser sign-in = %d %+v; want alice's participant", status, e)
	}
	if status, _ := call(t, c, "POST", base+"/v1/auth/login", url.Values{"handoff": {h}, "code_verifier": {tokVerifier}}, ""); status != 401 {
		t.Errorf("POST /v1/auth/login with the handoff again = %d; want 401", status)
	}

	// Login CSRF: someone else's handoff, redeemed without its verifier.
	h = signIn(base + "/v1/auth/authorize?code_challenge=" + s256(tokVerifier) + "&code_challenge_method=S256")
	if status, _ := call(t, c, "POST", base+"/v1/auth/login", url.Values{"handoff": {h}}, ""); status != 400 {
		t.Errorf("POST /v1/auth/login with a handoff and no verifier = %d; want 400", status)
	}
	// The landing page links the dev app.
	resp, err := browser.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), `href="`+devSignedInPath+`"`) {
		t.Errorf("GET / in -dev = %d %s; want an HTML page linking %s", resp.StatusCode, resp.Header.Get("Content-Type"), devSignedInPath)
	}
	c.CloseIdleConnections()
	browser.CloseIdleConnections()
	if err := r.stop(t, 5*time.Second); err != nil {
		t.Fatalf("-dev run after cancel = %v; want nil", err)
	}
}

// TestRunDevSignOut runs -dev and signs alice out both ways: through
// /v1/auth/logout, and at the development IdP, which tells the service by a
// back-channel logout. Each time her tokens stop working at once (the
// access token from the cache too), and a new sign-in works.
func TestRunDevSignOut(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	base := "http://" + addr
	c := newTestClient(t)
	r := startRun(t, []string{"-dev", "-addr", addr, "-db", filepath.Join(t.TempDir(), "dev.db")}, nil)
	waitStatus(t, r, c, base+"/readyz", 200, 10*time.Second)
	banner := r.stdout.String()
	for _, want := range []string{"curl -s -X POST " + base + "/v1/auth/logout", base + "/dev/idp/logout?client_id=" + devClientID + "&logout_hint=alice"} {
		if !strings.Contains(banner, want) {
			t.Errorf("-dev banner lacks %q:\n%s", want, banner)
		}
	}
	signIn := func(step string) (access, refresh string) {
		t.Helper()
		form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}}
		status, e := call(t, c, "POST", base+"/v1/auth/token", form, "")
		access, _ = e.Data["access_token"].(string)
		refresh, _ = e.Data["refresh_token"].(string)
		if status != 200 || access == "" || refresh == "" {
			t.Fatalf("%s: POST /v1/auth/token = %d %+v", step, status, e)
		}
		for range 2 { // the second from the cache
			if status, e := call(t, c, "POST", base+"/v1/auth/register", nil, access); status != 200 {
				t.Fatalf("%s: POST /v1/auth/register = %d %+v", step, status, e)
			}
		}
		return access, refresh
	}
	wantSignedOut := func(step, access, refresh string) {
		t.Helper()
		if status, _ := call(t, c, "POST", base+"/v1/auth/register", nil, access); status != 401 {
			t.Errorf("%s: POST /v1/auth/register = %d; want 401", step, status)
		}
		if status, _ := call(t, c, "POST", base+"/v1/auth/refresh", url.Values{"refresh_token": {refresh}}, ""); status != 401 {
			t.Errorf("%s: POST /v1/auth/refresh = %d; want 401", step, status)
		}
	}

	access, refresh := signIn("first sign-in")
	status, e := call(t, c, "POST", base+"/v1/auth/logout", url.Values{"refresh_token": {refresh}}, access)
	esu, _ := e.Data["end_session_url"].(string)
	if status != 200 || e.Data["revoked"] != true || !strings.HasPrefix(esu, base+"/dev/idp/logout?") ||
		!strings.Contains(esu, url.QueryEscape(devPostLogoutRedirectURI(base))) {
		t.Errorf("POST /v1/auth/logout = %d %+v; want 200, revoked, and an end_session_url back to %s", status, e, devPostLogoutRedirectURI(base))
	}
	wantSignedOut("after /v1/auth/logout", access, refresh)

	access, refresh = signIn("second sign-in")
	resp, err := c.Get(base + "/dev/idp/logout?client_id=" + devClientID + "&logout_hint=alice")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /dev/idp/logout = %d", resp.StatusCode)
	}
	wantSignedOut("after signing out at the IdP", access, refresh)

	// Tokens issued in the logout's second count as issued before it.
	for now := time.Now().Unix(); time.Now().Unix() == now; {
		time.Sleep(20 * time.Millisecond)
	}
	signIn("a sign-in after the back-channel logout")
	c.CloseIdleConnections()
	if err := r.stop(t, 5*time.Second); err != nil {
		t.Fatalf("-dev run after cancel = %v; want nil", err)
	}
}
