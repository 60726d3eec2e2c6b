package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// validateIssuer checks the issuer, discovery_url and
// access_tokens.accepted_issuers. Like validate, its error starts with the
// field's name.
func (t *tenantConfig) validateIssuer() error {
	if err := checkIssuer(t.Issuer); err != nil {
		return configErrorf("issuer: %v", err)
	}
	if t.DiscoveryURL != "" {
		if err := checkDiscoveryURL(t.DiscoveryURL, t.Issuer); err != nil {
			return configErrorf("discovery_url: %v", err)
		}
	}
	for j, a := range t.AccessTokens.AcceptedIssuers {
		if err := checkIssuer(a); err != nil {
			return configErrorf("access_tokens.accepted_issuers[%d]: %v", j, err)
		}
	}
	return nil
}

// checkDiscoveryURL checks where the discovery document is fetched: an
// absolute URL with the issuer's scheme (so https, except for an http
// issuer on loopback, which checkIssuer allows), no fragment or user info.
// A query is allowed: Entra's ?appid= and Azure AD B2C's ?p= live there.
func checkDiscoveryURL(s, issuer string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", truncate(printable(s), 100))
	}
	if strings.Contains(s, "#") || u.User != nil {
		return errors.New("must not have a fragment or user info")
	}
	is, err := url.Parse(issuer)
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
