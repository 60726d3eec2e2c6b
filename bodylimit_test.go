package main

// Request bodies: how they are read, and the budget of bodies in flight.

import (
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

// TestReadBodyOneBuffer: a body of declared length is read into a buffer
// of exactly that length; one that ends early is an error, not a shorter
// body.
func TestReadBodyOneBuffer(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 4 << 10, maxBodyBytes} {
		r := httptest.NewRequest("POST", "/", iotest.HalfReader(strings.NewReader(strings.Repeat("a", n))))
		r.ContentLength = int64(n)
		b, err := readBody(httptest.NewRecorder(), r)
		if err != nil || len(b) != n || cap(b) != n {
			t.Errorf("readBody (Content-Length %d) = %d bytes in a buffer of %d, %v; want %d in %d, nil", n, len(b), cap(b), err, n, n)
		}
	}
	r := httptest.NewRequest("POST", "/", strings.NewReader("short"))
	r.ContentLength = 100
	if b, err := readBody(httptest.NewRecorder(), r); err == nil {
		t.Errorf("readBody (5 of 100 declared bytes) = %q, nil; want an error", b)
	}
	r = httptest.NewRequest("POST", "/", iotest.OneByteReader(strings.NewReader("grant_type=password")))
	r.ContentLength = -1
	if b, err := readBody(httptest.NewRecorder(), r); err != nil || string(b) != "grant_type=password" {
		t.Errorf("readBody (unknown length) = %q, %v; want the body", b, err)
	}
}

func TestBodyReservation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		contentLength, want int64
	}{
		{0, 0},
		{100, 0},
		{smallBodyBytes, 0},
		{smallBodyBytes + 1, smallBodyBytes + 1},
		{maxBodyBytes, maxBodyBytes},
		{maxBodyBytes + 1, 0}, // refused unread, with 413
		{-1, maxBodyBytes},    // unknown length: the most it may be
	} {
		r := httptest.NewRequest("POST", "/", nil)
		r.ContentLength = tc.contentLength
		if got := bodyReservation(r); got != tc.want {
			t.Errorf("bodyReservation (Content-Length %d) = %d; want %d", tc.contentLength, got, tc.want)
		}
	}
}

// TestBodyBudgetNeverOvercommits: however reservations race, the bytes
// reserved never exceed the budget, and releasing them all empties it.
func TestBodyBudgetNeverOvercommits(t *testing.T) {
	t.Parallel()
	const limit = 10 * maxBodyBytes
	b := newBodyBudget(limit)
	var over atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				n := int64(smallBodyBytes + (g*7919+i*104729)%(maxBodyBytes-smallBodyBytes))
				if b.reserve(n) {
					if u := b.used.Load(); u > limit {
						over.Store(u)
					}
					b.release(n)
				}
			}
		})
	}
	wg.Wait()
	if u := over.Load(); u != 0 {
		t.Errorf("the budget of %d bytes had %d reserved", limit, u)
	}
	if u := b.used.Load(); u != 0 {
		t.Errorf("after every release the budget has %d bytes reserved; want 0", u)
	}
}

// TestBodyBudgetRefusesLargeBodies: with the budget taken, a large body is
// refused before any handler reads it, and a small one is not.
func TestBodyBudgetRefusesLargeBodies(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	if a.srv.bodies.max != defaultMaxBodyBytesInFlight {
		t.Errorf("budget of bodies in flight = %d; want the default, %d", a.srv.bodies.max, defaultMaxBodyBytesInFlight)
	}
	if !a.srv.bodies.reserve(a.srv.bodies.max) {
		t.Fatal("could not take the whole budget")
	}
	large := "grant_type=password&username=alice&password=" + strings.Repeat("x", smallBodyBytes)
	for _, path := range []string{"/v1/auth/login", "/v1/auth/token", "/v1/auth/refresh", "/v1/auth/register"} {
		w := a.do("POST", path, large)
		if tokCheck(t, path, "large body, budget taken", w, 429, "SW_RATE_LIMITED") {
			tokCheckRetryAfter(t, path, "large body, budget taken", w)
			if c := w.Header().Get("Connection"); c != "close" {
				t.Errorf("POST %s (large body, budget taken): Connection %q; want close", path, c)
			}
		}
	}
	if n := f.tokenHits.Load(); n != 0 {
		t.Errorf("refused bodies reached the IdP %d times", n)
	}
	w := a.do("POST", "/v1/auth/token", tokRightPassword)
	tokCheck(t, "/v1/auth/token", "small body, budget taken", w, 200, "")
	a.srv.bodies.release(a.srv.bodies.max)
	w = a.do("POST", "/v1/auth/token", large)
	tokCheck(t, "/v1/auth/token", "large body, budget free", w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	if u := a.srv.bodies.used.Load(); u != 0 {
		t.Errorf("after the requests the budget has %d bytes reserved; want 0", u)
	}
}

// TestBodyBudgetHoldsSlowBodies sends more slow large bodies than the
// budget holds, over real connections to the service's handler: those past
// it are refused while the others stall, and the budget is full, not over.
func TestBodyBudgetHoldsSlowBodies(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := startTestApp(t, &config{MaxBodyBytesInFlight: 3 * maxBodyBytes, Tenants: []tenantConfig{f.tenantConfig()}}, t.TempDir()+"/test.db", true)
	srv := httptest.NewServer(a.srv)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	const n = 8
	answered := make(chan int, n)
	for range n {
		c := slowRequest(t, addr, "/v1/auth/token", maxBodyBytes, 2000)
		go func() {
			if resp, err := readAnswer(c, time.Minute); err == nil {
				answered <- resp.StatusCode
			}
		}()
	}
	for range n - 3 {
		select {
		case s := <-answered:
			if s != 429 {
				t.Errorf("a large body past the budget = %d; want 429", s)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("fewer than %d of %d large bodies were refused; want all but the %d the budget holds", n-3, n, 3)
		}
	}
	if u := a.srv.bodies.used.Load(); u != 3*maxBodyBytes {
		t.Errorf("with 3 large bodies stalled the budget has %d bytes reserved; want %d", u, 3*maxBodyBytes)
	}
	srv.CloseClientConnections()
	deadline := time.Now().Add(5 * time.Second)
	for a.srv.bodies.used.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the clients left the budget has %d bytes reserved; want 0", a.srv.bodies.used.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
