package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// entraIDP is a fake IdP that answers like Entra ID's multi-tenant
// discovery: its issuer is a {tenantid} template, literally.
type entraIDP struct {
	*fakeIDP
	template string
}

func newEntraIDP(t testing.TB) *entraIDP {
	f := newFakeIDP(t)
	e := &entraIDP{fakeIDP: f, template: f.issuer + "/{tenantid}/v2.0"}
	f.set(func(f *fakeIDP) { f.discIssuer = e.template })
	return e
}

// tenant is a multi-tenant app registration at e admitting the tenant ids
// given, with Entra v1 tokens accepted as well.
func (e *entraIDP) tenant(allowed ...string) tenantConfig {
	tc := e.tenantConfig()
	tc.ID = "entra"
	tc.Issuer = e.template
	tc.DiscoveryURL = e.issuer + "/.well-known/openid-configuration"
	tc.AllowedIssuerTenants = allowed
	tc.Audiences = []string{testClientID, "api://scaiwave"}
	tc.AccessTokens.AcceptedIssuers = []string{entraV1}
	return tc
}

// v2 is an Entra v2.0 access token of tenant tid for the app, as Entra
// writes it for an API whose token version is 2 (aud the app id, azp the
// calling app, which is the app itself here).
func (e *entraIDP) v2(tid string, mods ...map[string]any) string {
	c := idpClaims(e.fakeIDP, map[string]any{
		"iss": fillTenant(e.template, tid), "aud": testClientID, "azp": testClientID, "azpacr": "1",
		"tid": tid, "oid": "00000000-0000-0000-0000-0000000000a1", "ver": "2.0", "scp": "access_as_user",
		"name": "Entra User", "preferred_username": "entra.user@contoso.example", "nbf": time.Now().Unix(), "uti": "u", "rh": "r",
	})
	return signWith(e.t, e.key(), withMods(c, mods...), map[jose.HeaderKey]any{"x5t": e.key().kid})
}

// v1 is an Entra v1.0 access token (the default token version of an API):
// iss https://sts.windows.net/{tid}/, aud the App ID URI, appid, no azp.
func (e *entraIDP) v1(tid string, mods ...map[string]any) string {
	c := idpClaims(e.fakeIDP, map[string]any{
		"iss": fillTenant(entraV1, tid), "aud": "api://scaiwave", "appid": testClientID, "appidacr": "1",
		"tid": tid, "oid": "00000000-0000-0000-0000-0000000000a1", "ver": "1.0", "scp": "access_as_user",
		"name": "Entra User", "unique_name": "entra.user@contoso.example", "upn": "entra.user@contoso.example",
	})
	return signWith(e.t, e.key(), withMods(c, mods...), map[jose.HeaderKey]any{"x5t": e.key().kid})
}

func TestEntraMultiTenantAccessTokens(t *testing.T) {
	t.Parallel()
	e := newEntraIDP(t)
	a := newTestApp(t, []tenantConfig{e.tenant(tenantA)})
	every := newTestApp(t, []tenantConfig{e.tenant("*")})
	upperA := strings.ToUpper(tenantA)
	tests := []struct {
		name       string
		app        *testApp
		token      string
		wantStatus int
		wantReason string
	}{
		{"v2, allowed tenant", a, e.v2(tenantA), 200, ""},
		{"v1 (sts.windows.net), allowed tenant", a, e.v1(tenantA), 200, ""},
		{"v2, tenant not allowed", a, e.v2(tenantB), 401, reasonTenant},
		{"v1, tenant not allowed", a, e.v1(tenantB), 401, reasonTenant},
		{"v2, any tenant under *", every, e.v2(tenantB), 200, ""},
		{"v1, any tenant under *", every, e.v1(tenantB), 200, ""},
		{"v2, tid ../evil and iss to match", every, e.v2("../evil"), 401, reasonIssuer},
		{"v2, tid of an allowed tenant with a path after it", a, e.v2(tenantA + "/v2.0/x"), 401, reasonIssuer},
		{"v1, tid with a host in it", every, e.v1("evil.example/" + tenantA), 401, reasonIssuer},
		{"v2, tid in upper case", every, e.v2(upperA), 401, reasonIssuer},
		{"v2, tid in braces", every, e.v2("{" + tenantA + "}"), 401, reasonIssuer},
		{"v2, tid common", every, e.v2("common"), 401, reasonIssuer},
		{"v2, tid missing", a, e.v2(tenantA, map[string]any{"tid": nil}), 401, reasonIssuer},
		{"v2, tid a number", a, e.v2(tenantA, map[string]any{"tid": 7}), 401, reasonIssuer},
		{"v2, iss of another tenant than tid", every, e.v2(tenantA, map[string]any{"iss": fillTenant(e.template, tenantB)}), 401, reasonIssuer},
		{"v2, iss the template itself", a, e.v2(tenantA, map[string]any{"iss": e.template}), 401, reasonIssuer},
		{"v2, iss the organizations alias", a, e.v2(tenantA, map[string]any{"iss": e.issuer + "/organizations/v2.0"}), 401, reasonIssuer},
		{"v1, iss without its trailing slash", a, e.v1(tenantA, map[string]any{"iss": "https://sts.windows.net/" + tenantA}), 401, reasonIssuer},
		{"v1 issuer, tid of another tenant", every, e.v1(tenantA, map[string]any{"tid": tenantB}), 401, reasonIssuer},
		{"v2, aud another app, azp another app", a, e.v2(tenantA, map[string]any{"aud": "other-app", "azp": "other-app"}), 401, reasonAudience},
	}
	for _, tc := range tests {
		checkAccess(t, tc.app, tc.name, tc.token, tc.wantStatus, tc.wantReason)
	}
}

