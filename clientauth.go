package main

import (
	"net/http"
	"net/url"
)

// setClientAuth authenticates req, a form POST to one of the IdP's
// endpoints, as the client clientID: with no secret (a public client) by
// client_id in the form; with client_secret_post when the endpoint's
// methods list that but not client_secret_basic; else with HTTP Basic, the
// default of RFC 6749 and OIDC. form is the body still to be encoded.
func setClientAuth(req *http.Request, form url.Values, clientID, secret string, methods []string) {
	switch {
	case secret == "":
		form.Set("client_id", clientID)
	case usePostAuth(methods):
		form.Set("client_id", clientID)
		form.Set("client_secret", secret)
	default:
		// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic.
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
}
