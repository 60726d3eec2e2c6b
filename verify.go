package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	// maxTokenSize bounds what we parse at all; real tokens are 1–4 KiB.
	maxTokenSize = 16 << 10
	// leeway is the one clock-skew allowance, applied alike to exp, nbf and iat.
	leeway = 60 * time.Second
)

// strictB64 is base64url without padding that refuses non-zero unused bits.
var strictB64 = base64.RawURLEncoding.Strict()

// tokenKind selects the audience rules of SPEC.md.
type tokenKind int

const (
	kindIDToken tokenKind = iota
	kindAccessToken
	kindLogoutToken // OpenID Connect Back-Channel Logout 1.0; see verifyLogoutToken
)

func (k tokenKind) String() string {
	switch k {
	case kindIDToken:
		return "id token"
	case kindLogoutToken:
		return "logout token"
	}
	return "access token"
}

// Reasons a token is refused. They go to the log; the client only ever sees
// the contract's code.
const (
	reasonTooLarge     = "too large"
	reasonMalformed    = "malformed"
	reasonAlgorithm    = "algorithm not allowed"
	reasonHeader       = "forbidden header"
	reasonUnknownKey   = "unknown key"
	reasonSignature    = "bad signature"
	reasonExpired      = "expired"
	reasonNotYetValid  = "not yet valid"
	reasonIssuer       = "issuer mismatch"
	reasonAudience     = "audience mismatch"
	reasonAZP          = "azp mismatch"
	reasonNonce        = "nonce mismatch"
	reasonMissingClaim = "missing claim"
	reasonTokenType    = "wrong token type"
	reasonRevoked      = "revoked"
)

// verifyError is a refused token: Reason is one of the reason constants,
// Detail says more for the log and never holds the token.
type verifyError struct {
	Reason string
	Detail string
}

func (e *verifyError) Error() string {
	if e.Detail == "" {
		return "token refused: " + e.Reason
	}
	return "token refused: " + e.Reason + ": " + e.Detail
}

func refuse(reason, format string, args ...any) error {
	return &verifyError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// claims are the verified claims we use. Optional string claims of the
// wrong JSON type are ignored rather than failing a validly signed token.
type claims struct {
	Issuer            string           `json:"iss"`
	Subject           string           `json:"sub"`
	Audience          jwt.Audience     `json:"aud"`
	Expiry            *jwt.NumericDate `json:"exp"`
	NotBefore         *jwt.NumericDate `json:"nbf"`
	IssuedAt          *jwt.NumericDate `json:"iat"`
	AuthorizedParty   looseString      `json:"azp"`
	ClientID          looseString      `json:"client_id"` // RFC 9068 §2.2
	TenantID          looseString      `json:"tid"`       // Entra ID's tenant
	Nonce             looseString      `json:"nonce"`
	Name              looseString      `json:"name"`
	PreferredUsername looseString      `json:"preferred_username"`
	Email             looseString      `json:"email"`
	EmailVerified     claimBool        `json:"email_verified"`
	SessionID         looseString      `json:"sid"`
	// at_hash binds an ID token to its access token (idtoken.go); it is no
	// marker of a token's kind (tokenkind.go reads those, kindMarkers).
	AccessTokenHash markerClaim `json:"at_hash"`
	CodeHash        markerClaim `json:"c_hash"`
	Type            looseString `json:"typ"`
	// Confirmation is cnf (RFC 7800): a bound token's key (dpop.go).
	Confirmation confirmation `json:"cnf"`

	// alg is the header's algorithm, that of the key that verified the token.
	alg string
	// namedAccess is set when a signal of the token or of the IdP's answer
	// names it an access token (tokenkind.go), not merely names no other
	// kind: userinfo refusing such a token says only that it is meant for
	// another resource (node oidc-provider 9's RFC 9068 tokens for a
	// resource indicator get 401 at its userinfo), not that it is no
	// access token.
	namedAccess bool
}

// looseString is a string claim that reads as empty when it is not a string.
type looseString string

func (s *looseString) UnmarshalJSON(b []byte) error {
	// Fast path for the common plain string: no escapes, valid UTF-8.
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		inner := b[1 : len(b)-1]
		if !bytes.ContainsAny(inner, "\\\"") && utf8.Valid(inner) && !hasControl(inner) {
			*s = looseString(inner)
			return nil
		}
	}
	var v string
	if json.Unmarshal(b, &v) == nil {
		*s = looseString(v)
	}
	return nil
}

