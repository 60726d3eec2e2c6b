package main

// The per-tenant cap on calls in flight to the IdP, and the cancellation of
// calls nobody waits for any more: the refresh fan-out of the attack review
// (issue 9, item 8).

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// idpTransport is the tenant's limited transport, for tests that look at
// or shorten its queue.
func (a *testApp) idpTransport(i int) *limitedTransport {
	return a.srv.tenants[i].prov.client.Transport.(*limitedTransport)
}

// waitUntil polls cond every 10 ms until it holds or d passes, and reports
// whether it held.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// TestRefreshFanOutIsCappedAndCancelled performs the attack: 300 refreshes
// with random tokens against an IdP that never answers, each caller giving
// up after 0.3 s. The IdP must never see more than the cap in flight, and
// every call that reached it must be cancelled once its caller left, not
// held open until the IdP timeout.
func TestRefreshFanOutIsCappedAndCancelled(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	f.set(func(f *fakeIDP) { f.tokenMode, f.slow = modeHang, time.Minute })
	p := a.srv.tenants[0].prov

	const n = 300
	var wg sync.WaitGroup
	statuses := make([]int, n)
	deadline := time.Now().Add(300 * time.Millisecond)
	maxSeen := f.maxBefore(deadline)
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			defer cancel()
			w := a.doFrom(ctx, "", "POST", "/v1/auth/refresh", fmt.Sprintf("refresh_token=random-%d", i))
			statuses[i] = w.Code
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st == 200 {
			t.Fatalf("abandoned POST /v1/auth/refresh #%d = 200; want it to fail", i)
		}
	}
	max := <-maxSeen
	if max > idpMaxInFlight {
		t.Errorf("the IdP saw %d requests in flight at once; want at most the cap, %d", max, idpMaxInFlight)
	}
	t.Logf("%d refresh calls reached the IdP, at most %d at once before the callers left, %d counting the cancellations", f.tokenHits.Load(), max, f.maxInFlight.Load())
	if f.tokenHits.Load() == 0 {
		t.Fatal("no refresh reached the IdP: the test proves nothing")
	}
	// The calls whose callers left are cancelled, not held for a minute.
	if !waitUntil(5*time.Second, func() bool { return f.inFlight.Load() == 0 }) {
		t.Errorf("5 s after every caller left, the IdP still has %d requests open; want them cancelled", f.inFlight.Load())
	}
	if c, h := f.cancelled.Load(), f.tokenHits.Load(); c != h {
		t.Errorf("the IdP saw %d of %d refresh calls cancelled; want all", c, h)
	}
	if !waitUntil(time.Second, func() bool { return a.idpTransport(0).inFlight.Load() == 0 && p.refresh.len() == 0 }) {
		t.Errorf("after the flood: %d places held at the transport, %d refresh flights in memory; want 0 and 0",
			a.idpTransport(0).inFlight.Load(), p.refresh.len())
	}
}

// TestIdPQueueWaitIsBounded: with the cap reached by calls that are still
// wanted, a further call waits for a place no longer than the queue wait,
// then gets 503 with Retry-After.
func TestIdPQueueWaitIsBounded(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	a.idpTransport(0).wait = 100 * time.Millisecond
	f.set(func(f *fakeIDP) { f.tokenMode, f.slow = modeHang, time.Minute })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range idpMaxInFlight {
		wg.Go(func() { a.doFrom(ctx, "", "POST", "/v1/auth/refresh", fmt.Sprintf("refresh_token=held-%d", i)) })
	}
	if !waitUntil(5*time.Second, func() bool { return f.inFlight.Load() == idpMaxInFlight }) {
		t.Fatalf("the IdP has %d calls in flight; want the cap, %d", f.inFlight.Load(), idpMaxInFlight)
	}
	w := a.do("POST", "/v1/auth/refresh", "refresh_token=one-too-many")
	if tokCheck(t, "/v1/auth/refresh", "cap reached", w, 503, "SW_AUTH_IDP_UNAVAILABLE") {
		tokCheckRetryAfter(t, "/v1/auth/refresh", "cap reached", w)
	}
	if got := f.maxInFlight.Load(); got > idpMaxInFlight {
		t.Errorf("the IdP saw %d calls in flight; want at most %d", got, idpMaxInFlight)
	}
}
