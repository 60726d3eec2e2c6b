package main

// What sets an ID token apart from an access token: the claims only an ID
// token carries, so that one is never accepted as a bearer.

import (
	"encoding/json"
	"strings"
)

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

// idTokenMarker names the claim that makes c an ID token (SPEC.md Token
// verification), or returns "" when it has none: at_hash or c_hash (OIDC
// Core §3.1.3.6, §3.3.2.11), or a payload typ of ID, as Keycloak writes in
// its ID tokens. nonce is no marker: Dex copies the authorization request's
// nonce into its access tokens too.
func idTokenMarker(c *claims) string {
	switch {
	case c.AccessTokenHash.set:
		return "at_hash"
	case c.CodeHash.set:
		return "c_hash"
	case strings.EqualFold(string(c.Type), "ID"):
		return "typ ID"
	}
	return ""
}
