package main

// The development IdP's sign-out: the revocation endpoint (RFC 7009), the
// end-session endpoint (OpenID RP-Initiated Logout 1.0), and the
// back-channel logout token it sends when a user signs out (OpenID Connect
// Back-Channel Logout 1.0).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	// devMaxRevokedAccess bounds the revoked access tokens remembered.
	devMaxRevokedAccess = 10_000
	devLogoutTokenTTL   = 2 * time.Minute
	devBackchannelWait  = 5 * time.Second
	devLogoutEvent      = "http://schemas.openid.net/event/backchannel-logout"
)

// accessRevoked reports whether the access token with this jti was revoked.
func (d *devIDP) accessRevoked(jti string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.revokedAccess[jti]
	return ok
}

// handleRevoke is the revocation endpoint (RFC 7009): the client
// authenticates as at the token endpoint; a refresh token ends its whole
// session (every refresh token descending from the sign-in), an access token
// is refused by userinfo until its exp. Unknown or foreign tokens get 200
// too (§2.2), so the answer tells nothing about a token.
func (d *devIDP) handleRevoke() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, err := devParseForm(w, r)
		var client string
		if err == nil {
			client, err = devAuthenticateClient(r, form)
		}
		if err == nil && form.Get("token") == "" {
			err = devInvalidRequest("token is required")
		}
		if err == nil {
			err = d.revoke(client, form.Get("token"))
		}
		if err != nil {
			devWriteOAuthError(w, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	})
}

// revoke revokes a refresh token of client or an access token (a JWT or an
// opaque one), whichever tok is; the token_type_hint is only a hint (§2.1),
// so both are looked for.
func (d *devIDP) revoke(client, tok string) error {
	now := d.now()
	d.mu.Lock()
	if g, ok := d.refresh[tok]; ok {
		if g.clientID == client {
			g.session.revoked = true
			delete(d.refresh, tok)
		}
		d.mu.Unlock()
		return nil
	}
	d.mu.Unlock()
	c, err := d.lookupAccessToken(tok)
	if err != nil {
		return nil // not an access token of ours, or one that is dead already
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sweepLocked(now)
	if len(d.revokedAccess) >= devMaxRevokedAccess {
		return &devOAuthError{http.StatusServiceUnavailable, "temporarily_unavailable", "too many revoked tokens remembered"}
	}
	d.revokedAccess[c.ID] = c.Expiry.Time()
	return nil
}

// devLogoutClaims is the payload of a logout token (§2.4).
type devLogoutClaims struct {
	Issuer    string                    `json:"iss"`
	Audience  jwt.Audience              `json:"aud"`
	IssuedAt  *jwt.NumericDate          `json:"iat"`
	Expiry    *jwt.NumericDate          `json:"exp"`
	ID        string                    `json:"jti"`
	Subject   string                    `json:"sub"`
	SessionID string                    `json:"sid,omitempty"`
	Events    map[string]map[string]any `json:"events"`
}

// signLogoutToken signs a logout token for sub and, when not "", session sid.
func (d *devIDP) signLogoutToken(sub, sid string) (string, error) {
	now := d.now()
	c := devLogoutClaims{
		Issuer: d.issuer, Audience: jwt.Audience{devClientID},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(devLogoutTokenTTL)),
		ID: devRandom(16), Subject: sub, SessionID: sid,
		Events: map[string]map[string]any{devLogoutEvent: {}},
	}
	tok, err := jwt.Signed(d.ltSigner).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign logout token: %w", err)
	}
	return tok, nil
}

// sendBackchannelLogout posts a logout token for sub (and sid) to the
// configured back-channel logout URI, if any, and reports what happened.
func (d *devIDP) sendBackchannelLogout(ctx context.Context, sub, sid string) string {
	if d.backchannelLogoutURI == "" {
		return ""
	}
	tok, err := d.signLogoutToken(sub, sid)
	if err != nil {
		return "the back-channel logout token could not be signed"
	}
	ctx, cancel := context.WithTimeout(ctx, devBackchannelWait)
	defer cancel()
	body := url.Values{"logout_token": {tok}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.backchannelLogoutURI, strings.NewReader(body))
	if err != nil {
		return "the back-channel logout URI is not a URL"
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "the back-channel logout could not be delivered"
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, devMaxBody))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("the application refused the back-channel logout (HTTP %d)", resp.StatusCode)
	}
	return "the application was told by a back-channel logout"
}

