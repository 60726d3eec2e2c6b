package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// devTokenResponse is a successful token endpoint answer.
type devTokenResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token,omitempty"`
	RefreshExpiresIn int64  `json:"refresh_expires_in,omitempty"`
	IDToken          string `json:"id_token,omitempty"`
	Scope            string `json:"scope"`
}

// handleToken serves the token endpoint: client authentication, then the
// authorization_code, password or refresh_token grant.
func (d *devIDP) handleToken() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.tokenCalls.Add(1)
		form, err := devParseForm(w, r)
		var client string
		if err == nil {
			client, err = devAuthenticateClient(r, form)
		}
		var jkt string // the DPoP key the tokens are bound to, if any
		if err == nil {
			jkt, err = d.checkProof(r)
		}
		var resp *devTokenResponse
		if err == nil {
			switch form.Get("grant_type") {
			case "authorization_code":
				resp, err = d.grantCode(client, form, jkt)
			case "password":
				resp, err = d.grantPassword(client, form, jkt)
			case "refresh_token":
				resp, err = d.grantRefresh(client, form, jkt)
			case "":
				err = devInvalidRequest("grant_type is required")
			default:
				err = &devOAuthError{http.StatusBadRequest, "unsupported_grant_type", "unsupported grant_type"}
			}
		}
		if err != nil {
			devWriteOAuthError(w, err)
			return
		}
		devWriteJSON(w, http.StatusOK, resp)
	})
}

// devParseForm reads a form-encoded POST body of at most 64 KiB. Query
// parameters are ignored: credentials do not belong in URLs.
func devParseForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, devInvalidRequest("content type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, devMaxBody)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &devOAuthError{http.StatusRequestEntityTooLarge, "invalid_request", "request body too large"}
		}
		return nil, devInvalidRequest("malformed request body")
	}
	for _, vals := range r.PostForm {
		if len(vals) > 1 { // RFC 6749 §3.2
			return nil, devInvalidRequest("a parameter is repeated")
		}
	}
	return r.PostForm, nil
}

// devAuthenticateClient checks the client's credentials, sent either with
// HTTP Basic (each part form-urlencoded first, RFC 6749 §2.3.1) or as
// client_id and client_secret in the body, never both, and returns the
// client's id: devClientID or devOpaqueClientID.
func devAuthenticateClient(r *http.Request, form url.Values) (string, error) {
	fail := &devOAuthError{http.StatusUnauthorized, "invalid_client", "client authentication failed"}
	id, secret, basic := r.BasicAuth()
	switch {
	case basic:
		if form.Has("client_secret") {
			return "", devInvalidRequest("client credentials sent both in the header and in the body")
		}
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return "", fail
		}
		if form.Has("client_id") && form.Get("client_id") != id {
			return "", devInvalidRequest("client_id differs from the authenticated client")
		}
	case r.Header.Get("Authorization") != "":
		return "", fail
	default:
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	want, known := devClientSecrets[id]
	if !known || !devEqual(secret, want) {
		return "", fail
	}
	return id, nil
}

// grantCode redeems an authorization code. Any attempt uses the code up, as
// Keycloak does; a replay also revokes the refresh tokens issued from it
// (RFC 6749 §4.1.2).
func (d *devIDP) grantCode(client string, form url.Values, jkt string) (*devTokenResponse, error) {
	code, redirectURI := form.Get("code"), form.Get("redirect_uri")
	if code == "" {
		return nil, devInvalidRequest("code is required")
	}
	if redirectURI == "" { // always bound: the authorization endpoint requires it
		return nil, devInvalidRequest("redirect_uri is required")
	}
	now := d.now()
	d.mu.Lock()
	c, ok := d.codes[code]
	if !ok || !now.Before(c.expires) {
		d.mu.Unlock()
		return nil, devInvalidGrant("authorization code is invalid or expired")
	}
	if c.used {
		if c.session != nil {
			c.session.revoked = true
		}
		d.mu.Unlock()
		return nil, devInvalidGrant("authorization code was already used")
	}
	c.used = true
	err := devCheckCode(c, client, redirectURI, form.Get("code_verifier"))
	var refresh string
	if err == nil {
		c.session = newDevSession()
		refresh = d.newRefreshLocked(now, devGrant{clientID: devClientID, user: c.user, scope: c.req.Scope, authTime: c.authTime, session: c.session})
	}
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return d.issue(client, c.user, c.req.Scope, c.req.Nonce, c.authTime, refresh, c.session.id, jkt)
}