func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// verify checks a compact JWS token of the given kind against the tenant's
// issuer, keys and audience rules, and returns its claims. nonce, when not
// empty, must equal the ID token's nonce. Errors: *verifyError for a refused
// token, errIdPUnavailable (wrapped) when there are no keys yet.
func (p *provider) verify(ctx context.Context, raw string, kind tokenKind, nonce string) (*claims, error) {
	c, _, err := p.verifyGen(ctx, raw, kind, nonce)
	return c, err
}

// verifyGen is verify that also returns the generation of the key set whose
// key verified the token, which may be older than the current one by the time
// it returns.
func (p *provider) verifyGen(ctx context.Context, raw string, kind tokenKind, nonce string) (*claims, uint64, error) {
	_, c, ks, err := p.verifySigned(ctx, raw, kind)
	if err != nil {
		return nil, 0, err
	}
	if err := p.checkClaims(c, kind, nonce); err != nil {
		return nil, 0, err
	}
	return c, ks.gen, nil
}

// verifySigned checks everything about a compact JWS of the given kind up to
// and including its signature: size, canonical encoding, algorithm, headers
// and the key. It returns the verified token, its claims decoded, and the key
// set whose key verified it; the claims are not checked yet.
func (p *provider) verifySigned(ctx context.Context, raw string, kind tokenKind) (*jwt.JSONWebToken, *claims, *keySet, error) {
	if len(raw) > maxTokenSize {
		return nil, nil, nil, refuse(reasonTooLarge, "%d bytes", len(raw))
	}
	// A compact JWS has exactly two dots; a JWE has four. Counting first
	// also spares the parser a token made of a million dots.
	if strings.Count(raw, ".") != 2 {
		return nil, nil, nil, refuse(reasonMalformed, "not a compact JWS")
	}
	// go-jose decodes leniently: it skips line breaks and ignores the unused
	// bits of a segment's last character, so one signed token has many
	// spellings that all verify. Only the canonical one is a token.
	for seg := range strings.SplitSeq(raw, ".") {
		if strings.ContainsAny(seg, "\r\n") {
			return nil, nil, nil, refuse(reasonMalformed, "line break in a segment")
		}
		if _, err := strictB64.DecodeString(seg); err != nil {
			return nil, nil, nil, refuse(reasonMalformed, "segment is not canonical base64url")
		}
	}
	ks := p.keys.Load()
	algs := p.algs.Load()
	if ks == nil || algs == nil {
		return nil, nil, nil, fmt.Errorf("verify %s: %w: no keys yet", kind, errIdPUnavailable)
	}
	tok, err := jwt.ParseSigned(raw, *algs)
	if err != nil {
		if strings.Contains(err.Error(), "algorithm") {
			return nil, nil, nil, refuse(reasonAlgorithm, "%v", err)
		}
		return nil, nil, nil, refuse(reasonMalformed, "%v", err)
	}
	if len(tok.Headers) != 1 {
		return nil, nil, nil, refuse(reasonMalformed, "%d signatures", len(tok.Headers))
	}
	h := tok.Headers[0]
	if _, ok := h.ExtraHeaders["crit"]; ok {
		// We implement no JWS extension, so any critical one is unknown (RFC 7515 §4.1.11).
		return nil, nil, nil, refuse(reasonHeader, "crit")
	}
	if kind == kindIDToken {
		if typ, _ := h.ExtraHeaders["typ"].(string); isAccessTokenType(typ) {
			return nil, nil, nil, refuse(reasonTokenType, "an access token (typ at+jwt) is not an ID token")
		}
	}
	if typ, ok := h.ExtraHeaders["typ"]; ok && kind == kindLogoutToken {
		if s, _ := typ.(string); !isLogoutTokenTypeOrJWT(s) {
			return nil, nil, nil, refuse(reasonTokenType, "typ %q is neither logout+jwt nor JWT", truncate(s, 40))
		}
	}
	if kind == kindAccessToken && p.tenant.AccessTokens.RequireJWTType {
		if typ, _ := h.ExtraHeaders["typ"].(string); !isAccessTokenType(typ) {
			return nil, nil, nil, refuse(reasonTokenType, "typ %q is not at+jwt, which access_tokens.require_jwt_type requires", truncate(typ, 40))
		}
	}
	var c claims
	ks, err = p.checkSignature(ctx, tok, h, ks, &c)
	if err != nil {
		return nil, nil, nil, err
	}
	c.alg = h.Algorithm
	return tok, &c, ks, nil
}

// isAccessTokenType reports whether a typ header names an RFC 9068 access
// token. RFC 7515 §4.1.9: typ is case-insensitive and "application/" may be
// left out, so "at+jwt" and "application/at+jwt" are the same type.
func isAccessTokenType(typ string) bool {
	return strings.TrimPrefix(strings.ToLower(typ), "application/") == "at+jwt"
}

