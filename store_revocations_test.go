package main

// The revocations and logout_tokens tables: stored, widened, replay refused,
// bounded, kept across a reopen, pruned.

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func TestStoreRevocations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rev.db")
	s := openTestStore(t, path)
	const now = 1_000_000
	sub := revocation{Kind: revokeSub, Value: "alice", IssuedBefore: now, ExpiresAt: now + 100}
	if err := s.addRevocations(ctx, "acme", &logoutJTI{"j1", now + 60}, 10, now, []revocation{sub}); err != nil {
		t.Fatalf("addRevocations: %v", err)
	}
	// The same jti again is a replay and stores nothing.
	other := revocation{Kind: revokeSID, Value: "s1", IssuedBefore: now, ExpiresAt: now + 100}
	if err := s.addRevocations(ctx, "acme", &logoutJTI{"j1", now + 60}, 10, now, []revocation{other}); !errors.Is(err, errReplayed) {
		t.Errorf("addRevocations with a used jti: err = %v; want errReplayed", err)
	}
	// The same jti at another tenant is another token.
	if err := s.addRevocations(ctx, "other", &logoutJTI{"j1", now + 60}, 10, now, nil); err != nil {
		t.Errorf("addRevocations, same jti at another tenant: %v", err)
	}
	// A later logout of the same subject widens the row; an earlier one
	// does not narrow it.
	wider := revocation{Kind: revokeSub, Value: "alice", IssuedBefore: now + 5, ExpiresAt: now + 200}
	narrower := revocation{Kind: revokeSub, Value: "alice", IssuedBefore: now - 5, ExpiresAt: now + 50}
	for _, r := range []revocation{wider, narrower} {
		if err := s.addRevocations(ctx, "acme", nil, 10, now, []revocation{r}); err != nil {
			t.Fatal(err)
		}
	}
	tok := revocation{Kind: revokeToken, Value: "ab12", ExpiresAt: now + 10}
	if err := s.addRevocations(ctx, "acme", nil, 10, now, []revocation{tok}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openTestStore(t, path)
	t.Cleanup(func() { s.Close() })
	live, _, err := s.liveRevocations(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]revocation{"sub": {"acme", revokeSub, "alice", now + 5, now + 200, ""}, "token": {"acme", revokeToken, "ab12", 0, now + 10, ""}}
	if len(live) != len(want) {
		t.Fatalf("after reopen: %d live revocations %+v; want %d", len(live), live, len(want))
	}
	for _, r := range live {
		if r != want[r.Kind] {
			t.Errorf("after reopen: %+v; want %+v", r, want[r.Kind])
		}
	}

	// Pruning at now+60 drops the token row and both jtis, not the subject.
	n, err := s.pruneRevocations(ctx, now+60)
	if err != nil || n != 3 {
		t.Errorf("pruneRevocations(now+60) = %d, %v; want 3 rows", n, err)
	}
	if live, _, _ := s.liveRevocations(ctx, 0); len(live) != 1 || live[0].Kind != revokeSub {
		t.Errorf("after pruning: %+v; want the subject's row alone", live)
	}
	// A pruned jti is no longer remembered (its token is refused by its iat).
	if err := s.addRevocations(ctx, "acme", &logoutJTI{"j1", now + 120}, 10, now+60, nil); err != nil {
		t.Errorf("jti after its row was pruned: %v", err)
	}
}

func TestStoreLogoutTokensBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "rev.db"))
	t.Cleanup(func() { s.Close() })
	const now, max = 1_000_000, 3
	for i, id := range []string{"a", "b", "c"} {
		if err := s.addRevocations(ctx, "acme", &logoutJTI{id, now + 60}, max, now, nil); err != nil {
			t.Fatalf("logout token %d of %d: %v", i+1, max, err)
		}
	}
	r := []revocation{{Kind: revokeSub, Value: "x", IssuedBefore: now, ExpiresAt: now + 100}}
	if err := s.addRevocations(ctx, "acme", &logoutJTI{"d", now + 60}, max, now, r); !errors.Is(err, errTooManyLogoutTokens) {
		t.Errorf("logout token over the bound: err = %v; want errTooManyLogoutTokens", err)
	}
	if live, _, _ := s.liveRevocations(ctx, 0); len(live) != 0 {
		t.Errorf("a refused logout token stored %+v", live)
	}
	if got := queryInt(t, s.r, `SELECT count(*) FROM logout_tokens`); got != max {
		t.Errorf("logout_tokens rows = %d; want %d", got, max)
	}
	// Once the remembered ones expire there is room again.
	if err := s.addRevocations(ctx, "acme", &logoutJTI{"d", now + 120}, max, now+60, r); err != nil {
		t.Errorf("logout token once the others expired: %v", err)
	}
}
