package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// route is one entry of the route table.
type route struct {
	method, path string
	handler      http.Handler
	// tenant routes are under /v1/auth/ and need the request's tenant.
	tenant bool
}

// routes is the whole API surface. The mux matches methods; the catch-all
// turns other methods on a known path into 405 with Allow.
func (s *server) routes() []route {
	rs := []route{
		{"GET", "/v1/auth/config", handleConfig(), true},
		{"GET", "/v1/auth/authorize", handleAuthorize(s.browser), true},
		{"GET", "/v1/auth/login", handleCallback(s.browser), true},
		{"POST", "/v1/auth/login", handleLogin(s.browser), true},
		{"POST", "/v1/auth/token", handleToken(s.limiter, s.trusted), true},
		{"POST", "/v1/auth/refresh", handleRefresh(s.store), true},
		{"POST", "/v1/auth/register", handleRegister(s.store), true},
		{"POST", "/v1/auth/logout", handleLogout(s.store), true},
		{"POST", "/v1/auth/backchannel-logout", handleBackchannelLogout(s.store), true},
		{"GET", "/healthz", handleHealth(s.store), false},
		{"GET", "/readyz", handleReady(s.tenants, s.tenantFor, s.store.reachable), false},
		{"GET", "/v1/openapi.json", handleOpenAPI(), false},
	}
	if s.cfg.MetricsAddr == "" {
		rs = append(rs, route{"GET", "/metrics", handleMetrics(s.met, s.discoveryAges), false})
	}
	return rs
}

// newMux builds the mux from the route table, plus devIDP, when not nil,
// mounted under devIDPPath, at devSignedInPath and at / without tenant
// routing.
func (s *server) newMux(devIDP http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	rs := s.routes()
	s.routeTable = rs
	for _, rt := range rs {
		h := rt.handler
		if rt.tenant {
			h = s.withTenant(h)
		}
		mux.Handle(rt.method+" "+rt.path, withRoute(h))
	}
	if devIDP != nil {
		mux.Handle(devIDPPath+"/", withRoute(devIDP))
		mux.Handle(devSignedInPath, withRoute(devIDP))
		mux.Handle("GET /{$}", withRoute(devIDP))
	}
	mux.Handle("/", handleNoRoute(rs))
	return mux
}

// handleNoRoute answers what no route matched: 405 with Allow when the path
// exists with other methods, else 404.
func handleNoRoute(rs []route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods := allowedMethods(rs, r.URL.Path)
		if len(methods) == 0 {
			writeError(w, r, &apiError{http.StatusNotFound, "SW_NOT_FOUND", "no such route: " + truncate(r.URL.Path, 100)})
			return
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeError(w, r, &apiError{http.StatusMethodNotAllowed, "SW_METHOD_NOT_ALLOWED",
			fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(methods, " or "))})
	})
}

func allowedMethods(rs []route, path string) []string {
	var out []string
	for _, rt := range rs {
		if rt.path == path {
			out = append(out, rt.method)
			if rt.method == http.MethodGet {
				out = append(out, http.MethodHead)
			}
		}
	}
	return out
}

// handleConfig serves the tenant's OIDC configuration for client bootstrap.
func handleConfig() http.Handler {
	type configData struct {
		idpEndpoints
		ScopesSupported               []string `json:"scopes_supported"`
		RedirectURI                   string   `json:"redirect_uri"`
		ClientID                      string   `json:"client_id"`
		CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
		PasswordGrantEnabled          bool     `json:"password_grant_enabled"`
		// The IdP's DPoP proof algorithms, when it takes DPoP at all.
		DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := tenantOf(r)
		d := t.prov.disc.Load()
		if d == nil {
			writeError(w, r, fmt.Errorf("config: %w: no discovery document yet", errIdPUnavailable))
			return
		}
		methods := d.CodeChallengeMethodsSupported
		if methods == nil {
			methods = []string{}
		}
		w.Header().Set("Cache-Control", "public, max-age=60")
		writeData(w, configData{
			idpEndpoints:                  d.idpEndpoints,
			ScopesSupported:               t.cfg.Scopes,
			RedirectURI:                   t.cfg.RedirectURI,
			ClientID:                      t.cfg.ClientID,
			CodeChallengeMethodsSupported: methods,
			PasswordGrantEnabled:          t.cfg.Features.Auth.PasswordGrantEnabled,
			DPoPSigningAlgValuesSupported: d.DPoPSigningAlgValuesSupported,
		})
	})
}

