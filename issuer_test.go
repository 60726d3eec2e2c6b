package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

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
