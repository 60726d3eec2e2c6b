package main

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// handleLogout signs a user out: the access token (when it verifies) is
// refused here from now on until its exp, the refresh token's replay window
// is forgotten, both are revoked at the IdP (RFC 7009) when it has a
// revocation endpoint, and the answer carries the IdP's end-session URL for
// RP-initiated logout. An IdP that fails or is slow only makes revoked false.
func handleLogout(st *store) http.Handler {
	type logoutData struct {
		Revoked       bool   `json:"revoked"`
		EndSessionURL string `json:"end_session_url,omitempty"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The answer may carry an ID token (in end_session_url).
		w.Header().Set("Cache-Control", "no-store")
		t := tenantOf(r)
		v, err := readParams(w, r, false)
		if err != nil {
			writeError(w, r, err)
			return
		}
		refresh, hint := v.Get("refresh_token"), v.Get("id_token_hint")
		if hint != "" && !isCompactJWS(hint) {
			writeError(w, r, badRequest("id_token_hint: must be an ID token (a compact JWS of at most %d bytes)", maxTokenSize))
			return
		}
		raw, err := bearerToken(r)
		switch {
		case errors.Is(err, errNoBearer) && refresh == "":
			writeError(w, r, badRequest("refresh_token or Authorization: Bearer <access token>: at least one is required"))
			return
		case err != nil && !errors.Is(err, errNoBearer) && refresh == "":
			writeUnauthenticated(w, r, t, err)
			return
		}
		var access string // to revoke at the IdP: only a token that verified
		if raw != "" {
			c, err := t.prov.authenticateRequest(r, raw)
			var ve *verifyError
			switch {
			case err == nil:
				// Recorded before anything else, so that the token is
				// refused here whatever the IdP does.
				_, err := t.prov.revoke(r.Context(), st, nil, []revocation{tokenRevocation(tokenKey(raw), c, t.prov.revokeUntil(c))})
				if errors.Is(err, errTooManyRevocations) {
					t.prov.log.Error("sign-out refused: too many revocations in force")
					w.Header().Set("Retry-After", "60")
					writeError(w, r, &apiError{http.StatusTooManyRequests, "SW_RATE_LIMITED", "too many sign-outs in force; try again later"})
					return
				}
				if err != nil {
					writeError(w, r, err)
					return
				}
				access = raw
			case errors.As(err, &ve) && ve.Reason == reasonRevoked:
				access = raw // signed out here already: a retry asks the IdP again
			case refresh == "":
				writeUnauthenticated(w, r, t, err)
				return
			}
			// Otherwise an expired or foreign token: it passes nowhere here,
			// and the refresh token is what is left to revoke.
		}
		// The whole session the service relayed these tokens in ends here:
		// its other access tokens, its refresh token and its ID token. Not
		// by the id_token_hint: an ID token is no credential, and anyone's
		// would end another's session.
		var keys [][32]byte
		if access != "" {
			keys = append(keys, tokenKey(access))
		}
		if err := t.prov.endRelayedSessions(r.Context(), st, keys, refresh); err != nil {
			if errors.Is(err, errTooManyRevocations) {
				t.prov.log.Error("sign-out refused: too many revocations in force")
				w.Header().Set("Retry-After", "60")
				writeError(w, r, &apiError{http.StatusTooManyRequests, "SW_RATE_LIMITED", "too many sign-outs in force; try again later"})
				return
			}
			writeError(w, r, err)
			return
		}
		if refresh != "" {
			h := refreshTokenHash(t.cfg.ID, refresh)
			t.prov.refresh.forget(h)
			// Other replicas' replay of it too; if the database does not
			// answer, the kept answer lapses within refreshReplayWindow.
			if err := st.forgetRefresh(r.Context(), h); err != nil {
				info(r).log.Warn("forgetting a refresh answer kept for other replicas failed", "request_id", info(r).id, "err", err)
			}
		}
		writeData(w, logoutData{
			Revoked:       t.prov.revokeAtIdP(r.Context(), refresh, access),
			EndSessionURL: t.prov.endSessionURL(hint),
		})
	})
}

// endSessionURL is the IdP's end_session_endpoint with client_id, the
// id_token_hint when given and the tenant's post_logout_redirect_uri when
// set (OpenID RP-Initiated Logout 1.0 §2), or "" when the IdP has none. The
// ID token in it is what that specification defines; it is no bearer
// credential here, and the URL is never logged.
func (p *provider) endSessionURL(idTokenHint string) string {
	d := p.disc.Load()
	if d == nil || d.EndSessionEndpoint == "" {
		return ""
	}
	u, err := url.Parse(d.EndSessionEndpoint)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("client_id", p.tenant.ClientID)
	if idTokenHint != "" {
		q.Set("id_token_hint", idTokenHint)
	}
	if p.tenant.PostLogoutRedirectURI != "" {
		q.Set("post_logout_redirect_uri", p.tenant.PostLogoutRedirectURI)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// isCompactJWS reports whether s has the shape of a compact JWS: at most
// maxTokenSize bytes in three base64url segments.
func isCompactJWS(s string) bool {
	if len(s) > maxTokenSize || strings.Count(s, ".") != 2 {
		return false
	}
	for seg := range strings.SplitSeq(s, ".") {
		if _, err := strictB64.DecodeString(seg); seg == "" || err != nil {
			return false
		}
	}
	return true
}
