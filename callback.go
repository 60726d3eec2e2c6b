package main

// The browser sign-in, second half: the IdP sends the browser back to
// /v1/auth/login with code and state, by GET (the default response mode) or
// by a form_post POST. The cookie named after the state is opened and
// cleared, the code redeemed with the verifier sealed in it, and the browser
// sent back to the app with a one-time handoff (handoff.go), never with a
// token.

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// errUnknownState is the answer to a state that is not (or no longer) one
// of ours: made up, expired, already used, from another tenant, or begun in
// another browser (whose cookie this request lacks).
var errUnknownState = badRequest("state: unknown, expired or already used, or the sign-in began in another browser; the app must begin a new sign-in (GET /v1/auth/authorize)")

// handleCallback serves GET /v1/auth/login, where the IdP redirects the
// browser after sign-in; see finishSignIn.
func handleCallback(b *browserSignIn) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := tenantOf(r)
		v, err := readParams(w, r, true)
		if err != nil {
			writeBrowserError(w, r, t, err)
			return
		}
		b.finishSignIn(w, r, t, v)
	})
}

// finishSignIn completes the sign-in whose state v carries. A state whose
// cookie is missing, does not open for this tenant, holds another state or
// is older than signInTTL is 400, in the envelope or as a page for a
// browser (writeBrowserError): there is nowhere safe to send the browser.
// The cookie is cleared as soon as it is read, so the browser cannot send
// it twice. Once it opens, the browser goes back to the sign-in's return_to
// with 303: with handoff=H on success, or with error= (a code from RFC 6749
// and OpenID Connect, never the IdP's free text) when the IdP refused or the
// code exchange failed.
func (b *browserSignIn) finishSignIn(w http.ResponseWriter, r *http.Request, t *tenant, v url.Values) {
	w.Header().Set("Cache-Control", "no-store")
	state, err := required(v, "state")
	if err != nil {
		writeBrowserError(w, r, t, err)
		return
	}
	ts := b.of(t)
	ps, err := b.openSignIn(w, r, t, state)
	if err != nil {
		writeBrowserError(w, r, t, err)
		return
	}
	if v.Has("error") {
		code := authErrorCode(v.Get("error"))
		t.prov.log.Info("browser sign-in: the IdP answered with an error", "error", code, "request_id", info(r).id)
		redirectBack(w, ps.ReturnTo, "error", code)
		return
	}
	if iss := v.Get("iss"); v.Has("iss") && iss != t.cfg.Issuer {
		// RFC 9207: the answer names another issuer than the one this
		// sign-in went to; its code is not redeemed here.
		t.prov.log.Warn("browser sign-in: the answer's iss is not the tenant's issuer", "iss", truncate(iss, 100), "request_id", info(r).id)
		redirectBack(w, ps.ReturnTo, "error", "invalid_request")
		return
	}
	code := v.Get("code")
	if code == "" {
		redirectBack(w, ps.ReturnTo, "error", "invalid_request")
		return
	}
	tr, err := exchangeCode(r.Context(), t, code, ps.Verifier, ps.Nonce, "")
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
		redirectBack(w, ps.ReturnTo, "error", errCode)
		return
	}
	h := randomValue()
	ho := handoff{tokens: tr, challenge: ps.Challenge, issued: ts.handoffs.now()}
	if ts.shared != nil {
		if err := ts.shared.putHandoff(r.Context(), t.cfg.ID, onceKeyOf(h), ho); err != nil {
			t.prov.log.Warn("browser sign-in: the handoff could not be stored", "err", err, "request_id", info(r).id)
			redirectBack(w, ps.ReturnTo, "error", "temporarily_unavailable")
			return
		}
	} else {
		evicted := ts.handoffs.put(onceKeyOf(h), ho, handoffSize(tr))
		ts.warnEvicted(t, "handoffs", evicted)
	}
	redirectBack(w, ps.ReturnTo, "handoff", h)
}

// openSignIn opens the cookie of the sign-in with state, and clears it
// first: whatever happens next, this browser does not send it again. The
// cookie must open for this tenant under its own name, hold this state, be
// younger than signInTTL, and name a return_to the tenant still lists.
// Errors: errUnknownState for any of these; the store's error when the keys
// could not be read.
func (b *browserSignIn) openSignIn(w http.ResponseWriter, r *http.Request, t *tenant, state string) (*sealedSignIn, error) {
	if !wellFormedRandom(state) {
		return nil, errUnknownState
	}
	secure := isHTTPS(r, b.trusted)
	name := signInCookieName(state, secure)
	c, err := r.Cookie(name)
	if err != nil {
		t.prov.log.Info("browser sign-in refused: no cookie for this state", "request_id", info(r).id)
		return nil, errUnknownState
	}
	http.SetCookie(w, signInCookie(name, "", secure))
	ps, err := b.sealer.open(r.Context(), t.cfg.ID, name, c.Value)
	switch {
	case errors.Is(err, errSealedCookie):
		t.prov.log.Info("browser sign-in refused: the cookie does not open", "request_id", info(r).id)
		return nil, errUnknownState
	case err != nil:
		return nil, err
	}
	age := b.sealer.now().Sub(time.Unix(ps.Created, 0))
	if ps.State != state || age >= signInTTL || age < -leeway || !slices.Contains(t.cfg.PostLoginRedirectURIs, ps.ReturnTo) {
		t.prov.log.Info("browser sign-in refused: the cookie is expired or holds another sign-in", "request_id", info(r).id)
		return nil, errUnknownState
	}
	return ps, nil
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
