package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// Entra tenant ids are GUIDs, as Entra's tid claim writes them.
const (
	tenantA = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	tenantB = "9188040d-6c67-4c5b-b112-36a304b66dad"
)

// accessTokens is an access_tokens block of key, value pairs.
func accessTokens(kv ...any) map[string]any { return setKeys(map[string]any{}, kv) }

// TestParseConfigIssuerRulesErrors refuses each misuse of the issuer rules'
// fields with one line naming the field and exit status 2.
func TestParseConfigIssuerRulesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tenant  map[string]any
		wantErr string
	}{
		{"discovery_url relative", cfgTenant("acme", "discovery_url", "/.well-known/openid-configuration"), "tenants[0].discovery_url: \"/.well-known/openid-configuration\" is not an absolute URL"},
		{"discovery_url on http", cfgTenant("acme", "discovery_url", "http://idp.example.com/.well-known/openid-configuration"), "tenants[0].discovery_url: must use the issuer's scheme, https"},
		{"discovery_url on https for a loopback http issuer", cfgTenant("acme", "issuer", "http://127.0.0.1:5556/dex", "discovery_url", "https://127.0.0.1:5556/dex/.well-known/openid-configuration"),
			"tenants[0].discovery_url: must use the issuer's scheme, http"},
		{"discovery_url on http off loopback for a loopback issuer", cfgTenant("acme", "issuer", "http://127.0.0.1:5556/dex", "discovery_url", "http://idp.example.com/.well-known/openid-configuration"),
			"tenants[0].discovery_url: must be https unless the host is loopback"},
		{"discovery_url with a fragment", cfgTenant("acme", "discovery_url", "https://idp.example.com/.well-known/openid-configuration#x"), "tenants[0].discovery_url: must not have a fragment or user info"},
		{"discovery_url with user info", cfgTenant("acme", "discovery_url", "https://u:p@idp.example.com/.well-known/openid-configuration"), "tenants[0].discovery_url: must not have a fragment or user info"},
		{"discovery_url ftp", cfgTenant("acme", "discovery_url", "ftp://idp.example.com/x"), "tenants[0].discovery_url: must use the issuer's scheme, https"},

		// access_tokens.
		{"accepted issuer empty", cfgTenant("acme", "access_tokens", accessTokens("accepted_issuers", []string{""})), "tenants[0].access_tokens.accepted_issuers[0]: required"},
		{"accepted issuer on http", cfgTenant("acme", "access_tokens", accessTokens("accepted_issuers", []string{"https://ok.example.com", "http://sts.example.com/"})),
			"tenants[0].access_tokens.accepted_issuers[1]: must be https unless the host is loopback"},
		{"accepted issuer with a query", cfgTenant("acme", "access_tokens", accessTokens("accepted_issuers", []string{"https://sts.example.com/?x"})),
			"tenants[0].access_tokens.accepted_issuers[0]: must not have a query"},
		{"accepted issuer not a URL", cfgTenant("acme", "access_tokens", accessTokens("accepted_issuers", []string{"sts.windows.net"})),
			`tenants[0].access_tokens.accepted_issuers[0]: "sts.windows.net" is not an absolute URL`},
		{"accepted_issuers a string", cfgTenant("acme", "access_tokens", accessTokens("accepted_issuers", "https://sts.example.com/")),
			"tenants[0].access_tokens.accepted_issuers: must be a list, not string"},
		{"require_jwt_type a string", cfgTenant("acme", "access_tokens", accessTokens("require_jwt_type", "yes")),
			"tenants[0].access_tokens.require_jwt_type: must be true or false, not string"},
		{"access_tokens a list", cfgTenant("acme", "access_tokens", []string{}), "tenants[0].access_tokens: must be an object, not array"},
		{"unknown access_tokens field", cfgTenant("acme", "access_tokens", accessTokens("require_jwt_typ", true)),
			`tenants[0]: unknown field "require_jwt_typ"`},
	}
	for _, tc := range tests {
		_, err := parseConfig([]byte(cfgJSON(tenants(tc.tenant))), noEnv)
		if err == nil {
			t.Errorf("parseConfig (%s) succeeded; want error %q", tc.name, tc.wantErr)
			continue
		}
		msg := err.Error()
		var ce *configError
		if !errors.As(err, &ce) || exitCode(err) != 2 {
			t.Errorf("parseConfig (%s) error %q is a %T with exit status %d; want a *configError, exit status 2", tc.name, msg, err, exitCode(err))
		}
		if !strings.HasPrefix(msg, tc.wantErr) {
			t.Errorf("parseConfig (%s) = %q; want it to start with %q", tc.name, msg, tc.wantErr)
		}
		if strings.ContainsAny(msg, "\r\n") {
			t.Errorf("parseConfig (%s) = %q; want one line", tc.name, msg)
		}
	}
}

