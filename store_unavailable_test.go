package main

// A database the store cannot reach: what needs it answers 503
// SW_STORE_UNAVAILABLE with Retry-After, /readyz turns 503, and what does
// not need it (a participant already cached) goes on answering. With
// PostgreSQL the server is really stopped and started again
// (TestPostgresDownAndBack); here the store's flavor is told that every
// error means "unreachable" and its connections are closed under it.

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

func TestStoreUnavailableIs503(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestAppUnreachable(t, f)
	known := f.accessToken(map[string]any{"sub": "known"})
	checkRegister(t, "before", a.register(known), 200)

	a.broken.Store(true)
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

// unreachableApp is a testApp whose store takes every error for an
// unreachable database once broken is set.
type unreachableApp struct {
	*testApp
	broken *atomic.Bool
}

// newTestAppUnreachable builds the service as startTestApp does, with the
// store's flavor told (before its goroutines start) to ask broken.
func newTestAppUnreachable(t *testing.T, f *fakeIDP) unreachableApp {
	t.Helper()
	cfg := &config{Tenants: []tenantConfig{f.tenantConfig()}}
	if err := cfg.validate(noEnv); err != nil {
		t.Fatal(err)
	}
	broken := &atomic.Bool{}
	st, err := openStore(context.Background(), t.TempDir()+"/test.db", func(s *store) {
		s.fl.unavailable = func(error) bool { return broken.Load() }
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)), newMetrics(), nil)
	if err := srv.loadRevocations(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.startProviders(ctx)
	a := &testApp{t: t, srv: srv, store: st, cancel: cancel, logs: &syncBuffer{}, logLevel: &slog.LevelVar{}}
	t.Cleanup(a.stop)
	a.waitReady(5 * time.Second)
	return unreachableApp{a, broken}
}
