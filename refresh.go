package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// refreshFlights makes concurrent refreshes with the same token share one
// IdP call, and keeps a successful answer for refreshReplayWindow so that a
// second tab or a retried request gets the same tokens instead of tripping
// the IdP's reuse detection. Answers live only in memory and only that long.
type refreshFlights struct {
	now       func() time.Time
	mu        sync.Mutex
	m         map[refreshFlightKey]*refreshFlight
	lastPrune time.Time
}

type refreshFlight struct {
	done    chan struct{}
	resp    *tokenResponse
	err     error
	expires time.Time // zero while in flight
}

const (
	refreshReplayWindow = 10 * time.Second
	maxRefreshFlights   = 10_000
)

func newRefreshFlights(now func() time.Time) *refreshFlights {
	return &refreshFlights{now: now, m: make(map[refreshFlightKey]*refreshFlight)}
}

// do returns fn's answer for key, sharing a call in flight or a recent
// success. fn runs detached from ctx, so one impatient caller cannot fail
// the others; ctx only bounds how long this caller waits.
func (f *refreshFlights) do(ctx context.Context, key refreshFlightKey, fn func(context.Context) (*tokenResponse, error)) (*tokenResponse, error) {
	now := f.now()
	f.mu.Lock()
	f.pruneLocked(now)
	fl, ok := f.m[key]
	if ok && !fl.expires.IsZero() && !now.Before(fl.expires) {
		delete(f.m, key)
		ok = false
	}
	if !ok {
		fl = &refreshFlight{done: make(chan struct{})}
		f.m[key] = fl
		go func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idpRequestTimeout+time.Second)
			resp, err := fn(cctx)
			cancel()
			f.mu.Lock()
			fl.resp, fl.err = resp, err
			if err != nil {
				// Failures are not replayed: the next try asks the IdP again.
				// The entry may be another flight's by now (forget).
				if f.m[key] == fl {
					delete(f.m, key)
				}
			} else {
				fl.expires = f.now().Add(refreshReplayWindow)
			}
			f.mu.Unlock()
			close(fl.done)
		}()
	}
	f.mu.Unlock()
	select {
	case <-fl.done:
		return fl.resp, fl.err
	case <-ctx.Done():
		// This caller stopped waiting for the IdP; the call goes on for the others.
		return nil, fmt.Errorf("refresh: %w: %v", errIdPUnavailable, ctx.Err())
	}
}

// pruneLocked drops expired answers, at least once per replay window so
// that no token stays in memory much longer than that; when the map is
// full of live answers it drops finished ones early (losing only the
// replay convenience), never calls in flight.
func (f *refreshFlights) pruneLocked(now time.Time) {
	if now.Sub(f.lastPrune) < refreshReplayWindow && len(f.m) < maxRefreshFlights {
		return
	}
	f.lastPrune = now
	for k, fl := range f.m {
		if !fl.expires.IsZero() && !now.Before(fl.expires) {
			delete(f.m, k)
		}
	}
	for k, fl := range f.m {
		if len(f.m) < maxRefreshFlights {
			break
		}
		if !fl.expires.IsZero() {
			delete(f.m, k)
		}
	}
}

// forget drops what is kept for a refresh token, whatever the scope asked:
// its replayed answer, and its call in flight, which goes on for the callers
// already waiting while the next caller asks the IdP again. /logout calls it
// so that a signed-out refresh token is not answered from memory.
func (f *refreshFlights) forget(token [32]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.m {
		if k.token == token {
			delete(f.m, k)
		}
	}
}

// refreshFlightKey names one refresh: the token, hashed with the tenant
// (refreshTokenHash), and the scope asked for, hashed.
type refreshFlightKey struct{ token, scope [32]byte }

// refreshKey derives the single-flight key from the refresh token and the
// requested scope.
func refreshKey(tenantID, refreshToken, scope string) refreshFlightKey {
	return refreshFlightKey{token: refreshTokenHash(tenantID, refreshToken), scope: sha256.Sum256([]byte(scope))}
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