// handleLogin exchanges an authorization code for tokens and verifies the
// ID token. With handoff it redeems a browser sign-in instead (handoff.go),
// and with state it is the form_post callback of one (callback.go).
func handleLogin(b *browserSignIn) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := tenantOf(r)
		v, err := readParams(w, r, true)
		if err != nil {
			writeError(w, r, err)
			return
		}
		switch {
		case v.Has("handoff"):
			b.redeemHandoff(w, r, t, v)
			return
		case v.Has("state"):
			b.finishSignIn(w, r, t, v)
			return
		}
		code, err := required(v, "code")
		if err != nil {
			writeError(w, r, err)
			return
		}
		if ru := v.Get("redirect_uri"); ru != "" && ru != t.cfg.RedirectURI {
			writeError(w, r, &apiError{http.StatusBadRequest, "SW_AUTH_REDIRECT_MISMATCH", "redirect_uri: does not match the redirect URI configured for this tenant"})
			return
		}
		verifier := v.Get("code_verifier")
		if verifier == "" && t.cfg.requirePKCE() {
			// The service adds its own client secret to the exchange, so
			// without PKCE anyone holding a leaked code could redeem it here.
			writeError(w, r, badRequest("code_verifier: required: this tenant redeems authorization codes only with PKCE (RFC 7636)"))
			return
		}
		if verifier != "" && !validCodeVerifier(verifier) {
			writeError(w, r, badRequest("code_verifier: must be 43-128 characters of A-Z, a-z, 0-9, '-', '.', '_' or '~' (RFC 7636)"))
			return
		}
		proof, _, err := clientProof(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		tr, err := exchangeCode(r.Context(), t, code, verifier, v.Get("nonce"), proof)
		if err != nil {
			writeError(w, r, err)
			return
		}
		relayTokens(w, r, t, tr, "")
	})
}

// exchangeCode redeems an authorization code at the tenant's token endpoint,
// with verifier as the PKCE code_verifier when not empty, and verifies the ID
// token the answer must carry, its at_hash included; nonce, when not empty,
// must be its nonce; proof, when not empty, is the client's DPoP proof.
// Errors are ready for writeError: SW_AUTH_OIDC_FAILED when the IdP rejected
// the code or the ID token failed, else as idpError maps them.
func exchangeCode(ctx context.Context, t *tenant, code, verifier, nonce, proof string) (*tokenResponse, error) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {t.cfg.RedirectURI}}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	tr, err := t.prov.tokenWithProof(ctx, form, proof)
	if err != nil {
		return nil, idpError(t, err, errCodeRejected)
	}
	if tr.IDToken == "" {
		t.prov.log.Warn("code exchange answered without an id_token: is openid among the scopes requested?")
		return nil, &apiError{http.StatusUnauthorized, "SW_AUTH_OIDC_FAILED", "the identity provider returned no ID token"}
	}
	if _, err := t.prov.verifyAnswerIDToken(ctx, tr, nonce); err != nil {
		return nil, verifyFailed(t, err, "SW_AUTH_OIDC_FAILED")
	}
	return tr, nil
}

// errCodeRejected is the answer when the IdP refuses an authorization code.
var errCodeRejected = &apiError{http.StatusUnauthorized, "SW_AUTH_OIDC_FAILED", "the identity provider rejected the authorization code"}

// validCodeVerifier checks the RFC 7636 §4.1 syntax.
func validCodeVerifier(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	return !strings.ContainsFunc(s, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~')
	})
}

