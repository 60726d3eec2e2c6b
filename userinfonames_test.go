package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestRegisterNamesFromUserinfo: a JWT access token with no name asks
// userinfo once per (tenant, sub) within cache_seconds; a token without
// names never erases stored ones; a userinfo refusal is a 401 that changes
// nothing stored.
func TestRegisterNamesFromUserinfo(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	status := 200
	f.userinfoFn = func(string) (int, any) {
		switch status {
		case 200:
			return 200, map[string]any{"sub": "nameless", "name": "From Userinfo", "email": "ui@example.com", "email_verified": true}
		case 299: // Casdoor v3.158.0: 200 with its error envelope, no sub
			return 200, map[string]any{"status": "error", "msg": "Access token doesn't exist in database"}
		}
		return status, map[string]any{"error": "invalid_token"}
	}
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	noNames := map[string]any{"sub": "nameless", "name": nil, "preferred_username": nil, "email": nil}
	data := func(step string, tok string, wantStatus int) map[string]any {
		t.Helper()
		w := a.register(tok)
		checkRegister(t, step, w, wantStatus)
		return decode(t, w).Data
	}

	// Pocket ID v2.9.0's access tokens name their kind (type
	// oauth-access-token) and carry no names: userinfo once per sub.
	pocket := map[string]any{"type": "oauth-access-token"}
	d := data("no names: userinfo fills them", f.accessToken(noNames, pocket, map[string]any{"jti": "1"}), 200)
	if d["display_name"] != "From Userinfo" || d["email"] != "ui@example.com" {
		t.Errorf("POST /v1/auth/register (no names) = %v; want userinfo's name and email", d)
	}
	data("no names, another token of the same sub", f.accessToken(noNames, pocket, map[string]any{"jti": "2"}), 200)
	if got := f.userinfoHits.Load(); got != 1 {
		t.Errorf("userinfo called %d times for two access tokens of one sub; want 1 (cached per sub)", got)
	}

	// Past cache_seconds, userinfo fails (Pocket ID v2.9.0 answers 500 to
	// what it does not take): names unknown, the stored ones stay.
	a.srv.tenants[0].prov.names = newNamesCache(maxNamesCache)
	status = 500
	d = data("no names, userinfo 500", f.accessToken(noNames, map[string]any{"jti": "3"}), 200)
	if d["display_name"] != "From Userinfo" || d["email"] != "ui@example.com" {
		t.Errorf("POST /v1/auth/register (no names, userinfo 500) = %v; want the stored name and email kept", d)
	}
	// A token with names still updates them.
	d = data("with names", f.accessToken(map[string]any{"sub": "nameless", "name": "Renamed", "email": nil, "preferred_username": nil}), 200)
	if d["display_name"] != "Renamed" {
		t.Errorf("POST /v1/auth/register (with names) = %v; want Renamed", d)
	}
	for _, st := range []int{400, 401, 403, 299} {
		status = st
		data(fmt.Sprintf("no names, userinfo refuses with %d", st), f.accessToken(noNames, map[string]any{"jti": fmt.Sprint("r", st)}), 401)
	}
	// A token that names itself an access token (header typ at+jwt) is
	// meant for a resource, and userinfo may refuse it for that alone (node
	// oidc-provider 9 answers 401 for its RFC 9068 tokens issued for a
	// resource indicator): names unknown, the token accepted, nothing erased.
	status = 401
	typed := signWith(t, f.key(), f.accessClaims(noNames, map[string]any{"jti": "typed"}), map[jose.HeaderKey]any{"typ": "at+jwt"})
	d = data("no names, typed at+jwt, userinfo 401", typed, 200)
	if d["display_name"] != "Renamed" {
		t.Errorf("POST /v1/auth/register (typed at+jwt, userinfo 401) = %v; want the stored name Renamed kept", d)
	}
	part, err := a.srv.store.participantByPrincipal(t.Context(), principal{TenantID: "acme", Issuer: f.issuer, Subject: "nameless"})
	if err != nil || part.DisplayName != "Renamed" {
		t.Errorf("stored participant after the refusals = %q, %v; want Renamed unchanged", part.DisplayName, err)
	}

	// A new participant whose token names nobody and whose userinfo fails
	// is named by its sub.
	status = 500
	d = data("new, no names, userinfo 500", f.accessToken(noNames, map[string]any{"sub": "fresh"}), 200)
	if d["display_name"] != "fresh" || d["email"] != "" {
		t.Errorf("POST /v1/auth/register (new, no names) = %v; want display_name fresh, no email", d)
	}
}

func TestNamesCacheBound(t *testing.T) {
	t.Parallel()
	now := time.Now()
	nc := newNamesCache(3)
	nc.put("old", userinfoNames{name: "Old", until: now.Add(-time.Second)}, now)
	nc.put("a", userinfoNames{name: "A", until: now.Add(time.Hour)}, now)
	nc.put("b", userinfoNames{name: "B", until: now.Add(time.Hour)}, now)
	nc.put("c", userinfoNames{name: "C", until: now.Add(time.Hour)}, now)
	if _, ok := nc.m["old"]; ok || nc.len() != 3 {
		t.Errorf("full cache: %d entries, the expired one kept %v; want 3, the expired one gone first", nc.len(), ok)
	}
	for i := range 100 {
		nc.put(fmt.Sprint("s", i), userinfoNames{until: now.Add(time.Hour)}, now)
	}
	if nc.len() != 3 {
		t.Errorf("after 100 more subjects: %d entries; want the bound, 3", nc.len())
	}
	if _, ok := nc.get("s99", now); !ok {
		t.Error("the newest entry is not kept")
	}
	if _, ok := nc.get("s99", now.Add(2*time.Hour)); ok {
		t.Error("an entry is answered past its end")
	}
}

// TestRegisterNamesCacheIsNoKindCheck: the names userinfo gave for one of a
// person's tokens must not let another token of that person that names no
// kind skip userinfo's word on it. The review's reproduction: a nameless
// access token fills the names cache, then a nameless token userinfo
// refuses (a LemonLDAP::NG 2.16.1 ID token has no marker and no names) got
// 200 without userinfo being asked.
func TestRegisterNamesCacheIsNoKindCheck(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	refused := "" // the jti userinfo refuses
	f.userinfoFn = func(bearer string) (int, any) {
		if refused != "" && strings.Contains(bearer, ".") && jtiOf(bearer) == refused {
			return 401, map[string]any{"error": "invalid_token"}
		}
		return 200, map[string]any{"sub": "nameless", "name": "From Userinfo"}
	}
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	noNames := map[string]any{"sub": "nameless", "name": nil, "preferred_username": nil, "email": nil}
	checkRegister(t, "a nameless access token", a.register(f.accessToken(noNames, map[string]any{"jti": "access"})), 200)
	checkRegister(t, "the same token again (confirmed, cached)", a.register(f.accessToken(noNames, map[string]any{"jti": "access"})), 200)
	hits := f.userinfoHits.Load()
	refused = "not-an-access-token"
	checkRegister(t, "another nameless token of the same sub that userinfo refuses",
		a.register(f.accessToken(noNames, map[string]any{"jti": refused})), 401)
	if f.userinfoHits.Load() == hits {
		t.Error("userinfo was not asked about a token that names no kind, because its subject's names were cached")
	}
}

// jtiOf is the jti of the compact JWT raw, unverified ("" when it has none).
func jtiOf(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		JTI string `json:"jti"`
	}
	json.Unmarshal(b, &c)
	return c.JTI
}
