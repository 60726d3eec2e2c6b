package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	josejson "github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Asking the IdP about a token: RFC 7662 introspection, Google's tokeninfo
// and the userinfo endpoint. Each answers a remoteAnswer (valid claims, or a
// refusal that may be remembered) or an error: errIdPUnavailable (wrapped)
// when the IdP could not be asked or answered garbage, any other error when
// the IdP refused our own credentials.

// remoteAnswer is what the IdP said about a token: its claims and the end
// of their validity (zero when the IdP gave none), or a refusal, a
// *verifyError, which is as final as a valid answer.
type remoteAnswer struct {
	c       *claims
	exp     time.Time
	refusal error
}

func refused(reason, format string, args ...any) *remoteAnswer {
	return &remoteAnswer{refusal: refuse(reason, format, args...)}
}

// reasonInactive is a token the IdP called inactive or invalid.
const reasonInactive = "inactive"

// introspectionEndpoint is the configured introspection endpoint, else the
// discovery document's, "" when neither names one.
func (p *provider) introspectionEndpoint() string {
	if ep := p.tenant.AccessTokens.IntrospectionEndpoint; ep != "" {
		return ep
	}
	if d := p.disc.Load(); d != nil {
		return d.IntrospectionEndpoint
	}
	return ""
}

// introspect asks the introspection endpoint about raw (RFC 7662), or
// Google's tokeninfo when that is the endpoint.
func (p *provider) introspect(ctx context.Context, raw string) (*remoteAnswer, error) {
	ep := p.introspectionEndpoint()
	if ep == "" {
		return nil, fmt.Errorf("introspection: %w: no introspection endpoint configured or in discovery", errIdPUnavailable)
	}
	if ep == googleTokeninfoURL {
		return p.tokeninfo(ctx, ep, raw)
	}
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	a := p.tenant.AccessTokens
	id, secret := p.tenant.ClientID, p.tenant.secret
	if a.IntrospectionClientID != "" {
		id, secret = a.IntrospectionClientID, a.introspectionSecret
	}
	var methods []string
	if d := p.disc.Load(); d != nil {
		methods = d.IntrospectionEndpointAuthMethodsSupported
	}
	var basic bool
	switch {
	case secret == "":
		form.Set("client_id", id)
	case usePostAuth(methods):
		form.Set("client_id", id)
		form.Set("client_secret", secret)
	default:
		// RFC 8414 §2: client_secret_basic when the IdP lists nothing.
		basic = true
	}
	req, err := newFormRequest(ctx, ep, form)
	if err != nil {
		return nil, fmt.Errorf("introspection: %w: %v", errIdPUnavailable, err)
	}
	if basic {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	status, body, err := p.send(req, "introspection")
	if err != nil {
		return nil, err
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, p.credentialsRefused("introspection", status)
	case status == http.StatusBadRequest:
		return p.badRequestAnswer("introspection", body)
	case status != http.StatusOK:
		return nil, fmt.Errorf("introspection: %w: status %d", errIdPUnavailable, status)
	}
	return p.readIntrospection(ctx, raw, body)
}

// introspectionResponse is the part of an RFC 7662 answer we read. Optional
// strings of the wrong type read as empty (looseString); iss and the times
// of the wrong type make the answer unusable.
type introspectionResponse struct {
	Active            josejson.RawMessage `json:"active"`
	Issuer            *string             `json:"iss"`
	Subject           looseString         `json:"sub"`
	Audience          jwt.Audience        `json:"aud"`
	AuthorizedParty   looseString         `json:"azp"`
	ClientID          looseString         `json:"client_id"`
	TokenType         looseString         `json:"token_type"`
	TokenUse          looseString         `json:"token_use"` // Dex v2.45.1, Hydra v2.3.0
	Typ               looseString         `json:"typ"`       // Keycloak
	CodeHash          markerClaim         `json:"c_hash"`
	Events            markerClaim         `json:"events"`
	Expiry            *jwt.NumericDate    `json:"exp"`
	NotBefore         *jwt.NumericDate    `json:"nbf"`
	IssuedAt          *jwt.NumericDate    `json:"iat"`
	Name              looseString         `json:"name"`
	PreferredUsername looseString         `json:"preferred_username"`
	Username          looseString         `json:"username"`
	Email             looseString         `json:"email"`
	EmailVerified     claimBool           `json:"email_verified"`
	SessionID         looseString         `json:"sid"`
	Confirmation      confirmation        `json:"cnf"` // RFC 9449 §6.2
}

// readIntrospection applies SPEC.md's rules to a 200 answer: active must be
// the JSON true; exp, nbf and iat as for JWTs; iss, when present, the
// issuer; the kind (decideKind) may be a bearer; the access-token audience
// rule over aud, azp and client_id; sub required. Then userinfo, once, when
// the answer names no access token or no name (confirmUserinfo).
func (p *provider) readIntrospection(ctx context.Context, raw string, body []byte) (*remoteAnswer, error) {
	var r introspectionResponse
	if !isJSONObject(body) {
		return nil, fmt.Errorf("introspection: %w: answer is not a JSON object", errIdPUnavailable)
	}
	// go-jose's decoder matches member names exactly, as the claims of a
	// JWT are read: "Active" is not "active".
	if err := decodeIdPAnswerExact(body, &r); err != nil {
		return nil, fmt.Errorf("introspection: %w: answer does not decode: %v", errIdPUnavailable, claimsErrorKind(err))
	}
	if !bytes.Equal(r.Active, []byte("true")) {
		// false, missing, "true", 1: only the JSON true is active (RFC 7662 §2.2).
		return refused(reasonInactive, "introspection: active is %s", truncate(string(r.Active), 20)), nil
	}
	iss := p.tenant.Issuer
	if r.Issuer != nil {
		// The issuer rule of bearer JWTs, accepted issuers included.
		if err := p.tenant.checkTokenIssuer(&claims{Issuer: *r.Issuer}, kindAccessToken); err != nil {
			return &remoteAnswer{refusal: err}, nil
		}
		iss = *r.Issuer
	}
	class, why := decideKind(kindSignals{
		typ: string(r.Typ), tokenUse: string(r.TokenUse), cHash: r.CodeHash.set, events: r.Events.set,
		introTokenType: string(r.TokenType), relayed: p.relayed.classOf(tokenKey(raw)),
	})
	if why := bearerRefusal(class, why); why != "" {
		return refused(reasonTokenType, "introspection: %s", why), nil
	}
	c := &claims{
		Issuer:            iss,
		Subject:           string(r.Subject),
		Audience:          r.Audience,
		Expiry:            r.Expiry,
		NotBefore:         r.NotBefore,
		IssuedAt:          r.IssuedAt,
		AuthorizedParty:   r.AuthorizedParty,
		ClientID:          r.ClientID,
		Name:              r.Name,
		PreferredUsername: r.PreferredUsername,
		Email:             r.Email,
		EmailVerified:     r.EmailVerified,
		SessionID:         r.SessionID,
		Confirmation:      r.Confirmation,
	}
	if refusal := p.checkRemoteClaims(c); refusal != nil {
		return refusal, nil
	}
	if refusal, err := p.confirmUserinfo(ctx, raw, c, class == classAccess); refusal != nil || err != nil {
		return refusal, err
	}
	if c.Name == "" && c.PreferredUsername == "" {
		c.PreferredUsername = r.Username // RFC 7662's own human-readable name
	}
	ans := &remoteAnswer{c: c}
	if c.Expiry != nil {
		ans.exp = c.Expiry.Time()
	}
	return ans, nil
}

// checkRemoteClaims applies the time, subject and access-token audience
// rules to claims an IdP answered.
func (p *provider) checkRemoteClaims(c *claims) *remoteAnswer {
	now := p.now()
	switch {
	case c.Expiry != nil && now.After(c.Expiry.Time().Add(leeway)):
		return refused(reasonExpired, "at %s", c.Expiry.Time().UTC().Format(time.RFC3339))
	case c.NotBefore != nil && now.Add(leeway).Before(c.NotBefore.Time()):
		return refused(reasonNotYetValid, "nbf %s", c.NotBefore.Time().UTC().Format(time.RFC3339))
	case c.IssuedAt != nil && now.Add(leeway).Before(c.IssuedAt.Time()):
		return refused(reasonNotYetValid, "iat %s is in the future", c.IssuedAt.Time().UTC().Format(time.RFC3339))
	case c.Subject == "":
		return refused(reasonMissingClaim, "sub")
	case !p.audienceFits(c.Audience, string(c.AuthorizedParty), string(c.ClientID)):
		return refused(reasonAudience, "aud %q, azp %q, client_id %q: none is for this tenant", []string(c.Audience),
			truncate(string(c.AuthorizedParty), 100), truncate(string(c.ClientID), 100))
	}
	return nil
}

// audienceFits is the access-token audience rule of SPEC.md: aud holds one
// of the tenant's audiences, or azp or the RFC 9068 client_id is the
// tenant's client_id.
func (p *provider) audienceFits(aud []string, azp, clientID string) bool {
	t := p.tenant
	if azp == t.ClientID || clientID == t.ClientID {
		return true
	}
	for _, a := range t.Audiences {
		for _, b := range aud {
			if a == b {
				return true
			}
		}
	}
	return false
}

// tokeninfoResponse is Google's tokeninfo answer: numbers as strings,
// expires_in relative to now.
type tokeninfoResponse struct {
	Subject         looseString `json:"sub"`
	Audience        looseString `json:"aud"`
	AuthorizedParty looseString `json:"azp"`
	Expiry          flexInt     `json:"exp"`
	ExpiresIn       *flexInt    `json:"expires_in"`
	Email           looseString `json:"email"`
	EmailVerified   claimBool   `json:"email_verified"`
}

// tokeninfo asks Google's tokeninfo endpoint: 200 means active, 400 means
// invalid; aud and azp are checked by the audience rule.
func (p *provider) tokeninfo(ctx context.Context, ep, raw string) (*remoteAnswer, error) {
	// The token goes in the body: never in a URL, where logs keep it.
	req, err := newFormRequest(ctx, ep, url.Values{"access_token": {raw}})
	if err != nil {
		return nil, fmt.Errorf("tokeninfo: %w: %v", errIdPUnavailable, err)
	}
	status, body, err := p.send(req, "tokeninfo")
	if err != nil {
		return nil, err
	}
	switch {
	case status == http.StatusBadRequest:
		return p.badRequestAnswer("tokeninfo", body)
	case status != http.StatusOK:
		return nil, fmt.Errorf("tokeninfo: %w: status %d", errIdPUnavailable, status)
	}
	var r tokeninfoResponse
	if !isJSONObject(body) {
		return nil, fmt.Errorf("tokeninfo: %w: answer is not a JSON object", errIdPUnavailable)
	}
	if err := decodeIdPAnswerExact(body, &r); err != nil {
		return nil, fmt.Errorf("tokeninfo: %w: answer does not decode: %v", errIdPUnavailable, claimsErrorKind(err))
	}
	now := p.now()
	var exp time.Time
	switch {
	case r.ExpiresIn != nil:
		if *r.ExpiresIn <= 0 {
			return refused(reasonExpired, "tokeninfo: expires_in %d", int64(*r.ExpiresIn)), nil
		}
		exp = now.Add(time.Duration(*r.ExpiresIn) * time.Second)
	case r.Expiry > 0:
		exp = time.Unix(int64(r.Expiry), 0)
	}
	c := &claims{Issuer: p.tenant.Issuer, Subject: string(r.Subject), AuthorizedParty: r.AuthorizedParty, Email: r.Email, EmailVerified: r.EmailVerified}
	if r.Audience != "" {
		c.Audience = jwt.Audience{string(r.Audience)}
	}
	if !exp.IsZero() {
		c.Expiry = jwt.NewNumericDate(exp)
	}
	if refusal := p.checkRemoteClaims(c); refusal != nil {
		return refusal, nil
	}
	return &remoteAnswer{c: c, exp: exp}, nil
}

// userinfoValidate validates raw by the userinfo endpoint: 200 with a sub is
// valid, 401 and 403 invalid.
func (p *provider) userinfoValidate(ctx context.Context, raw string) (*remoteAnswer, error) {
	status, info, err := p.userinfo(ctx, raw)
	if err != nil {
		return nil, err
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return refused(reasonInactive, "userinfo answered %d", status), nil
	case info == nil:
		return nil, fmt.Errorf("userinfo: %w: status %d", errIdPUnavailable, status)
	case info.Subject == "":
		return refused(reasonMissingClaim, "userinfo: sub"), nil
	}
	// Userinfo says nothing of the kind; what this service relayed does.
	if why := bearerRefusal(decideKind(kindSignals{relayed: p.relayed.classOf(tokenKey(raw))})); why != "" {
		return refused(reasonTokenType, "%s", why), nil
	}
	return &remoteAnswer{c: &claims{
		Issuer:            p.tenant.Issuer,
		Subject:           string(info.Subject),
		Name:              info.Name,
		PreferredUsername: info.PreferredUsername,
		Email:             info.Email,
		EmailVerified:     info.EmailVerified,
	}}, nil
}

// confirmUserinfo asks the userinfo endpoint about an introspected token
// with claims c when the answer named no access token (named false), or no
// name: Authelia v4.39.20 introspects its refresh tokens active with
// nothing that tells them from access tokens, and only its userinfo
// endpoint refuses them (400). A refusal (any 4xx, a 200 without sub, as
// Casdoor v3.158.0 answers with its error envelope, or for another subject)
// means the token is no access token: a refused answer. A 5xx or no answer
// is the IdP failing: for a token whose answer named it an access token,
// only its names stay unknown; for one that did not, the error
// (errIdPUnavailable, not remembered). With no userinfo endpoint, nothing
// can be confirmed and the answer stands. Names the answer lacks are filled
// from userinfo's.
func (p *provider) confirmUserinfo(ctx context.Context, raw string, c *claims, named bool) (*remoteAnswer, error) {
	if c.Confirmation.present {
		// A DPoP-bound token is good at userinfo only with a proof from
		// its key, which this service does not hold (node oidc-provider 9
		// answers 401 to it as a bearer): it is not sent there, and its
		// binding is checked instead on every use.
		return nil, nil
	}
	noNames := c.Name == "" && c.PreferredUsername == "" && c.Email == ""
	if named && !noNames {
		return nil, nil
	}
	if d := p.disc.Load(); d == nil || d.UserinfoEndpoint == "" {
		return nil, nil
	}
	status, info, err := p.userinfo(ctx, raw)
	switch {
	case err == nil && status >= 400 && status < 500:
		return refused(reasonTokenType, "userinfo answered %d: not an access token", status), nil
	case err == nil && info != nil && string(info.Subject) != c.Subject:
		return refused(reasonTokenType, "userinfo answered 200 without this token's sub: not an access token"), nil
	case err != nil || info == nil:
		if !named {
			return nil, fmt.Errorf("userinfo: %w: status %d, so the token's kind is unknown", errIdPUnavailable, status)
		}
		p.log.Info("userinfo gave no name for an introspected token", "status", status, "err", err)
		return nil, nil
	}
	if noNames {
		c.Name, c.PreferredUsername, c.Email, c.EmailVerified = info.Name, info.PreferredUsername, info.Email, info.EmailVerified
	}
	return nil, nil
}

// userinfoResponse is the part of a userinfo answer we use.
type userinfoResponse struct {
	Subject           looseString `json:"sub"`
	Name              looseString `json:"name"`
	PreferredUsername looseString `json:"preferred_username"`
	Email             looseString `json:"email"`
	EmailVerified     claimBool   `json:"email_verified"`
}

// userinfo calls the userinfo endpoint with raw as the bearer. It returns
// the status, and the answer when it was a 200 with a JSON object.
func (p *provider) userinfo(ctx context.Context, raw string) (int, *userinfoResponse, error) {
	d := p.disc.Load()
	if d == nil || d.UserinfoEndpoint == "" {
		return 0, nil, fmt.Errorf("userinfo: %w: no userinfo endpoint in discovery", errIdPUnavailable)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.UserinfoEndpoint, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("userinfo: %w: %v", errIdPUnavailable, err)
	}
	req.Header.Set("Authorization", "Bearer "+raw)
	status, body, err := p.send(req, "userinfo")
	if err != nil || status != http.StatusOK {
		return status, nil, err
	}
	var info userinfoResponse
	if !isJSONObject(body) || decodeIdPAnswerExact(body, &info) != nil {
		// A signed userinfo answer (application/jwt) is not read either.
		return status, nil, fmt.Errorf("userinfo: %w: answer is not a JSON object", errIdPUnavailable)
	}
	return status, &info, nil
}

// credentialsRefused is the IdP refusing our own client credentials at
// what: no user can fix that, so it is logged loudly and answered as a
// server error (500 SW_INTERNAL).
func (p *provider) credentialsRefused(what string, status int) error {
	p.log.Error("the IdP refused this tenant's credentials at its "+what+" endpoint: check access_tokens.introspection_client_id and its secret (or the tenant's client_id and secret)", "status", status)
	return fmt.Errorf("tenant %s: %s: client credentials refused with status %d", p.tenant.ID, what, status)
}

// badRequestAnswer reads a 400: with an OAuth error body it is the IdP
// saying it cannot judge this token (node oidc-provider's
// unsupported_token_type for its JWTs, Google's invalid_token), so the
// token is refused and the code logged; without one the answer is garbage.
func (p *provider) badRequestAnswer(what string, body []byte) (*remoteAnswer, error) {
	var e struct {
		Error string `json:"error"`
	}
	if decodeIdPAnswer(body, &e) != nil || e.Error == "" {
		return nil, fmt.Errorf("%s: %w: status 400 without an OAuth error", what, errIdPUnavailable)
	}
	p.log.Info("the IdP would not judge a token", "endpoint", what, "code", truncate(e.Error, 40))
	return refused(reasonInactive, "%s: answered 400 %s", what, truncate(e.Error, 40)), nil
}

// newFormRequest is a form POST to u, replayable for redirects and retries.
func newFormRequest(ctx context.Context, u string, form url.Values) (*http.Request, error) {
	body := form.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req, nil
}

// send does one request to the IdP within idpRequestTimeout and returns the
// status and the body, read through the size limit. A transport error or a
// body too large is errIdPUnavailable (wrapped), without the URL, which may
// not hold a token but is not worth the risk of a future one that does.
func (p *provider) send(req *http.Request, what string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(req.Context(), idpRequestTimeout)
	defer cancel()
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req.WithContext(ctx))
	p.met.idpCall(what, outcome(resp, err))
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w: %v", what, errIdPUnavailable, redactURLError(err))
	}
	body, err := readLimited(resp)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s: %w: %v", what, errIdPUnavailable, err)
	}
	return resp.StatusCode, body, nil
}

// isJSONObject reports whether b, less white space, starts as an object:
// encoding/json takes null for an empty struct.
func isJSONObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}
