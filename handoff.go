package main

// The browser sign-in, last step: the app redeems the handoff reference the
// callback put in return_to, once, within handoffTTL, with POST
// /v1/auth/login handoff=H, and gets the tokens in the body. The tokens
// wait for it in memory, or, for replicas sharing PostgreSQL, sealed in
// the database (store_handoffs.go).

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/url"
	"time"
)

// handoff is a finished sign-in's tokens, waiting to be redeemed.
type handoff struct {
	tokens    *tokenResponse
	challenge string // the app's code_challenge at /authorize; "" for none
	issued    time.Time
}

// handoffSize is what a handoff counts against its store's byte bound.
func handoffSize(tr *tokenResponse) int {
	return len(tr.AccessToken) + len(tr.RefreshToken) + len(tr.IDToken) + len(tr.Scope) + len(tr.TokenType) + 256
}

// errHandoffRejected answers a handoff that is not (or no longer) one of
// ours, or a code_verifier that does not fit its challenge: like a used or
// wrong authorization code at the IdP, which the contract maps to
// SW_AUTH_OIDC_FAILED.
var errHandoffRejected = &apiError{http.StatusUnauthorized, "SW_AUTH_OIDC_FAILED", "the handoff is unknown, expired, already used, or its code_verifier does not match; sign in again"}

// redeemHandoff answers POST /v1/auth/login with handoff (v holds the
// request's parameters): the sign-in's tokens, as /login gives them, with
// Cache-Control: no-store. A handoff is good for one attempt: it is taken
// before the code_verifier is checked, so a leaked return_to URL tried
// without the verifier is used up, not left for guessing. Errors: 400 for a
// malformed request (with code or state, a malformed handoff or verifier,
// or no code_verifier when /authorize had a code_challenge), 401
// SW_AUTH_OIDC_FAILED for an unknown, expired or used handoff, a wrong
// verifier, or a verifier for a sign-in that had no challenge (RFC 7636
// leaves that to the server; OAuth 2.1 refuses it, as a downgrade).
func (b *browserSignIn) redeemHandoff(w http.ResponseWriter, r *http.Request, t *tenant, v url.Values) {
	if v.Has("code") || v.Has("state") {
		writeError(w, r, badRequest("handoff: give it alone, without code or state"))
		return
	}
	h := v.Get("handoff")
	if !wellFormedRandom(h) {
		writeError(w, r, badRequest("handoff: malformed; pass on the handoff parameter of return_to as it came"))
		return
	}
	verifier := v.Get("code_verifier")
	if v.Has("code_verifier") && !validCodeVerifier(verifier) {
		writeError(w, r, badRequest("code_verifier: must be 43-128 characters of A-Z, a-z, 0-9, '-', '.', '_' or '~' (RFC 7636)"))
		return
	}
	ts := b.of(t)
	ho, ok, err := ts.take(r.Context(), t, onceKeyOf(h))
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !ok {
		t.prov.log.Info("handoff refused: unknown, expired or already used", "request_id", info(r).id)
		writeError(w, r, errHandoffRejected)
		return
	}
	switch {
	case ho.challenge != "" && verifier == "":
		writeError(w, r, badRequest("code_verifier: required, since this sign-in began with a code_challenge"))
		return
	case ho.challenge == "" && verifier != "":
		t.prov.log.Info("handoff refused: code_verifier for a sign-in without code_challenge", "request_id", info(r).id)
		writeError(w, r, errHandoffRejected)
		return
	case ho.challenge != "" && subtle.ConstantTimeCompare([]byte(s256(verifier)), []byte(ho.challenge)) != 1:
		t.prov.log.Info("handoff refused: code_verifier does not match the code_challenge", "request_id", info(r).id)
		writeError(w, r, errHandoffRejected)
		return
	}
	out := *ho.tokens
	if out.ExpiresIn > 0 {
		// The app learns the lifetime now, up to handoffTTL after the IdP
		// gave it: count from the IdP's answer.
		elapsed := flexInt(ts.handoffs.now().Sub(ho.issued) / time.Second)
		out.ExpiresIn = max(out.ExpiresIn-elapsed, 1)
	}
	relayTokens(w, r, t, &out, "")
}

// take takes the handoff under key from wherever this tenant keeps them.
func (ts *tenantSignIns) take(ctx context.Context, t *tenant, key onceKey) (handoff, bool, error) {
	if ts.shared != nil {
		return ts.shared.takeHandoff(ctx, t.cfg.ID, key, ts.handoffs.now())
	}
	ho, ok := ts.handoffs.take(key)
	return ho, ok, nil
}