// checkSignature picks the key (never from the token's jwk, jku, x5u or x5c
// headers: only from the IdP's key set), verifies the signature and decodes
// the claims into c. It returns the key set the key came from.
func (p *provider) checkSignature(ctx context.Context, tok *jwt.JSONWebToken, h jose.Header, ks *keySet, c *claims) (*keySet, error) {
	candidates := fittingKeys(ks, h)
	if len(candidates) == 0 && h.KeyID != "" && !hasKid(ks, h.KeyID) {
		// An unknown kid may be a rotation: look again, within limits.
		ks = p.keys.refetchForUnknownKid(ctx)
		candidates = fittingKeys(ks, h)
	}
	if len(candidates) == 0 {
		if h.KeyID != "" {
			return nil, refuse(reasonUnknownKey, "no %s key with kid %q", h.Algorithm, h.KeyID)
		}
		return nil, refuse(reasonUnknownKey, "no %s key", h.Algorithm)
	}
	var lastErr error
	for _, k := range candidates {
		// The signature first, with no claims to decode, so that a validly
		// signed token with ill-typed claims is logged as malformed, not as
		// forged.
		if err := tok.Claims(k.Key); err != nil {
			lastErr = err
			continue
		}
		// The payload is the one just verified; decoding it again with
		// go-jose's case-sensitive JSON keeps the claims as they were signed.
		if err := tok.UnsafeClaimsWithoutVerification(c); err != nil {
			return nil, refuse(reasonMalformed, "claims: %s", claimsErrorKind(err))
		}
		return ks, nil
	}
	return nil, refuse(reasonSignature, "%v", lastErr)
}

// claimsErrorKind describes why signed claims did not decode, without
// quoting them.
func claimsErrorKind(err error) string {
	var se *josejson.SyntaxError
	var te *josejson.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("a claim is not a JSON %s", te.Type)
	case errors.Is(err, jwt.ErrUnmarshalNumericDate), errors.Is(err, jwt.ErrUnmarshalAudience):
		return err.Error()
	}
	return "claims do not decode"
}

// fittingKeys returns the keys that may have made the signature: with a kid,
// those with exactly that kid; without one, every key whose type and alg fit.
func fittingKeys(ks *keySet, h jose.Header) []*jose.JSONWebKey {
	if ks == nil {
		return nil
	}
	var out []*jose.JSONWebKey
	for i := range ks.keys {
		k := &ks.keys[i]
		if h.KeyID != "" && k.KeyID != h.KeyID {
			continue
		}
		if keyFits(k, h.Algorithm) {
			out = append(out, k)
		}
	}
	return out
}

func hasKid(ks *keySet, kid string) bool {
	return ks != nil && slices.ContainsFunc(ks.keys, func(k jose.JSONWebKey) bool { return k.KeyID == kid })
}

// checkClaims applies the issuer, time and audience rules.
func (p *provider) checkClaims(c *claims, kind tokenKind, nonce string) error {
	t := p.tenant
	if err := t.checkTokenIssuer(c, kind); err != nil {
		return err
	}
	now := p.now()
	if c.Expiry == nil {
		return refuse(reasonMissingClaim, "exp")
	}
	if now.After(c.Expiry.Time().Add(leeway)) {
		return refuse(reasonExpired, "at %s", c.Expiry.Time().UTC().Format(time.RFC3339))
	}
	if c.NotBefore != nil && now.Add(leeway).Before(c.NotBefore.Time()) {
		return refuse(reasonNotYetValid, "nbf %s", c.NotBefore.Time().UTC().Format(time.RFC3339))
	}
	if c.IssuedAt != nil && now.Add(leeway).Before(c.IssuedAt.Time()) {
		return refuse(reasonNotYetValid, "iat %s is in the future", c.IssuedAt.Time().UTC().Format(time.RFC3339))
	}
	if c.Subject == "" {
		return refuse(reasonMissingClaim, "sub")
	}
	azp := string(c.AuthorizedParty)
	switch kind {
	case kindIDToken:
		if c.IssuedAt == nil {
			return refuse(reasonMissingClaim, "iat")
		}
		if !c.Audience.Contains(t.ClientID) {
			return refuse(reasonAudience, "aud %q does not contain the client id", []string(c.Audience))
		}
		if (len(c.Audience) > 1 || azp != "") && azp != t.ClientID {
			return refuse(reasonAZP, "azp %q is not the client id", truncate(azp, 100))
		}
		if nonce != "" && subtle.ConstantTimeCompare([]byte(nonce), []byte(c.Nonce)) != 1 {
			return refuse(reasonNonce, "")
		}
	case kindAccessToken:
		// RFC 9068 names the client in client_id, where OIDC says azp:
		// Cognito, Hydra and Auth0's RFC 9068 profile send no azp, and
		// Cognito no aud either.
		ok := azp == t.ClientID || string(c.ClientID) == t.ClientID
		for _, a := range t.Audiences {
			ok = ok || c.Audience.Contains(a)
		}
		if !ok {
			return refuse(reasonAudience, "aud %q has none of the audiences, and neither azp %q nor client_id %q is the client id",
				[]string(c.Audience), truncate(azp, 100), truncate(string(c.ClientID), 100))
		}
	}
	return nil
}

