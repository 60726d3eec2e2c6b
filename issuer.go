package main

import (
	"log/slog"
	"slices"
	"strings"
)

// tenantIDPlaceholder makes an issuer a template: Entra ID's multi-tenant
// discovery documents name the issuer https://login.microsoftonline.com/{tenantid}/v2.0,
// and each token's iss has the tenant's id in its place.
const tenantIDPlaceholder = "{tenantid}"

// reasonTenant refuses a token of a tenant that allowed_issuer_tenants
// does not admit.
const reasonTenant = "issuer tenant not allowed"

// isIssuerTemplate reports whether an issuer holds {tenantid}.
func isIssuerTemplate(s string) bool { return strings.Contains(s, tenantIDPlaceholder) }

// fillTenant puts a tenant id into a template; other issuers come back as
// they are.
func fillTenant(issuer, tid string) string {
	return strings.Replace(issuer, tenantIDPlaceholder, tid, 1)
}

// isTenantID reports whether s is an Entra tenant id as its tokens write it:
// a GUID in lower case, 8-4-4-4-12 hex digits. Only such a value is put
// into a template, so no claim can add a path or another host to an issuer.
func isTenantID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// checkTokenIssuer applies the issuer rule to a token's iss. Without a
// template: the issuer exactly, or for an access token one of
// access_tokens.accepted_issuers. With a template: tid must be a tenant id
// that allowed_issuer_tenants admits, and iss the template with tid put in
// (for an access token, or an accepted issuer so filled). Errors are
// *verifyError: reasonIssuer, or reasonTenant for a tenant not admitted.
func (t *tenantConfig) checkTokenIssuer(c *claims, kind tokenKind) error {
	accepted := t.AccessTokens.AcceptedIssuers
	if kind != kindAccessToken {
		accepted = nil
	}
	if !isIssuerTemplate(t.Issuer) {
		if c.Issuer == t.Issuer || slices.Contains(accepted, c.Issuer) {
			return nil
		}
		return refuse(reasonIssuer, "want %q got %q", t.Issuer, truncate(c.Issuer, 100))
	}
	tid := string(c.TenantID)
	if !isTenantID(tid) {
		return refuse(reasonIssuer, "tid %q is not an Entra tenant id", truncate(tid, 40))
	}
	if c.Issuer != fillTenant(t.Issuer, tid) && !slices.ContainsFunc(accepted, func(a string) bool { return c.Issuer == fillTenant(a, tid) }) {
		return refuse(reasonIssuer, "want %q for tid %s got %q", fillTenant(t.Issuer, tid), tid, truncate(c.Issuer, 100))
	}
	if !t.admitsTenant(tid) {
		return refuse(reasonTenant, "tid %s is not in allowed_issuer_tenants", tid)
	}
	return nil
}

// admitsTenant reports whether allowed_issuer_tenants admits tid.
func (t *tenantConfig) admitsTenant(tid string) bool {
	return slices.Equal(t.AllowedIssuerTenants, []string{"*"}) || slices.Contains(t.AllowedIssuerTenants, tid)
}

// principalIssuer is the issuer a participant is stored under for verified
// claims c (which passed checkTokenIssuer): the tenant's issuer, with the
// token's tid put in for a template. A token that named an accepted issuer
// is its tenant's all the same, so one person with a v1 and a v2 Entra
// token is one participant.
func (t *tenantConfig) principalIssuer(c *claims) string {
	if isIssuerTemplate(t.Issuer) {
		return fillTenant(t.Issuer, string(c.TenantID))
	}
	return t.Issuer
}

// warnIssuerRules logs, at start, the issuer settings an operator should
// know are wide open.
func warnIssuerRules(log *slog.Logger, t *tenantConfig) {
	if slices.Equal(t.AllowedIssuerTenants, []string{"*"}) {
		log.Warn(`allowed_issuer_tenants is ["*"]: users of every Entra ID tenant can sign in and register`, "tenant", t.ID)
	}
}
