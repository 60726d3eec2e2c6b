package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// relayingIDP makes f answer the password grant, and the refresh grant for
// any refresh token it issued, with a fresh access token, an ID token with
// at_hash alone (Hydra v2.3.0's ID tokens, and Dex v2.45.1's refreshed ones,
// name their kind no other way) and a refresh token that is a JWT shaped
// exactly like an access token: only the record of what was relayed tells
// them apart. It returns the answers given so far.
func relayingIDP(t *testing.T, f *fakeIDP) func() []map[string]any {
	var mu sync.Mutex
	var answers []map[string]any
	issued := map[string]bool{}
	f.set(func(f *fakeIDP) {
		f.noRevocation = true // as Dex, Pocket ID, Casdoor and LemonLDAP::NG
		f.tokenFn = func(form url.Values, _ *http.Request) (int, any) {
			mu.Lock()
			defer mu.Unlock()
			switch form.Get("grant_type") {
			case "password":
			case "refresh_token":
				if !issued[form.Get("refresh_token")] {
					return 400, map[string]string{"error": "invalid_grant"}
				}
			default:
				return 400, map[string]string{"error": "unsupported_grant_type"}
			}
			n := len(answers)
			at := f.accessToken(map[string]any{"jti": fmt.Sprint("at-", n)})
			rt := f.accessToken(map[string]any{"jti": fmt.Sprint("rt-", n), "exp": time.Now().Add(24 * time.Hour).Unix()})
			issued[rt] = true
			a := map[string]any{
				"access_token": at, "token_type": "Bearer", "expires_in": 300, "refresh_token": rt,
				"id_token": f.idToken("", map[string]any{"at_hash": atHashOf(t, f.key().alg, at), "jti": fmt.Sprint("id-", n)}),
			}
			answers = append(answers, a)
			return 200, a
		}
	})
	return func() []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		return append([]map[string]any(nil), answers...)
	}
}

func tokenOf(a map[string]any, name string) string { s, _ := a[name].(string); return s }

// TestAttackRelayedTokensAsBearers: what the service passed on as a refresh
// or ID token is never a bearer, whatever its shape, also after a restart,
// and even when it was used (and cached) as a bearer before it was relayed;
// /logout with any access token of a session ends the whole session: its
// other access tokens are refused, and its refresh tokens by /refresh too,
// although this IdP has no revocation endpoint.
func TestAttackRelayedTokensAsBearers(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	answers := relayingIDP(t, f)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	login := func() map[string]any {
		t.Helper()
		w := a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw")
		tokCheck(t, "/v1/auth/token", "sign-in", w, 200, "")
		return decode(t, w).Data
	}
	refresh := func(step, rt string, wantStatus int, wantCode string) map[string]any {
		t.Helper()
		w := a.do("POST", "/v1/auth/refresh", url.Values{"refresh_token": {rt}}.Encode())
		tokCheck(t, "/v1/auth/refresh", step, w, wantStatus, wantCode)
		return decode(t, w).Data
	}

	s1 := login()
	at1, rt1, id1 := tokenOf(s1, "access_token"), tokenOf(s1, "refresh_token"), tokenOf(s1, "id_token")
	if at1 != tokenOf(answers()[0], "access_token") {
		t.Fatal("the sign-in did not pass on the IdP's answer")
	}
	checkAccess(t, a, "session 1 access token", at1, 200, "")
	checkAccess(t, a, "session 1 ID token (at_hash only)", id1, 401, reasonTokenType)
	checkAccess(t, a, "session 1 refresh token (a JWT shaped like an access token)", rt1, 401, reasonTokenType)

	s2 := refresh("session 1, refreshed", rt1, 200, "")
	at2, rt2, id2 := tokenOf(s2, "access_token"), tokenOf(s2, "refresh_token"), tokenOf(s2, "id_token")
	checkAccess(t, a, "refreshed access token", at2, 200, "")
	checkAccess(t, a, "refreshed ID token", id2, 401, reasonTokenType)
	checkAccess(t, a, "refreshed refresh token", rt2, 401, reasonTokenType)

	other := login()
	atOther := tokenOf(other, "access_token")

	// Signing out with the refreshed access token ends session 1 entirely.
	if w := a.logout("", at2); w.Code != 200 {
		t.Fatalf("POST /v1/auth/logout = %d %s", w.Code, w.Body)
	}
	checkRegister(t, "session 1's first access token, after /logout with its second", a.register(at1), 401)
	checkRegister(t, "session 1's second access token, after /logout", a.register(at2), 401)
	hits := f.tokenHits.Load()
	refresh("session 1's refresh token, after /logout", rt2, 401, "SW_AUTH_REFRESH_FAILED")
	refresh("session 1's first refresh token, after /logout", rt1, 401, "SW_AUTH_REFRESH_FAILED")
	if got := f.tokenHits.Load(); got != hits {
		t.Errorf("signed-out refresh tokens reached the IdP %d times; want never", got-hits)
	}
	checkRegister(t, "another session's access token, after /logout", a.register(atOther), 200)

	// A restart keeps all of it.
	b := a.restart()
	checkRegister(t, "session 1 ID token, after a restart", b.register(id1), 401)
	checkRegister(t, "session 1 refresh token, after a restart", b.register(rt2), 401)
	checkRegister(t, "session 1 access token, after a restart", b.register(at1), 401)
	w := b.do("POST", "/v1/auth/refresh", url.Values{"refresh_token": {rt2}}.Encode())
	tokCheck(t, "/v1/auth/refresh", "session 1's refresh token, after a restart", w, 401, "SW_AUTH_REFRESH_FAILED")
	// The IdP was never asked: the message must not blame it.
	if msg := decode(t, w).Error.Message; !strings.Contains(msg, "signed out") {
		t.Errorf("POST /v1/auth/refresh (signed-out refresh token) message %q; want it to say the token was signed out", msg)
	}
	checkRegister(t, "another session's access token, after a restart", b.register(atOther), 200)
}

