package main

// Several processes on one database behave as one service: what one
// replica revokes, every other refuses within 2 s, tokens it holds in its
// cache included. Each backend of the conformance suite runs it (SQLite:
// two processes on one file; PostgreSQL: two replicas).

import (
	"strconv"
	"testing"
	"time"
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
		bcCheck(t, "logout of sess-r", apps[0].backchannel(f.logoutToken(map[string]any{"sid": "sess-r", "sub": nil})), 200, "")
		refusedWithin(t, "back-channel logout", apps, bySID, 2*time.Second)
		// The same logout token sent to another replica is a replay.
		// (Its jti is shared: see TestConformanceRevocations.)

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