func TestEntraMultiTenantIDTokens(t *testing.T) {
	t.Parallel()
	e := newEntraIDP(t)
	a := newTestApp(t, []tenantConfig{e.tenant(tenantA)})
	p := a.srv.tenants[0].prov
	id := func(tid, iss string) string {
		return signWith(t, e.key(), e.idClaims("n-1", map[string]any{"iss": iss, "tid": tid}), nil)
	}
	for _, tc := range []struct {
		name, token, wantReason string
	}{
		{"v2 issuer, allowed tenant", id(tenantA, fillTenant(e.template, tenantA)), ""},
		{"v2 issuer, tenant not allowed", id(tenantB, fillTenant(e.template, tenantB)), reasonTenant},
		// accepted_issuers are for access tokens only.
		{"v1 issuer, allowed tenant", id(tenantA, fillTenant(entraV1, tenantA)), reasonIssuer},
		{"tid not a tenant id", id("../x", fillTenant(e.template, "../x")), reasonIssuer},
	} {
		_, err := p.verify(context.Background(), tc.token, kindIDToken, "n-1")
		checkReason(t, "Entra ID token, "+tc.name, err, tc.wantReason)
	}
}

// TestEntraParticipants stores a participant under the tenant's own issuer:
// one person's v1 and v2 tokens are one participant, and the same sub in
// two Entra tenants is two.
func TestEntraParticipants(t *testing.T) {
	t.Parallel()
	e := newEntraIDP(t)
	a := newTestApp(t, []tenantConfig{e.tenant("*")})
	ids := map[string]string{}
	for _, tc := range []struct{ name, token string }{
		{"v2 A", e.v2(tenantA)}, {"v1 A", e.v1(tenantA)}, {"v2 B", e.v2(tenantB)},
	} {
		w := a.register(tc.token)
		d := decode(t, w).Data
		if w.Code != 200 || d["display_name"] != "Entra User" {
			t.Fatalf("POST /v1/auth/register (%s) = %d %s; want 200 for Entra User", tc.name, w.Code, w.Body)
		}
		ids[tc.name] = d["participant_id"].(string)
	}
	if ids["v1 A"] != ids["v2 A"] || ids["v2 B"] == ids["v2 A"] {
		t.Errorf("participants v2 A %s, v1 A %s, v2 B %s; want A's two the same and B's another", ids["v2 A"], ids["v1 A"], ids["v2 B"])
	}
	for name, want := range map[string]string{"v2 A": fillTenant(e.template, tenantA), "v2 B": fillTenant(e.template, tenantB)} {
		part, err := a.store.participantByID(context.Background(), ids[name])
		if err != nil || part.Issuer != want {
			t.Errorf("participant of %s: issuer %q (%v); want %q", name, part.Issuer, err, want)
		}
	}
}

