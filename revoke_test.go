package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestLogoutAbandonedCallersStopRevoking is the review's reproduction: many
// /logout requests with made-up refresh tokens, abandoned by their callers
// while the IdP's revocation endpoint hangs. The calls they cause are
// bounded by the tenant's IdP cap, and end when the callers have gone.
func TestLogoutAbandonedCallersStopRevoking(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.set(func(f *fakeIDP) { f.revokeMode, f.slow = modeHang, time.Hour })
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	// Only the caller's going away may end these calls.
	a.srv.tenants[0].prov.revokeWait = time.Hour

	const callers = 3 * idpMaxInFlight
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			a.doFrom(ctx, "", "POST", "/v1/auth/logout", fmt.Sprintf("refresh_token=made-up-%d", i),
				"Content-Type", "application/x-www-form-urlencoded")
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.inFlight.Load() < idpMaxInFlight && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := f.revokeHits.Load(); got != idpMaxInFlight {
		t.Errorf("%d /logout callers at once made %d revocation calls in flight; want the tenant's cap, %d", callers, got, idpMaxInFlight)
	}
	cancel() // every caller goes away
	// Detached from their callers, the calls would hang on until the IdP
	// client's own response timeout (idpRequestTimeout); tied to them, they
	// end at once. The bound here is far from both.
	bound := idpRequestTimeout / 2
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatalf("/logout handlers still waiting on the IdP %v after their callers left", bound)
	}
	for end := time.Now().Add(bound); f.inFlight.Load() > 0 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := f.inFlight.Load(); n != 0 {
		t.Errorf("%d revocation calls still at the IdP after every caller left; want none", n)
	}
	if got := f.revokeHits.Load(); got > idpMaxInFlight {
		t.Errorf("abandoned /logout callers made %d revocation calls in all; want at most %d", got, idpMaxInFlight)
	}
}
