package main

// Several processes on one database behave as one service: what one
// replica revokes, every other refuses within 2 s, tokens it holds in its
// cache included. Each backend of the conformance suite runs it (SQLite:
// two processes on one file; PostgreSQL: two replicas).

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// startReplicas starts n in-process services on one database.
func startReplicas(t *testing.T, f *fakeIDP, db string, n int) []*testApp {
	t.Helper()
	apps := make([]*testApp, n)
	for i := range apps {
		apps[i] = startTestApp(t, &config{Tenants: []tenantConfig{f.tenantConfig()}}, db, true)
	}
	return apps
}

// refusedWithin waits until every app refuses token on /register, failing
// the test if one still accepts it after d.
func refusedWithin(t *testing.T, step string, apps []*testApp, token string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for i, a := range apps {
		for {
			w := a.register(token)
			if w.Code == 401 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: replica %d still answers %d to the revoked token %v after the revocation", step, i, w.Code, d)
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
}

func TestReplicasShareRevocations(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		f := newFakeIDP(t)
		apps := startReplicas(t, f, b.newDB(t), 3)
		bySID := f.accessToken(map[string]any{"sid": "sess-r"})
		byToken := f.accessToken(map[string]any{"sub": "bob"})
		other := f.accessToken(map[string]any{"sub": "carol", "sid": "sess-c"})
		for i, a := range apps {
			// Verified and cached on every replica before the logouts.
			checkRegister(t, "before, replica "+strconv.Itoa(i), a.register(bySID), 200)
			checkRegister(t, "before, replica "+strconv.Itoa(i), a.register(byToken), 200)
			checkRegister(t, "before, replica "+strconv.Itoa(i), a.register(other), 200)
		}

		// A back-channel logout of the session on replica 0.
		lt := f.logoutToken(map[string]any{"sid": "sess-r", "sub": nil})
		bcCheck(t, "logout of sess-r", apps[0].backchannel(lt), 200, "")
		refusedWithin(t, "back-channel logout", apps, bySID, 2*time.Second)
		// The same logout token sent to another replica is a replay.
		bcCheck(t, "the same logout token on replica 2", apps[2].backchannel(lt), 400, "SW_BAD_REQUEST")

		// /logout of one token on replica 1.
		if w := apps[1].logout("", byToken); w.Code != 200 {
			t.Fatalf("POST /v1/auth/logout on replica 1 = %d %s", w.Code, w.Body)
		}
		refusedWithin(t, "/logout", apps, byToken, 2*time.Second)

		for i, a := range apps {
			checkRegister(t, "a token nobody revoked, replica "+strconv.Itoa(i), a.register(other), 200)
		}
	})
}

// Concurrent refreshes with one token spread over three replicas make one
// IdP call, and every caller gets its answer; the answer kept for the
// replay window is sealed in the database, never in clear. SQLite is one
// box: replicas on one file are not a supported deployment for refresh, and
// the test says so instead of running.
func TestReplicasShareRefresh(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		f := newFakeIDP(t)
		apps := startReplicas(t, f, b.newDB(t), 3)
		if !apps[0].store.fl.shared {
			t.Skip("SQLite: one process per database; its own single flight covers refresh (TestRefreshConcurrentRotation)")
		}
		f.set(func(f *fakeIDP) { f.tokenMode, f.slow = modeSlow, 300*time.Millisecond })
		const n = 50
		var wg sync.WaitGroup
		start := make(chan struct{})
		answers := make([]string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				w := apps[i%3].do("POST", "/v1/auth/refresh", "refresh_token=rt-good")
				if w.Code != 200 {
					t.Errorf("refresh %d on replica %d = %d %s", i, i%3, w.Code, w.Body)
					return
				}
				answers[i], _ = decode(t, w).Data["access_token"].(string)
			}()
		}
		close(start)
		wg.Wait()
		if got := f.tokenHits.Load(); got != 1 {
			t.Errorf("%d concurrent refreshes of one token over 3 replicas made %d IdP calls; want 1", n, got)
		}
		for i, a := range answers {
			if a == "" || a != answers[0] {
				t.Fatalf("caller %d got access token %.12q…, caller 0 %.12q…; want the one answer", i, a, answers[0])
			}
		}
		var sealed []byte
		if err := apps[0].store.r.QueryRow(`SELECT answer FROM refresh_flights`).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed, []byte(answers[0])) || bytes.Contains(sealed, []byte("access_token")) {
			t.Error("the refresh answer kept in the database is in clear")
		}
	})
}

