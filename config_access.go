package main

// accessTokensConfig is a tenant's "access_tokens" block: what a bearer
// access token may look like beyond the rules every token follows.
type accessTokensConfig struct {
	// RequireJWTType, when set, accepts only bearer tokens whose header typ
	// is at+jwt (RFC 9068 §4), so that no other JWT the IdP signs can pass
	// for an access token.
	RequireJWTType bool `json:"require_jwt_type"`
}