// devCheckCode checks a code's bindings against the token request.
func devCheckCode(c *devCode, client, redirectURI, verifier string) error {
	if c.req.ClientID != client {
		return devInvalidGrant("authorization code was issued to another client")
	}
	if redirectURI != c.req.RedirectURI {
		return devInvalidGrant("redirect_uri differs from the authorization request")
	}
	if c.req.CodeChallenge == "" {
		if verifier != "" {
			return devInvalidGrant("code_verifier sent but no code_challenge was bound")
		}
		return nil
	}
	if verifier == "" {
		return devInvalidGrant("code_verifier is required")
	}
	if len(verifier) < 43 || len(verifier) > 128 || strings.Trim(verifier, devUnreserved) != "" {
		return devInvalidGrant("code_verifier is malformed")
	}
	sum := sha256.Sum256([]byte(verifier))
	if !devEqual(base64.RawURLEncoding.EncodeToString(sum[:]), c.req.CodeChallenge) {
		return devInvalidGrant("code_verifier does not match code_challenge")
	}
	return nil
}

// grantPassword is the resource owner password credentials grant.
func (d *devIDP) grantPassword(client string, form url.Values, jkt string) (*devTokenResponse, error) {
	username, password := form.Get("username"), form.Get("password")
	if username == "" || password == "" {
		return nil, devInvalidRequest("username and password are required")
	}
	scope := devDefaultScope
	if s := form.Get("scope"); s != "" {
		var err error
		if scope, err = devParseScope(s); err != nil {
			return nil, err
		}
	}
	u, ok := d.checkPassword(username, password)
	if !ok {
		return nil, devInvalidGrant("invalid user credentials")
	}
	now := d.now()
	d.mu.Lock()
	session := newDevSession()
	refresh := d.newRefreshLocked(now, devGrant{clientID: client, user: u, scope: scope, authTime: now, session: session})
	d.mu.Unlock()
	return d.issue(client, u, scope, "", now, refresh, session.id, jkt)
}

// grantRefresh rotates a refresh token: the old one stops working and a new
// one, with the original scope, comes back. A narrower scope applies to the
// new access token only (RFC 6749 §6).
func (d *devIDP) grantRefresh(client string, form url.Values, jkt string) (*devTokenResponse, error) {
	old := form.Get("refresh_token")
	if old == "" {
		return nil, devInvalidRequest("refresh_token is required")
	}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	g, ok := d.refresh[old]
	if !ok || g.clientID != client {
		return nil, devInvalidGrant("refresh token is invalid, expired or already used")
	}
	if !now.Before(g.expires) || g.session.revoked {
		delete(d.refresh, old)
		return nil, devInvalidGrant("refresh token is invalid, expired or already used")
	}
	scope := g.scope
	if s := form.Get("scope"); s != "" {
		narrowed, err := devParseScope(s)
		if err != nil {
			return nil, err
		}
		for _, w := range strings.Fields(narrowed) {
			if !devHasWord(g.scope, w) {
				return nil, devInvalidScope("scope exceeds the one originally granted")
			}
		}
		scope = narrowed
	}
	delete(d.refresh, old)
	refresh := d.newRefreshLocked(now, *g)
	// Signing under the lock is a few milliseconds; the dev IdP serves one person.
	return d.issue(client, g.user, scope, "", g.authTime, refresh, g.session.id, jkt)
}

// newRefreshLocked stores g under a new refresh token, valid for refreshTTL.
func (d *devIDP) newRefreshLocked(now time.Time, g devGrant) string {
	d.sweepLocked(now)
	g.expires = now.Add(d.refreshTTL)
	tok := devRandom(32)
	d.refresh[tok] = &g
	return tok
}

