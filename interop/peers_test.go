package interop

import (
	"net/url"
	"testing"
)

// The resource indicator (RFC 8707) for which node oidc-provider issues
// JWT access tokens (RFC 9068), and the audience those tokens carry; the
// node-jwt row's tenant lists it in `audiences`.
const (
	nodeAPIResource = "urn:scaiwave:interop-api"
	nodeAPIAudience = "urn:scaiwave:interop-api"
)

// peer is one row of the scenario table: a real provider, set up one way,
// with the client registered there for the service. The secrets are test
// values, made for this harness only.
type peer struct {
	name     string // the row's name (a subtest name)
	provider string // what runs, with its version, for the table

	start func(t *testing.T, p *peer, svcBase, redirectURI string) *idp

	tenantID, clientID, clientSecret string
	username, password               string
	wantName, wantEmail              string // what /register must say
	scopes, audiences                []string
	authParams                       url.Values // extra authorization request parameters

	rotates            bool   // the provider returns a new refresh token on refresh
	passwordGrant      bool   // the provider has a password grant for this client
	serviceIntrospects bool   // the tenant names idp.introspection (Hydra's admin endpoint)
	hydraStrategy      string // Hydra's strategies.access_token
	chromium           bool   // browser_chromium runs for this row

	// logout signs the session out at the provider (RP-initiated logout in
	// the browser that signed in), which makes it send a back-channel
	// logout token; nil when the provider sends none.
	logout func(t *testing.T, e *env, s *session)

	// skip names the steps this provider cannot do, with the reason.
	skip map[string]string
}

// Skip reasons shared by several rows.
const (
	noPasswordGrant   = "the provider has no password grant"
	noBackchannel     = "the provider sends no back-channel logout token"
	jwtNotRevocable   = "the access token is a JWT, verified locally: revocation at the provider cannot reach it (logout_ends_session covers it)"
	noRevocationEndp  = "the provider has no revocation endpoint"
	chromiumElsewhere = "Chromium drives the sign-in pages of node and lemonldap-opaque only, to keep CI short; the HTTP browser of code_flow_pkce signs in here"
)

