package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds on one tenant's calls to its IdP.
const (
	// idpMaxInFlight caps the calls in flight to one tenant's IdP, every
	// kind together (discovery, keys, token grants, introspection,
	// userinfo): a flood of distinct tokens or abandoned requests queues
	// here instead of opening a connection each.
	idpMaxInFlight = 32
	// idpMaxConns caps connections per IdP host, a little above the calls
	// in flight so that a connection being torn down does not stall a call.
	idpMaxConns = idpMaxInFlight + 8
	// idpQueueWait is how long a call waits for a free place before it
	// fails as the IdP being unavailable (503 with Retry-After).
	idpQueueWait = 2 * time.Second
	// idpCancelGrace is how long a call cancelled by its caller keeps its
	// place: the IdP learns of the cancellation only when it sees the
	// connection close, and a new call started at once would be one more
	// than the cap from where the IdP stands.
	idpCancelGrace = 200 * time.Millisecond
)

// errIdPBusy is a call that found idpMaxInFlight calls in flight for longer
// than the queue wait.
var errIdPBusy = errors.New("too many calls to the IdP in flight")

// limitedTransport lets at most cap(sem) requests through to base at once.
// A request holds its place until its response body is closed (or the round
// trip fails), since the IdP is busy with it until then. A request waits for
// a place at most wait, and never past its own context.
type limitedTransport struct {
	base     http.RoundTripper
	sem      chan struct{}
	wait     time.Duration
	inFlight atomic.Int64
}

func newLimitedTransport(base http.RoundTripper, n int, wait time.Duration) *limitedTransport {
	return &limitedTransport{base: base, sem: make(chan struct{}, n), wait: wait}
}

// RoundTrip implements http.RoundTripper. Errors: errIdPBusy (wrapped)
// when no place came free in time, the request's context error when it
// ended first.
func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case t.sem <- struct{}{}:
	default:
		timer := time.NewTimer(t.wait)
		select {
		case t.sem <- struct{}{}:
			timer.Stop()
		case <-timer.C:
			closeRequestBody(req)
			return nil, fmt.Errorf("%w (%d, waited %v)", errIdPBusy, cap(t.sem), t.wait)
		case <-req.Context().Done():
			timer.Stop()
			closeRequestBody(req)
			return nil, req.Context().Err()
		}
	}
	if err := req.Context().Err(); err != nil {
		// A place came free as this caller left: the IdP must not start
		// work nobody waits for.
		<-t.sem
		closeRequestBody(req)
		return nil, err
	}
	t.inFlight.Add(1)
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		if req.Context().Err() != nil {
			time.AfterFunc(idpCancelGrace, t.release)
		} else {
			t.release()
		}
		return nil, err
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: sync.OnceFunc(t.release)}
	return resp, nil
}

func (t *limitedTransport) release() {
	t.inFlight.Add(-1)
	<-t.sem
}

// closeRequestBody closes a request's body, as a RoundTripper must even
// when it sends nothing.
func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// releasingBody gives the transport's place back when the body is closed.
type releasingBody struct {
	io.ReadCloser
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

// CloseIdleConnections closes the base transport's idle connections, as
// http.Client.CloseIdleConnections expects of its transport.
func (t *limitedTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
