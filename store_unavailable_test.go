package main

// A database the store cannot reach: what needs it answers 503
// SW_STORE_UNAVAILABLE with Retry-After, /readyz turns 503, and what does
// not need it (a participant already cached) goes on answering. With
// PostgreSQL the server is really stopped and started again
// (TestPostgresDownAndBack); here the store's flavor is told that every
// error means "unreachable" and its connections are closed under it.

import (
	"testing"
	"time"
)

func TestStoreUnavailableIs503(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	known := f.accessToken(map[string]any{"sub": "known"})
	checkRegister(t, "before", a.register(known), 200)

	a.store.fl.unavailable = func(error) bool { return true }
	a.store.r.Close()
	a.store.w.Close()

	w := a.register(f.accessToken(map[string]any{"sub": "newcomer"}))
	tokCheck(t, "/v1/auth/register", "new person, database gone", w, 503, "SW_STORE_UNAVAILABLE")
	if ra := w.Header().Get("Retry-After"); ra == "" {
		t.Error("503 SW_STORE_UNAVAILABLE without Retry-After")
	}
	// The cached path does not touch the database.
	checkRegister(t, "known person, database gone", a.register(known), 200)

	deadline := time.Now().Add(3 * time.Second)
	for {
		w := a.do("GET", "/readyz", "")
		if w.Code == 503 && code(t, w) == "SW_STORE_UNAVAILABLE" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz 3 s after the database went = %d %s; want 503 SW_STORE_UNAVAILABLE", w.Code, w.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
