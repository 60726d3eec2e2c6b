package main

// The record of relayed tokens across replicas: a refresh or ID token one
// replica passed on is refused as a bearer by every other within 2 s, also
// one that a replica had verified and cached before it learned the kind;
// /logout on one replica ends the session on all, its refresh token
// included; a refresh on one replica of a token relayed on another joins
// its session. Each backend runs it (SQLite: processes on one file).

import (
	"net/url"
	"strconv"
	"testing"
	"time"
)

// refreshRefusedWithin waits until every app refuses rt on /refresh without
// asking the IdP, failing the test if one still honours it after d.
func refreshRefusedWithin(t *testing.T, step string, apps []*testApp, f *fakeIDP, rt string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for i, a := range apps {
		for {
			hits := f.tokenHits.Load()
			w := a.do("POST", "/v1/auth/refresh", url.Values{"refresh_token": {rt}}.Encode())
			if w.Code == 401 && code(t, w) == "SW_AUTH_REFRESH_FAILED" && f.tokenHits.Load() == hits {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: replica %d still answers %d to the signed-out refresh token %v after /logout", step, i, w.Code, d)
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
}

func TestReplicasShareRelayedTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		f := newFakeIDP(t)
		answers := relayingIDP(t, f)
		apps := startReplicas(t, f, b.newDB(t), 3)
		login := func(a *testApp) map[string]any {
			t.Helper()
			w := a.do("POST", "/v1/auth/token", "grant_type=password&username=alice&password=alice-pw")
			tokCheck(t, "/v1/auth/token", "sign-in", w, 200, "")
			return decode(t, w).Data
		}

		s1 := login(apps[0])
		at1, rt1, id1 := tokenOf(s1, "access_token"), tokenOf(s1, "refresh_token"), tokenOf(s1, "id_token")
		if at1 != tokenOf(answers()[0], "access_token") {
			t.Fatal("the sign-in did not pass on the IdP's answer")
		}
		// At once on the others: each may verify and cache them as bearers
		// before it learns what they are; that must not outlive the poll.
		for _, a := range apps[1:] {
			a.register(id1)
			a.register(rt1)
		}
		refusedWithin(t, "an ID token relayed on replica 0", apps, id1, 2*time.Second)
		refusedWithin(t, "a refresh token relayed on replica 0", apps, rt1, 2*time.Second)
		for i, a := range apps {
			checkRegister(t, "the session's access token, replica "+strconv.Itoa(i), a.register(at1), 200)
		}

		// /logout on replica 1 with the access token relayed on replica 0
		// ends the session everywhere: its access token, and its refresh
		// token at /refresh (this IdP cannot revoke it).
		if w := apps[1].logout("", at1); w.Code != 200 {
			t.Fatalf("POST /v1/auth/logout on replica 1 = %d %s", w.Code, w.Body)
		}
		refusedWithin(t, "/logout on replica 1", apps, at1, 2*time.Second)
		refreshRefusedWithin(t, "/logout on replica 1", apps, f, rt1, 2*time.Second)

		// A refresh on replica 2 of a refresh token replica 0 relayed a
		// moment ago joins its session: /logout with the refreshed access
		// token on replica 1 ends the first access token too. (SQLite: one
		// process per database for refresh, as TestReplicasShareRefresh.)
		if !apps[0].store.fl.shared {
			return
		}
		s2 := login(apps[0])
		at2, rt2 := tokenOf(s2, "access_token"), tokenOf(s2, "refresh_token")
		w := apps[2].do("POST", "/v1/auth/refresh", url.Values{"refresh_token": {rt2}}.Encode())
		tokCheck(t, "/v1/auth/refresh", "on replica 2, of replica 0's refresh token", w, 200, "")
		at3 := tokenOf(decode(t, w).Data, "access_token")
		refusedWithin(t, "the refreshed refresh token", apps, tokenOf(decode(t, w).Data, "refresh_token"), 2*time.Second)
		if w := apps[1].logout("", at3); w.Code != 200 {
			t.Fatalf("POST /v1/auth/logout on replica 1 = %d %s", w.Code, w.Body)
		}
		refusedWithin(t, "the first access token of a session refreshed on another replica", apps, at2, 2*time.Second)
	})
}

// A browser sign-in over three replicas whose ID token names the IdP's
// session (sid): the handoff carries the sid from the callback's replica to
// the redeeming one, every replica learns the session, and a back-channel
// logout naming only that sid, sent to yet another replica, ends it on all:
// the access token (which names no sid, as Hydra's) and the refresh token.
func TestReplicasBackchannelLogoutBySID(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		f := newFakeIDP(t)
		apps := startReplicas(t, f, b.newDB(t), 3)
		if !apps[0].store.fl.shared {
			t.Skip("SQLite: one process per database; handoffs stay in its memory")
		}
		f.set(func(f *fakeIDP) { f.codeIDMods = map[string]any{"sid": "browser-sid"} })
		h := siHandoff(t, siCallback(t, apps[1], f, siBegin(t, apps[1], "/v1/auth/authorize")), testReturnTo)
		w := apps[2].do("POST", "/v1/auth/login", "handoff="+h)
		if !tokCheck(t, "/v1/auth/login", "handoff on replica 2", w, 200, "") {
			return
		}
		d := decode(t, w).Data
		at, rt := tokenOf(d, "access_token"), tokenOf(d, "refresh_token")
		for i, a := range apps {
			checkRegister(t, "the sign-in's access token, replica "+strconv.Itoa(i), a.register(at), 200)
		}
		// Replica 0 knows the session once it has polled the record.
		deadline := time.Now().Add(2 * time.Second)
		for {
			if _, ok := apps[0].srv.tenants[0].prov.relayed.lookup(tokenKey(at)); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("replica 0 did not learn the session relayed on replica 2 within 2 s")
			}
			time.Sleep(25 * time.Millisecond)
		}
		bcCheck(t, "Hydra's logout token for the sign-in's sid, on replica 0", apps[0].backchannel(hydraLogoutToken(t, f, "browser-sid")), 200, "")
		refusedWithin(t, "back-channel logout by sid on replica 0", apps, at, 2*time.Second)
		if rt != "" {
			refreshRefusedWithin(t, "back-channel logout by sid on replica 0", apps, f, rt, 2*time.Second)
		}
	})
}
