package main

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// The refresh claim across stores: a failure is not kept (the next caller
// asks the IdP again), a claim whose holder died lapses after its lease,
// and /logout's forget drops a kept answer everywhere.
func TestSharedRefreshClaims(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		db := b.newDB(t)
		a, other := openBackendStore(t, db), openBackendStore(t, db)
		if !a.fl.shared {
			t.Skip("SQLite: sharedRefresh is the call itself (one process per database)")
		}
		ctx := context.Background()
		key := refreshKey("acme", "rt-1", "", "")
		calls := 0
		answer := func(tok string) func(context.Context) (*tokenResponse, error) {
			return func(context.Context) (*tokenResponse, error) {
				calls++
				return &tokenResponse{AccessToken: tok, TokenType: "Bearer"}, nil
			}
		}
		boom := errors.New("IdP said no")
		if _, err := a.sharedRefresh(ctx, key, time.Second, refreshReplayWindow, func(context.Context) (*tokenResponse, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Fatalf("a failing refresh = %v; want its error", err)
		}
		tr, err := other.sharedRefresh(ctx, key, time.Second, refreshReplayWindow, func(context.Context) (*tokenResponse, error) {
			calls++
			return &tokenResponse{AccessToken: "at-1", TokenType: "Bearer", sid: "idp-session", dpopNonce: "n-1"}, nil
		})
		if err != nil || tr.AccessToken != "at-1" || calls != 1 {
			t.Fatalf("after a failure, the other store = %+v, %v (%d calls); want a new call", tr, err, calls)
		}
		// Kept for the replay window: the first store gets it without a
		// call, with the sid the record of relayed tokens needs.
		tr, err = a.sharedRefresh(ctx, key, time.Second, refreshReplayWindow, answer("at-2"))
		if err != nil || tr.AccessToken != "at-1" || calls != 1 {
			t.Fatalf("replay on the first store = %+v, %v (%d calls); want at-1 and no call", tr, err, calls)
		}
		if tr.sid != "idp-session" || tr.dpopNonce != "n-1" {
			t.Errorf("the replayed answer lost its sid or DPoP nonce: %+v", tr)
		}
		// forget drops it: the next refresh calls the IdP.
		if err := a.forgetRefresh(ctx, key.token); err != nil {
			t.Fatal(err)
		}
		if tr, err = other.sharedRefresh(ctx, key, time.Second, refreshReplayWindow, answer("at-3")); err != nil || tr.AccessToken != "at-3" || calls != 2 {
			t.Fatalf("after forget = %+v, %v (%d calls); want a new call", tr, err, calls)
		}

		// A holder that dies: its claim lapses after the lease.
		dead := refreshKey("acme", "rt-dead", "", "")
		th, sh := dead.rowHashes()
		if claimed, _, err := a.claimRefresh(ctx, th, sh, 300*time.Millisecond); err != nil || !claimed {
			t.Fatalf("claim = %v, %v", claimed, err)
		}
		start := time.Now()
		tr, err = other.sharedRefresh(ctx, dead, time.Second, refreshReplayWindow, answer("at-after-lapse"))
		if err != nil || tr.AccessToken != "at-after-lapse" {
			t.Fatalf("after a lapsed claim = %+v, %v; want a call of its own", tr, err)
		}
		if waited := time.Since(start); waited < 200*time.Millisecond {
			t.Errorf("took over a live claim after %v; want it to wait for the lease", waited)
		}
	})
}

// Callers with proofs from different DPoP keys (or none) never share an
// answer across replicas: the tokens are bound to the key of the proof that
// got them. Callers with one key do.
func TestSharedRefreshByDPoPKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		db := b.newDB(t)
		a, other := openBackendStore(t, db), openBackendStore(t, db)
		if !a.fl.shared {
			t.Skip("SQLite: sharedRefresh is the call itself (one process per database)")
		}
		ctx := context.Background()
		calls := 0
		answer := func(tok string) func(context.Context) (*tokenResponse, error) {
			return func(context.Context) (*tokenResponse, error) {
				calls++
				return &tokenResponse{AccessToken: tok, TokenType: "DPoP"}, nil
			}
		}
		for i, tc := range []struct {
			store     *store
			jkt, want string
			calls     int
		}{
			{a, "key-1", "bound-1", 1},
			{other, "key-2", "bound-2", 2},
			{other, "", "unbound", 3},
			{other, "key-1", "bound-1", 3}, // the one key: the kept answer
		} {
			tr, err := tc.store.sharedRefresh(ctx, refreshKey("acme", "rt", "", tc.jkt), time.Second, refreshReplayWindow, answer(tc.want))
			if err != nil || tr.AccessToken != tc.want || calls != tc.calls {
				t.Errorf("refresh %d (jkt %q) = %+v, %v after %d IdP calls; want %s after %d", i, tc.jkt, tr, err, calls, tc.want, tc.calls)
			}
		}
	})
}

// pruneShortLived empties the short-lived tables of what expired, and
// keeps what is live.
func TestPruneShortLived(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		s := openBackendStore(t, b.newDB(t))
		if !s.fl.shared {
			t.Skip("SQLite keeps these in memory")
		}
		ctx := context.Background()
		now := time.Now()
		tr := &tokenResponse{AccessToken: "at", TokenType: "Bearer"}
		if _, err := s.sharedRefresh(ctx, refreshKey("acme", "rt", "", ""), time.Second, refreshReplayWindow, func(context.Context) (*tokenResponse, error) { return tr, nil }); err != nil {
			t.Fatal(err)
		}
		s.putHandoff(ctx, "acme", onceKeyOf("h"), handoff{tokens: tr, issued: now})
		s.loginAttempt(ctx, newLoginKey("acme", "bob", netip.MustParseAddr("192.0.2.1")), now)
		if err := s.pruneShortLived(ctx, now); err != nil {
			t.Fatal(err)
		}
		live := count(t, s, `SELECT count(*) FROM refresh_flights`) + count(t, s, `SELECT count(*) FROM handoffs`) + count(t, s, `SELECT count(*) FROM login_failures`)
		if live != 1+1+3 {
			t.Errorf("%d live rows after pruning at once; want 5 kept", live)
		}
		if err := s.pruneShortLived(ctx, now.Add(failWindow+time.Minute)); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"refresh_flights", "handoffs", "login_failures"} {
			if n := count(t, s, `SELECT count(*) FROM `+table); n != 0 {
				t.Errorf("%s: %d rows after everything expired; want 0", table, n)
			}
		}
	})
}