// TestEntraSingleTenantV1Issuer accepts the tenant's v1 issuer for access
// tokens beside its v2 one, under one participant, and still takes keys only
// from the tenant's own JWKS.
func TestEntraSingleTenantV1Issuer(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	var evilHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilHits.Add(1)
		http.NotFound(w, r)
	}))
	defer evil.Close()
	issuer := f.issuer + "/" + tenantA + "/v2.0"
	v1 := "https://sts.windows.net/" + tenantA + "/"
	f.set(func(f *fakeIDP) { f.discIssuer = issuer })
	tc := f.tenantConfig()
	tc.Issuer = issuer
	tc.DiscoveryURL = f.issuer + "/.well-known/openid-configuration"
	tc.Audiences = []string{testClientID, "api://scaiwave"}
	tc.AccessTokens.AcceptedIssuers = []string{v1, evil.URL}
	a := newTestApp(t, []tenantConfig{tc})
	tok := func(iss, aud string) string {
		return f.accessToken(map[string]any{"iss": iss, "aud": aud, "azp": nil, "tid": tenantA})
	}
	rogue := testKey{kid: "evil-1", alg: jose.RS256, priv: testRSAKey(2)}
	for _, c := range []struct {
		name       string
		token      string
		wantStatus int
		wantReason string
	}{
		{"v2 issuer", tok(issuer, testClientID), 200, ""},
		{"v1 issuer", tok(v1, "api://scaiwave"), 200, ""},
		{"v1 issuer of another tenant", tok("https://sts.windows.net/"+tenantB+"/", "api://scaiwave"), 401, reasonIssuer},
		{"v1 issuer in another case", tok(strings.ToUpper(v1), "api://scaiwave"), 401, reasonIssuer},
		{"accepted issuer, signed by its own key", signWith(t, rogue, f.accessClaims(map[string]any{"iss": evil.URL}), map[jose.HeaderKey]any{"jku": evil.URL + "/keys"}), 401, reasonUnknownKey},
	} {
		checkAccess(t, a, c.name, c.token, c.wantStatus, c.wantReason)
	}
	if n := evilHits.Load(); n != 0 {
		t.Errorf("the accepted issuer's own server got %d requests; want 0 (keys come only from the tenant's jwks_uri)", n)
	}
	w1, w2 := a.register(tok(issuer, testClientID)), a.register(tok(v1, "api://scaiwave"))
	if p1, p2 := decode(t, w1).Data["participant_id"], decode(t, w2).Data["participant_id"]; p1 == nil || p1 != p2 {
		t.Errorf("participants for the v2 and v1 token of one person: %v and %v; want one", p1, p2)
	}
	_, err := a.srv.tenants[0].prov.verify(context.Background(), f.idToken("", map[string]any{"iss": v1}), kindIDToken, "")
	checkReason(t, "ID token with the v1 issuer", err, reasonIssuer)
}

// TestEntraDiscoveryIssuer wants the template back from discovery literally:
// a document naming one tenant's issuer does not make the tenant ready.
func TestEntraDiscoveryIssuer(t *testing.T) {
	t.Parallel()
	e := newEntraIDP(t)
	e.set(func(f *fakeIDP) { f.discIssuer = fillTenant(e.template, tenantA) })
	a := newTestApp(t, []tenantConfig{e.tenant(tenantA)}, true)
	if _, err := a.srv.tenants[0].prov.fetchDiscovery(context.Background()); err == nil || !strings.Contains(err.Error(), "issuer mismatch") {
		t.Errorf("discovery answering %s for the template %s: %v; want an issuer mismatch", fillTenant(e.template, tenantA), e.template, err)
	}
	if w := a.do("GET", "/readyz", ""); w.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz = %d; want 503 while discovery names another issuer", w.Code)
	}
}

// TestEntraEveryTenantWarns starts the program with allowed_issuer_tenants
// ["*"], which must say at start that every Entra tenant gets in, and with
// one tenant id, which must not.
func TestEntraEveryTenantWarns(t *testing.T) {
	t.Parallel()
	e := newEntraIDP(t)
	for _, tc := range []struct {
		allowed  []string
		wantWarn bool
	}{{[]string{"*"}, true}, {[]string{tenantA}, false}} {
		dir := t.TempDir()
		tenant := fakeTenantJSON(e.fakeIDP, "entra")
		tenant["issuer"] = e.template
		tenant["discovery_url"] = e.issuer + "/.well-known/openid-configuration"
		tenant["allowed_issuer_tenants"] = tc.allowed
		path := writeConfigFile(t, dir, map[string]any{"tenants": []any{tenant}})
		addr := freeAddr(t)
		r := startRun(t, []string{"-config", path, "-addr", addr, "-db", filepath.Join(dir, "t.db")}, nil)
		waitStatus(t, r, newTestClient(t), "http://"+addr+"/readyz", 200, 10*time.Second)
		warned := false
		for _, l := range r.stderr.logLines() {
			if l["level"] == "WARN" && l["tenant"] == "entra" && strings.Contains(l["msg"].(string), `allowed_issuer_tenants is ["*"]`) {
				warned = true
			}
		}
		if warned != tc.wantWarn {
			t.Errorf("allowed_issuer_tenants %q: warning at start %v; want %v; log:\n%s", tc.allowed, warned, tc.wantWarn, r.stderr)
		}
		if err := r.stop(t, 10*time.Second); err != nil {
			t.Errorf("run (allowed_issuer_tenants %q) = %v; want a clean exit", tc.allowed, err)
		}
	}
}
