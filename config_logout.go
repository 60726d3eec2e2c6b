package main

import "net/url"

// validateLogout checks the tenant's sign-out settings: the
// post_logout_redirect_uri, when set, is an absolute http(s) URL without a
// fragment (OpenID RP-Initiated Logout 1.0 §3, as for redirect URIs).
func (t *tenantConfig) validateLogout() error {
	if t.PostLogoutRedirectURI == "" {
		return nil
	}
	u, err := url.Parse(t.PostLogoutRedirectURI)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.User != nil {
		return configErrorf("post_logout_redirect_uri: must be an absolute http(s) URL without a fragment or user info")
	}
	return nil
}
