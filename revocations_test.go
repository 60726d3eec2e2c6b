package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// TestTokenKey is not parallel: AllocsPerRun counts the process's
// allocations.
func TestTokenKey(t *testing.T) {
	for _, n := range []int{0, 1, 900, 4 << 10, 4<<10 + 1, maxTokenSize} {
		raw := strings.Repeat("t", n)
		if got, want := tokenKey(raw), sha256.Sum256([]byte(raw)); got != want {
			t.Errorf("tokenKey(%d bytes) = %x; want its SHA-256 %x", n, got, want)
		}
	}
	raw := strings.Repeat("t", 1500)
	if n := testing.AllocsPerRun(100, func() { tokenKey(raw) }); n != 0 {
		t.Errorf("tokenKey of a 1500-byte token: %v allocations; want 0", n)
	}
}

// TestLogoutBoundPerSubject is the review's reproduction at a smaller
// scale through the handlers: one account signs out many distinct tokens
// of a tenant whose set holds 150. Past maxTokensPerSubject they collapse
// into one revocation of the account's tokens issued until then, so the set
// never fills, and another user's /logout and back-channel logout succeed.
func TestLogoutBoundPerSubject(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	p.revoked.max = 150
	issued := time.Now().Add(-10 * time.Second).Unix()
	kept := f.accessToken(map[string]any{"sub": "abuser", "iat": issued, "jti": "kept"})
	checkRegister(t, "the abuser's token never signed out, before", a.register(kept), 200)
	for i := range 2*maxTokensPerSubject + 50 {
		tok := f.accessToken(map[string]any{"sub": "abuser", "iat": issued, "jti": fmt.Sprint(i)})
		if w := a.logout("", tok); w.Code != 200 {
			t.Fatalf("POST /v1/auth/logout of the abuser's token %d = %d %s; want 200", i, w.Code, w.Body)
		}
	}
	if n := p.revoked.n.Load(); n > maxTokensPerSubject+1 {
		t.Errorf("%d revocations after one account signed out %d tokens; want at most %d", n, 2*maxTokensPerSubject+50, maxTokensPerSubject+1)
	}
	// The collapse refuses every token of the account issued until then,
	// and none issued later.
	checkRegister(t, "the abuser's token never signed out, after the collapse", a.register(kept), 401)
	later := f.accessToken(map[string]any{"sub": "abuser", "iat": time.Now().Add(5 * time.Second).Unix()})
	checkRegister(t, "the abuser's token issued after the collapse", a.register(later), 200)

	victim := f.accessToken(map[string]any{"sub": "victim"})
	if w := a.logout("", victim); w.Code != 200 {
		t.Errorf("POST /v1/auth/logout of another user = %d %s; want 200", w.Code, w.Body)
	}
	bcCheck(t, "back-channel logout of another user", a.backchannel(f.logoutToken(map[string]any{"sub": "victim-2", "sid": nil})), 200, "")

	// What the store keeps is as small, and comes back after a restart.
	a = a.restart()
	if n := a.srv.tenants[0].prov.revoked.n.Load(); n > maxTokensPerSubject+3 {
		t.Errorf("after a restart: %d revocations; want at most %d", n, maxTokensPerSubject+3)
	}
	checkRegister(t, "the abuser's token never signed out, after a restart", a.register(kept), 401)
}

// TestRevocationsBoundPerSubjectAtScale drives the revocations API as
// 100,000 sign-outs of one account would, at the real bound: the tenant's
// set stays small, and another user can still sign out.
func TestRevocationsBoundPerSubjectAtScale(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	if p.revoked.max != maxRevocations {
		t.Fatalf("the tenant's bound is %d; want maxRevocations", p.revoked.max)
	}
	ctx := context.Background()
	iat := jwt.NewNumericDate(time.Now().Add(-time.Minute))
	exp := time.Now().Add(time.Hour)
	const total, batch = 100_000, 1_000
	for i := 0; i < total; i += batch {
		revs := make([]revocation, batch)
		for j := range revs {
			c := &claims{Subject: "abuser", IssuedAt: iat}
			revs[j] = tokenRevocation(tokenKey(fmt.Sprint("token-", i+j)), c, exp)
		}
		if _, err := p.revoke(ctx, a.srv.store, nil, revs); err != nil {
			t.Fatalf("revoking tokens %d-%d of one account: %v", i, i+batch, err)
		}
	}
	if n := p.revoked.n.Load(); n > maxTokensPerSubject+1 {
		t.Errorf("%d revocations after %d of one account; want at most %d", n, total, maxTokensPerSubject+1)
	}
	victim := f.accessToken(map[string]any{"sub": "victim"})
	if w := a.logout("", victim); w.Code != 200 {
		t.Errorf("POST /v1/auth/logout of another user = %d %s; want 200", w.Code, w.Body)
	}
	bcCheck(t, "back-channel logout of another user", a.backchannel(f.logoutToken(map[string]any{"sub": "victim-2", "sid": nil})), 200, "")
}

// TestRevocationSubjectKeptWhenRevokedAgain: /logout with a bearer revokes
// the token under its subject, then ends the relayed session, which revokes
// the same token again without knowing the subject. The entry must stay
// counted for its subject: the review found it moved to "", so that once a
// subject expired its count never came down, and after 100 sign-outs in a
// process's life every later one became "every token of sub".
func TestRevocationSubjectKeptWhenRevokedAgain(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	subject := testSubject // the fake IdP's password grant signs user-1 in
	for i := range 3 {
		w := a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw")
		at := tokenOf(decode(t, w).Data, "access_token")
		if lw := a.logout("", at); lw.Code != 200 {
			t.Fatalf("POST /v1/auth/logout %d = %d %s", i, lw.Code, lw.Body)
		}
	}
	p.revoked.mu.Lock()
	defer p.revoked.mu.Unlock()
	for k, e := range p.revoked.tokens {
		if e.sub != subject {
			t.Errorf("revocation %x is counted for subject %q; want %q", k[:4], e.sub, subject)
		}
	}
	if got, want := p.revoked.perSub[subject], len(p.revoked.tokens); got != want || want == 0 {
		t.Errorf("perSub[%q] = %d after three sign-outs; want one per revoked token, %d (perSub %v)", subject, got, want, p.revoked.perSub)
	}
	p.revoked.pruneLocked(time.Now().Add(48 * time.Hour).Unix())
	if len(p.revoked.perSub) != 0 {
		t.Errorf("perSub after every revocation expired = %v; want empty", p.revoked.perSub)
	}
}
