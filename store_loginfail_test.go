package main

import (
	"context"
	"encoding/hex"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// Password failures counted in the database add up across replicas: the
// limit for one (tenant, username, address) is reached after pairFailLimit
// attempts spread over two stores, not two times that; a success clears
// the pair; a refused attempt counts nothing.
func TestSharedLoginFailures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		db := b.newDB(t)
		stores := []*store{openBackendStore(t, db), openBackendStore(t, db)}
		ctx := context.Background()
		now := time.Unix(1_700_000_000, 0)
		k := newLoginKey("acme", "bob", netip.MustParseAddr("192.0.2.7"))
		for i := range pairFailLimit {
			v, err := stores[i%2].loginAttempt(ctx, k, now)
			if err != nil || v.refuse > 0 {
				t.Fatalf("attempt %d of %d = %+v, %v; want admitted", i+1, pairFailLimit, v, err)
			}
		}
		v, err := stores[1].loginAttempt(ctx, k, now)
		if err != nil || v.refuse <= 0 || v.refuse > failWindow {
			t.Fatalf("attempt %d over two stores = %+v, %v; want refused until the window ends", pairFailLimit+1, v, err)
		}
		if got := count(t, stores[0], `SELECT n FROM login_failures WHERE key = $1`, hexKey16(k.pair)); got != pairFailLimit {
			t.Errorf("pair count after a refusal = %d; want %d (a refused attempt counts nothing)", got, pairFailLimit)
		}
		// The window ends: admitted again.
		if v, err := stores[0].loginAttempt(ctx, k, now.Add(failWindow)); err != nil || v.refuse > 0 {
			t.Errorf("after the window = %+v, %v; want admitted", v, err)
		}
		if err := stores[1].loginSucceed(ctx, k); err != nil {
			t.Fatal(err)
		}
		if got := count(t, stores[0], `SELECT count(*) FROM login_failures WHERE key = $1`, hexKey16(k.pair)); got != 0 {
			t.Errorf("pair counters after a success = %d; want none", got)
		}
	})
}

// The shared counters are bounded: past max rows, pruning keeps at most max.
func TestSharedLoginFailuresBounded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		s := openBackendStore(t, b.newDB(t))
		ctx := context.Background()
		now := time.Unix(1_700_000_000, 0)
		for i := range 40 {
			k := newLoginKey("acme", "user-"+strconv.Itoa(i), netip.MustParseAddr("192.0.2.7"))
			if _, _, err := s.loginAttemptTx(ctx, k, now); err != nil {
				t.Fatal(err)
			}
		}
		const max = 20
		if err := s.pruneLoginFailures(ctx, now, max); err != nil {
			t.Fatal(err)
		}
		if got := count(t, s, `SELECT count(*) FROM login_failures`); got > max {
			t.Errorf("%d counters after pruning to %d", got, max)
		}
	})
}

func hexKey16(k counterKey) string { return hex.EncodeToString(k[:]) }
