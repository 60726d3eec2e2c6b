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

// publicClientNote is what the log at start and -check say of a tenant
// without a client secret, which is a public client at the IdP.
const publicClientNote = "no client secret, so this tenant is a public client: the IdP must let its client_id redeem codes and refresh tokens without a secret, or every sign-in fails with invalid_client (set client_secret, client_secret_file or client_secret_env for a confidential client)"

// clientRefusedCause names the likely cause of an IdP's invalid_client or
// unauthorized_client answer to this tenant, for the operator's log.
func clientRefusedCause(t *tenantConfig, code string) string {
	switch {
	case code == "unauthorized_client":
		return "the IdP does not allow this client_id this grant: enable the grant (authorization code, refresh token, password) for the client at the IdP"
	case t.secret == "":
		return "the tenant has no client secret, so it signs in as a public client, and the IdP wants a secret for this client_id: set client_secret, client_secret_file or client_secret_env, or make the client public at the IdP"
	default:
		return "the IdP refused this client_id with its secret: check that the client_id exists at the IdP and that the secret is its current one (mistyped, rotated or expired)"
	}
}
