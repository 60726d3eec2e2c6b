package main

// accessTokensConfig is a tenant's "access_tokens" block: what a bearer
// access token may look like beyond the rules every token follows.
type accessTokensConfig struct {
	// AcceptedIssuers are further exact iss values a bearer access token may
	// carry besides the tenant's issuer (Entra ID v1 tokens say
	// https://sts.windows.net/{tid}/). Keys still come only from the
	// tenant's jwks_uri, and ID tokens still need the tenant's issuer. An
	// entry may hold {tenantid} when the issuer does.
	AcceptedIssuers []string `json:"accepted_issuers"`
	// RequireJWTType, when set, accepts only bearer tokens whose header typ
	// is at+jwt (RFC 9068 §4), so that no other JWT the IdP signs can pass
	// for an access token.
	RequireJWTType bool `json:"require_jwt_type"`
}