// verifyAccess verifies a bearer access token, answering from the cache of
// verified tokens when it can: a client that sends the same token again
// costs a hash and a lookup, not a signature check.
func (p *provider) verifyAccess(ctx context.Context, raw string) (*claims, error) {
	if len(raw) > maxTokenSize {
		return nil, refuse(reasonTooLarge, "%d bytes", len(raw))
	}
	key := tokenKey(raw)
	if c, ok := p.cachedAccess(key); ok {
		return c, nil
	}
	return p.verifyAccessKey(ctx, raw, key)
}

// cachedAccess answers from the verified-token cache for the token whose
// tokenKey is key, under the current key set. A hit needs no revocation
// check: revoking purges the cache. A miss is counted by the path that
// validates the token (verifyAccessKey, validateRemote), so that an opaque
// token looked for here first counts once.
func (p *provider) cachedAccess(key [32]byte) (*claims, bool) {
	if p.tokens == nil {
		return nil, false
	}
	if ks := p.keys.Load(); ks != nil {
		if c, ok := p.tokens.get(key, ks.gen, p.now()); ok {
			p.met.tokenCache(true)
			return c, true
		}
	}
	return nil, false
}

// verifyAccessKey is verifyAccess after a cache miss, for the token raw
// whose tokenKey is key.
func (p *provider) verifyAccessKey(ctx context.Context, raw string, key [32]byte) (*claims, error) {
	if p.tokens != nil {
		p.met.tokenCache(false)
	}
	now := p.now()
	epochs := p.cacheEpochs()
	tok, c, ks, err := p.verifySigned(ctx, raw, kindAccessToken)
	if err != nil {
		return nil, err
	}
	if err := p.checkClaims(c, kindAccessToken, ""); err != nil {
		return nil, err
	}
	gen := ks.gen
	// Signature, claims, then the kind: only an access token is a bearer.
	class, err := p.checkBearerKind(raw, tok, c, key)
	if err != nil {
		return nil, err
	}
	c.namedAccess = class == classAccess
	if p.revoked.refuses(key, c) {
		return nil, refuse(reasonRevoked, "signed out")
	}
	p.revoked.noteLifetime(c, now)
	if p.tokens == nil {
		return c, nil
	}
	// Cache under the generation of the keys that verified it (a token that
	// triggered a refetch is stored under the new set), and only while that
	// set is current: a refresh may have withdrawn the key during the check,
	// and the token must not outlive its key in the cache.
	if ks := p.keys.Load(); ks != nil && ks.gen == gen {
		if err := p.cacheAccess(key, c, gen, now, epochs); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// cacheEpochs are the epochs of what takes tokens out of the verified-token
// cache: revocations and the record of relayed tokens.
type cacheEpochs struct{ revoked, relayed uint64 }

func (p *provider) cacheEpochs() cacheEpochs {
	return cacheEpochs{p.revoked.epoch.Load(), p.relayed.epochNow()}
}

// cacheAccess puts the verified access token key (claims c) in the cache,
// then makes sure nothing that was recorded since its checks began (epochs,
// read before them) has been undone by the put: a revocation, or this
// service relaying the token as a refresh or ID token, purges the cache
// after bumping its epoch, so a put racing it could bring the token back.
// Then the entry is taken out again and the token refused.
func (p *provider) cacheAccess(key [32]byte, c *claims, gen uint64, now time.Time, epochs cacheEpochs) error {
	p.tokens.put(key, c, gen, now)
	if p.revoked.epoch.Load() != epochs.revoked && p.revoked.refuses(key, c) {
		p.tokens.remove(key)
		return refuse(reasonRevoked, "signed out")
	}
	if p.relayed.epochNow() != epochs.relayed {
		if class := p.relayed.classOf(key); class != classUnnamed && class != classAccess {
			p.tokens.remove(key)
			return refuse(reasonTokenType, "a %s (relayed by this service as one while it was checked) is not an access token", class)
		}
	}
	return nil
}
