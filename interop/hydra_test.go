package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// hydraVersion is the Ory Hydra release the tests run; interop/hydra/go.mod
// pins it, and run.sh builds that module into hydraBin.
const hydraVersion = "v2.3.0"

// hydraBin is the Hydra binary, set by TestMain from INTEROP_HYDRA_BIN
// (run.sh builds it once per version and caches it).
var hydraBin string

// startHydra starts `hydra serve all --dev` on two loopback ports (public
// and admin) with an in-memory database, the login/consent/logout app of
// this file, and the service's client created through the admin API. The
// access-token strategy is "opaque" (Hydra's default) or "jwt".
//
// The client's backchannel_logout_uri is a logoutRelay in front of the
// service's /v1/auth/backchannel-logout.
func startHydra(t *testing.T, p *peer, svcBase, redirectURI string) *idp {
	t.Helper()
	if hydraBin == "" {
		t.Fatalf("no Hydra binary: set INTEROP_HYDRA_BIN (interop/run.sh builds Hydra %s from interop/hydra and sets it)", hydraVersion)
	}
	app := newHydraApp(t, p.username, p.password, p.wantName, p.wantEmail)
	relay := newLogoutRelay(t, svcBase+"/v1/auth/backchannel-logout")
	publicPort, adminPort := freePort(t), freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d/", publicPort)
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	app.admin = admin

	cfg := map[string]any{
		"dsn": "memory",
		"serve": map[string]any{
			"public": map[string]any{"host": "127.0.0.1", "port": publicPort},
			"admin":  map[string]any{"host": "127.0.0.1", "port": adminPort},
		},
		"urls": map[string]any{
			"self":    map[string]any{"issuer": issuer},
			"login":   app.srv.URL + "/login",
			"consent": app.srv.URL + "/consent",
			"logout":  app.srv.URL + "/logout",
		},
		"secrets":    map[string]any{"system": []string{randomString(32)}},
		"strategies": map[string]any{"access_token": p.hydraStrategy},
		"oauth2":     map[string]any{"expose_internal_errors": true},
		"log":        map[string]any{"level": "info", "leak_sensitive_values": false},
		"ttl": map[string]any{
			"access_token":  "10m",
			"refresh_token": "1h",
			"id_token":      "10m",
		},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	cfgPath := filepath.Join(workDir, fmt.Sprintf("hydra-%s-%d.json", p.name, time.Now().UnixNano()))
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	proc := startProc(t, "hydra-"+p.name, workDir, nil, hydraBin, "serve", "all", "--dev", "--config", cfgPath)

	deadline := time.Now().Add(60 * time.Second)
	for {
		if proc.exited() {
			t.Fatalf("hydra exited before it was ready (%v): %s", proc.err, lastLine(proc.logPath))
		}
		st, _, err := get(admin + "/health/ready")
		if err == nil && st == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hydra not ready within 60 s (last: %d %v)", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Hydra makes its signing keys (RSA 4096, one set for ID tokens, one
	// for JWT access tokens) on the first request that needs them; on a
	// busy machine that takes longer than a request's usual timeout.
	if st, _, err := getWithin(issuer+".well-known/jwks.json", 90*time.Second); err != nil || st != http.StatusOK {
		t.Fatalf("hydra: its JWKS did not answer 200 within 90 s (%d %v)", st, err)
	}

	client := map[string]any{
		"client_id":                           p.clientID,
		"client_secret":                       p.clientSecret,
		"grant_types":                         []string{"authorization_code", "refresh_token"},
		"response_types":                      []string{"code"},
		"scope":                               strings.Join(p.scopes, " "),
		"redirect_uris":                       []string{redirectURI},
		"token_endpoint_auth_method":          "client_secret_basic",
		"backchannel_logout_uri":              relay.url(),
		"backchannel_logout_session_required": true,
		"post_logout_redirect_uris":           []string{svcBase + "/signed-out"},
	}
	cb, _ := json.Marshal(client)
	st, body := postJSON(t, http.MethodPost, admin+"/admin/clients", cb)
	if st != http.StatusCreated {
		t.Fatalf("hydra: creating the client through the admin API: %d %s", st, body)
	}
	var created struct {
		ClientID string `json:"client_id"`
	}
	_ = json.Unmarshal(body, &created)
	if created.ClientID != p.clientID {
		t.Fatalf("hydra created client %q, asked for %q", created.ClientID, p.clientID)
	}
	return &idp{
		issuer:        issuer,
		introspection: admin + "/admin/oauth2/introspect",
		logoutTokens:  relay.delivered,
	}
}

// postJSON sends a JSON body to Hydra's admin API (no token in it: the
// bodies are client metadata and login/consent decisions).
func postJSON(t *testing.T, method, u string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, pathOf(u), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

// hydraApp is the login, consent and logout UI Hydra redirects the browser
// to (https://www.ory.sh/docs/hydra/guides/custom-ui-oauth2 describes the
// protocol): it shows a password form for the one test user, grants the
// requested scopes among openid/profile/email/offline_access, and puts
// the user's name and email into the ID token and the access token session.
type hydraApp struct {
	t                  *testing.T
	srv                *httptest.Server
	admin              string
	username, password string
	name, email        string
}

var hydraGrantable = []string{"openid", "profile", "email", "offline_access"}

func newHydraApp(t *testing.T, username, password, name, email string) *hydraApp {
	a := &hydraApp{t: t, username: username, password: password, name: name, email: email}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.loginPage)
	mux.HandleFunc("POST /login", a.loginSubmit)
	mux.HandleFunc("GET /consent", a.consent)
	mux.HandleFunc("GET /logout", a.logout)
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// fail answers a page the browser helper will quote in its error.
func (a *hydraApp) fail(w http.ResponseWriter, status int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.t.Logf("hydra login app: %s", msg)
	http.Error(w, msg, status)
}

func (a *hydraApp) loginPage(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("login_challenge")
	if ch == "" {
		a.fail(w, http.StatusBadRequest, "login: no login_challenge")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><title>Sign in</title><form method="post" action="/login">
<input type="hidden" name="login_challenge" value="%s">
<input type="text" name="username"><input type="password" name="password">
<button type="submit" name="action" value="sign-in">Sign in</button></form>`, html.EscapeString(ch))
}

func (a *hydraApp) loginSubmit(w http.ResponseWriter, r *http.Request) {
	ch := r.PostFormValue("login_challenge")
	if r.PostFormValue("username") != a.username || r.PostFormValue("password") != a.password {
		a.fail(w, http.StatusUnauthorized, "login: wrong username or password")
		return
	}
	body, _ := json.Marshal(map[string]any{"subject": a.username, "remember": true, "remember_for": 3600})
	a.accept(w, "login", ch, body)
}

func (a *hydraApp) consent(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("consent_challenge")
	st, b := postJSON(a.t, http.MethodGet, a.admin+"/admin/oauth2/auth/requests/consent?consent_challenge="+url.QueryEscape(ch), nil)
	if st != http.StatusOK {
		a.fail(w, http.StatusBadGateway, "consent: hydra answered %d %s", st, b)
		return
	}
	var req struct {
		RequestedScope    []string `json:"requested_scope"`
		RequestedAudience []string `json:"requested_access_token_audience"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		a.fail(w, http.StatusBadGateway, "consent: %v", err)
		return
	}
	var grant []string
	for _, s := range req.RequestedScope {
		if slices.Contains(hydraGrantable, s) {
			grant = append(grant, s)
		}
	}
	claims := map[string]any{"name": a.name, "email": a.email, "email_verified": true, "preferred_username": a.username}
	body, _ := json.Marshal(map[string]any{
		"grant_scope":                 grant,
		"grant_access_token_audience": req.RequestedAudience,
		"remember":                    false,
		"session":                     map[string]any{"id_token": claims, "access_token": map[string]any{"name": a.name, "email": a.email}},
	})
	a.accept(w, "consent", ch, body)
}

func (a *hydraApp) logout(w http.ResponseWriter, r *http.Request) {
	a.accept(w, "logout", r.URL.Query().Get("logout_challenge"), nil)
}

// accept tells Hydra the decision and sends the browser where Hydra says.
func (a *hydraApp) accept(w http.ResponseWriter, flow, challenge string, body []byte) {
	if challenge == "" {
		a.fail(w, http.StatusBadRequest, "%s: no challenge", flow)
		return
	}
	u := fmt.Sprintf("%s/admin/oauth2/auth/requests/%s/accept?%s_challenge=%s", a.admin, flow, flow, url.QueryEscape(challenge))
	st, b := postJSON(a.t, http.MethodPut, u, body)
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	if st != http.StatusOK || json.Unmarshal(b, &out) != nil || out.RedirectTo == "" {
		a.fail(w, http.StatusBadGateway, "%s accept: hydra answered %d %s", flow, st, b)
		return
	}
	http.Redirect(w, &http.Request{Method: http.MethodGet}, out.RedirectTo, http.StatusFound)
}
