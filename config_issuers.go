package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// sampleTenantID stands in for {tenantid} when a template is checked as the
// URL it becomes.
const sampleTenantID = "00000000-0000-0000-0000-000000000000"

// validateIssuer checks the issuer and the fields that widen or template it:
// a {tenantid} template with its allowed_issuer_tenants and discovery_url,
// and access_tokens.accepted_issuers. Entries of allowed_issuer_tenants are
// lower-cased. Like validate, its error starts with the field's name.
func (t *tenantConfig) validateIssuer() error {
	if err := checkIssuerPattern(t.Issuer); err != nil {
		return configErrorf("issuer: %v", err)
	}
	template := isIssuerTemplate(t.Issuer)
	if err := t.checkIssuerTenants(template); err != nil {
		return err
	}
	switch {
	case t.DiscoveryURL != "":
		if err := checkDiscoveryURL(t.DiscoveryURL, t.Issuer); err != nil {
			return configErrorf("discovery_url: %v", err)
		}
	case template:
		// A template is no URL, so nothing can be derived from it.
		return configErrorf("discovery_url: required with a {tenantid} issuer (for Entra ID https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration)")
	}
	for j, a := range t.AccessTokens.AcceptedIssuers {
		if err := checkIssuerPattern(a); err != nil {
			return configErrorf("access_tokens.accepted_issuers[%d]: %v", j, err)
		}
		if isIssuerTemplate(a) && !template {
			// Only a template tenant has an allow-list to check the tid against.
			return configErrorf("access_tokens.accepted_issuers[%d]: {tenantid} only with an issuer that holds it too; name the tenant's own issuer here", j)
		}
	}
	return nil
}

// checkIssuerTenants checks allowed_issuer_tenants: required with a
// template and meaningless without one; Entra tenant ids, or "*" alone.
func (t *tenantConfig) checkIssuerTenants(template bool) error {
	ids := t.AllowedIssuerTenants
	switch {
	case template && len(ids) == 0:
		return configErrorf(`allowed_issuer_tenants: required with a {tenantid} issuer: the Entra tenant ids whose users may sign in, or ["*"] for every tenant`)
	case !template && len(ids) > 0:
		return configErrorf("allowed_issuer_tenants: only for an issuer that holds {tenantid}")
	}
	for j, id := range ids {
		if id == "*" {
			if len(ids) > 1 {
				return configErrorf(`allowed_issuer_tenants[%d]: "*" admits every tenant, so it must be the only entry`, j)
			}
			continue
		}
		norm := strings.ToLower(id)
		if !isTenantID(norm) {
			return configErrorf("allowed_issuer_tenants[%d]: %q is not an Entra tenant id (a GUID like %s)", j, truncate(printable(id), 60), sampleTenantID)
		}
		ids[j] = norm
	}
	return nil
}

// checkIssuerPattern checks an issuer, or an issuer template: {tenantid},
// spelt so, at most once, standing for one whole path segment, and the URL
// with a tenant id put in must pass checkIssuer. The host is never templated:
// the keys of one tenant would then vouch for any host's tokens.
func checkIssuerPattern(s string) error {
	lower := strings.ToLower(s)
	n := strings.Count(lower, tenantIDPlaceholder)
	switch {
	case n == 0:
		if strings.ContainsAny(s, "{}") {
			// No issuer holds a brace: this is a placeholder misspelt.
			return fmt.Errorf("%q: the only placeholder is {tenantid}", truncate(printable(s), 100))
		}
		return checkIssuer(s)
	case n != strings.Count(s, tenantIDPlaceholder):
		return fmt.Errorf("%q: the placeholder is written {tenantid}, in lower case", truncate(printable(s), 100))
	case n > 1:
		return errors.New("{tenantid} may appear only once")
	}
	at := strings.Index(s, tenantIDPlaceholder)
	pathStart := len(s)
	if _, rest, ok := strings.Cut(s, "://"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			pathStart = len(s) - len(rest) + i
		}
	}
	end := at + len(tenantIDPlaceholder)
	if at <= pathStart || s[at-1] != '/' || (end < len(s) && s[end] != '/') {
		return errors.New("{tenantid} may only stand for a whole path segment, as in https://login.microsoftonline.com/{tenantid}/v2.0, never in the host")
	}
	if err := checkIssuer(strings.Replace(s, tenantIDPlaceholder, sampleTenantID, 1)); err != nil {
		return fmt.Errorf("with a tenant id put in: %w", err)
	}
	return nil
}

// checkDiscoveryURL checks where the discovery document is fetched: an
// absolute URL with the issuer's scheme (so https, except for an http
// issuer on loopback, which checkIssuer allows), no fragment or user info.
// A query is allowed: Entra's ?appid= and Azure AD B2C's ?p= live there.
func checkDiscoveryURL(s, issuer string) error {
	if isIssuerTemplate(s) {
		return errors.New("must be the URL of one document, not a template")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", truncate(printable(s), 100))
	}
	if strings.Contains(s, "#") || u.User != nil {
		return errors.New("must not have a fragment or user info")
	}
	is, err := url.Parse(strings.Replace(issuer, tenantIDPlaceholder, sampleTenantID, 1))
	if err != nil {
		return errors.New("needs a valid issuer")
	}
	if u.Scheme != is.Scheme {
		return fmt.Errorf("must use the issuer's scheme, %s", is.Scheme)
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return errors.New("must be https unless the host is loopback")
	}
	return nil
}

// discoveryURL is where the tenant's discovery document is fetched:
// discovery_url, or the issuer's /.well-known/openid-configuration.
func (t *tenantConfig) discoveryURL() string {
	if t.DiscoveryURL != "" {
		return t.DiscoveryURL
	}
	return strings.TrimSuffix(t.Issuer, "/") + "/.well-known/openid-configuration"
}