// TestRelayedTokenLeavesTheCache: a token used as a bearer before the
// service relays it as an ID token (cached then) is refused from the moment
// it is relayed.
func TestRelayedTokenLeavesTheCache(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	idt := f.accessToken(map[string]any{"jti": "both"})
	f.tokenFn = tokAnswer(200, map[string]any{"access_token": f.accessToken(), "token_type": "Bearer", "expires_in": 300, "id_token": idt})
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	checkRegister(t, "before it is relayed", a.register(idt), 200)
	checkRegister(t, "before it is relayed, from the cache", a.register(idt), 200)
	tokCheck(t, "/v1/auth/token", "relaying it as an ID token", a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw"), 200, "")
	checkRegister(t, "after it was relayed as an ID token", a.register(idt), 401)
}

// TestRelayedCasdoorIDTokenIsTheAccessToken: Casdoor v3.158.0's default ID
// token is its access token byte for byte; relaying it as an ID token must
// not refuse the access token.
func TestRelayedCasdoorIDTokenIsTheAccessToken(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	at := f.accessToken(map[string]any{"tokenType": "access-token", "nonce": "n-1"})
	f.tokenFn = tokAnswer(200, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 300, "id_token": at,
		"refresh_token": f.accessToken(map[string]any{"tokenType": "refresh-token"})})
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	tokCheck(t, "/v1/auth/token", "Casdoor-shaped answer", a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw"), 200, "")
	checkRegister(t, "Casdoor access token that is also the ID token", a.register(at), 200)
}

// TestRelayedBound: one tenant's record holds at most max entries, in memory
// and in the table; expired entries go first, then the oldest recorded; a
// restart loads the newest.
func TestRelayedBound(t *testing.T) {
	t.Parallel()
	st := openTestStore(t, filepath.Join(t.TempDir(), "relayed.db"))
	defer st.Close()
	now := time.Now()
	rs := newRelayedSet(4)
	rs.st = st
	tok := func(i int, exp time.Time) relayedToken {
		return relayedToken{key: tokenKey(fmt.Sprint("token-", i)), relayedEntry: relayedEntry{session: uint64(i/3 + 1), expires: exp.Unix(), class: classRefresh}}
	}
	live := now.Add(time.Hour)
	record := func(toks ...relayedToken) {
		t.Helper()
		if _, err := rs.record(t.Context(), "acme", toks, now); err != nil {
			t.Fatal(err)
		}
	}
	record(tok(0, now.Add(-time.Second)), tok(1, live), tok(2, live)) // 0 expired
	if n, _ := rs.record(t.Context(), "acme", []relayedToken{tok(3, live), tok(4, live)}, now); n != 0 {
		t.Errorf("full with one expired entry, two added: %d live entries evicted; want 0 (the expired one goes)", n)
	}
	if rs.classOf(tok(0, live).key) != classUnnamed || rs.classOf(tok(1, live).key) != classRefresh || rs.n.Load() != 4 {
		t.Errorf("full with one expired entry: %d entries, 0 kept %v, 1 kept %v; want 4, the expired one gone first",
			rs.n.Load(), rs.classOf(tok(0, live).key) != classUnnamed, rs.classOf(tok(1, live).key) != classUnnamed)
	}
	if n, _ := rs.record(t.Context(), "acme", []relayedToken{tok(5, live)}, now); n != 1 {
		t.Errorf("full of live entries, one added: %d live entries evicted; want 1, reported", n)
	}
	for i := 6; i < 50; i++ {
		record(tok(i, live))
	}
	if rs.n.Load() != 4 || len(rs.m) != 4 {
		t.Errorf("after 50 tokens: %d entries; want the bound, 4", len(rs.m))
	}
	for i := 46; i < 50; i++ {
		if rs.classOf(tok(i, live).key) != classRefresh {
			t.Errorf("token %d, among the newest 4, is not kept", i)
		}
	}
	if n := queryInt(t, st.r, `SELECT count(*) FROM relayed_tokens WHERE tenant_id = 'acme'`); n != 4 {
		t.Errorf("the table holds %d rows; want the bound, 4", n)
	}
	if len(rs.order) > 2*rs.max+8 {
		t.Errorf("the eviction order holds %d keys for %d entries; want it bounded too", len(rs.order), len(rs.m))
	}
	loaded, err := st.liveRelayed(t.Context(), "acme", now.Unix(), 4)
	if err != nil || len(loaded) != 4 {
		t.Fatalf("liveRelayed = %d rows, %v; want 4", len(loaded), err)
	}
	for i, l := range loaded {
		if l.key != tok(46+i, live).key || l.class != classRefresh {
			t.Errorf("loaded row %d is not token %d, oldest first", i, 46+i)
		}
	}
	if err := st.pruneRelayed(t.Context(), live.Unix()+1); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, st.r, `SELECT count(*) FROM relayed_tokens`); n != 0 {
		t.Errorf("after pruning past every expiry the table holds %d rows; want 0", n)
	}
}

