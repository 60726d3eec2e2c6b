package interop

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// step is one line of the scenario every provider runs, in this order.
// Steps share the env: code_flow_pkce makes the session that register,
// refresh_rotation and the *_as_bearer steps use; the logout steps sign in
// afresh so that they end a session of their own.
type step struct {
	name string
	what string // for the README's table
	run  func(t *testing.T, e *env)
}

var steps = []step{
	{"check", "`scaiwave-auth -config … -check` exits 0 naming the tenant", stepCheck},
	{"readyz", "`GET /readyz` 200", stepReadyz},
	{"config", "`GET /v1/auth/config` names the provider's issuer and endpoints", stepConfig},
	{"code_flow_pkce", "sign-in at the provider's own pages, PKCE S256, code posted to `/v1/auth/login`", stepCodeFlow},
	{"browser_chromium", "headless Chromium: `/v1/auth/authorize` with a PKCE challenge, the provider's pages filled in, handoff redeemed with the verifier, `/register` right name and email, no token in any URL", stepChromium},
	{"password_grant", "`/v1/auth/token` grant_type=password, then `/register` with its access token", stepPasswordGrant},
	{"register", "`/v1/auth/register` with the provider's default access token: 200, right name and email", stepRegister},
	{"refresh_rotation", "`/v1/auth/refresh`: a new refresh token where the provider rotates, the same one where it does not; the new access token registers", stepRefresh},
	{"refresh_token_as_bearer", "the refresh token as a bearer: 401", stepRefreshAsBearer},
	{"id_token_as_bearer", "every ID token relayed (sign-in and refresh) as a bearer: 401", stepIDAsBearer},
	{"revoke_at_idp", "access token revoked at the provider (RFC 7009): 401 within cache_seconds", stepRevoke},
	{"logout_ends_session", "`/v1/auth/logout`, then the access token, the refresh token and the ID token as bearers 401, and `/refresh` with the refresh token refused", stepLogout},
	{"backchannel_logout", "RP-initiated logout at the provider; its logout token reaches `/v1/auth/backchannel-logout` (200); the session's access token then 401, and `/refresh` with its refresh token refused", stepBackchannel},
	{"logout_token_as_bearer", "the provider's back-channel logout token as a bearer: 401", stepLogoutTokenAsBearer},
}

// TestInterop runs every step against every provider: one table of
// providers × steps, printed at the end (results) in the README's shape.
// Providers run in parallel, each with its own ports and service.
func TestInterop(t *testing.T) {
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			var e *env
			t.Cleanup(func() {
				if e == nil {
					for _, s := range steps {
						results.set(p.name, s.name, "FAIL: setup failed")
					}
				}
			})
			e = setup(t, p)
			for _, s := range steps {
				t.Run(s.name, func(t *testing.T) {
					t.Cleanup(func() { results.record(t, p.name, s.name) })
					if reason, ok := p.skip[s.name]; ok {
						skipStep(t, e, s.name, reason)
					}
					s.run(t, e)
				})
			}
		})
	}
}

// skipStep is the only way a step is skipped: with the provider's reason,
// recorded in the results table. A reason that the provider's own
// discovery document contradicts is a failure, not a skip.
func skipStep(t *testing.T, e *env, name, reason string) {
	t.Helper()
	if reason == noPasswordGrant && slices.Contains(e.disc.GrantTypesSupported, "password") {
		t.Fatalf("declared skip %q, but discovery lists the password grant: the skip is stale", reason)
	}
	if (reason == noBackchannel || reason == llngNoBackchannel) && e.disc.BackchannelLogoutSupported {
		t.Fatalf("declared skip %q, but discovery says backchannel_logout_supported: true: the skip is stale", reason)
	}
	if reason == noRevocationEndp && e.disc.RevocationEndpoint != "" {
		t.Fatalf("declared skip %q, but discovery names a revocation_endpoint: the skip is stale", reason)
	}
	results.skipReason(e.p.name, name, reason)
	t.Skip(reason)
}

// resultTable collects each step's outcome per provider.
type resultTable struct {
	mu      sync.Mutex
	outcome map[string]map[string]string // peer -> step -> outcome
}

var results = &resultTable{outcome: map[string]map[string]string{}}

func (r *resultTable) set(peer, step, v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.outcome[peer] == nil {
		r.outcome[peer] = map[string]string{}
	}
	if _, done := r.outcome[peer][step]; !done || strings.HasPrefix(v, "FAIL") {
		r.outcome[peer][step] = v
	}
}

func (r *resultTable) skipReason(peer, step, reason string) { r.set(peer, step, "skip: "+reason) }

// record is a step's cleanup: pass, FAIL, or the skip recorded already.
func (r *resultTable) record(t *testing.T, peer, step string) {
	switch {
	case t.Failed():
		r.set(peer, step, "FAIL")
	case t.Skipped():
		r.set(peer, step, "skip") // skipStep recorded the reason first
	default:
		r.set(peer, step, "pass")
	}
}

