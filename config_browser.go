package main

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// checkPostLoginRedirectURIs checks a tenant's post_login_redirect_uris:
// each an absolute URL, https unless the host is loopback, without user
// info or fragment, and without the handoff and error parameters that the
// callback appends. The error names the entry at fault. The URLs are kept
// as written, since return_to is compared with them byte for byte.
func checkPostLoginRedirectURIs(uris []string) error {
	for j, s := range uris {
		if err := checkPostLoginRedirectURI(s); err != nil {
			return configErrorf("post_login_redirect_uris[%d]: %v", j, err)
		}
	}
	return nil
}

func checkPostLoginRedirectURI(s string) error {
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return fmt.Errorf("%q: must not contain spaces or control characters", s)
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	// The browser would keep a fragment across the redirect, and the app
	// page would see it; "https://app/#" parses with an empty one.
	if strings.Contains(s, "#") {
		return fmt.Errorf("%q: must not have a fragment", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q: must not have user info", s)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
	default:
		return fmt.Errorf("%q: must be https unless the host is loopback", s)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fmt.Errorf("%q: malformed query", s)
	}
	for _, k := range []string{"handoff", "error"} {
		if q.Has(k) {
			return fmt.Errorf("%q: must not have the %s parameter, which the sign-in adds", s, k)
		}
	}
	return nil
}
