package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestDecideKind: every signal alone, and that a signal naming another kind
// wins over one naming an access token, whatever their order.
func TestDecideKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    kindSignals
		want tokenClass
	}{
		{"nothing (Dex v2.45.1 access token: at_hash and nonce are no signals)", kindSignals{}, classUnnamed},
		{"header typ JWT says nothing", kindSignals{headerTyp: "JWT"}, classUnnamed},
		{"header typ at+jwt", kindSignals{headerTyp: "at+jwt"}, classAccess},
		{"header typ application/AT+JWT", kindSignals{headerTyp: "application/AT+JWT"}, classAccess},
		{"header typ logout+jwt", kindSignals{headerTyp: "logout+jwt"}, classLogout},
		{"header typ dpop+jwt", kindSignals{headerTyp: "dpop+jwt"}, classProof},
		{"Keycloak typ Bearer", kindSignals{typ: "Bearer"}, classAccess},
		{"Keycloak typ ID", kindSignals{typ: "ID"}, classID},
		{"Keycloak typ Refresh", kindSignals{typ: "Refresh"}, classRefresh},
		{"Keycloak typ Offline", kindSignals{typ: "Offline"}, classRefresh},
		{"Keycloak typ Logout", kindSignals{typ: "Logout"}, classLogout},
		{"Casdoor v3.158.0 tokenType access-token", kindSignals{tokenType: "access-token"}, classAccess},
		{"Casdoor v3.158.0 tokenType refresh-token", kindSignals{tokenType: "refresh-token"}, classRefresh},
		{"Casdoor v3.158.0 user type normal-user says nothing", kindSignals{typeClaim: "normal-user"}, classUnnamed},
		{"Pocket ID v2.9.0 type oauth-access-token", kindSignals{typeClaim: "oauth-access-token"}, classAccess},
		{"Pocket ID v2.9.0 type id-token", kindSignals{typeClaim: "id-token"}, classID},
		{"Pocket ID v2.9.0 type refresh-token", kindSignals{typeClaim: "refresh-token"}, classRefresh},
		{"Cognito token_use access", kindSignals{tokenUse: "access"}, classAccess},
		{"Cognito token_use id", kindSignals{tokenUse: "id"}, classID},
		{"Hydra v2.3.0 introspection token_use refresh_token", kindSignals{tokenUse: "refresh_token"}, classRefresh},
		{"events", kindSignals{events: true}, classLogout},
		{"c_hash", kindSignals{cHash: true}, classID},
		{"introspection token_type Bearer", kindSignals{introTokenType: "Bearer"}, classAccess},
		{"Pocket ID v2.9.0 introspection token_type refresh_token", kindSignals{introTokenType: "refresh_token"}, classRefresh},
		{"RFC 8693 refresh token URN", kindSignals{introTokenType: "urn:ietf:params:oauth:token-type:refresh_token"}, classRefresh},
		{"relayed as an ID token", kindSignals{relayed: classID}, classID},
		{"relayed as a refresh token", kindSignals{relayed: classRefresh}, classRefresh},
		{"at+jwt does not launder typ Refresh", kindSignals{headerTyp: "at+jwt", typ: "Refresh"}, classRefresh},
		{"token_type Bearer does not launder token_use refresh_token (Hydra v2.3.0)", kindSignals{introTokenType: "Bearer", tokenUse: "refresh_token"}, classRefresh},
		{"an access-token shape does not launder what was relayed", kindSignals{tokenType: "access-token", relayed: classRefresh}, classRefresh},
	}
	for _, tc := range tests {
		got, why := decideKind(tc.s)
		if got != tc.want {
			t.Errorf("decideKind(%s) = %v (%s); want %v", tc.name, got, why, tc.want)
		}
		refused := bearerRefusal(got, why) != ""
		if wantRefused := tc.want != classAccess && tc.want != classUnnamed; refused != wantRefused {
			t.Errorf("bearerRefusal(%s) refuses %v; want %v", tc.name, refused, wantRefused)
		}
	}
}

// TestKindMarkersEscaped: a marker whose name is spelled with an escape is
// read as the JSON decoder reads it, not missed by the shortcut that skips
// decoding payloads without markers.
func TestKindMarkersEscaped(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	now := time.Now().Unix()
	payload := fmt.Sprintf(`{"iss":%q,"sub":"esc","aud":%q,"iat":%d,"exp":%d,"\u0074ype":"refresh-token"}`, f.issuer, testClientID, now, now+300)
	tok := signOpts(t, f.key().alg, f.key().priv, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", f.key().kid), json.RawMessage(payload))
	if !mayHoldMarkers(tok) {
		t.Error("mayHoldMarkers (escaped member name) = false; want true")
	}
	checkAccess(t, a, "Pocket ID-shaped refresh token with its type member name escaped", tok, 401, reasonTokenType)
	plain := f.accessToken()
	if mayHoldMarkers(plain) {
		t.Error("mayHoldMarkers (a token naming no kind) = true; want false")
	}
	checkAccess(t, a, "a token naming no kind", plain, 200, "")
}
