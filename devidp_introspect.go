package main

// The development IdP's opaque access tokens and its introspection endpoint
// (RFC 7662). A second demo client, devOpaqueClientID, gets opaque access
// tokens (random strings that only this IdP can read), so that -dev shows
// both kinds: the service verifies the JWTs of devClientID itself and asks
// the introspection endpoint about the opaque ones.

import (
	"errors"
	"net/http"
	"sync"
	"time"
)

// devOpaqueClientID and devOpaqueClientSecret are the demo client whose
// access tokens are opaque.
const (
	devOpaqueClientID     = "scaiwave-dev-opaque"
	devOpaqueClientSecret = "scaiwave-dev-opaque-secret"
)

// devClientSecrets are the confidential clients the dev IdP knows.
var devClientSecrets = map[string]string{
	devClientID:       devClientSecret,
	devOpaqueClientID: devOpaqueClientSecret,
}

// devMaxOpaqueTokens bounds the opaque access tokens held at once.
const devMaxOpaqueTokens = 10_000

// devOpaqueTokens maps the opaque access tokens issued to their claims until
// they expire, at most max (devMaxOpaqueTokens when 0) of them: past that,
// an arbitrary one is forgotten for each new one. Its own lock: tokens are
// issued with and without devIDP.mu held.
type devOpaqueTokens struct {
	max       int
	mu        sync.Mutex
	m         map[string]*devAccessClaims
	nextSweep time.Time
}

// add stores c under a new random token and returns the token.
func (o *devOpaqueTokens) add(now time.Time, c devAccessClaims) string {
	tok := devRandom(32)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]*devAccessClaims{}
	}
	max := o.max
	if max <= 0 {
		max = devMaxOpaqueTokens
	}
	if !now.Before(o.nextSweep) || len(o.m) >= max {
		// Expired tokens go at most once a minute, or when the map is full.
		o.nextSweep = now.Add(devSweepEvery)
		for k, v := range o.m {
			if !now.Before(v.Expiry.Time()) {
				delete(o.m, k)
			}
		}
	}
	for k := range o.m {
		if len(o.m) < max {
			break
		}
		delete(o.m, k) // a flood of sign-ins: one demo token less
	}
	o.m[tok] = &c
	return tok
}

// get returns the claims of an unexpired opaque token.
func (o *devOpaqueTokens) get(now time.Time, tok string) (*devAccessClaims, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, ok := o.m[tok]
	if !ok || !now.Before(c.Expiry.Time()) {
		return nil, false
	}
	return c, true
}

// lookupAccessToken returns the claims of an unexpired, unrevoked access
// token of this IdP, opaque or JWT; the error says why not.
func (d *devIDP) lookupAccessToken(raw string) (*devAccessClaims, error) {
	if c, ok := d.opaque.get(d.now(), raw); ok {
		if d.accessRevoked(c.ID) {
			return nil, errors.New("token revoked")
		}
		return c, nil
	}
	return d.verifyAccessToken(raw)
}

// devIntrospection is an RFC 7662 §2.2 answer. An inactive token gets only
// active false.
type devIntrospection struct {
	Active    bool   `json:"active"`
	Issuer    string `json:"iss,omitempty"`
	Subject   string `json:"sub,omitempty"`
	Audience  string `json:"aud,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Scope     string `json:"scope,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Username  string `json:"username,omitempty"`
	Expiry    int64  `json:"exp,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
	// Confirmation of a DPoP-bound token (RFC 9449 §6.2).
	Confirmation *devConfirmation `json:"cnf,omitempty"`
	devProfileClaims
}

// handleIntrospect serves the introspection endpoint: either demo client
// may ask, with its credentials, about any token: an access token of
// either kind, or a refresh token (token_type refresh_token). Unknown,
// expired and revoked tokens are active false.
func (d *devIDP) handleIntrospect() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, err := devParseForm(w, r)
		if err == nil {
			_, err = devAuthenticateClient(r, form)
		}
		if err == nil && form.Get("token") == "" {
			err = devInvalidRequest("token is required")
		}
		if err != nil {
			devWriteOAuthError(w, err)
			return
		}
		devWriteJSON(w, http.StatusOK, d.introspect(form.Get("token")))
	})
}

// introspect says what tok is.
func (d *devIDP) introspect(tok string) devIntrospection {
	if c, err := d.lookupAccessToken(tok); err == nil {
		u, _ := d.userBySubject(c.Subject)
		return devIntrospection{
			Active: true, Issuer: c.Issuer, Subject: c.Subject, Audience: c.ClientID, ClientID: c.ClientID,
			Scope: c.Scope, TokenType: "Bearer", Username: u.Username,
			Expiry: c.Expiry.Time().Unix(), IssuedAt: c.IssuedAt.Time().Unix(),
			Confirmation: c.Confirmation, devProfileClaims: c.devProfileClaims,
		}
	}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	g, ok := d.refresh[tok]
	if !ok || !now.Before(g.expires) || g.session.revoked {
		return devIntrospection{}
	}
	return devIntrospection{
		Active: true, Issuer: d.issuer, Subject: g.user.Subject, ClientID: g.clientID, Scope: g.scope,
		TokenType: "refresh_token", Username: g.user.Username, Expiry: g.expires.Unix(),
	}
}
