package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"time"
)

// Bearer access tokens by the tenant's access_tokens.validation: verified
// here when they are JWTs, else asked about at the IdP, with the answers
// kept in the verified-token cache.

const (
	// inactiveCacheTTL is how long a token the IdP refused stays refused
	// without asking again.
	inactiveCacheTTL = 10 * time.Second
	// maxRemoteFlights bounds the distinct tokens being asked about at once
	// per tenant; the IdP sees at most idpMaxInFlight of them.
	maxRemoteFlights = 10_000
	// remoteCallTimeout bounds one validation at the IdP: the introspection
	// and, when it gave no names, the userinfo call that follows.
	remoteCallTimeout = 2*idpRequestTimeout + time.Second
)

// authenticate validates a bearer access token and returns its claims.
// Errors: *verifyError for a token that is not valid, errIdPUnavailable
// (wrapped) when it could not be told, any other error when the IdP refused
// our own credentials.
func (p *provider) authenticate(ctx context.Context, raw string) (*claims, error) {
	if len(raw) > maxTokenSize {
		return nil, refuse(reasonTooLarge, "%d bytes", len(raw))
	}
	switch p.tenant.AccessTokens.Validation {
	case validationJWT:
		return p.verifyAccess(ctx, raw)
	case validationIntrospection:
		return p.validateRemote(ctx, raw, p.introspect)
	case validationUserinfo:
		return p.validateRemote(ctx, raw, p.userinfoValidate)
	}
	// A JWT verified before is in the cache under its own hash: look there
	// first, so that a hit costs no look at the token's shape.
	key := tokenKey(raw)
	if c, ok := p.cachedAccess(key); ok {
		return c, nil
	}
	if looksLikeJWS(raw) {
		return p.verifyAccessKey(ctx, raw, key)
	}
	if p.introspectionEndpoint() == "" {
		return nil, refuse(reasonMalformed, "not a JWS, and no introspection endpoint is configured or discovered")
	}
	return p.validateRemote(ctx, raw, p.introspect)
}

// looksLikeJWS reports whether raw has the shape of a compact JWS: exactly
// three segments, the first decoding to a JSON object that names an alg.
// A JWE (five segments, Zitadel's opaque tokens) and any other string are
// not, whatever their first segment says. It runs before every cached JWT
// is looked up, so it neither allocates for a usual header nor uses
// reflection.
func looksLikeJWS(raw string) bool {
	head, rest, ok := strings.Cut(raw, ".")
	if !ok || strings.Count(rest, ".") != 1 || head == "" || len(head) > maxTokenSize {
		return false
	}
	var buf [512]byte
	dst := buf[:]
	if n := strictB64.DecodedLen(len(head)); n > len(buf) {
		dst = make([]byte, n)
	}
	n, err := strictB64.Decode(dst, []byte(head))
	if err != nil {
		return false
	}
	return namesAlg(dst[:n])
}

// namesAlg reports whether b is a JSON object with a member "alg" whose
// value is a string. A key spelled with escapes does not count.
func namesAlg(b []byte) bool {
	if !json.Valid(b) {
		return false
	}
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	// b is valid JSON, so a plain scan suffices: track the nesting depth,
	// skip strings, and look at each key of the outer object.
	depth, expectKey := 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '{', '[':
			depth++
			expectKey = c == '{' && depth == 1
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case '"':
			end := i + 1
			for ; b[end] != '"'; end++ {
				if b[end] == '\\' {
					end++
				}
			}
			if expectKey && string(b[i+1:end]) == "alg" {
				v := bytes.TrimLeft(b[end+1:], " \t\r\n")
				v = bytes.TrimLeft(v[1:], " \t\r\n") // past the colon
				return v[0] == '"'
			}
			expectKey = false
			i = end
		}
	}
	return false
}

// remoteKey is the cache and flight key of a token asked about at the IdP:
// the tenant is part of it, so that one token never answers for another
// tenant, and it differs from the key of a locally verified JWT.
func remoteKey(tenantID, raw string) [32]byte {
	h := sha256.New()
	h.Write([]byte("remote\x00"))
	h.Write([]byte(tenantID))
	h.Write([]byte{0})
	h.Write([]byte(raw))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// validateRemote answers from the cache when it can, else asks the IdP with
// call, once for all concurrent requests with the same token, and remembers
// the answer: a valid one until the earlier of its exp and cache_seconds,
// a refusal for inactiveCacheTTL.
func (p *provider) validateRemote(ctx context.Context, raw string, call func(context.Context, string) (*remoteAnswer, error)) (*claims, error) {
	key := remoteKey(p.tenant.ID, raw)
	if p.tokens != nil {
		if c, ok := p.tokens.get(key, genAny, p.now()); ok {
			p.met.tokenCache(true)
			if c == nil {
				return nil, refuse(reasonInactive, "the IdP refused this token within the last %v", inactiveCacheTTL)
			}
			if err := p.refusedAsRelayed(raw); err != nil {
				return nil, err
			}
			return p.notRevoked(raw, c)
		}
		p.met.tokenCache(false)
	}
	ans, err := p.remote.do(ctx, key, func(ctx context.Context) (*remoteAnswer, error) {
		ans, err := call(ctx, raw)
		if err == nil {
			if ans.c != nil && ans.c.Expiry != nil {
				p.revoked.noteLifetime(ans.c, p.now())
			}
			p.remember(key, ans)
		}
		return ans, err
	})
	if err != nil {
		return nil, err
	}
	if ans.refusal != nil {
		return nil, ans.refusal
	}
	return p.notRevoked(raw, ans.c)
}

// notRevoked returns c unless the token was signed out here (/logout, or a
// back-channel logout of its subject or session). Answers of the IdP are
// checked on every use, from the cache too: their cache key is not the one
// a revocation purges, and a tenant with no revocation pays one atomic load.
func (p *provider) notRevoked(raw string, c *claims) (*claims, error) {
	if p.revoked.n.Load() > 0 && p.revoked.refuses(tokenKey(raw), c) {
		return nil, refuse(reasonRevoked, "signed out")
	}
	return c, nil
}

// remember keeps an answer in the cache; with cache_seconds 0 nothing is
// kept, and every request asks the IdP.
func (p *provider) remember(key [32]byte, ans *remoteAnswer) {
	ttl := p.tenant.AccessTokens.cacheTTL
	if p.tokens == nil || ttl <= 0 {
		return
	}
	now := p.now()
	if ans.refusal != nil {
		p.tokens.putUntil(key, nil, genAny, now.Add(min(inactiveCacheTTL, ttl)), now)
		return
	}
	until := now.Add(ttl)
	if !ans.exp.IsZero() && ans.exp.Before(until) {
		until = ans.exp
	}
	p.tokens.putUntil(key, ans.c, genAny, until, now)
}

// remoteReady reports whether the tenant can validate tokens as its
// access_tokens.validation says: introspection needs an endpoint, from the
// configuration or discovery, and userinfo the discovery's.
func (p *provider) remoteReady() bool {
	switch p.tenant.AccessTokens.Validation {
	case validationIntrospection:
		return p.introspectionEndpoint() != ""
	case validationUserinfo:
		d := p.disc.Load()
		return d != nil && d.UserinfoEndpoint != ""
	}
	return true
}

// revokeUntil is how long a signed-out access token must be refused: until
// its exp, or, for an opaque token whose IdP named none, as long as a
// subject revocation is kept.
func (p *provider) revokeUntil(c *claims) time.Time {
	if c.Expiry != nil {
		return c.Expiry.Time()
	}
	return p.now().Add(p.revoked.retention())
}
