package main

// Access tokens shaped as IdPs' documentation shows them, through the real
// handler: the audience rule with RFC 9068's client_id claim, and
// access_tokens.require_jwt_type. What real IdPs issued, and how their
// kinds are told apart, is idptokens_test.go's.

import (
	"context"
	"net/http"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// idpClaims are claims for testSubject issued by f now, with exactly the
// claims given besides iss, sub, iat and exp (nil deletes one of those).
func idpClaims(f *fakeIDP, kv map[string]any) map[string]any {
	now := time.Now()
	return withMods(map[string]any{
		"iss": f.issuer,
		"sub": testSubject,
		"iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
	}, kv)
}

func TestVerifyAccessTokenShapesOfIdPs(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	// Most of these tokens carry no name: userinfo is asked, and fails
	// here, so the names stay unknown and the audience rule decides.
	f.userinfoFn = func(string) (int, any) { return 503, rawBody("down") }
	const api = "https://api.scaiwave.example"
	plain := newTestApp(t, []tenantConfig{f.tenantConfig()})
	withAPI := f.tenantConfig()
	withAPI.Audiences = []string{api}
	apiApp := newTestApp(t, []tenantConfig{withAPI})
	okta := f.tenantConfig()
	okta.Audiences = []string{"api://default"}
	oktaApp := newTestApp(t, []tenantConfig{okta})

	now := time.Now().Unix()
	// Cognito: no aud and no azp; the app client is client_id. Its header
	// has kid and alg only.
	cognito := func(clientID any) map[string]any {
		return idpClaims(f, map[string]any{
			"client_id": clientID, "token_use": "access", "scope": "openid profile email aws.cognito.signin.user.admin",
			"auth_time": now, "jti": "jti-1", "username": "tuser", "version": 2, "origin_jti": "ojti-1", "event_id": "ev-1",
			"cognito:groups": []string{"staff"},
		})
	}
	// Ory Hydra's JWT strategy: aud an empty list unless the client asked
	// for one, client_id, scp a list, ext.
	hydra := func(clientID any) map[string]any {
		return idpClaims(f, map[string]any{
			"aud": []string{}, "client_id": clientID, "scp": []string{"openid", "offline"}, "ext": map[string]any{},
			"jti": "jti-2", "nbf": now,
		})
	}
	// Auth0's RFC 9068 profile: typ at+jwt, aud the API and /userinfo,
	// client_id where the Auth0 profile has azp.
	auth0 := func(clientID any, aud ...string) map[string]any {
		if aud == nil {
			aud = []string{api, f.issuer + "/userinfo"}
		}
		return idpClaims(f, map[string]any{"aud": aud, "client_id": clientID, "jti": "jti-3", "scope": "openid profile email", "name": "Auth0 User"})
	}
	at := map[jose.HeaderKey]any{"typ": "at+jwt"}
	noTyp := func(claims map[string]any) string {
		k := f.key()
		return signOpts(t, k.alg, k.priv, (&jose.SignerOptions{}).WithHeader("kid", k.kid), claims)
	}
	sign := func(claims map[string]any, hdr map[jose.HeaderKey]any) string {
		return signWith(t, f.key(), claims, hdr)
	}

	tests := []struct {
		name       string
		app        *testApp
		token      string
		wantStatus int
	}{
		{"Cognito, client_id ours", plain, noTyp(cognito(testClientID)), 200},
		{"Cognito, client_id another app client", plain, noTyp(cognito("other-app-client")), 401},
		{"Cognito, client_id ours in another case", plain, noTyp(cognito("SCAIWAVE")), 401},
		{"Cognito, client_id a number", plain, noTyp(cognito(7)), 401},
		{"Cognito, client_id missing", plain, noTyp(cognito(nil)), 401},
		{"Hydra, aud empty, client_id ours", plain, sign(hydra(testClientID), nil), 200},
		{"Hydra, aud empty, client_id another client", plain, sign(hydra("other"), nil), 401},
		{"Auth0 RFC 9068, aud the API listed in audiences", apiApp, sign(auth0("someone-else"), at), 200},
		{"Auth0 RFC 9068, audiences left at [client_id], client_id ours", plain, sign(auth0(testClientID), at), 200},
		{"Auth0 RFC 9068, audiences left at [client_id], client_id another client", plain, sign(auth0("other"), at), 401},
		{"Auth0 RFC 9068, another API, client_id another client", apiApp, sign(auth0("other", "https://other-api.example"), at), 401},
		{"Auth0 profile, azp ours", plain, sign(idpClaims(f, map[string]any{"aud": []string{api, f.issuer + "/userinfo"}, "azp": testClientID, "scope": "openid"}), nil), 200},
		{"Keycloak, aud account, azp ours", plain, sign(idpClaims(f, map[string]any{"aud": "account", "azp": testClientID, "typ": "Bearer",
			"scope": "openid email profile", "sid": "s-1", "preferred_username": "tuser", "email": "t@example.com", "email_verified": true}), nil), 200},
		{"Keycloak, aud account, azp another client", plain, sign(idpClaims(f, map[string]any{"aud": "account", "azp": "other", "typ": "Bearer"}), nil), 401},
		{"Dex, aud ours, the request's nonce copied in", plain, sign(idpClaims(f, map[string]any{"aud": testClientID, "nonce": "n-1", "email": "t@example.com"}), nil), 200},
		{"Authentik, aud and azp ours", plain, sign(idpClaims(f, map[string]any{"aud": testClientID, "azp": testClientID, "uid": "u-1", "scope": "openid"}), nil), 200},
		{"Zitadel JWT, aud ours and the project, client_id ours", plain, sign(idpClaims(f, map[string]any{"aud": []string{testClientID, "123456789"}, "client_id": testClientID, "jti": "j"}), nil), 200},
		{"Okta custom server, aud api://default listed", oktaApp, sign(idpClaims(f, map[string]any{"aud": "api://default", "cid": testClientID, "uid": "00u1", "scp": []string{"openid"}, "ver": 1}), nil), 200},
		{"Okta custom server, aud api://default not listed (cid is not read)", plain, sign(idpClaims(f, map[string]any{"aud": "api://default", "cid": testClientID, "ver": 1}), nil), 401},
	}
	for _, tc := range tests {
		wantReason := ""
		if tc.wantStatus == http.StatusUnauthorized {
			wantReason = reasonAudience
		}
		checkAccess(t, tc.app, tc.name, tc.token, tc.wantStatus, wantReason)
	}

	// The participant's name comes from the token that was validated.
	w := plain.register(sign(auth0(testClientID), at))
	if d := decode(t, w).Data; w.Code != 200 || d["display_name"] != "Auth0 User" {
		t.Errorf("POST /v1/auth/register (Auth0 RFC 9068 token with a name) = %d, display_name %v; want 200 Auth0 User", w.Code, d["display_name"])
	}

	// client_id widens the access-token rule only: an ID token must still
	// name the client in aud.
	_, err := plain.srv.tenants[0].prov.verify(context.Background(), noTyp(cognito(testClientID)), kindIDToken, "")
	checkReason(t, "Cognito-shaped token as an ID token", err, reasonAudience)
}

func TestVerifyRequireJWTType(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	strict := f.tenantConfig()
	strict.AccessTokens.RequireJWTType = true
	a := newTestApp(t, []tenantConfig{strict})
	lax := newTestApp(t, []tenantConfig{f.tenantConfig()})
	k := f.key()
	typed := func(typ any) string { return signWith(t, k, f.accessClaims(), map[jose.HeaderKey]any{"typ": typ}) }
	untyped := signOpts(t, k.alg, k.priv, (&jose.SignerOptions{}).WithHeader("kid", k.kid), f.accessClaims())

	for _, tc := range []struct {
		name       string
		token      string
		wantStatus int
	}{
		{"typ at+jwt", typed("at+jwt"), 200},
		{"typ application/at+jwt", typed("application/at+jwt"), 200},
		{"typ AT+JWT", typed("AT+JWT"), 200},
		{"typ Application/At+Jwt", typed("Application/At+Jwt"), 200},
		{"typ JWT", typed("JWT"), 401},
		{"typ missing", untyped, 401},
		{"typ empty", typed(""), 401},
		{"typ a number", typed(9068), 401},
		{"typ at+jwt with a space", typed("at+jwt "), 401},
		{"typ application/application/at+jwt", typed("application/application/at+jwt"), 401},
		{"typ jwt+at", typed("jwt+at"), 401},
		{"typ logout+jwt", typed("logout+jwt"), 401},
	} {
		wantReason := ""
		if tc.wantStatus == http.StatusUnauthorized {
			wantReason = reasonTokenType
		}
		checkAccess(t, a, "require_jwt_type, "+tc.name, tc.token, tc.wantStatus, wantReason)
	}
	// Off, the default: any typ passes, as before.
	checkAccess(t, lax, "require_jwt_type off, typ JWT", typed("JWT"), 200, "")
	checkAccess(t, lax, "require_jwt_type off, typ missing", untyped, 200, "")
	// ID tokens are not access tokens: the setting leaves them alone.
	_, err := a.srv.tenants[0].prov.verify(context.Background(), f.idToken("n-1"), kindIDToken, "n-1")
	checkReason(t, "ID token with typ JWT under require_jwt_type", err, "")
}
