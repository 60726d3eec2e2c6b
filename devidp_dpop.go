package main

// The development IdP's DPoP (RFC 9449) at its token endpoint: a request
// with a valid proof gets tokens bound to the proof's key, so that `-dev`
// can show a DPoP sign-in end to end. Its own small checks, not the
// service's (dpop.go): it stands in for an IdP.

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// devConfirmation is a token's cnf claim: the thumbprint of its DPoP key.
type devConfirmation struct {
	JKT string `json:"jkt"`
}

// devDPoPAlgs are the proof algorithms the development IdP takes.
var devDPoPAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.PS256, jose.EdDSA}

// checkProof returns the RFC 7638 thumbprint of the key of the request's
// DPoP proof, "" without one; an invalid proof is invalid_dpop_proof. It
// checks the typ, the algorithm, a public jwk, the signature, htm, htu
// (this token endpoint) and iat (within a minute). It keeps no jti: this
// IdP is for development only.
func (d *devIDP) checkProof(r *http.Request) (string, error) {
	hs := r.Header.Values("DPoP")
	if len(hs) == 0 {
		return "", nil
	}
	bad := func(desc string) error {
		return &devOAuthError{http.StatusBadRequest, "invalid_dpop_proof", desc}
	}
	if len(hs) > 1 || len(hs[0]) > 8<<10 {
		return "", bad("one DPoP header of at most 8 KiB")
	}
	jws, err := jose.ParseSignedCompact(hs[0], devDPoPAlgs)
	if err != nil {
		return "", bad("the proof is not a JWS with an accepted alg")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "dpop+jwt") {
		return "", bad("typ must be dpop+jwt")
	}
	if h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() {
		return "", bad("jwk must be a public key")
	}
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return "", bad("the signature does not verify under jwk")
	}
	var c struct {
		JTI string           `json:"jti"`
		HTM string           `json:"htm"`
		HTU string           `json:"htu"`
		IAT *jwt.NumericDate `json:"iat"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", bad("the claims do not decode")
	}
	htu, _, _ := strings.Cut(c.HTU, "?")
	switch {
	case c.JTI == "":
		return "", bad("jti is required")
	case c.HTM != http.MethodPost:
		return "", bad("htm must be POST")
	case htu != d.base+"/token":
		return "", bad("htu must be " + d.base + "/token")
	case c.IAT == nil || d.now().Sub(c.IAT.Time()).Abs() > time.Minute:
		return "", bad("iat must be within a minute of now")
	}
	tp, err := h.JSONWebKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", bad("no thumbprint for jwk")
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}