// TestRelayedByHandoff: the browser sign-in's tokens are recorded when the
// app redeems the handoff: its ID token is no bearer from then on.
func TestRelayedByHandoff(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	w := a.do("POST", "/v1/auth/login", "handoff="+siSignIn(t, a, f, ""))
	if !tokCheck(t, "/v1/auth/login", "handoff", w, 200, "") {
		return
	}
	d := decode(t, w).Data
	at, idt := tokenOf(d, "access_token"), tokenOf(d, "id_token")
	if got := a.srv.tenants[0].prov.relayed.classOf(tokenKey(idt)); got != classID {
		t.Errorf("the redeemed ID token is recorded as %v; want an ID token", got)
	}
	checkAccess(t, a, "access token of a redeemed handoff", at, 200, "")
	checkAccess(t, a, "ID token of a redeemed handoff", idt, 401, reasonTokenType)
}

// TestAttackLogoutFloodsTheRecord: /logout takes any string as a refresh
// token; strings this service never relayed are not recorded, so nobody can
// push real records out of the bound with them.
func TestAttackLogoutFloodsTheRecord(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	tokCheck(t, "/v1/auth/token", "sign-in", a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw"), 200, "")
	rs := a.srv.tenants[0].prov.relayed
	before := rs.n.Load()
	for i := range 50 {
		tokCheck(t, "/v1/auth/logout", "a made-up refresh token", a.logout("refresh_token=made-up-"+fmt.Sprint(i), ""), 200, "")
	}
	if got := rs.n.Load(); got != before {
		t.Errorf("50 sign-outs with made-up refresh tokens grew the record from %d to %d entries; want unchanged", before, got)
	}
	if n := queryInt(t, a.store.r, `SELECT count(*) FROM relayed_tokens`); int64(n) != before {
		t.Errorf("the table holds %d rows; want %d", n, before)
	}
}

// TestRelayedSIDFollowsRefresh: the tokens of a refresh whose ID token names
// no sid (or that has no ID token) keep their session's IdP sid, so that a
// back-channel logout still finds them once the sign-in's own entries are
// gone; a refresh whose ID token names one records it.
func TestRelayedSIDFollowsRefresh(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	sids := sidIDP(t, f, false, false)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	rs := a.srv.tenants[0].prov.relayed
	w := a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw")
	tokCheck(t, "/v1/auth/token", "sign-in", w, 200, "")
	rt := tokenOf(decode(t, w).Data, "refresh_token")
	want := sidKey("acme", sids()[0])
	w = a.do("POST", "/v1/auth/refresh", url.Values{"refresh_token": {rt}}.Encode())
	tokCheck(t, "/v1/auth/refresh", "refresh, its ID token naming no sid", w, 200, "")
	d := decode(t, w).Data
	for _, name := range []string{"access_token", "refresh_token", "id_token"} {
		if e, ok := rs.lookup(tokenKey(tokenOf(d, name))); !ok || e.sid != want {
			t.Errorf("the refreshed %s is recorded with sid key %x (recorded: %v); want %x, the sign-in's", name, e.sid, ok, want)
		}
	}
	if e, _ := rs.lookup(tokenKey(rt)); e.sid != want {
		t.Errorf("the sign-in's refresh token is recorded with sid key %x; want %x", e.sid, want)
	}
}

// TestRelayedRotatedRefreshForgottenSooner: an opaque refresh token that the
// IdP rotated out at /refresh is kept in the record for an hour, not the 90
// days of a live one; otherwise every hourly refresh at a rotating IdP (Dex
// v2.45.1) kept one more entry for 90 days and a few dozen people filled
// the bound. The one passed on in its place is kept the full time.
func TestRelayedRotatedRefreshForgottenSooner(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	var calls atomic.Int64
	f.set(func(f *fakeIDP) { f.tokenFn = f.tokOneTimeRefresh("rt-once", 0, &calls) })
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	tokCheck(t, "/v1/auth/refresh", "rotating refresh", a.do("POST", "/v1/auth/refresh", "refresh_token=rt-once"), 200, "")

	now := time.Now()
	rs := a.srv.tenants[0].prov.relayed
	for _, tc := range []struct {
		token            string
		minLeft, maxLeft time.Duration
	}{
		{"rt-once", 0, relayedReplacedRetention + leeway + time.Minute},
		{"rt-rotated-1", relayedOpaqueRetention - time.Hour, relayedOpaqueRetention + leeway + time.Minute},
	} {
		e, ok := rs.lookup(tokenKey(tc.token))
		if !ok || e.class != classRefresh {
			t.Fatalf("record of %s: %v, class %v; want a refresh token", tc.token, ok, e.class)
		}
		left := time.Unix(e.expires, 0).Sub(now)
		if left < tc.minLeft || left > tc.maxLeft {
			t.Errorf("record of %s in memory: kept %v more; want between %v and %v", tc.token, left, tc.minLeft, tc.maxLeft)
		}
		stored, ok, err := a.srv.store.relayedByKey(t.Context(), "acme", tokenKey(tc.token))
		if err != nil || !ok || stored.expires != e.expires {
			t.Errorf("record of %s in the store: %+v, %v, %v; want the expiry in memory, %d", tc.token, stored, ok, err, e.expires)
		}
	}
}

// BenchmarkEndSessionsUnknownToken is what an unauthenticated /logout with
// a made-up refresh token costs the record at its bound, under the lock
// every sign-in's answer waits for.
func BenchmarkEndSessionsUnknownToken(b *testing.B) {
	f := newFakeIDP(b)
	a := newTestApp(b, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	now := time.Now()
	toks := make([]relayedToken, 0, maxRelayed)
	for i := range maxRelayed {
		toks = append(toks, relayedToken{key: tokenKey(fmt.Sprint("t-", i)), relayedEntry: relayedEntry{session: uint64(i/3 + 1), expires: now.Add(time.Hour).Unix(), class: classAccess}})
	}
	p.relayed.load(toks, now)
	b.ResetTimer()
	for i := range b.N {
		p.relayed.endSessions(b.Context(), p.tenant.ID, [][32]byte{tokenKey(fmt.Sprint("made-up-", i))}, 0, now)
	}
}

// TestRelayedSessionEndCountsPerSubject: a signed-out session's access
// tokens go on the deny list counted for their subject, so past
// maxTokensPerSubject they collapse into one "every token of sub" entry as
// /logout's own do. The review's reproduction: one sign-in refreshed 150
// times, then /logout with the refresh token alone, stored 150 token
// revocations; one account could fill the tenant's deny list that way.
func TestRelayedSessionEndCountsPerSubject(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	relayingIDP(t, f)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	login := a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw")
	rt := tokenOf(decode(t, login).Data, "refresh_token")
	const refreshes = maxTokensPerSubject + 50
	for i := range refreshes {
		w := a.do("POST", "/v1/auth/refresh", url.Values{"refresh_token": {rt}}.Encode())
		if w.Code != 200 {
			t.Fatalf("POST /v1/auth/refresh %d = %d %s", i, w.Code, w.Body)
		}
		rt = tokenOf(decode(t, w).Data, "refresh_token")
	}
	if w := a.logout(url.Values{"refresh_token": {rt}}.Encode(), ""); w.Code != 200 {
		t.Fatalf("POST /v1/auth/logout = %d %s", w.Code, w.Body)
	}
	p := a.srv.tenants[0].prov
	p.revoked.mu.RLock()
	tokens, subs := len(p.revoked.tokens), len(p.revoked.subs)
	_, collapsed := p.revoked.subs[testSubject]
	p.revoked.mu.RUnlock()
	if tokens > maxTokensPerSubject || !collapsed {
		t.Errorf("after ending a session of %d access tokens: %d token revocations, %d subject revocations (%s collapsed: %v); want at most %d tokens and the subject collapsed",
			refreshes+1, tokens, subs, testSubject, collapsed, maxTokensPerSubject)
	}
}

// TestRelayedWhileCheckedLeavesNoCacheEntry: a bearer check that began
// before this service relayed the same token as a refresh token (on this
// replica, or learned from another by a poll) must not leave it in the
// verified-token cache: relaying removes it from the cache, and a put
// racing that removal would bring it back, after which the cached path
// never asks the record again. The race is driven step by step through
// cacheAccess, the put that ends a check.
func TestRelayedWhileCheckedLeavesNoCacheEntry(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	if p.tokens == nil {
		t.Skip("this build has no verified-token cache (-tags tokencacheoff)")
	}
	tok := f.accessToken(map[string]any{"jti": "raced"})
	key := tokenKey(tok)
	c, err := p.verifyAccess(t.Context(), tok)
	if err != nil {
		t.Fatalf("verifyAccess: %v", err)
	}
	p.tokens.remove(key)

	epochs := p.cacheEpochs() // a check of tok begins
	now := time.Now()
	// Meanwhile it is relayed as a refresh token, as relay does it: recorded,
	// then dropped from the cache.
	if _, err := p.relayed.record(t.Context(), p.tenant.ID, []relayedToken{{key: key,
		relayedEntry: relayedEntry{session: 7, expires: now.Add(time.Hour).Unix(), class: classRefresh}}}, now); err != nil {
		t.Fatal(err)
	}
	p.tokens.remove(key)
	// The check ends with its put.
	err = p.cacheAccess(key, c, p.keys.Load().gen, now, epochs)
	var ve *verifyError
	if !errors.As(err, &ve) || ve.Reason != reasonTokenType {
		t.Errorf("cacheAccess after the token was relayed as a refresh token = %v; want a refusal for its kind", err)
	}
	if _, ok := p.cachedAccess(key); ok {
		t.Error("the relayed refresh token is in the verified-token cache")
	}
	checkRegister(t, "the raced token", a.register(tok), 401)
}
