package main

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// Handoffs in the database: taken once whichever store asks, not after
// their time, and bounded per tenant.
func TestStoreHandoffs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		db := b.newDB(t)
		a, other := openBackendStore(t, db), openBackendStore(t, db)
		ctx := context.Background()
		now := time.Now()
		tr := &tokenResponse{AccessToken: "at-1", TokenType: "Bearer", ExpiresIn: 300, sid: "idp-session", dpopNonce: "n-1"}
		key := onceKeyOf("handoff-1")
		if err := a.putHandoff(ctx, "acme", key, handoff{tokens: tr, challenge: "ch", issued: now}); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := other.takeHandoff(ctx, "other-tenant", key, now); ok || err != nil {
			t.Errorf("another tenant took the handoff: %v, %v", ok, err)
		}
		got, ok, err := other.takeHandoff(ctx, "acme", key, now)
		if err != nil || !ok || got.tokens.AccessToken != "at-1" || got.challenge != "ch" || got.issued.UnixMilli() != now.UnixMilli() {
			t.Fatalf("take on the other store = %+v, %v, %v", got, ok, err)
		}
		// What the replica relaying the tokens needs beside the IdP's JSON:
		// the sid, for a back-channel logout by sid to find the session.
		if got.tokens.sid != "idp-session" || got.tokens.dpopNonce != "n-1" {
			t.Errorf("the handoff's tokens lost sid %q or DPoP nonce %q on the way: %+v", tr.sid, tr.dpopNonce, got.tokens)
		}
		if _, ok, _ := a.takeHandoff(ctx, "acme", key, now); ok {
			t.Error("a handoff taken twice")
		}
		late := onceKeyOf("handoff-late")
		a.putHandoff(ctx, "acme", late, handoff{tokens: tr, issued: now})
		if _, ok, _ := a.takeHandoff(ctx, "acme", late, now.Add(handoffTTL)); ok {
			t.Error("a handoff taken at its ttl")
		}
		for i := range 30 {
			a.putHandoff(ctx, "acme", onceKeyOf("h-"+strconv.Itoa(i)), handoff{tokens: tr, issued: now})
		}
		if err := a.pruneHandoffs(ctx, "acme", now, 10); err != nil {
			t.Fatal(err)
		}
		if n := count(t, a, `SELECT count(*) FROM handoffs WHERE tenant_id = $1`, "acme"); n != 10 {
			t.Errorf("%d handoffs after pruning to 10", n)
		}
	})
}
