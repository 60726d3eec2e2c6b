package main

import "slices"

// checkTokenIssuer applies the issuer rule to a token's iss: the issuer
// exactly, or for an access token one of access_tokens.accepted_issuers.
// Errors are *verifyError with reasonIssuer.
func (t *tenantConfig) checkTokenIssuer(c *claims, kind tokenKind) error {
	accepted := t.AccessTokens.AcceptedIssuers
	if kind != kindAccessToken {
		accepted = nil
	}
	if c.Issuer == t.Issuer || slices.Contains(accepted, c.Issuer) {
		return nil
	}
	return refuse(reasonIssuer, "want %q got %q", t.Issuer, truncate(c.Issuer, 100))
}

// principalIssuer is the issuer a participant is stored under for verified
// claims c (which passed checkTokenIssuer): the tenant's issuer. A token
// that named an accepted issuer is its tenant's all the same, so one person
// with a v1 and a v2 Entra token is one participant.
func (t *tenantConfig) principalIssuer(c *claims) string {
	return t.Issuer
}
