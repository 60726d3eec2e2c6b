package main

// DPoP at the token endpoints (/login, /token, /refresh): the client's
// proof goes to the IdP unchanged, its htu being the IdP's token_endpoint,
// so that the IdP binds the tokens to the client's key; what the IdP says
// about DPoP (token_type, use_dpop_nonce, DPoP-Nonce) comes back.

import (
	"crypto"
	"encoding/base64"
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// maxNonceSize bounds an IdP's DPoP-Nonce that is passed on.
const maxNonceSize = 512

// dpopNonceError is the IdP's use_dpop_nonce answer (RFC 9449 §8): a 400
// SW_BAD_REQUEST in the contract's envelope (its table has no code of its
// own for this) with the IdP's DPoP-Nonce header, which is what tells a
// client to retry with a proof carrying that nonce.
type dpopNonceError struct {
	api   *apiError
	nonce string
}

func (e *dpopNonceError) Error() string { return e.api.Error() }
func (e *dpopNonceError) Unwrap() error { return e.api }

// dpopGrantError maps an IdP's refusal about DPoP at the token endpoint;
// nil for any other refusal.
func dpopGrantError(oe *oauthError) error {
	switch oe.Code {
	case "use_dpop_nonce":
		if oe.DPoPNonce == "" {
			return &apiError{http.StatusBadRequest, "SW_BAD_REQUEST", "DPoP: the identity provider asks for a nonce but sent none"}
		}
		return &dpopNonceError{
			api:   &apiError{http.StatusBadRequest, "SW_BAD_REQUEST", "DPoP: use_dpop_nonce: the identity provider requires a nonce: retry with a new proof whose nonce is the DPoP-Nonce header's value"},
			nonce: oe.DPoPNonce,
		}
	case "invalid_dpop_proof":
		return &apiError{http.StatusBadRequest, "SW_BAD_REQUEST", "DPoP: the identity provider refused the proof (its htu must be the token_endpoint of /v1/auth/config)"}
	}
	return nil
}

// aboutDPoP reports a refusal of the DPoP proof, not of the grant.
func (e *oauthError) aboutDPoP() bool {
	return e.Code == "use_dpop_nonce" || e.Code == "invalid_dpop_proof"
}

// idpNonce is an answer's DPoP-Nonce header when it is one a client can be
// given: NQCHAR only (RFC 9449 §8.1) and not too long; else "".
func idpNonce(resp *http.Response) string {
	n := resp.Header.Get("DPoP-Nonce")
	if n == "" || len(n) > maxNonceSize {
		return ""
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return ""
		}
	}
	return n
}

// clientProof returns the request's DPoP proof for the IdP's token
// endpoint and the thumbprint of its key, or "" twice without one. The
// proof is checked only as far as this service relies on it: one header,
// a compact JWS of typ dpop+jwt signed by its own public jwk with an
// asymmetric algorithm. The IdP checks the rest (htu, iat, jti, nonce).
// The thumbprint keys the refresh single-flight: without a valid signature
// anyone could name another client's public key there. Errors: 400.
func clientProof(r *http.Request) (proof, jkt string, err error) {
	hs := r.Header.Values("DPoP")
	switch {
	case len(hs) == 0:
		return "", "", nil
	case len(hs) > 1:
		return "", "", badRequest("DPoP: more than one DPoP header")
	case len(hs[0]) > maxProofSize || strings.Count(hs[0], ".") != 2:
		return "", "", badRequest("DPoP: the header must be one proof, a compact JWS of at most %d bytes", maxProofSize)
	}
	jws, err := jose.ParseSignedCompact(hs[0], supportedAlgs)
	if err != nil {
		return "", "", badRequest("DPoP: the proof does not parse, or its alg is not an asymmetric one")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); strings.TrimPrefix(strings.ToLower(typ), "application/") != "dpop+jwt" {
		return "", "", badRequest("DPoP: the proof's typ must be dpop+jwt")
	}
	if h.JSONWebKey == nil || !h.JSONWebKey.Valid() || !h.JSONWebKey.IsPublic() {
		return "", "", badRequest("DPoP: the proof's jwk must be a public key")
	}
	if _, err := jws.Verify(h.JSONWebKey); err != nil {
		return "", "", badRequest("DPoP: the proof's signature does not verify under its jwk")
	}
	tp, err := h.JSONWebKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", "", badRequest("DPoP: the proof's jwk has no thumbprint")
	}
	return hs[0], base64.RawURLEncoding.EncodeToString(tp), nil
}
