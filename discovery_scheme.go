package main

// The scheme of every endpoint a discovery document names: a document
// that sends us to plain http from an https issuer would have the client
// secret, passwords and refresh tokens cross the network in the clear.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// checkEndpointSchemes checks every endpoint the discovery document raw
// names against the issuer's scheme: the members whose name ends in
// _endpoint (token, userinfo, revocation, introspection, end_session and
// any the IdP adds), jwks_uri, check_session_iframe, and those under
// mtls_endpoint_aliases (RFC 8705 §5). Each must be https; plain http only
// when the issuer itself is http, and then only on a loopback host. A value
// that is not an absolute URL is left to the checks of its own field. The
// error names the member; the caller refuses the whole document, as for an
// issuer mismatch.
func checkEndpointSchemes(issuer string, raw []byte) error {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("not a JSON metadata document: %w", err)
	}
	plainOK := strings.HasPrefix(issuer, "http://")
	if err := checkEndpointMembers(doc, "", plainOK); err != nil {
		return err
	}
	var aliases map[string]json.RawMessage
	if json.Unmarshal(doc["mtls_endpoint_aliases"], &aliases) == nil {
		return checkEndpointMembers(aliases, "mtls_endpoint_aliases.", plainOK)
	}
	return nil
}

// checkEndpointMembers checks the endpoint members of one JSON object;
// prefix is its path, for the message.
func checkEndpointMembers(m map[string]json.RawMessage, prefix string, plainOK bool) error {
	for name, v := range m {
		if !strings.HasSuffix(name, "_endpoint") && name != "jwks_uri" && name != "check_session_iframe" && prefix == "" {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			continue
		}
		switch {
		case u.Scheme == "https":
		case u.Scheme == "http" && plainOK && isLoopbackHost(u.Hostname()):
		case plainOK:
			return fmt.Errorf("%s%s: %q must be https, or http on a loopback host", prefix, name, truncate(s, 200))
		default:
			return fmt.Errorf("%s%s: %q is not https but the issuer is: refusing a downgrade to %s", prefix, name, truncate(s, 200), truncate(u.Scheme, 20))
		}
	}
	return nil
}
