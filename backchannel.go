package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// backchannelLogoutEvent is the member of a logout token's events claim
// that makes it one (OpenID Connect Back-Channel Logout 1.0 §2.4).
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// maxJTILength bounds the jti we store for replay detection.
const maxJTILength = 256

// logoutToken is a verified back-channel logout token.
type logoutToken struct {
	subject, session string
	issuedAt         time.Time
	jti              string
}

// isLogoutTokenTypeOrJWT reports whether a typ header may be a logout
// token's: "logout+jwt", or "JWT", which the specification allows (it only
// recommends explicit typing) and Casdoor v3.158.0 and Hydra v2.3.0 send
// (also Keycloak before 25 and Authentik before 2025.12). RFC 7515 §4.1.9:
// case-insensitive, "application/" optional.
func isLogoutTokenTypeOrJWT(typ string) bool {
	switch strings.TrimPrefix(strings.ToLower(typ), "application/") {
	case "logout+jwt", "jwt":
		return true
	}
	return false
}

// verifyLogoutToken checks a back-channel logout token: signed with the
// tenant's keys and algorithms like every token, typ (when present)
// logout+jwt or JWT, iss exact, aud holding the client id, iat within the leeway of
// now, exp and nbf when present, a jti, the back-channel logout event, a sub
// or a sid, and no nonce (so an ID token cannot pass for one). Errors:
// *verifyError for a refused token, errIdPUnavailable (wrapped) with no keys
// yet. The jti is not checked against replays here: revoke does that.
func (p *provider) verifyLogoutToken(ctx context.Context, raw string) (*logoutToken, error) {
	tok, c, _, err := p.verifySigned(ctx, raw, kindLogoutToken)
	if err != nil {
		return nil, err
	}
	t := p.tenant
	if c.Issuer != t.Issuer {
		return nil, refuse(reasonIssuer, "want %q got %q", t.Issuer, truncate(c.Issuer, 100))
	}
	if !c.Audience.Contains(t.ClientID) {
		return nil, refuse(reasonAudience, "aud %q does not contain the client id", []string(c.Audience))
	}
	now := p.now()
	if c.IssuedAt == nil {
		return nil, refuse(reasonMissingClaim, "iat")
	}
	// Logout tokens are sent the moment the user signs out: one older than
	// the leeway is a replay or a stale retry, and refusing it is what
	// bounds how long a jti must be remembered.
	if iat := c.IssuedAt.Time(); iat.Before(now.Add(-leeway)) || iat.After(now.Add(leeway)) {
		return nil, refuse(reasonExpired, "iat %s is not within %s of now", iat.UTC().Format(time.RFC3339), leeway)
	}
	if c.Expiry != nil && now.After(c.Expiry.Time().Add(leeway)) {
		return nil, refuse(reasonExpired, "at %s", c.Expiry.Time().UTC().Format(time.RFC3339))
	}
	if c.NotBefore != nil && now.Add(leeway).Before(c.NotBefore.Time()) {
		return nil, refuse(reasonNotYetValid, "nbf %s", c.NotBefore.Time().UTC().Format(time.RFC3339))
	}
	// The signature is good; a payload that names a claim twice is still
	// refused, as an IdP's JSON answers are (decodeIdPAnswer).
	if err := logoutClaimsOnce(raw); err != nil {
		return nil, refuse(reasonMalformed, "claims: %v", err)
	}
	var m map[string]json.RawMessage
	if err := tok.UnsafeClaimsWithoutVerification(&m); err != nil {
		return nil, refuse(reasonMalformed, "claims: %s", claimsErrorKind(err))
	}
	if _, ok := m["nonce"]; ok {
		return nil, refuse(reasonTokenType, "a nonce: an ID token is not a logout token")
	}
	var events map[string]json.RawMessage
	if json.Unmarshal(m["events"], &events) != nil || events == nil {
		return nil, refuse(reasonMissingClaim, "events is not a JSON object")
	}
	var event map[string]json.RawMessage
	if ev, ok := events[backchannelLogoutEvent]; !ok || json.Unmarshal(ev, &event) != nil || event == nil {
		return nil, refuse(reasonMissingClaim, "events has no back-channel logout event object")
	}
	jti, ok := jsonString(m["jti"])
	if !ok || jti == "" || len(jti) > maxJTILength {
		return nil, refuse(reasonMissingClaim, "jti: required, a string of at most %d bytes", maxJTILength)
	}
	sid, ok := jsonString(m["sid"])
	if _, present := m["sid"]; present && (!ok || sid == "") {
		return nil, refuse(reasonMalformed, "sid is not a non-empty string")
	}
	if _, present := m["sub"]; present && c.Subject == "" {
		return nil, refuse(reasonMalformed, "sub is empty")
	}
	if c.Subject == "" && sid == "" {
		return nil, refuse(reasonMissingClaim, "sub or sid")
	}
	return &logoutToken{subject: c.Subject, session: sid, issuedAt: c.IssuedAt.Time(), jti: jti}, nil
}