// TestParseConfigIssuerRules accepts the settings SPEC.md and the README
// show and keeps issuers exactly as written.
func TestParseConfigIssuerRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		tenant          map[string]any
		wantDiscovery   string
		wantAccepted    []string
		wantRequireType bool
	}{
		{"Entra single-tenant with its v1 issuer", cfgTenant("acme", "issuer", "https://login.microsoftonline.com/"+tenantA+"/v2.0",
			"access_tokens", accessTokens("accepted_issuers", []string{"https://sts.windows.net/" + tenantA + "/"}, "require_jwt_type", false)),
			"https://login.microsoftonline.com/" + tenantA + "/v2.0/.well-known/openid-configuration", []string{"https://sts.windows.net/" + tenantA + "/"}, false},
		{"discovery_url with a query", cfgTenant("acme", "issuer", "https://login.microsoftonline.com/"+tenantA+"/v2.0",
			"discovery_url", "https://login.microsoftonline.com/"+tenantA+"/v2.0/.well-known/openid-configuration?appid=scaiwave"),
			"https://login.microsoftonline.com/" + tenantA + "/v2.0/.well-known/openid-configuration?appid=scaiwave", nil, false},
		{"loopback issuer and discovery_url", cfgTenant("acme", "issuer", "http://127.0.0.1:5556/dex", "discovery_url", "http://localhost:5556/dex/.well-known/openid-configuration"),
			"http://localhost:5556/dex/.well-known/openid-configuration", nil, false},
		{"Auth0 custom domain beside the tenant domain, RFC 9068 typ required", cfgTenant("acme", "issuer", "https://login.example.com/",
			"access_tokens", accessTokens("accepted_issuers", []string{"https://acme.eu.auth0.com/"}, "require_jwt_type", true)),
			"https://login.example.com/.well-known/openid-configuration", []string{"https://acme.eu.auth0.com/"}, true},
		{"the default discovery URL", cfgTenant("acme"), "https://idp.example.com/realms/acme/.well-known/openid-configuration", nil, false},
		{"the default discovery URL, issuer with a trailing slash", cfgTenant("acme", "issuer", "https://idp.example.com/app/"), "https://idp.example.com/app/.well-known/openid-configuration", nil, false},
	} {
		cfg, err := parseConfig([]byte(cfgJSON(tenants(tc.tenant))), noEnv)
		if err != nil {
			t.Errorf("parseConfig (%s) = %v; want it accepted", tc.name, err)
			continue
		}
		tn := &cfg.Tenants[0]
		if tn.Issuer != tc.tenant["issuer"] {
			t.Errorf("%s: issuer %q became %q; it must stay as written", tc.name, tc.tenant["issuer"], tn.Issuer)
		}
		if got := tn.discoveryURL(); got != tc.wantDiscovery {
			t.Errorf("%s: discovery URL %q; want %q", tc.name, got, tc.wantDiscovery)
		}
		if !slices.Equal(tn.AccessTokens.AcceptedIssuers, tc.wantAccepted) || tn.AccessTokens.RequireJWTType != tc.wantRequireType {
			t.Errorf("%s: accepted issuers %q, require_jwt_type %v; want %q, %v", tc.name,
				tn.AccessTokens.AcceptedIssuers, tn.AccessTokens.RequireJWTType, tc.wantAccepted, tc.wantRequireType)
		}
	}
}

// TestDiscoveryURLFetched fetches discovery_url, not the issuer's
// well-known path, and still wants the document to name the issuer.
func TestDiscoveryURLFetched(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	issuer := f.issuer + "/" + tenantA + "/v2.0" // its well-known path is a 404 here
	f.set(func(f *fakeIDP) { f.discIssuer = issuer })
	tc := f.tenantConfig()
	tc.Issuer = issuer
	tc.DiscoveryURL = f.issuer + "/.well-known/openid-configuration"
	a := newTestApp(t, []tenantConfig{tc})
	checkAccess(t, a, "token of the issuer discovered at discovery_url", f.accessToken(map[string]any{"iss": issuer}), 200, "")

	tc.DiscoveryURL = ""
	b := newTestApp(t, []tenantConfig{tc}, true)
	if _, err := b.srv.tenants[0].prov.fetchDiscovery(context.Background()); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Errorf("discovery without discovery_url = %v; want the issuer's own well-known URL asked (404 here)", err)
	}
	f.set(func(f *fakeIDP) { f.discIssuer = f.issuer })
	tc.DiscoveryURL = f.issuer + "/.well-known/openid-configuration"
	c := newTestApp(t, []tenantConfig{tc}, true)
	if _, err := c.srv.tenants[0].prov.fetchDiscovery(context.Background()); err == nil || !strings.Contains(err.Error(), "issuer mismatch") {
		t.Errorf("discovery_url answering another issuer = %v; want an issuer mismatch", err)
	}
}
