package main

// The sealed pending sign-in: keys kept in the database and rotated, the
// grace an old key keeps, and the binding to tenant and cookie name.

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"
)

// TestSignInKeyRotation: a cookie sealed just before a rotation still
// finishes its sign-in 9 minutes later, under the previous key.
func TestSignInKeyRotation(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	clock := &testClock{}
	a.srv.browser.setClock(clock.now)
	ctx := context.Background()

	siBegin(t, a, "/v1/auth/authorize") // makes the first key
	first, _, err := a.srv.browser.sealer.sealingKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock.advance(signInKeyRotation - time.Minute)
	old := siBegin(t, a, "/v1/auth/authorize")
	clock.advance(time.Minute)
	siBegin(t, a, "/v1/auth/authorize") // rotates
	second, _, err := a.srv.browser.sealer.sealingKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID == first.ID {
		t.Fatalf("after %v the sealing key is still key %d; want a new one", signInKeyRotation, first.ID)
	}
	clock.advance(8 * time.Minute)
	siHandoff(t, siCallback(t, a, f, old), testReturnTo)
}

// TestSignInKeyGrace: past signInKeyGrace after the next key was made, the
// previous key opens nothing, even a cookie whose own time is not up.
func TestSignInKeyGrace(t *testing.T) {
	t.Parallel()
	st, err := openStore(context.Background(), t.TempDir()+"/keys.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := newSignInSealer(st)
	clock := &testClock{}
	s.now = clock.now
	ctx := context.Background()
	// Created in the future, so that only the key's age can refuse it.
	p := &sealedSignIn{State: randomValue(), ReturnTo: testReturnTo, Created: clock.now().Add(time.Hour).Unix()}
	v, err := s.seal(ctx, "acme", "sw_signin_x", p)
	if err != nil {
		t.Fatal(err)
	}
	clock.advance(signInKeyRotation)
	if _, err := s.seal(ctx, "acme", "sw_signin_y", p); err != nil { // rotates
		t.Fatal(err)
	}
	clock.advance(signInKeyGrace - time.Second)
	if _, err := s.open(ctx, "acme", "sw_signin_x", v); err != nil {
		t.Errorf("open under the previous key, within the grace: %v; want it opened", err)
	}
	clock.advance(time.Second)
	if _, err := s.open(ctx, "acme", "sw_signin_x", v); !errors.Is(err, errSealedCookie) {
		t.Errorf("open under the previous key, %v after the rotation: %v; want errSealedCookie", signInKeyGrace, err)
	}
	// The same for a process that knew nothing of the keys before.
	fresh := newSignInSealer(st)
	fresh.now = clock.now
	if _, err := fresh.open(ctx, "acme", "sw_signin_x", v); !errors.Is(err, errSealedCookie) {
		t.Errorf("open in a new process under the previous key past the grace: %v; want errSealedCookie", err)
	}
}

// TestSignInSealBinding: a sealed sign-in opens only for its tenant and
// under its own cookie name, and not at all once changed.
func TestSignInSealBinding(t *testing.T) {
	t.Parallel()
	st, err := openStore(context.Background(), t.TempDir()+"/keys.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := newSignInSealer(st)
	ctx := context.Background()
	p := &sealedSignIn{State: randomValue(), Nonce: randomValue(), Verifier: randomValue(), ReturnTo: testReturnTo, Created: time.Now().Unix()}
	v, err := s.seal(ctx, "acme", "sw_signin_x", p)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.open(ctx, "acme", "sw_signin_x", v); err != nil || *got != *p {
		t.Fatalf("open = %+v, %v; want %+v", got, err, p)
	}
	flipped := []byte(v)
	flipped[len(flipped)/2] ^= 'A' ^ 'B'
	tests := []struct{ name, tenant, cookie, value string }{
		{"another tenant", "other", "sw_signin_x", v},
		{"another cookie name", "acme", "sw_signin_y", v},
		{"a byte changed", "acme", "sw_signin_x", string(flipped)},
		{"cut short", "acme", "sw_signin_x", v[:len(v)-4]},
		{"not base64", "acme", "sw_signin_x", "!!!"},
		{"empty", "acme", "sw_signin_x", ""},
		{"an unknown key", "acme", "sw_signin_x", "AAAAAA" + v[6:]},
	}
	for _, tc := range tests {
		if _, err := s.open(ctx, tc.tenant, tc.cookie, tc.value); !errors.Is(err, errSealedCookie) {
			t.Errorf("open (%s) = %v; want errSealedCookie", tc.name, err)
		}
	}
}

// TestCallbackAtAnotherProcess: two processes on one database; the
// sign-in begun at one finishes at the other.
func TestCallbackAtAnotherProcess(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	db := t.TempDir() + "/shared.db"
	a := startTestApp(t, &config{Tenants: []tenantConfig{f.tenantConfig()}}, db, true)
	b := startTestApp(t, &config{Tenants: []tenantConfig{f.tenantConfig()}}, db, true)
	s := siBegin(t, a, "/v1/auth/authorize")
	q := url.Values{"code": {f.authorize(s.authURL.String())}, "state": {s.state}}
	siHandoff(t, b.do("GET", "/v1/auth/login?"+q.Encode(), "", s.cookieHdr()...), testReturnTo)
}