// peers is the table of providers. interop/README.md shows the same table;
// TestInterop prints the results in that shape.
var peers = []*peer{
	{
		name:     "zitadel",
		provider: "zitadel/oidc v3.52.0 example OP",
		start:    startZitadel,
		tenantID: "zitadel", clientID: "scaiwave-zitadel", clientSecret: "zitadel-interop-client-secret",
		username: "alice", password: "alice-interop-password",
		wantName: "Alice Interop", wantEmail: "alice@interop.example",
		scopes:  []string{"openid", "profile", "email", "offline_access"},
		rotates: true,
		skip: map[string]string{
			"browser_chromium":       chromiumElsewhere,
			"password_grant":         noPasswordGrant,
			"backchannel_logout":     noBackchannel,
			"logout_token_as_bearer": noBackchannel,
		},
	},
	{
		name:     "node",
		provider: "node oidc-provider 9.13.3, opaque access token (its default)",
		start:    startNodeOP,
		tenantID: "node", clientID: "scaiwave-node", clientSecret: "node-interop-client-secret",
		username: "alice", password: "alice-interop-password", // devInteractions accepts any
		wantName: "Alice Interop", wantEmail: "alice@interop.example",
		scopes:     []string{"openid", "profile", "email", "offline_access"},
		authParams: url.Values{"prompt": {"consent"}},
		rotates:    true,
		logout:     rpLogout,
		chromium:   true,
		skip: map[string]string{
			"password_grant": noPasswordGrant,
		},
	},
	{
		name:     "node-jwt",
		provider: "node oidc-provider 9.13.3, RFC 9068 JWT access token (resource indicator)",
		start:    startNodeOP,
		tenantID: "node", clientID: "scaiwave-node", clientSecret: "node-interop-client-secret",
		username: "alice", password: "alice-interop-password",
		wantName: "Alice Interop", wantEmail: "alice@interop.example",
		scopes:     []string{"openid", "profile", "email", "offline_access", "api:read"},
		audiences:  []string{"scaiwave-node", nodeAPIAudience},
		authParams: url.Values{"prompt": {"consent"}, "resource": {nodeAPIResource}},
		rotates:    true,
		logout:     rpLogout,
		skip: map[string]string{
			"browser_chromium": chromiumElsewhere,
			"password_grant":   noPasswordGrant,
			"revoke_at_idp":    jwtNotRevocable,
		},
	},
	{
		name:     "hydra-opaque",
		provider: "Ory Hydra " + hydraVersion + ", strategies.access_token opaque (its default)",
		start:    startHydra,
		tenantID: "hydra", clientID: "scaiwave", clientSecret: "hydra-interop-client-secret",
		username: "alice", password: "alice-interop-password",
		wantName: "Alice Interop", wantEmail: "alice@interop.example",
		scopes:             []string{"openid", "profile", "email", "offline_access"},
		rotates:            true,
		serviceIntrospects: true,
		hydraStrategy:      "opaque",
		logout:             rpLogout,
		skip: map[string]string{
			"browser_chromium": chromiumElsewhere,
			"password_grant":   noPasswordGrant,
		},
	},
	{
		name:     "hydra-jwt",
		provider: "Ory Hydra " + hydraVersion + ", strategies.access_token jwt",
		start:    startHydra,
		tenantID: "hydra", clientID: "scaiwave", clientSecret: "hydra-interop-client-secret",
		username: "alice", password: "alice-interop-password",
		wantName: "Alice Interop", wantEmail: "alice@interop.example",
		scopes:             []string{"openid", "profile", "email", "offline_access"},
		rotates:            true,
		serviceIntrospects: true,
		hydraStrategy:      "jwt",
		logout:             rpLogout,
		skip: map[string]string{
			"browser_chromium": chromiumElsewhere,
			"password_grant":   noPasswordGrant,
			"revoke_at_idp":    jwtNotRevocable,
		},
	},
	{
		name:     "lemonldap-opaque",
		provider: "LemonLDAP::NG 2.16.1 (Debian), opaque access token (its default)",
		start:    startLemonLDAP,
		tenantID: "lemonldap", clientID: "scaiwave", clientSecret: "lemonldap-interop-client-secret",
		username: "dwho", password: "dwho",
		wantName: "Doctor Who", wantEmail: "dwho@badwolf.org",
		scopes:        []string{"openid", "profile", "email", "offline_access"},
		rotates:       false,
		passwordGrant: true,
		chromium:      true,
		skip: map[string]string{
			"revoke_at_idp":          noRevocationEndp,
			"backchannel_logout":     llngNoBackchannel,
			"logout_token_as_bearer": llngNoBackchannel,
		},
	},
	{
		name:     "lemonldap-jwt",
		provider: "LemonLDAP::NG 2.16.1 (Debian), relying party option AccessTokenJWT",
		start:    startLemonLDAP,
		tenantID: "lemonldap", clientID: "scaiwave-jwt", clientSecret: "lemonldap-interop-client-secret",
		username: "dwho", password: "dwho",
		wantName: "Doctor Who", wantEmail: "dwho@badwolf.org",
		scopes:        []string{"openid", "profile", "email", "offline_access"},
		rotates:       false,
		passwordGrant: true,
		skip: map[string]string{
			"browser_chromium":       chromiumElsewhere,
			"revoke_at_idp":          noRevocationEndp,
			"backchannel_logout":     llngNoBackchannel,
			"logout_token_as_bearer": llngNoBackchannel,
		},
	},
}

// llngNoBackchannel: LemonLDAP::NG 2.16.1's discovery says
// backchannel_logout_supported false, and it sent no logout token when the
// user signed out at the portal (shared/idp-tokens).
const llngNoBackchannel = "LemonLDAP::NG 2.16.1 says backchannel_logout_supported: false and sends no logout token"

// peerNamed is the row of the table with that name, for the tests outside
// the scenario (DPoP) that run against one provider set up as a row is.
func peerNamed(t *testing.T, name string) *peer {
	t.Helper()
	for _, p := range peers {
		if p.name == name {
			return p
		}
	}
	t.Fatalf("no row %q in peers", name)
	return nil
}