// handleToken runs the resource-owner password grant, when the tenant
// enables it, with failed attempts limited per username and per address.
func handleToken(lim *loginLimiter, trusted []netip.Prefix) http.Handler {
	rejected := &apiError{http.StatusUnauthorized, "SW_AUTH_INVALID_CREDENTIALS", "invalid username or password"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := tenantOf(r)
		if !t.cfg.Features.Auth.PasswordGrantEnabled {
			writeError(w, r, &apiError{http.StatusForbidden, "SW_AUTH_PASSWORD_GRANT_DISABLED", "the password grant is disabled for this tenant"})
			return
		}
		v, err := readParams(w, r, false)
		if err != nil {
			writeError(w, r, err)
			return
		}
		switch gt := v.Get("grant_type"); gt {
		case "password":
		case "":
			writeError(w, r, badRequest("grant_type: required, must be password"))
			return
		default:
			writeError(w, r, badRequest("grant_type: must be password"))
			return
		}
		username, err := required(v, "username")
		if err != nil {
			writeError(w, r, err)
			return
		}
		password, err := required(v, "password")
		if err != nil {
			writeError(w, r, err)
			return
		}
		userKey, err := usernameKey(username)
		if err != nil {
			writeError(w, r, err)
			return
		}
		scope, err := grantScope(t.cfg, v.Get("scope"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		proof, _, err := clientProof(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if scope == "" {
			scope = strings.Join(t.cfg.Scopes, " ")
		}
		// The IdP gets the name trimmed: a space that a phone keyboard
		// appended must not fail a right password at an IdP that keeps it.
		username = strings.TrimSpace(username)
		key := newLoginKey(t.cfg.ID, userKey, clientAddr(r, trusted))
		if err := lim.admit(r.Context(), w, key); err != nil {
			writeError(w, r, err)
			return
		}
		form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}, "scope": {scope}}
		tr, err := t.prov.tokenWithProof(r.Context(), form, proof)
		if err != nil {
			// An OAuth refusal is the user's failed attempt and stays counted;
			// one about the DPoP proof is not about the password (an IdP
			// that wants nonces answers use_dpop_nonce to every first try).
			var oe *oauthError
			if !errors.As(err, &oe) || oe.clientCredentialsInvalid() || oe.aboutDPoP() {
				lim.release(key)
			}
			writeError(w, r, idpError(t, err, rejected))
			return
		}
		lim.succeed(key)
		if tr.IDToken != "" {
			if _, err := t.prov.verifyAnswerIDToken(r.Context(), tr, ""); err != nil {
				writeError(w, r, verifyFailed(t, err, "SW_AUTH_OIDC_FAILED"))
				return
			}
		}
		relayTokens(w, r, t, tr, "")
	})
}

