package main

// What binds an ID token to the access token it came with: its at_hash, so
// that no other access token is passed on beside it. What keeps an ID token
// from being a bearer is tokenkind.go's, and relayed.go's.

import (
	"context"
	"crypto"
	_ "crypto/sha256" // the at_hash hashes, by crypto.Hash
	_ "crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"

	jose "github.com/go-jose/go-jose/v4"
)

// reasonAtHash refuses an ID token whose at_hash is not the access token's.
const reasonAtHash = "at_hash mismatch"

// markerClaim is a claim whose presence matters whatever its value: set is
// true for any JSON value but null, and text holds the value when it is a
// string.
type markerClaim struct {
	set  bool
	text string
}

func (m *markerClaim) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	m.set = true
	var s string
	if json.Unmarshal(b, &s) == nil {
		m.text = s
	}
	return nil
}

// verifyAnswerIDToken verifies the ID token of a token endpoint answer as
// verify does (nonce, when not empty, must be its nonce) and binds it to the
// answer's access token: its at_hash, when present, must be the access
// token's (OIDC Core §3.1.3.6, §3.2.2.9), so that an access token for
// mallory is never passed on beside an ID token for alice. The verified
// token's sid is kept in tr (tr.sid) for the record of relayed tokens.
// Errors as for verify; a mismatch is a *verifyError with reasonAtHash.
func (p *provider) verifyAnswerIDToken(ctx context.Context, tr *tokenResponse, nonce string) (*claims, error) {
	c, err := p.verify(ctx, tr.IDToken, kindIDToken, nonce)
	if err != nil {
		return nil, err
	}
	if err := checkAccessTokenHash(c, tr.AccessToken); err != nil {
		return nil, err
	}
	tr.sid, tr.sub = string(c.SessionID), c.Subject
	return c, nil
}

// checkAccessTokenHash checks a verified ID token's at_hash, when it has
// one, against accessToken: the left half of the access token's hash, in
// unpadded base64url, with the hash of the ID token's own algorithm.
func checkAccessTokenHash(c *claims, accessToken string) error {
	if !c.AccessTokenHash.set {
		return nil
	}
	h := atHashFunc(c.alg)
	if h == 0 {
		return refuse(reasonAtHash, "no at_hash hash is defined for alg %s", c.alg)
	}
	d := h.New()
	d.Write([]byte(accessToken))
	sum := d.Sum(nil)
	want := base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
	if subtle.ConstantTimeCompare([]byte(want), []byte(c.AccessTokenHash.text)) != 1 {
		return refuse(reasonAtHash, "the ID token's at_hash is not the hash of the access token it came with")
	}
	return nil
}

// atHashFunc is the hash of an ID token signed with alg: the one its JWS
// algorithm uses, and SHA-512 for EdDSA, whose only curve we accept is
// Ed25519 (OpenID Connect Core errata). 0 for an algorithm we never accept.
func atHashFunc(alg string) crypto.Hash {
	switch jose.SignatureAlgorithm(alg) {
	case jose.RS256, jose.PS256, jose.ES256:
		return crypto.SHA256
	case jose.RS384, jose.PS384, jose.ES384:
		return crypto.SHA384
	case jose.RS512, jose.PS512, jose.ES512, jose.EdDSA:
		return crypto.SHA512
	}
	return 0
}
