package main

import (
	"encoding/json"
	"testing"
)

// TestAttackIDTokenAsBearer presents alice's ID token at /register, as a
// client that confuses the two, or one that got hold of an ID token meant
// for another app, would: a token with an ID-token marker is refused,
// while access tokens that merely look alike (Dex's carry the nonce,
// Keycloak's a typ of Bearer) still pass.
func TestAttackIDTokenAsBearer(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	atHash := "HK6E_P6Dh8Y93mRNtsDB1Q"
	tests := []struct {
		name       string
		mods       map[string]any
		wantStatus int
	}{
		{"Keycloak ID token (typ ID, at_hash, nonce, sid)", map[string]any{"typ": "ID", "at_hash": atHash, "nonce": "n-1", "sid": "s-1"}, 401},
		{"ID token with at_hash only", map[string]any{"at_hash": atHash}, 401},
		{"ID token with c_hash only", map[string]any{"c_hash": atHash}, 401},
		{"ID token with a non-string at_hash", map[string]any{"at_hash": 42}, 401},
		{"ID token with an empty at_hash", map[string]any{"at_hash": ""}, 401},
		{"payload typ ID only", map[string]any{"typ": "ID"}, 401},
		{"payload typ id in lower case", map[string]any{"typ": "id"}, 401},
		{"Dex access token with the nonce", map[string]any{"nonce": "n-1", "email_verified": true}, 200},
		{"Keycloak access token (typ Bearer)", map[string]any{"typ": "Bearer", "sid": "s-1"}, 200},
		{"at_hash null", map[string]any{"at_hash": json.RawMessage("null")}, 200},
	}
	for _, tc := range tests {
		reason := ""
		if tc.wantStatus != 200 {
			reason = reasonTokenType
		}
		checkAccess(t, a, tc.name, f.accessToken(tc.mods), tc.wantStatus, reason)
	}
	// The same token is still a good ID token where one belongs.
	keycloakID := f.idToken("n-1", map[string]any{"typ": "ID", "at_hash": atHash})
	if _, err := a.srv.tenants[0].prov.verify(t.Context(), keycloakID, kindIDToken, "n-1"); err != nil {
		t.Errorf("verify (Keycloak ID token as an ID token) = %v; want accepted", err)
	}
}