// handleRefresh exchanges a refresh token. Concurrent and repeated calls with
// one token share one IdP call and one answer (see refreshFlights), across
// replicas too when they share a PostgreSQL database (store.sharedRefresh).
func handleRefresh(st *store) http.Handler {
	rejected := &apiError{http.StatusUnauthorized, "SW_AUTH_REFRESH_FAILED", "the identity provider rejected the refresh token"}
	signedOut := &apiError{http.StatusUnauthorized, "SW_AUTH_REFRESH_FAILED", "the refresh token was signed out: sign in again"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := tenantOf(r)
		v, err := readParams(w, r, false)
		if err != nil {
			writeError(w, r, err)
			return
		}
		rt, err := required(v, "refresh_token")
		if err != nil {
			writeError(w, r, err)
			return
		}
		// No scope asks for the one first granted (RFC 6749 §6).
		scope, err := grantScope(t.cfg, v.Get("scope"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		if t.prov.relayed.endedRefresh(tokenKey(rt)) {
			// Signed out here (/logout): refused whatever the IdP would
			// say, since not every IdP can revoke it.
			t.prov.log.Info("refresh refused: the refresh token was signed out here", "request_id", info(r).id)
			writeError(w, r, signedOut)
			return
		}
		proof, jkt, err := clientProof(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		// Callers share an answer only when their proofs are from one key:
		// the tokens are bound to the key of the proof that got them.
		key := refreshKey(t.cfg.ID, rt, scope, jkt)
		tr, err := t.prov.refresh.do(r.Context(), key, func(ctx context.Context) (*tokenResponse, error) {
			return st.sharedRefresh(ctx, key, refreshFlightTimeout, t.cfg.refreshReplay(), func(ctx context.Context) (*tokenResponse, error) {
				return refreshAtIdP(ctx, t, rt, scope, proof, rejected)
			})
		})
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := *tr // the answer is shared with other callers: copy before changing
		if !t.cfg.rotateRefreshTokens() || out.RefreshToken == "" {
			out.RefreshToken = rt
		}
		relayTokens(w, r, t, &out, rt)
	})
}

// handleRegister creates or refreshes the participant for the bearer's
// principal and returns it, with its personal workspace.
func handleRegister(st *store) http.Handler {
	type registerData struct {
		ParticipantID       string `json:"participant_id"`
		TenantID            string `json:"tenant_id"`
		DisplayName         string `json:"display_name"`
		Email               string `json:"email"`
		PersonalWorkspaceID string `json:"personal_workspace_id"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := tenantOf(r)
		raw, err := bearerToken(r)
		if err != nil {
			writeUnauthenticated(w, r, t, err)
			return
		}
		if r.ContentLength != 0 {
			// The body carries nothing, but the contract's limits still hold.
			if _, err := readParams(w, r, false); err != nil {
				writeError(w, r, err)
				return
			}
		}
		c, err := t.prov.authenticateRequest(r, raw)
		if err == nil {
			c, err = t.prov.bearerNames(r.Context(), raw, c)
		}
		if err != nil {
			writeUnauthenticated(w, r, t, err)
			return
		}
		p := principal{TenantID: t.cfg.ID, Issuer: t.cfg.principalIssuer(c), Subject: c.Subject}
		name, email := displayName(c), verifiedEmail(c)
		if strings.TrimSpace(string(c.Name)) == "" && strings.TrimSpace(string(c.PreferredUsername)) == "" && email == "" {
			// A token without names never overwrites stored ones.
			name = ""
		}
		part, err := st.ensureParticipant(r.Context(), p, name, email)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeData(w, registerData{
			ParticipantID:       part.ID,
			TenantID:            part.TenantID,
			DisplayName:         part.DisplayName,
			Email:               part.Email,
			PersonalWorkspaceID: part.PersonalWorkspaceID,
		})
	})
}

// displayName is the first of name, preferred_username, the local part of
// the email (unless it is unverified: verifiedEmail) and sub that is not
// blank.
func displayName(c *claims) string {
	local, _, _ := strings.Cut(verifiedEmail(c), "@")
	for _, s := range []string{string(c.Name), string(c.PreferredUsername), local, c.Subject} {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return c.Subject
}

// handleHealth answers 200 while the database answers.
func handleHealth(st *store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := st.ping(ctx); err != nil {
			info(r).log.Error("health check: database does not answer", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"code": "SW_INTERNAL", "message": "database unavailable"}})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeData(w, map[string]string{"status": "ok"})
	})
}

// handleReady answers 200 when every tenant it answers for has discovery
// and usable keys, else 503 naming those that have not. A request whose
// Host is a tenant's hears about that tenant only; any other Host (a load
// balancer's probe by address, or a stranger) about all of them together,
// with no tenant named: the ids would tell it which customers are served
// here.
//
// A database that did not answer the store's last poll (reachable) makes
// it 503 SW_STORE_UNAVAILABLE, so that a load balancer sends nobody to a
// replica cut off from it; it is 200 again once a poll succeeds.
func handleReady(ts []*tenant, tenantFor func(*http.Request) *tenant, reachable func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if !reachable() {
			w.Header().Set("Retry-After", "5")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]any{
				"code": "SW_STORE_UNAVAILABLE", "message": "not ready: the database does not answer", "tenants": []string{},
			}})
			return
		}
		scope, named := ts, false
		if t := tenantFor(r); t != nil {
			scope, named = []*tenant{t}, true
		}
		notReady, ids := []string{}, []string{}
		for _, t := range scope {
			if !t.prov.ready() {
				notReady = append(notReady, t.cfg.ID)
			}
			ids = append(ids, t.cfg.ID)
		}
		if len(notReady) > 0 {
			msg := "not ready: no discovery document or usable keys yet for tenants " + strings.Join(notReady, ", ")
			if !named {
				msg, notReady = "not ready: some tenant has no discovery document or usable keys yet", []string{}
			}
			w.Header().Set("Retry-After", "5")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]any{
				"code":    "SW_AUTH_IDP_UNAVAILABLE",
				"message": msg,
				"tenants": notReady,
			}})
			return
		}
		if !named {
			ids = []string{}
		}
		slices.Sort(ids)
		writeData(w, map[string]any{"status": "ready", "tenants": ids})
	})
}

// refreshAtIdP asks t's IdP to refresh rt for scope, with the client's DPoP
// proof when it sent one, and verifies the ID token of its answer.
func refreshAtIdP(ctx context.Context, t *tenant, rt, scope, proof string, rejected *apiError) (*tokenResponse, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	if scope != "" {
		form.Set("scope", scope)
	}
	tr, err := t.prov.tokenWithProof(ctx, form, proof)
	if err != nil {
		return nil, idpError(t, err, rejected)
	}
	if tr.IDToken != "" {
		if _, err := t.prov.verifyAnswerIDToken(ctx, tr, ""); err != nil {
			return nil, verifyFailed(t, err, "SW_AUTH_REFRESH_FAILED")
		}
	}
	return tr, nil
}
