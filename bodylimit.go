package main

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// readBody reads r's body through the maxBodyBytes limit. A body of known
// length is read into one buffer of that length rather than grown by
// copying, so that a body costs its size and no more while it is read.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if n := r.ContentLength; n > 0 && n <= maxBodyBytes {
		buf := make([]byte, n)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(body)
}

// smallBodyBytes is the size up to which a body is read without drawing on
// the budget of bodies in flight: the connection cap bounds those already
// (1024 connections × 4 KiB = 4 MiB), and every request of the API but one
// carrying a large token fits, so a flood of large bodies never refuses
// ordinary requests.
const smallBodyBytes = 4 << 10

// bodyBudget bounds the bytes of large request bodies being read or held
// at once, so that memory stays bounded however many clients send large
// bodies slowly.
type bodyBudget struct {
	max  int64
	used atomic.Int64
}

func newBodyBudget(max int64) *bodyBudget { return &bodyBudget{max: max} }

// reserve takes n bytes from the budget and reports whether they were
// there. used never exceeds max, not even for a moment.
func (b *bodyBudget) reserve(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *bodyBudget) release(n int64) { b.used.Add(-n) }

// bodyReservation is what r's body draws on the budget: nothing for no
// body, a small one, or one declared over maxBodyBytes (refused unread
// with 413); its declared length otherwise, and maxBodyBytes when the
// length is unknown (chunked).
func bodyReservation(r *http.Request) int64 {
	switch n := r.ContentLength; {
	case n < 0:
		return maxBodyBytes
	case n <= smallBodyBytes || n > maxBodyBytes:
		return 0
	default:
		return n
	}
}

// errBodiesBusy answers a large body that the budget has no room for.
// SW_RATE_LIMITED is the contract's code for "come back after Retry-After"
// that does not blame the IdP, whose SW_AUTH_IDP_UNAVAILABLE is the only
// 503 in the contract.
var errBodiesBusy = &apiError{http.StatusTooManyRequests, "SW_RATE_LIMITED", "the server is reading too many large request bodies at once; try again shortly"}

// reserveBody reserves r's body before any handler runs. When the budget
// has no room it answers 429 with Retry-After and closes the connection
// without reading the body: to keep a connection, net/http would read an
// unread body of up to 256 KiB, before answering and again after, and so
// wait on a slow client for the whole read timeout. release is to be
// called once the request is done.
func (s *server) reserveBody(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	n := bodyReservation(r)
	if n == 0 {
		return func() {}, true
	}
	if !s.bodies.reserve(n) {
		w.Header().Set("Connection", "close")
		// A read past the deadline fails at once, so net/http gives up
		// on the body and closes the connection after the answer.
		http.NewResponseController(w).SetReadDeadline(time.Now())
		writeError(w, r, errBodiesBusy)
		return nil, false
	}
	return func() { s.bodies.release(n) }, true
}