// jsonString decodes a JSON string; ok is false for anything else or nothing.
func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// revocations returns what a logout token revokes, each kept until
// retention after the later of its iat and now. With a sid, only that
// session's tokens go, and the subject's tokens that name no session (they
// may be of it); with a sub alone, all of the subject's (§2.4).
func (lt *logoutToken) revocations(now time.Time, retention time.Duration) []revocation {
	iat := lt.issuedAt.Unix()
	exp := max(lt.issuedAt.Unix(), now.Unix()) + int64(retention/time.Second)
	if lt.session == "" {
		return []revocation{{Kind: revokeSub, Value: lt.subject, IssuedBefore: iat, ExpiresAt: exp}}
	}
	revs := []revocation{{Kind: revokeSID, Value: lt.session, IssuedBefore: iat, ExpiresAt: exp}}
	if lt.subject != "" {
		revs = append(revs, revocation{Kind: revokeSubNoSID, Value: lt.subject, IssuedBefore: iat, ExpiresAt: exp})
	}
	return revs
}

// handleBackchannelLogout receives OpenID Connect Back-Channel Logout
// tokens: a verified token revokes the access tokens of its subject or
// session issued at or before it, here, in every cache, and after a restart.
// With a sid, the sessions this service relayed with that sid end too, as
// /logout ends one (relayed.go): their access tokens, which may carry no
// sid, on the deny list, their refresh tokens refused by /refresh.
func handleBackchannelLogout(st *store) http.Handler {
	bad := &apiError{http.StatusBadRequest, "SW_BAD_REQUEST", "logout_token: invalid logout token"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// §2.8: the answer must not be cached, error or not.
		w.Header().Set("Cache-Control", "no-store")
		t := tenantOf(r)
		v, err := readParams(w, r, false)
		if err != nil {
			writeError(w, r, err)
			return
		}
		raw, err := required(v, "logout_token")
		if err != nil {
			writeError(w, r, err)
			return
		}
		lt, err := t.prov.verifyLogoutToken(r.Context(), raw)
		var ve *verifyError
		switch {
		case errors.As(err, &ve):
			t.prov.log.Warn("back-channel logout token refused", "reason", ve.Reason, "detail", ve.Detail, "request_id", info(r).id)
			writeError(w, r, bad)
			return
		case err != nil:
			writeError(w, r, err)
			return
		}
		// The jti is remembered as long as its token could pass the iat
		// check above, with the leeway again for our own clock's steps.
		jti := &logoutJTI{ID: lt.jti, ExpiresAt: lt.issuedAt.Add(2 * leeway).Unix()}
		// The relayed sessions end first: a retry of a token refused below
		// (too many revocations, the store) ends them again, and a replay
		// refused below ends nothing that was not ended already.
		relayed, err := t.prov.endRelayedSID(r.Context(), lt.session)
		if err != nil {
			writeError(w, r, err)
			return
		}
		revs := append(lt.revocations(t.prov.now(), t.prov.revoked.retention()), relayed...)
		purged, err := t.prov.revoke(r.Context(), st, jti, revs)
		switch {
		case errors.Is(err, errReplayed):
			t.prov.log.Warn("back-channel logout token refused", "reason", "jti replayed", "request_id", info(r).id)
			writeError(w, r, &apiError{http.StatusBadRequest, "SW_BAD_REQUEST", "logout_token: already used"})
			return
		case errors.Is(err, errTooManyLogoutTokens), errors.Is(err, errTooManyRevocations):
			t.prov.log.Error("back-channel logout refused: too many revocations in force", "err", err)
			w.Header().Set("Retry-After", "60")
			writeError(w, r, &apiError{http.StatusTooManyRequests, "SW_RATE_LIMITED", "too many sign-outs in force; try again later"})
			return
		case err != nil:
			writeError(w, r, err)
			return
		}
		t.prov.log.Info("back-channel logout accepted", "by_session", lt.session != "", "relayed_access_tokens_denied", len(relayed), "cached_tokens_dropped", purged, "request_id", info(r).id)
		writeData(w, struct{}{})
	})
}

// logoutClaimsOnce checks that the payload of the compact JWS raw names no
// claim twice, at any depth (checkMembersOnce).
func logoutClaimsOnce(raw string) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS")
	}
	payload, err := strictB64.DecodeString(parts[1])
	if err != nil {
		return errors.New("payload is not base64url")
	}
	return checkMembersOnce(payload)
}