// A browser sign-in goes through three replicas: /authorize on one, the
// IdP's callback on another (the pending sign-in is in the browser's
// cookie, sealed with the keys in the database), the handoff redeemed on a
// third, once: every replica refuses it after. The tokens wait sealed in
// the database.
func TestReplicasShareHandoffs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		f := newFakeIDP(t)
		apps := startReplicas(t, f, b.newDB(t), 3)
		if !apps[0].store.fl.shared {
			t.Skip("SQLite: one process per database; handoffs stay in its memory (TestHandoffRedeemedOnce)")
		}
		h := siHandoff(t, siCallback(t, apps[1], f, siBegin(t, apps[0], "/v1/auth/authorize")), testReturnTo)
		var sealed []byte
		if err := apps[0].store.r.QueryRow(`SELECT sealed FROM handoffs`).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed, []byte("access_token")) || bytes.Contains(sealed, []byte("eyJ")) {
			t.Error("the handoff kept in the database is in clear")
		}
		w := apps[2].do("POST", "/v1/auth/login", "handoff="+h)
		if tokCheck(t, "/v1/auth/login", "handoff on a third replica", w, 200, "") {
			tokCheckTokens(t, "/v1/auth/login", "handoff on a third replica", w)
		}
		for i, a := range apps {
			tokCheck(t, "/v1/auth/login", "handoff again on replica "+strconv.Itoa(i), a.do("POST", "/v1/auth/login", "handoff="+h), 401, "SW_AUTH_OIDC_FAILED")
		}
	})
}

// Wrong passwords spread over three replicas count as one: the
// (tenant, username, address) limit is reached after pairFailLimit of them
// in all, not three times that.
func TestReplicasSharePasswordLimits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		f := newFakeIDP(t)
		apps := startReplicas(t, f, b.newDB(t), 3)
		if !apps[0].store.fl.shared {
			t.Skip("SQLite: one process per database; its limiter counts in memory (ratelimit_test.go)")
		}
		const from = "198.51.100.9:4000"
		for i := range pairFailLimit {
			w := apps[i%3].doFrom(t.Context(), from, "POST", "/v1/auth/token", tokWrongPassword)
			tokCheck(t, "/v1/auth/token", "wrong password "+strconv.Itoa(i+1), w, 401, "SW_AUTH_INVALID_CREDENTIALS")
		}
		for i, a := range apps {
			w := a.doFrom(t.Context(), from, "POST", "/v1/auth/token", tokWrongPassword)
			tokCheck(t, "/v1/auth/token", "one more wrong password, replica "+strconv.Itoa(i), w, 429, "SW_RATE_LIMITED")
		}
	})
}

// A DPoP proof accepted by one replica is refused when replayed to
// another: the replay cache is shared through the database.
func TestReplicasShareDPoPReplays(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		f := newFakeIDP(t)
		apps := startReplicas(t, f, b.newDB(t), 3)
		if !apps[0].store.fl.shared {
			t.Skip("SQLite: one process per database; its replay cache is in memory (TestDPoPReplayedProofRefused)")
		}
		key := newDPoPKey(t, jose.ES256)
		tok := f.boundToken(key)
		proof := key.proof(t, "POST", dpopTestURL, tok)
		if w := apps[0].dpopRegister(tok, proof); w.Code != 200 {
			t.Fatalf("first use on replica 0 = %d %s; want 200", w.Code, w.Body)
		}
		for i, a := range apps[1:] {
			w := a.dpopRegister(tok, proof)
			if w.Code != 401 || !strings.Contains(challenges(w), `error="invalid_dpop_proof"`) {
				t.Errorf("the proof replayed to replica %d = %d %q; want 401 invalid_dpop_proof", i+1, w.Code, challenges(w))
			}
		}
		if w := apps[2].dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok)); w.Code != 200 {
			t.Errorf("a fresh proof on replica 2 = %d %s; want 200", w.Code, w.Body)
		}
	})
}

// With server nonces required, a nonce one replica gives is accepted by
// another: the client is not sent from nonce to nonce by a load balancer.
// A nonce made up, or another tenant's, is not.
func TestReplicasShareDPoPNonces(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		f := newFakeIDP(t)
		tc := f.tenantConfig()
		tc.AccessTokens.DPoPNonce = true
		db := b.newDB(t)
		apps := make([]*testApp, 2)
		for i := range apps {
			apps[i] = startTestApp(t, &config{Tenants: []tenantConfig{tc}}, db, true)
		}
		if !apps[0].store.fl.shared {
			t.Skip("SQLite: one process per database; its nonces are its own (TestDPoPServerNonce)")
		}
		key := newDPoPKey(t, jose.ES256)
		tok := f.boundToken(key, map[string]any{"exp": time.Now().Add(time.Hour).Unix()})
		w := apps[0].dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok))
		nonce := w.Header().Get("DPoP-Nonce")
		if w.Code != 401 || nonce == "" {
			t.Fatalf("proof without nonce on replica 0 = %d, nonce %q; want 401 with a DPoP-Nonce", w.Code, nonce)
		}
		if w := apps[1].dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok, map[string]any{"nonce": nonce})); w.Code != 200 {
			t.Errorf("replica 0's nonce on replica 1 = %d %q; want 200", w.Code, challenges(w))
		}
		forged := []byte(nonce)
		forged[len(forged)-2] ^= 1
		if w := apps[1].dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok, map[string]any{"nonce": string(forged)})); w.Code != 401 {
			t.Errorf("a changed nonce on replica 1 = %d; want 401", w.Code)
		}
		other := apps[1].srv.tenants[0].prov.dpop
		saved := other.tenantID
		other.tenantID = "another-tenant"
		defer func() { other.tenantID = saved }()
		if other.validNonce(t.Context(), nonce, time.Now()) {
			t.Error("a nonce of tenant acme passed for another tenant")
		}
	})
}