// printResults writes the table: one row per step, one column per provider.
func printResults(w io.Writer) {
	results.mu.Lock()
	defer results.mu.Unlock()
	if len(results.outcome) == 0 {
		return
	}
	var cols []*peer
	for _, p := range peers {
		if results.outcome[p.name] != nil {
			cols = append(cols, p)
		}
	}
	fmt.Fprintln(w, "\ninterop results (step × provider):")
	fmt.Fprint(w, "| step |")
	for _, p := range cols {
		fmt.Fprintf(w, " %s |", p.name)
	}
	fmt.Fprint(w, "\n|---|")
	for range cols {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for _, s := range steps {
		fmt.Fprintf(w, "| %s |", s.name)
		for _, p := range cols {
			v := results.outcome[p.name][s.name]
			if v == "" {
				v = "not run"
			}
			fmt.Fprintf(w, " %s |", v)
		}
		fmt.Fprintln(w)
	}
}

// needSession fails a step that depends on code_flow_pkce when it failed.
func (e *env) needSession(t *testing.T) *session {
	t.Helper()
	if e.sess == nil {
		t.Fatal("needs the session of code_flow_pkce, which failed")
	}
	return e.sess
}

func stepCheck(t *testing.T, e *env) {
	cmd := exec.Command(serviceBin, "-config", e.svc.cfgPath, "-check")
	out, err := cmd.CombinedOutput()
	t.Logf("-check said:\n%s", out)
	if err != nil {
		t.Fatalf("-check: %v, want exit status 0", err)
	}
	if !strings.Contains(string(out), e.p.tenantID) {
		t.Errorf("-check: the output does not name the tenant %q", e.p.tenantID)
	}
}

func stepReadyz(t *testing.T, e *env) {
	st, body, err := get(e.svc.base + "/readyz")
	if err != nil || st != http.StatusOK {
		t.Fatalf("/readyz: %d %s %v, want 200", st, body, err)
	}
}

func stepConfig(t *testing.T, e *env) {
	st, body, err := get(e.svc.base + "/v1/auth/config")
	if err != nil || st != http.StatusOK {
		t.Fatalf("/v1/auth/config: %d %s %v, want 200", st, body, err)
	}
	a := &apiCall{status: st, body: body}
	a.parse()
	str := func(k string) string { s, _ := a.data[k].(string); return s }
	for k, want := range map[string]string{
		"issuer":                 e.idp.issuer,
		"authorization_endpoint": e.disc.AuthorizationEndpoint,
		"token_endpoint":         e.disc.TokenEndpoint,
		"client_id":              e.p.clientID,
		"redirect_uri":           e.redirectURI,
	} {
		if got := str(k); got != want {
			t.Errorf("/v1/auth/config data.%s = %q, want %q", k, got, want)
		}
	}
	if got, _ := a.data["password_grant_enabled"].(bool); got != e.p.passwordGrant {
		t.Errorf("/v1/auth/config data.password_grant_enabled = %v, want %v", got, e.p.passwordGrant)
	}
}

func stepCodeFlow(t *testing.T, e *env) {
	s := e.login(t)
	e.sess = s
	e.idTokens = append(e.idTokens, s.idToken)
}

// stepChromium runs interop/browser/realidp.mjs: Debian's Chromium through
// the service's browser sign-in against this provider.
func stepChromium(t *testing.T, e *env) {
	dir := filepath.Join(interopDir, "browser")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatal("playwright-core is not installed in interop/browser/node_modules: run interop/run.sh (it installs it with npm ci)")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: run interop/run.sh (it installs Debian's chromium with apt-get)", chromiumPath)
	}
	cmd := exec.Command("node", "realidp.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"SCAIWAVE_BASE="+e.svc.base,
		"RETURN_TO="+e.returnTo,
		"IDP_USERNAME="+e.p.username,
		"IDP_PASSWORD="+e.p.password,
		"CHROMIUM="+chromiumPath,
	)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		t.Fatalf("Chromium sign-in: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var got struct {
		DisplayName string   `json:"display_name"`
		Email       string   `json:"email"`
		Pages       []string `json:"pages"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("Chromium sign-in: unreadable result line: %v", err)
	}
	t.Logf("Chromium pressed a button on %d provider pages: %v", len(got.Pages), got.Pages)
	if got.DisplayName != e.p.wantName || got.Email != e.p.wantEmail {
		t.Errorf("after the Chromium sign-in /register said %q <%s>, want %q <%s>", got.DisplayName, got.Email, e.p.wantName, e.p.wantEmail)
	}
}

// chromiumPath is Debian's chromium, which run.sh installs.
const chromiumPath = "/usr/bin/chromium"

func stepPasswordGrant(t *testing.T, e *env) {
	a := callAPI(t, e.svc, "/v1/auth/token", map[string]string{
		"grant_type": "password",
		"username":   e.p.username,
		"password":   e.p.password,
	}, "")
	if a.status != http.StatusOK {
		t.Fatalf("/v1/auth/token (password grant): want 200, got %s", a.describe())
	}
	s := checkTokenData(t, "/v1/auth/token", a)
	describeAccessToken(t, "access token of the password grant", s.access)
	e.register(t, s.access, "access token from the password grant")
}

func stepRegister(t *testing.T, e *env) {
	s := e.needSession(t)
	e.register(t, s.access, "access token from the code flow")
}

func stepRefresh(t *testing.T, e *env) {
	s := e.needSession(t)
	next := e.refresh(t, s)
	e.sess = next
	if next.idToken != "" {
		e.idTokens = append(e.idTokens, next.idToken)
	}
	describeAccessToken(t, "refreshed access token", next.access)
	e.register(t, next.access, "refreshed access token")
}

// mustAccept is the precondition of a refusal test: the access token is
// accepted (200) before the logout, or the refusal after it shows nothing.
// Names are register's business, not checked here.
func (e *env) mustAccept(t *testing.T, access string) {
	t.Helper()
	if a := callAPI(t, e.svc, "/v1/auth/register", nil, access); a.status != http.StatusOK {
		t.Fatalf("precondition: /v1/auth/register with the fresh access token must answer 200 before the logout, got %s", a.describe())
	}
}

// refusedAsBearer checks that /register answers 401 for tok.
func (e *env) refusedAsBearer(t *testing.T, tok, what string) {
	t.Helper()
	if tok == "" {
		t.Fatalf("no %s to try", what)
	}
	a := callAPI(t, e.svc, "/v1/auth/register", nil, tok)
	if a.status != http.StatusUnauthorized {
		t.Errorf("/v1/auth/register with the %s as a bearer: want 401, got %s", what, a.describe())
		return
	}
	if a.code != "SW_AUTH_UNAUTHENTICATED" {
		t.Errorf("the %s as a bearer: code %q, want SW_AUTH_UNAUTHENTICATED", what, a.code)
	}
	t.Logf("the %s as a bearer: %s", what, a.describe())
}

func stepRefreshAsBearer(t *testing.T, e *env) {
	s := e.needSession(t)
	describeAccessToken(t, "refresh token", s.refresh)
	e.refusedAsBearer(t, s.refresh, "refresh token")
}

func stepIDAsBearer(t *testing.T, e *env) {
	e.needSession(t)
	for i, tok := range e.idTokens {
		what := "ID token of the sign-in"
		if i > 0 {
			what = "ID token of the refresh"
		}
		e.refusedAsBearer(t, tok, what)
	}
}

func stepRevoke(t *testing.T, e *env) {
	s := e.login(t)
	e.revokeThenRefused(t, s.access, "access token")
}

func stepLogout(t *testing.T, e *env) {
	s := e.login(t)
	e.mustAccept(t, s.access)
	a := callAPI(t, e.svc, "/v1/auth/logout", map[string]string{
		"refresh_token": s.refresh,
		"id_token_hint": s.idToken,
	}, s.access)
	if a.status != http.StatusOK {
		t.Fatalf("/v1/auth/logout: want 200, got %s", a.describe())
	}
	t.Logf("/v1/auth/logout: revoked=%v, end_session_url present: %v", a.data["revoked"], a.data["end_session_url"] != nil)
	e.refusedAsBearer(t, s.access, "access token after /logout")
	e.refusedAsBearer(t, s.refresh, "refresh token after /logout")
	e.refusedAsBearer(t, s.idToken, "ID token after /logout")
	r := callAPI(t, e.svc, "/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, "")
	if r.status != http.StatusUnauthorized {
		t.Errorf("/v1/auth/refresh with the logged-out refresh token: want 401, got %s", r.describe())
	} else {
		t.Logf("/v1/auth/refresh with the logged-out refresh token: %s", r.describe())
	}
}

func stepBackchannel(t *testing.T, e *env) {
	if e.p.logout == nil || e.idp.logoutTokens == nil {
		t.Fatal("the provider row names no way to trigger a back-channel logout")
	}
	s := e.login(t)
	e.mustAccept(t, s.access)
	e.p.logout(t, e, s)
	var d delivery
	select {
	case d = <-e.idp.logoutTokens:
	case <-time.After(15 * time.Second):
		t.Fatal("the provider sent no back-channel logout token within 15 s of the logout")
	}
	e.logoutToken = d.token
	describeAccessToken(t, "logout token", d.token)
	if d.status != http.StatusOK {
		t.Fatalf("/v1/auth/backchannel-logout answered the provider's logout token with %d %s, want 200", d.status, d.svcBody)
	}
	if st, body := e.providerPost(t, e.idp.introspection, s.access); st == http.StatusOK {
		t.Logf("after the logout the provider's introspection says of the access token: %s", body)
	}
	e.refusedAsBearer(t, s.access, "access token after back-channel logout")
	if s.refresh == "" {
		return
	}
	r := callAPI(t, e.svc, "/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, "")
	if r.status != http.StatusUnauthorized {
		t.Errorf("/v1/auth/refresh with the refresh token of the session logged out by back-channel: want 401, got %s", r.describe())
	} else {
		t.Logf("/v1/auth/refresh with the refresh token of the session logged out by back-channel: %s", r.describe())
	}
}

func stepLogoutTokenAsBearer(t *testing.T, e *env) {
	if e.logoutToken == "" {
		t.Fatal("needs the logout token of backchannel_logout, which got none")
	}
	e.refusedAsBearer(t, e.logoutToken, "back-channel logout token")
}
