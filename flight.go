package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// flightGroup makes concurrent calls with one key share one call of fn, and
// can keep a successful answer for a replay window (keep), so that a caller
// arriving just after gets it without a second call. A call whose callers
// have all stopped waiting is cancelled: nobody would read its answer, and a
// flood of abandoned requests must not keep the IdP busy. When it holds max
// keys, finished answers are dropped early to make room, and past that a
// call for a new key fails at once rather than growing memory.
type flightGroup[K comparable, V any] struct {
	now     func() time.Time
	timeout time.Duration // bounds each call of fn
	keep    time.Duration // how long a success is replayed; 0: not at all
	max     int

	mu        sync.Mutex
	m         map[K]*flightCall[V]
	lastPrune time.Time
}

type flightCall[V any] struct {
	done    chan struct{}
	val     V
	err     error
	expires time.Time // zero while in flight
	// Guarded by the group's mu.
	waiters  int // callers waiting on the call in flight
	finished bool
	cancel   context.CancelFunc
}

func newFlightGroup[K comparable, V any](now func() time.Time, timeout, keep time.Duration, max int) *flightGroup[K, V] {
	return &flightGroup[K, V]{now: now, timeout: timeout, keep: keep, max: max, m: make(map[K]*flightCall[V])}
}

// do returns fn's answer for key, sharing a call in flight or a success kept
// for the replay window. fn runs detached from ctx, bounded by g.timeout, so
// one impatient caller cannot fail the others; ctx only bounds how long
// this caller waits, and its leaving is errIdPUnavailable (wrapped). When
// the last waiting caller leaves before fn returns, fn's context is
// cancelled and the key is free for a new call at once. With max calls in
// flight, a new key fails at once with errIdPUnavailable (wrapped).
func (g *flightGroup[K, V]) do(ctx context.Context, key K, fn func(context.Context) (V, error)) (V, error) {
	now := g.now()
	g.mu.Lock()
	g.pruneLocked(now)
	c, ok := g.m[key]
	if ok && !c.expires.IsZero() && !now.Before(c.expires) {
		delete(g.m, key)
		ok = false
	}
	if !ok {
		if len(g.m) >= g.max {
			g.mu.Unlock()
			var zero V
			return zero, fmt.Errorf("%w: %d calls to the IdP in flight", errIdPUnavailable, g.max)
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
		c = &flightCall[V]{done: make(chan struct{}), cancel: cancel}
		g.m[key] = c
		go func() {
			val, err := fn(cctx)
			cancel()
			g.mu.Lock()
			c.val, c.err, c.finished = val, err, true
			if g.m[key] == c {
				if err != nil || g.keep <= 0 {
					// Failures are not replayed: the next try asks the IdP again.
					delete(g.m, key)
				} else {
					c.expires = g.now().Add(g.keep)
				}
			}
			g.mu.Unlock()
			close(c.done)
		}()
	}
	if !c.finished {
		c.waiters++
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	if !c.finished {
		c.waiters--
		if c.waiters == 0 {
			// The last caller left: nobody reads the answer. A new caller
			// must not join the cancelled call, so the key goes too.
			c.cancel()
			if g.m[key] == c {
				delete(g.m, key)
			}
		}
	}
	g.mu.Unlock()
	var zero V
	return zero, fmt.Errorf("%w: %v", errIdPUnavailable, ctx.Err())
}

// pruneLocked drops expired answers, at least once per replay window so
// that no answer stays in memory much longer than that; when the map is
// full it drops finished ones early (losing only the replay convenience),
// never calls in flight.
func (g *flightGroup[K, V]) pruneLocked(now time.Time) {
	if g.keep <= 0 || (now.Sub(g.lastPrune) < g.keep && len(g.m) < g.max) {
		return
	}
	g.lastPrune = now
	for k, c := range g.m {
		if !c.expires.IsZero() && !now.Before(c.expires) {
			delete(g.m, k)
		}
	}
	for k, c := range g.m {
		if len(g.m) < g.max {
			break
		}
		if !c.expires.IsZero() {
			delete(g.m, k)
		}
	}
}

// len reports the number of keys held, in flight or kept.
func (g *flightGroup[K, V]) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}

// forgetFunc drops every key that match reports, kept answers and calls in
// flight alike: a call in flight goes on for the callers already waiting on
// it, while the next caller with its key starts a new one.
func (g *flightGroup[K, V]) forgetFunc(match func(K) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k := range g.m {
		if match(k) {
			delete(g.m, k)
		}
	}
}
