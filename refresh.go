package main

import (
	"crypto/sha256"
	"time"
)

// refreshFlights makes concurrent refreshes with the same token share one
// IdP call, and keeps a successful answer for refreshReplayWindow so that a
// second tab or a retried request gets the same tokens instead of tripping
// the IdP's reuse detection. Answers live only in memory and only that long.
type refreshFlights = flightGroup[[32]byte, *tokenResponse]

const (
	refreshReplayWindow = 10 * time.Second
	maxRefreshFlights   = 10_000
)

func newRefreshFlights(now func() time.Time) *refreshFlights {
	return newFlightGroup[[32]byte, *tokenResponse](now, idpRequestTimeout+time.Second, refreshReplayWindow, maxRefreshFlights)
}

// refreshKey derives the single-flight key from the refresh token and the
// requested scope.
func refreshKey(tenantID, refreshToken, scope string) [32]byte {
	h := sha256.New()
	for _, s := range []string{tenantID, refreshToken, scope} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}
