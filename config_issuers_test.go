package main

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// An Entra multi-tenant app's issuer, discovery document and v1 issuer,
// and two Entra tenant ids: GUIDs, as Entra's tid claim writes them.
const (
	entraTemplate  = "https://login.microsoftonline.com/{tenantid}/v2.0"
	entraDiscovery = "https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration"
	entraV1        = "https://sts.windows.net/{tenantid}/"
	tenantA        = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	tenantB        = "9188040d-6c67-4c5b-b112-36a304b66dad"
)

// entraCfgTenant is a valid multi-tenant Entra ID tenant as a JSON object;
// kv changes or deletes keys.
func entraCfgTenant(kv ...any) map[string]any {
	return cfgTenant("entra", append([]any{
		"issuer", entraTemplate,
		"discovery_url", entraDiscovery,
		"allowed_issuer_tenants", []string{tenantA},
	}, kv...)...)
}

// accessTokens is an access_tokens block of key, value pairs.
func accessTokens(kv ...any) map[string]any { return setKeys(map[string]any{}, kv) }

// TestParseConfigIssuerRulesErrors refuses each misuse of the issuer
// template, allowed_issuer_tenants, discovery_url and access_tokens with one
// line naming the field and exit status 2.
func TestParseConfigIssuerRulesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tenant  map[string]any
		wantErr string
	}{
		// The template.
		{"template without allowed_issuer_tenants", entraCfgTenant("allowed_issuer_tenants", nil), "tenants[0].allowed_issuer_tenants: required with a {tenantid} issuer"},
		{"template with empty allowed_issuer_tenants", entraCfgTenant("allowed_issuer_tenants", []string{}), "tenants[0].allowed_issuer_tenants: required with a {tenantid} issuer"},
		{"template without discovery_url", entraCfgTenant("discovery_url", nil), "tenants[0].discovery_url: required with a {tenantid} issuer"},
		{"placeholder twice", entraCfgTenant("issuer", "https://login.microsoftonline.com/{tenantid}/{tenantid}/v2.0"), "tenants[0].issuer: {tenantid} may appear only once"},
		{"placeholder in the host", entraCfgTenant("issuer", "https://{tenantid}.login.example.com/v2.0"), "tenants[0].issuer: {tenantid} may only stand for a whole path segment"},
		{"placeholder as the host", entraCfgTenant("issuer", "https://{tenantid}/v2.0"), "tenants[0].issuer: {tenantid} may only stand for a whole path segment"},
		{"placeholder in the user info", entraCfgTenant("issuer", "https://{tenantid}@login.example.com/v2.0"), "tenants[0].issuer: {tenantid} may only stand for a whole path segment"},
		{"placeholder part of a segment", entraCfgTenant("issuer", "https://login.microsoftonline.com/t-{tenantid}/v2.0"), "tenants[0].issuer: {tenantid} may only stand for a whole path segment"},
		{"placeholder followed by more of a segment", entraCfgTenant("issuer", "https://login.microsoftonline.com/{tenantid}.v2"), "tenants[0].issuer: {tenantid} may only stand for a whole path segment"},
		{"placeholder in another case", entraCfgTenant("issuer", "https://login.microsoftonline.com/{tenantId}/v2.0"), "tenants[0].issuer: \"https://login.microsoftonline.com/{tenantId}/v2.0\": the placeholder is written {tenantid}, in lower case"},
		{"another placeholder", entraCfgTenant("issuer", "https://login.microsoftonline.com/{tid}/v2.0"), "tenants[0].issuer: \"https://login.microsoftonline.com/{tid}/v2.0\": the only placeholder is {tenantid}"},
		{"template on plain http", entraCfgTenant("issuer", "http://login.example.com/{tenantid}/v2.0"), "tenants[0].issuer: with a tenant id put in: must be https unless the host is loopback"},
		{"template with a query", entraCfgTenant("issuer", "https://login.example.com/{tenantid}/v2.0?x=1"), "tenants[0].issuer: with a tenant id put in: must not have a query"},

		// allowed_issuer_tenants.
		{"allowed_issuer_tenants without a template", cfgTenant("acme", "allowed_issuer_tenants", []string{tenantA}), "tenants[0].allowed_issuer_tenants: only for an issuer that holds {tenantid}"},
		{"a tenant that is not a GUID", entraCfgTenant("allowed_issuer_tenants", []string{tenantA, "contoso.onmicrosoft.com"}), `tenants[0].allowed_issuer_tenants[1]: "contoso.onmicrosoft.com" is not an Entra tenant id`},
		{"a GUID in braces", entraCfgTenant("allowed_issuer_tenants", []string{"{" + tenantA + "}"}), "tenants[0].allowed_issuer_tenants[0]:"},
		{"a path", entraCfgTenant("allowed_issuer_tenants", []string{"../evil"}), `tenants[0].allowed_issuer_tenants[0]: "../evil" is not an Entra tenant id`},
		{"an empty entry", entraCfgTenant("allowed_issuer_tenants", []string{""}), `tenants[0].allowed_issuer_tenants[0]: "" is not an Entra tenant id`},
		{"the common alias", entraCfgTenant("allowed_issuer_tenants", []string{"common"}), "tenants[0].allowed_issuer_tenants[0]:"},
		{"* beside a tenant", entraCfgTenant("allowed_issuer_tenants", []string{tenantA, "*"}), `tenants[0].allowed_issuer_tenants[1]: "*" admits every tenant, so it must be the only entry`},
		{"allowed_issuer_tenants a string", entraCfgTenant("allowed_issuer_tenants", "*"), "tenants[0].allowed_issuer_tenants: must be a list, not string"},

		// discovery_url.
		{"discovery_url a template", entraCfgTenant("discovery_url", "https://login.microsoftonline.com/{tenantid}/v2.0/.well-known/openid-configuration"), "tenants[0].discovery_url: must be the URL of one document, not a template"},
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
		{"accepted issuer template without a template issuer", cfgTenant("acme", "access_tokens", accessTokens("accepted_issuers", []string{entraV1})),
			"tenants[0].access_tokens.accepted_issuers[0]: {tenantid} only with an issuer that holds it too"},
		{"accepted issuer template in the host", entraCfgTenant("access_tokens", accessTokens("accepted_issuers", []string{"https://{tenantid}.sts.example.com/"})),
			"tenants[0].access_tokens.accepted_issuers[0]: {tenantid} may only stand for a whole path segment"},
		{"accepted issuer template twice", entraCfgTenant("access_tokens", accessTokens("accepted_issuers", []string{"https://sts.windows.net/{tenantid}/{tenantid}/"})),
			"tenants[0].access_tokens.accepted_issuers[0]: {tenantid} may appear only once"},
		{"accepted_issuers a string", cfgTenant("acme", "access_tokens", accessTokens("accepted_issuers", "https://sts.example.com/")),
			"tenants[0].access_tokens.accepted_issuers: must be a list, not string"},
		{"require_jwt_type a string", cfgTenant("acme", "access_tokens", accessTokens("require_jwt_type", "yes")),
			"tenants[0].access_tokens.require_jwt_type: must be true or false, not string"},
		{"access_tokens a list", cfgTenant("acme", "access_tokens", []string{}), "tenants[0].access_tokens: must be an object, not array"},
		{"unknown access_tokens field, misspelt typ", cfgTenant("acme", "access_tokens", accessTokens("require_jwt_typ", true)),
			`tenants[0].access_tokens: unknown field "require_jwt_typ" (did you mean "require_jwt_type"?)`},
		{"unknown access_tokens field", cfgTenant("acme", "access_tokens", accessTokens("accepted_issuer", []string{"https://sts.example.com/"})),
			`tenants[0].access_tokens: unknown field "accepted_issuer" (did you mean "accepted_issuers"?)`},
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
// show, keeps issuers exactly as written, and lower-cases tenant ids.
func TestParseConfigIssuerRules(t *testing.T) {
	t.Parallel()
	upperA := strings.ToUpper(tenantA)
	for _, tc := range []struct {
		name            string
		tenant          map[string]any
		wantDiscovery   string
		wantTenants     []string
		wantAccepted    []string
		wantRequireType bool
	}{
		{"Entra multi-tenant, v1 and v2 tokens", entraCfgTenant("allowed_issuer_tenants", []string{upperA, tenantB},
			"access_tokens", accessTokens("accepted_issuers", []string{entraV1})),
			entraDiscovery, []string{tenantA, tenantB}, []string{entraV1}, false},
		{"Entra multi-tenant, every tenant", entraCfgTenant("allowed_issuer_tenants", []string{"*"}),
			entraDiscovery, []string{"*"}, nil, false},
		{"Entra single-tenant with its v1 issuer", cfgTenant("acme", "issuer", "https://login.microsoftonline.com/"+tenantA+"/v2.0",
			"access_tokens", accessTokens("accepted_issuers", []string{"https://sts.windows.net/" + tenantA + "/"}, "require_jwt_type", false)),
			"https://login.microsoftonline.com/" + tenantA + "/v2.0/.well-known/openid-configuration", nil, []string{"https://sts.windows.net/" + tenantA + "/"}, false},
		{"a template accepted issuer left literal in a template tenant", entraCfgTenant("access_tokens", accessTokens("accepted_issuers", []string{"https://sts.windows.net/" + tenantA + "/"})),
			entraDiscovery, []string{tenantA}, []string{"https://sts.windows.net/" + tenantA + "/"}, false},
		{"discovery_url with a query, no template", cfgTenant("acme", "issuer", "https://login.microsoftonline.com/"+tenantA+"/v2.0",
			"discovery_url", "https://login.microsoftonline.com/"+tenantA+"/v2.0/.well-known/openid-configuration?appid=scaiwave"),
			"https://login.microsoftonline.com/" + tenantA + "/v2.0/.well-known/openid-configuration?appid=scaiwave", nil, nil, false},
		{"loopback issuer and discovery_url", cfgTenant("acme", "issuer", "http://127.0.0.1:5556/dex", "discovery_url", "http://localhost:5556/dex/.well-known/openid-configuration"),
			"http://localhost:5556/dex/.well-known/openid-configuration", nil, nil, false},
		{"Auth0 custom domain beside the tenant domain, RFC 9068 typ required", cfgTenant("acme", "issuer", "https://login.example.com/",
			"access_tokens", accessTokens("accepted_issuers", []string{"https://acme.eu.auth0.com/"}, "require_jwt_type", true)),
			"https://login.example.com/.well-known/openid-configuration", nil, []string{"https://acme.eu.auth0.com/"}, true},
		{"the default discovery URL", cfgTenant("acme"), "https://idp.example.com/realms/acme/.well-known/openid-configuration", nil, nil, false},
		{"the default discovery URL, issuer with a trailing slash", cfgTenant("acme", "issuer", "https://idp.example.com/app/"), "https://idp.example.com/app/.well-known/openid-configuration", nil, nil, false},
		{"RFC 9068 typ required", cfgTenant("acme", "access_tokens", accessTokens("require_jwt_type", true)),
			"https://idp.example.com/realms/acme/.well-known/openid-configuration", nil, nil, true},
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
		if !slices.Equal(tn.AllowedIssuerTenants, tc.wantTenants) || !slices.Equal(tn.AccessTokens.AcceptedIssuers, tc.wantAccepted) ||
			tn.AccessTokens.RequireJWTType != tc.wantRequireType {
			t.Errorf("%s: allowed tenants %q, accepted issuers %q, require_jwt_type %v; want %q, %q, %v", tc.name,
				tn.AllowedIssuerTenants, tn.AccessTokens.AcceptedIssuers, tn.AccessTokens.RequireJWTType, tc.wantTenants, tc.wantAccepted, tc.wantRequireType)
		}
	}
}

// TestRunRefusesTemplateWithoutTenants starts the program with a template
// issuer and no allow-list: it must not serve, and exit 2 with one line.
func TestRunRefusesTemplateWithoutTenants(t *testing.T) {
	t.Parallel()
	path := writeConfigFile(t, t.TempDir(), map[string]any{"tenants": []any{entraCfgTenant("allowed_issuer_tenants", nil)}})
	err := run(context.Background(), []string{"scaiwave-auth", "-config", path, "-addr", "127.0.0.1:0"}, noEnv, io.Discard, io.Discard)
	want := "config " + path + ": tenants[0].allowed_issuer_tenants: required with a {tenantid} issuer"
	if err == nil || exitCode(err) != 2 || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Errorf("run (template issuer, no allowed_issuer_tenants) = %v (exit status %d); want exit status 2 and one line starting %q", err, exitCode(err), want)
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
