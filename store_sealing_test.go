package main

// What the store seals (refresh answers, handoffs) uses the sign-in keys:
// one replica opens what another sealed, across a rotation within the
// grace, never past it, never under other additional data, and never as a
// sign-in cookie.

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

func TestConformanceStoreSeal(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		db := b.newDB(t)
		a, other := openBackendStore(t, db), openBackendStore(t, db)
		clock := &testClock{}
		a.keys.now, other.keys.now = clock.now, clock.now

		v, err := a.seal(ctx, []byte("tokens"), []byte("handoff/acme/k"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := other.open(ctx, v, []byte("handoff/acme/k")); err != nil || string(got) != "tokens" {
			t.Fatalf("the other replica opens %q, %v; want what was sealed", got, err)
		}
		if n := count(t, a, `SELECT count(*) FROM signin_keys`); n != 1 {
			t.Errorf("%d sign-in keys after the first seal; want the one key both seal with", n)
		}
		changed := append([]byte(nil), v...)
		changed[len(changed)-1] ^= 1
		for name, tc := range map[string]struct{ sealed, ad []byte }{
			"other additional data": {v, []byte("handoff/other/k")},
			"changed":               {changed, []byte("handoff/acme/k")},
			"short":                 {v[:20], []byte("handoff/acme/k")},
		} {
			if _, err := other.open(ctx, tc.sealed, tc.ad); !errors.Is(err, errSealedBroken) {
				t.Errorf("%s: open = %v; want errSealedBroken", name, err)
			}
		}
		// A value the store sealed is no sign-in cookie, whatever the name.
		if _, err := other.keys.open(ctx, "", "handoff/acme/k", base64.RawURLEncoding.EncodeToString(v)); !errors.Is(err, errSealedCookie) {
			t.Errorf("a store-sealed value opened as a sign-in cookie: %v; want errSealedCookie", err)
		}
		// Nor is a cookie a store-sealed value.
		cookie, err := a.keys.seal(ctx, "acme", "sw_signin_x", &sealedSignIn{State: "s"})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(cookie)
		for _, ad := range []string{"", "sw_signin_x", "acme\x00sw_signin_x"} {
			if _, err := other.open(ctx, raw, []byte(ad)); !errors.Is(err, errSealedBroken) {
				t.Errorf("a sign-in cookie opened as a store-sealed value (ad %q): %v; want errSealedBroken", ad, err)
			}
		}

		// A rotation by the other replica: the old value still opens on
		// both within the grace, and the newest key seals.
		clock.advance(signInKeyRotation)
		w, err := other.seal(ctx, []byte("answer"), []byte("r"))
		if err != nil {
			t.Fatal(err)
		}
		if n := count(t, a, `SELECT count(*) FROM signin_keys`); n != 2 {
			t.Errorf("%d sign-in keys after a rotation; want 2", n)
		}
		clock.advance(signInKeyGrace - time.Minute)
		for name, s := range map[string]*store{"sealer": a, "rotator": other} {
			if got, err := s.open(ctx, v, []byte("handoff/acme/k")); err != nil || string(got) != "tokens" {
				t.Errorf("%s within the grace: %q, %v; want the old value", name, got, err)
			}
			if got, err := s.open(ctx, w, []byte("r")); err != nil || string(got) != "answer" {
				t.Errorf("%s: the new key's value: %q, %v", name, got, err)
			}
		}
		clock.advance(time.Minute)
		if _, err := a.open(ctx, v, []byte("handoff/acme/k")); !errors.Is(err, errSealedBroken) {
			t.Errorf("past the grace the old key opened: %v; want errSealedBroken", err)
		}
	})
}

// Everything the store seals lives shorter than the grace of a rotated key,
// so that a rotation never strands a handoff or a refresh answer.
func TestStoreSealedLifetimesWithinKeyGrace(t *testing.T) {
	for name, d := range map[string]time.Duration{"handoffTTL": handoffTTL, "refreshReplayWindow": refreshReplayWindow} {
		if d >= signInKeyGrace {
			t.Errorf("%s = %v; want less than signInKeyGrace (%v)", name, d, signInKeyGrace)
		}
	}
}

// There is one table of keys: the replicas' own sealing_keys is gone.
func TestConformanceOneKeyTable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storeBackend) {
		s := openBackendStore(t, b.newDB(t))
		q := `SELECT count(*) FROM sqlite_master WHERE name = 'sealing_keys'`
		if s.fl.name == "postgres" {
			q = `SELECT count(*) FROM information_schema.tables WHERE table_name = 'sealing_keys' AND table_schema = current_schema()`
		}
		if n := count(t, s, q); n != 0 {
			t.Errorf("a sealing_keys table exists; want the keys in signin_keys only")
		}
	})
}
