package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
)

// TestAttackUnverifiedEmail registers with a token whose email is one the
// IdP has not verified (anyone may type the CEO's address at sign-up) and
// whose only name source is that email: no email is stored, and the
// display name falls back to sub, not to the address's local part.
// email_verified absent, or true, keeps the email as before.
func TestAttackUnverifiedEmail(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	const email = "ceo@victim.example"
	tests := []struct {
		name      string
		verified  any // nil: the claim is absent
		wantEmail string
		wantName  string // "" means the sub
	}{
		{"email_verified false", false, "", ""},
		{"email_verified \"false\" (a string)", "false", "", ""},
		{"email_verified \" FALSE \"", " FALSE ", "", ""},
		{"email_verified true", true, email, "ceo"},
		{"email_verified \"true\" (a string)", "true", email, "ceo"},
		{"email_verified absent", nil, email, "ceo"},
		{"email_verified null", json.RawMessage("null"), email, "ceo"},
		{"email_verified of another type", 0, email, "ceo"},
	}
	for i, tc := range tests {
		sub := fmt.Sprint("unverified-", i)
		w := a.register(f.accessToken(map[string]any{"sub": sub, "name": nil, "preferred_username": nil, "email": email, "email_verified": tc.verified}))
		if w.Code != 200 {
			t.Errorf("POST /v1/auth/register (%s) = %d %s", tc.name, w.Code, w.Body)
			continue
		}
		d := decode(t, w).Data
		wantName := tc.wantName
		if wantName == "" {
			wantName = sub
		}
		if d["email"] != tc.wantEmail || d["display_name"] != wantName {
			t.Errorf("POST /v1/auth/register (%s): email %q, display_name %q; want %q, %q", tc.name, d["email"], d["display_name"], tc.wantEmail, wantName)
		}
		stored, err := a.store.participantByID(context.Background(), d["participant_id"].(string))
		if err != nil || stored.Email != tc.wantEmail || stored.DisplayName != wantName {
			t.Errorf("stored participant (%s): email %q, display name %q, %v; want %q, %q", tc.name, stored.Email, stored.DisplayName, err, tc.wantEmail, wantName)
		}
	}

	// A person whose IdP later marks the address unverified loses it here.
	first := a.register(f.accessToken(map[string]any{"sub": "later", "email": email, "email_verified": true}))
	later := a.register(f.accessToken(map[string]any{"sub": "later", "email": email, "email_verified": false}))
	if got := decode(t, first).Data["email"]; got != email {
		t.Fatalf("POST /v1/auth/register (verified) email = %v; want %q", got, email)
	}
	if d := decode(t, later).Data; d["email"] != "" || d["display_name"] != "Test User" {
		t.Errorf("POST /v1/auth/register (now unverified): email %q, display_name %q; want the email dropped and the name kept", d["email"], d["display_name"])
	}
}
