package main

// The browser sign-in, second half: the IdP sends the browser back to
// /v1/auth/login with code and state, by GET (the default response mode) or
// by a form_post POST. The state is taken (once), the cookie checked, the
// code redeemed with the verifier kept for it, and the browser sent back to
// the app with a one-time handoff (handoff.go), never with a token.

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// errUnknownState is the answer to a state that is not (or no longer) one
// of ours: made up, expired, already used, or from another tenant.
var errUnknownState = badRequest("state: unknown, expired or already used; begin the sign-in again at /v1/auth/authorize")

// handleCallback serves GET /v1/auth/login, where the IdP redirects the
// browser after sign-in; see finishSignIn.
func handleCallback(b *browserSignIn) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := readParams(w, r, true)
		if err != nil {
			writeError(w, r, err)
			return
		}
		b.finishSignIn(w, r, tenantOf(r), v)
	})
}

// finishSignIn completes the sign-in whose state v carries. An unknown,
// expired or replayed state, or a missing or wrong cookie, is 400 in the
// envelope: there is nowhere safe to send the browser. Once the state is
// known and the cookie matches, the browser goes back to the sign-in's
// return_to with 303: with handoff=H on success, or with error= (a code
// from RFC 6749 and OpenID Connect, never the IdP's free text) when the IdP
// refused or the code exchange failed.
func (b *browserSignIn) finishSignIn(w http.ResponseWriter, r *http.Request, t *tenant, v url.Values) {
	w.Header().Set("Cache-Control", "no-store")
	state, err := required(v, "state")
	if err != nil {
		writeError(w, r, err)
		return
	}
	ts := b.of(t)
	// Taken before anything else is checked: whatever happens next, this
	// state cannot be used again.
	ps, ok := ts.pending.take(onceKeyOf(state))
	if !ok {
		writeError(w, r, errUnknownState)
		return
	}
	if err := checkBinding(r, b.trusted, ps.binding); err != nil {
		t.prov.log.Info("browser sign-in refused: cookie missing or wrong", "request_id", info(r).id)
		writeError(w, r, err)
		return
	}
	if v.Has("error") {
		code := authErrorCode(v.Get("error"))
		t.prov.log.Info("browser sign-in: the IdP answered with an error", "error", code, "request_id", info(r).id)
		redirectBack(w, ps.returnTo, "error", code)
		return
	}
	if iss := v.Get("iss"); v.Has("iss") && iss != t.cfg.Issuer {
		// RFC 9207: the answer names another issuer than the one this
		// sign-in went to; its code is not redeemed here.
		t.prov.log.Warn("browser sign-in: the answer's iss is not the tenant's issuer", "iss", truncate(iss, 100), "request_id", info(r).id)
		redirectBack(w, ps.returnTo, "error", "invalid_request")
		return
	}
	code := v.Get("code")
	if code == "" {
		redirectBack(w, ps.returnTo, "error", "invalid_request")
		return
	}
	tr, err := exchangeCode(r.Context(), t, code, ps.verifier, ps.nonce, "")
	if err != nil {
		errCode := "server_error"
		var ae *apiError
		switch {
		case errors.As(err, &ae):
		case errors.Is(err, errIdPUnavailable):
			errCode = "temporarily_unavailable"
		}
		// exchangeCode has logged the IdP's refusal or the token's fault.
		t.prov.log.Warn("browser sign-in: code exchange failed", "err", err, "request_id", info(r).id)
		redirectBack(w, ps.returnTo, "error", errCode)
		return
	}
	h := randomValue()
	evicted := ts.handoffs.put(onceKeyOf(h), handoff{tokens: tr, challenge: ps.challenge, issued: ts.handoffs.now()}, handoffSize(tr))
	ts.warnEvicted(t, "handoffs", evicted)
	redirectBack(w, ps.returnTo, "handoff", h)
}

// authErrors are the error codes of an authorization response (RFC 6749
// §4.1.2.1, OpenID Connect Core §3.1.2.6), which the app may see.
var authErrors = []string{
	"invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
	"invalid_scope", "server_error", "temporarily_unavailable",
	"interaction_required", "login_required", "account_selection_required", "consent_required",
	"invalid_request_uri", "invalid_request_object", "request_not_supported",
	"request_uri_not_supported", "registration_not_supported",
}

// authErrorCode passes on a known error code and turns anything else into
// server_error, so that an IdP's (or an attacker's) text never reaches the
// app's page.
func authErrorCode(s string) string {
	if slices.Contains(authErrors, s) {
		return s
	}
	return "server_error"
}

// redirectBack answers 303 to returnTo with key=value added to its query.
// The Location carries no token: value is a handoff reference or an error
// code.
func redirectBack(w http.ResponseWriter, returnTo, key, value string) {
	sep := "&"
	switch i := strings.IndexByte(returnTo, '?'); {
	case i < 0:
		sep = "?"
	case i == len(returnTo)-1 || strings.HasSuffix(returnTo, "&"):
		sep = ""
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	// A redirect's policy applies to the redirected request (Fetch §4.4):
	// the app's page is requested without a Referer.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Location", returnTo+sep+key+"="+url.QueryEscape(value))
	w.WriteHeader(http.StatusSeeOther)
}
