package main

import (
	"crypto/sha256"
	"time"
)

// refreshFlights makes concurrent refreshes with the same token share one
// IdP call, and keeps a successful answer for the tenant's replay window
// (refreshReplayWindow by default) so that a second tab or a retried request
// gets the same tokens instead of tripping the IdP's reuse detection.
// Answers live only in memory and only that long.
type refreshFlights struct {
	*flightGroup[refreshFlightKey, *tokenResponse]
}

const (
	refreshReplayWindow = 10 * time.Second
	maxRefreshFlights   = 10_000
	// refreshFlightTimeout bounds one refresh at the IdP, and so how long
	// a replica's claim on it lasts (store.sharedRefresh).
	refreshFlightTimeout = idpRequestTimeout + time.Second
)

func newRefreshFlights(now func() time.Time, replay time.Duration) *refreshFlights {
	return &refreshFlights{newFlightGroup[refreshFlightKey, *tokenResponse](now, refreshFlightTimeout, replay, maxRefreshFlights)}
}

// forget drops what is kept for a refresh token, whatever the scope asked:
// its replayed answer, and its call in flight, which goes on for the callers
// already waiting while the next caller asks the IdP again. /logout calls it
// so that a signed-out refresh token is not answered from memory.
func (f *refreshFlights) forget(token [32]byte) {
	f.forgetFunc(func(k refreshFlightKey) bool { return k.token == token })
}

// refreshFlightKey names one refresh: the token, hashed with the tenant
// (refreshTokenHash), the scope asked for, hashed, and the thumbprint of
// the DPoP proof's key ("" without a proof).
type refreshFlightKey struct {
	token, scope [32]byte
	jkt          string
}

// refreshKey derives the single-flight key from the refresh token, the
// requested scope and the thumbprint of the client's DPoP key. With the
// key in it, concurrent refreshes with one token and proofs from one key
// share one IdP call (the IdP sees one of the proofs, and its tokens are
// bound to that key, which all of them hold), while a proof from another
// key, or none, never gets tokens bound to a key its sender may not hold.
func refreshKey(tenantID, refreshToken, scope, jkt string) refreshFlightKey {
	return refreshFlightKey{token: refreshTokenHash(tenantID, refreshToken), scope: sha256.Sum256([]byte(scope)), jkt: jkt}
}

// refreshTokenHash identifies a tenant's refresh token without keeping it.
func refreshTokenHash(tenantID, refreshToken string) [32]byte {
	h := sha256.New()
	for _, s := range []string{tenantID, refreshToken} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}