// devHint is who an end-session request names.
type devHint struct{ sub, sid string }

// parseIDTokenHint accepts an ID token this IdP issued to its client, even
// expired (RP-Initiated Logout §2: the user may sign out long after signing
// in), and returns its subject and session.
func (d *devIDP) parseIDTokenHint(raw string) (devHint, error) {
	if len(raw) > devMaxTokenLen {
		return devHint{}, errors.New("token too large")
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || tok.Headers[0].KeyID != d.kid {
		return devHint{}, errors.New("not an ID token of this IdP")
	}
	var c devIDClaims
	if err := tok.Claims(&d.key.PublicKey, &c); err != nil {
		return devHint{}, errors.New("bad signature")
	}
	if c.Issuer != d.issuer || !c.Audience.Contains(devClientID) || c.Subject == "" {
		return devHint{}, errors.New("not an ID token for this client")
	}
	return devHint{sub: c.Subject, sid: c.SessionID}, nil
}

// handleEndSession is the end-session endpoint. It signs out the user the
// request names, by id_token_hint (that session) or by logout_hint (a
// username: all of the user's sessions): their refresh tokens die, and the
// back-channel logout URI, when configured, is sent a logout token. It then
// returns to post_logout_redirect_uri when the client is known (client_id
// or the hint) and registered that exact URI, else shows a signed-out page.
// No browser session is kept, so a request naming nobody signs out nobody.
func (d *devIDP) handleEndSession() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, devMaxBody)
		if err := r.ParseForm(); err != nil {
			d.renderHTML(w, http.StatusBadRequest, devErrorHTML("the sign-out request could not be read"))
			return
		}
		f := r.Form
		clientID := f.Get("client_id")
		if clientID != "" && clientID != devClientID {
			d.renderHTML(w, http.StatusBadRequest, devErrorHTML("unknown client_id"))
			return
		}
		var who devHint
		if h := f.Get("id_token_hint"); h != "" {
			var err error
			if who, err = d.parseIDTokenHint(h); err != nil {
				d.renderHTML(w, http.StatusBadRequest, devErrorHTML("id_token_hint is not an ID token this IdP issued to the client"))
				return
			}
			clientID = devClientID
		} else if name := f.Get("logout_hint"); name != "" {
			for _, u := range d.users {
				if devEqual(u.Username, name) {
					who.sub = u.Subject
				}
			}
		}
		target := f.Get("post_logout_redirect_uri")
		if target != "" && (clientID == "" || !slices.Contains(d.postLogoutRedirectURIs, target)) {
			// RP-Initiated Logout §3: only a registered URI, or this would
			// be an open redirector.
			d.renderHTML(w, http.StatusBadRequest, devErrorHTML("post_logout_redirect_uri is not registered for this client"))
			return
		}
		note := ""
		if who.sub != "" {
			d.endSessions(who)
			note = d.sendBackchannelLogout(r.Context(), who.sub, who.sid)
		}
		if target == "" {
			d.renderHTML(w, http.StatusOK, devSignedOutHTML(note))
			return
		}
		u, _ := url.Parse(target)
		if s := f.Get("state"); s != "" {
			q := u.Query()
			q.Set("state", s)
			u.RawQuery = q.Encode()
		}
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
	})
}

// endSessions revokes the refresh tokens of who's session, or of all the
// user's sessions when who names none.
func (d *devIDP) endSessions(who devHint) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, g := range d.refresh {
		if g.user.Subject == who.sub && (who.sid == "" || g.session.id == who.sid) {
			g.session.revoked = true
			delete(d.refresh, k)
		}
	}
}