// issue mints the access token for client, a JWT or, for
// devOpaqueClientID, an opaque one, and an ID token when scope has openid,
// both naming the session sid; with jkt, the access token is bound to that
// DPoP key (cnf.jkt, token_type DPoP).
func (d *devIDP) issue(client string, u devUser, scope, nonce string, authTime time.Time, refresh, sid, jkt string) (*devTokenResponse, error) {
	now := d.now()
	claims := d.accessClaims(client, u, scope, sid, now, authTime, d.accessTTL)
	tokenType := "Bearer"
	if jkt != "" {
		claims.Confirmation = &devConfirmation{JKT: jkt}
		tokenType = "DPoP"
	}
	var at string
	var err error
	if client == devOpaqueClientID {
		at = d.opaque.add(now, claims)
	} else if at, err = d.signAccessClaims(claims); err != nil {
		return nil, err
	}
	resp := &devTokenResponse{
		AccessToken:      at,
		TokenType:        tokenType,
		ExpiresIn:        int64(d.accessTTL / time.Second),
		RefreshToken:     refresh,
		RefreshExpiresIn: int64(d.refreshTTL / time.Second),
		Scope:            scope,
	}
	if devHasWord(scope, "openid") {
		if resp.IDToken, err = d.signIDTokenFor(client, u, scope, nonce, at, sid, now, authTime, d.accessTTL); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

func devWriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// devWriteOAuthError answers with RFC 6749 §5.2 JSON; an error that is not a
// *devOAuthError becomes a bare server_error.
func devWriteOAuthError(w http.ResponseWriter, err error) {
	var oe *devOAuthError
	if !errors.As(err, &oe) {
		oe = &devOAuthError{http.StatusInternalServerError, "server_error", "internal error"}
	}
	if oe.code == "invalid_client" {
		w.Header().Set("WWW-Authenticate", devBasicRealm)
	}
	devWriteJSON(w, oe.status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{oe.code, oe.desc})
}

// devProfileClaims are the user claims the profile and email scopes release.
type devProfileClaims struct {
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     *bool  `json:"email_verified,omitempty"`
}

// devProfile releases u's claims as far as scope allows, as OIDC Core §5.4 says.
func devProfile(u devUser, scope string) devProfileClaims {
	var p devProfileClaims
	if devHasWord(scope, "profile") {
		p.Name, p.PreferredUsername = u.Name, u.Username
	}
	if devHasWord(scope, "email") {
		verified := true
		p.Email, p.EmailVerified = u.Email, &verified
	}
	return p
}

// devAccessClaims is the payload of an access token (RFC 9068).
type devAccessClaims struct {
	Issuer          string           `json:"iss"`
	Subject         string           `json:"sub"`
	Audience        jwt.Audience     `json:"aud"`
	AuthorizedParty string           `json:"azp"`
	ClientID        string           `json:"client_id"`
	Expiry          *jwt.NumericDate `json:"exp"`
	IssuedAt        *jwt.NumericDate `json:"iat"`
	AuthTime        *jwt.NumericDate `json:"auth_time,omitempty"`
	ID              string           `json:"jti"`
	Scope           string           `json:"scope"`
	SessionID       string           `json:"sid,omitempty"`
	// Confirmation binds the token to a DPoP key (RFC 9449 §6.1).
	Confirmation *devConfirmation `json:"cnf,omitempty"`
	devProfileClaims
}

// devIDClaims is the payload of an ID token (OIDC Core §2).
type devIDClaims struct {
	Issuer          string           `json:"iss"`
	Subject         string           `json:"sub"`
	Audience        jwt.Audience     `json:"aud"`
	AuthorizedParty string           `json:"azp"`
	Expiry          *jwt.NumericDate `json:"exp"`
	IssuedAt        *jwt.NumericDate `json:"iat"`
	AuthTime        *jwt.NumericDate `json:"auth_time"`
	Nonce           string           `json:"nonce,omitempty"`
	AccessTokenHash string           `json:"at_hash,omitempty"`
	SessionID       string           `json:"sid,omitempty"`
	devProfileClaims
}

func (d *devIDP) signAccessToken(u devUser, scope string, now, authTime time.Time, ttl time.Duration) (string, error) {
	return d.signAccessTokenSID(u, scope, "", now, authTime, ttl)
}

// signAccessTokenSID signs an access token of session sid ("": none).
func (d *devIDP) signAccessTokenSID(u devUser, scope, sid string, now, authTime time.Time, ttl time.Duration) (string, error) {
	return d.signAccessClaims(d.accessClaims(devClientID, u, scope, sid, now, authTime, ttl))
}

// accessClaims are the claims of an access token for client in session sid
// ("": none): the payload of a JWT, or what the introspection endpoint says
// of an opaque token.
func (d *devIDP) accessClaims(client string, u devUser, scope, sid string, now, authTime time.Time, ttl time.Duration) devAccessClaims {
	return devAccessClaims{
		SessionID:        sid,
		Issuer:           d.issuer,
		Subject:          u.Subject,
		Audience:         jwt.Audience{client},
		AuthorizedParty:  client,
		ClientID:         client,
		Expiry:           jwt.NewNumericDate(now.Add(ttl)),
		IssuedAt:         jwt.NewNumericDate(now),
		AuthTime:         jwt.NewNumericDate(authTime),
		ID:               devRandom(16),
		Scope:            scope,
		devProfileClaims: devProfile(u, scope),
	}
}

func (d *devIDP) signAccessClaims(c devAccessClaims) (string, error) {
	tok, err := jwt.Signed(d.atSigner).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return tok, nil
}

// signIDToken signs an ID token; with accessToken set it carries at_hash.
func (d *devIDP) signIDToken(u devUser, scope, nonce, accessToken string, now, authTime time.Time, ttl time.Duration) (string, error) {
	return d.signIDTokenSID(u, scope, nonce, accessToken, "", now, authTime, ttl)
}

// signIDTokenSID signs an ID token of session sid ("": none).
func (d *devIDP) signIDTokenSID(u devUser, scope, nonce, accessToken, sid string, now, authTime time.Time, ttl time.Duration) (string, error) {
	return d.signIDTokenFor(devClientID, u, scope, nonce, accessToken, sid, now, authTime, ttl)
}

// signIDTokenFor signs an ID token for client of session sid ("": none).
func (d *devIDP) signIDTokenFor(client string, u devUser, scope, nonce, accessToken, sid string, now, authTime time.Time, ttl time.Duration) (string, error) {
	c := devIDClaims{
		SessionID:        sid,
		Issuer:           d.issuer,
		Subject:          u.Subject,
		Audience:         jwt.Audience{client},
		AuthorizedParty:  client,
		Expiry:           jwt.NewNumericDate(now.Add(ttl)),
		IssuedAt:         jwt.NewNumericDate(now),
		AuthTime:         jwt.NewNumericDate(authTime),
		Nonce:            nonce,
		devProfileClaims: devProfile(u, scope),
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		c.AccessTokenHash = base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
	}
	tok, err := jwt.Signed(d.idSigner).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign id token: %w", err)
	}
	return tok, nil
}

// verifyAccessToken checks that raw is an unexpired access token this IdP
// signed, and returns its claims; the error says why not.
func (d *devIDP) verifyAccessToken(raw string) (*devAccessClaims, error) {
	if len(raw) > devMaxTokenLen {
		return nil, errors.New("token too large")
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, fmt.Errorf("parse token: %w", err)
	}
	h := tok.Headers[0]
	if h.KeyID != d.kid {
		return nil, errors.New("unknown kid")
	}
	// RFC 9068 §4: the typ keeps an ID token from passing as an access token.
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, errors.New("not an access token")
	}
	var c devAccessClaims
	if err := tok.Claims(&d.key.PublicKey, &c); err != nil {
		return nil, fmt.Errorf("verify token: %w", err)
	}
	switch {
	case c.Issuer != d.issuer:
		return nil, fmt.Errorf("issuer mismatch: want %q got %q", d.issuer, c.Issuer)
	case c.Expiry == nil || !d.now().Before(c.Expiry.Time()):
		return nil, errors.New("token expired")
	case c.Subject == "":
		return nil, errors.New("no sub")
	case d.accessRevoked(c.ID):
		return nil, errors.New("token revoked")
	}
	return &c, nil
}

// handleUserinfo answers the claims the bearer access token's scope releases.
func (d *devIDP) handleUserinfo() http.Handler {
	type userinfo struct {
		Subject string `json:"sub"`
		devProfileClaims
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := devBearer(r)
		if !ok {
			// RFC 6750 §3.1: no error code when no credentials were sent.
			w.Header().Set("WWW-Authenticate", "Bearer")
			devWriteJSON(w, http.StatusUnauthorized, struct{}{})
			return
		}
		c, err := d.lookupAccessToken(raw)
		var u devUser
		if err == nil {
			if u, ok = d.userBySubject(c.Subject); !ok {
				err = errors.New("unknown subject")
			}
		}
		if err != nil {
			devBearerError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid or expired")
			return
		}
		if !devHasWord(c.Scope, "openid") {
			devBearerError(w, http.StatusForbidden, "insufficient_scope", "the access token lacks the openid scope")
			return
		}
		devWriteJSON(w, http.StatusOK, userinfo{u.Subject, devProfile(u, c.Scope)})
	})
}

// devBearer returns the token of an "Authorization: Bearer" header.
func devBearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
}

func devBearerError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("WWW-Authenticate", `Bearer error="`+code+`"`)
	devWriteJSON(w, status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, desc})
}
