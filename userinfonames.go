package main

// Names for JWT access tokens that carry none: Pocket ID v2.9.0's access
// tokens hold only amr, aud, exp, iat, iss, jti, sub and type, so the
// person's name and email are only at its userinfo endpoint. One call fills
// them, and the answer is kept per (tenant, sub) for cache_seconds.

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// maxNamesCache bounds the names kept per tenant; an entry costs about 200
// bytes.
const maxNamesCache = 10_000

// userinfoNames is what userinfo said of one subject, until until.
type userinfoNames struct {
	name, preferredUsername, email string
	emailVerified                  claimBool
	until                          time.Time
}

// namesCache holds userinfoNames by subject, at most max of them: when
// full, the expired go, then any one entry (every entry is as cheap to ask
// for again as another).
type namesCache struct {
	mu  sync.Mutex
	m   map[string]userinfoNames
	max int
}

func newNamesCache(max int) *namesCache {
	return &namesCache{m: map[string]userinfoNames{}, max: max}
}

func (nc *namesCache) get(sub string, now time.Time) (userinfoNames, bool) {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	e, ok := nc.m[sub]
	if !ok || !now.Before(e.until) {
		return userinfoNames{}, false
	}
	return e, true
}

func (nc *namesCache) put(sub string, e userinfoNames, now time.Time) {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if _, ok := nc.m[sub]; !ok && len(nc.m) >= nc.max {
		for k, v := range nc.m {
			if !now.Before(v.until) {
				delete(nc.m, k)
			}
		}
		for k := range nc.m {
			if len(nc.m) < nc.max {
				break
			}
			delete(nc.m, k)
		}
	}
	nc.m[sub] = e
}

func (nc *namesCache) len() int {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	return len(nc.m)
}

// hasNames reports whether c names its person: name, preferred_username or
// an email (SPEC.md POST /v1/auth/register).
func hasNames(c *claims) bool {
	return c.Name != "" || c.PreferredUsername != "" || c.Email != ""
}

// bearerNames returns the claims of the bearer raw, verified as c, with
// names: c itself when it has some or was not verified locally as a JWT
// (introspected tokens get theirs in readIntrospection), else a copy filled
// from userinfo. For a token that names no kind, a userinfo refusal (a 4xx,
// a 200 without this sub, as Casdoor v3.158.0 answers with an error
// envelope) means raw is no access token: a *verifyError with
// reasonTokenType. A token that names itself an access token (namedAccess)
// is refused only for a 200 naming another subject; a 4xx leaves its names
// unknown. A 5xx or no answer leaves the
// names unknown (Pocket ID v2.9.0 answers 500 to tokens it does not take),
// and c is returned as it is.
func (p *provider) bearerNames(ctx context.Context, raw string, c *claims) (*claims, error) {
	if hasNames(c) || c.Confirmation.present || !p.verifiedLocally(raw) {
		// A DPoP-bound token is good at userinfo only with a proof from its
		// key, which this service does not hold: its names stay unknown.
		return c, nil
	}
	if d := p.disc.Load(); d == nil || d.UserinfoEndpoint == "" {
		return c, nil
	}
	now := p.now()
	e, ok := p.names.get(c.Subject, now)
	var confirmKey string
	if !c.namedAccess {
		// Names are kept per person, but whether a token that names no
		// kind is an access token at all is userinfo's word on that token:
		// a LemonLDAP::NG 2.16.1 ID token (no marker, no names) must not
		// pass on the strength of its subject's access token.
		k := tokenKey(raw)
		confirmKey = string(k[:])
		if _, confirmed := p.confirmed.get(confirmKey, now); !confirmed {
			ok = false
		}
	}
	if !ok {
		status, info, err := p.userinfo(ctx, raw)
		switch {
		case err == nil && status >= 400 && status < 500 && !c.namedAccess:
			return nil, refuse(reasonTokenType, "userinfo answered %d: not an access token", status)
		case err == nil && info != nil && string(info.Subject) != c.Subject:
			return nil, refuse(reasonTokenType, "userinfo answered 200 without this token's sub: not an access token")
		case err != nil || status != http.StatusOK || info == nil:
			p.log.Info("userinfo gave no name for a token that carries none", "status", status, "err", err)
			return c, nil
		}
		e = userinfoNames{name: string(info.Name), preferredUsername: string(info.PreferredUsername), email: string(info.Email),
			emailVerified: info.EmailVerified, until: now.Add(p.tenant.AccessTokens.cacheTTL)}
		if p.tenant.AccessTokens.cacheTTL > 0 {
			p.names.put(c.Subject, e, now)
			if confirmKey != "" {
				p.confirmed.put(confirmKey, userinfoNames{until: e.until}, now)
			}
		}
	}
	named := *c // c may be shared with the token cache
	named.Name, named.PreferredUsername, named.Email, named.EmailVerified =
		looseString(e.name), looseString(e.preferredUsername), looseString(e.email), e.emailVerified
	return &named, nil
}

// verifiedLocally reports whether authenticate verifies raw as a JWT here.
func (p *provider) verifiedLocally(raw string) bool {
	switch p.tenant.AccessTokens.Validation {
	case validationJWT:
		return true
	case validationIntrospection, validationUserinfo:
		return false
	}
	return looksLikeJWS(raw)
}
