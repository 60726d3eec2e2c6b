package main

// The connection cap and the budget of large bodies in flight, against the
// real server on loopback with the caps set in its configuration.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// countingListener counts the connections a server has taken from the
// kernel and not yet closed, and the most it ever held at once.
type countingListener struct {
	net.Listener
	mu                sync.Mutex
	open, peak, total int
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.open++
	l.total++
	l.peak = max(l.peak, l.open)
	l.mu.Unlock()
	return &countedConn{Conn: c, l: l}, nil
}

func (l *countingListener) counts() (open, peak, total int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.peak, l.total
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// startServe serves the configuration document doc with serve, as run
// would, on a loopback listener that counts connections; the server stops
// at the test's end.
func startServe(t *testing.T, doc map[string]any) (string, *countingListener) {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(b, noEnv)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	cfg.Database = filepath.Join(t.TempDir(), "auth.db")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, cl, slog.New(slog.NewTextHandler(io.Discard, nil)), nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve = %v; want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not return after its context ended")
		}
	})
	addr := ln.Addr().String()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := rawRequest(t, addr, "GET /readyz", "", 5*time.Second)
		if err == nil && resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz: %v %v; want 200", resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitOpen(t, cl, 0)
	return addr, cl
}

// rawRequest sends one request ("METHOD /path") with body on its own
// connection, which it asks the server to close, and reads the answer.
func rawRequest(t *testing.T, addr, line, body string, d time.Duration) (*http.Response, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	fmt.Fprintf(c, "%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", line, addr, len(body), body)
	return readAnswer(c, d)
}

// errorCode is the error code in an answer's envelope.
func errorCode(resp *http.Response) string {
	var e envelope
	json.NewDecoder(resp.Body).Decode(&e)
	if e.Error == nil {
		return ""
	}
	return e.Error.Code
}

// waitOpen waits until the server holds exactly n connections.
func waitOpen(t *testing.T, cl *countingListener, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		open, _, _ := cl.counts()
		if open == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d connections; want %d", open, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSlowBodiesCannotPassTheCaps holds more slow-body connections open
// than the configured caps allow: large bodies past the budget are refused
// at once, connections past the cap are not served until others close, and
// the server never serves more than the cap.
func TestSlowBodiesCannotPassTheCaps(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	const maxConns = 4
	addr, cl := startServe(t, map[string]any{
		"max_connections":          maxConns,
		"max_body_bytes_in_flight": 2 * maxBodyBytes,
		"tenants":                  []any{fakeTenantJSON(f, "acme")},
	})

	// Five slow bodies of the largest size: two fill the budget and stall,
	// the other three are answered at once, unread, and their connections
	// closed.
	type answer struct {
		resp *http.Response
		err  error
	}
	answers := make(chan answer, 5)
	var slow []net.Conn
	for range 5 {
		c := slowRequest(t, addr, "/v1/auth/token", maxBodyBytes, 1000)
		slow = append(slow, c)
		go func() {
			resp, err := readAnswer(c, time.Minute)
			answers <- answer{resp, err}
		}()
	}
	for i := range 3 {
		select {
		case a := <-answers:
			if a.err != nil {
				t.Fatalf("large body past the budget: %v; want an answer", a.err)
			}
			if code := errorCode(a.resp); a.resp.StatusCode != 429 || code != "SW_RATE_LIMITED" || a.resp.Header.Get("Retry-After") == "" || !a.resp.Close {
				t.Errorf("large body past the budget = %d %s, Retry-After %q, close %v; want 429 SW_RATE_LIMITED with Retry-After, connection closed",
					a.resp.StatusCode, code, a.resp.Header.Get("Retry-After"), a.resp.Close)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 5 large bodies answered; want 3 answered at once, 2 stalled within the budget", i)
		}
	}
	waitOpen(t, cl, 2)
	// Small bodies are not held back by the large ones.
	resp, err := rawRequest(t, addr, "POST /v1/auth/token", tokRightPassword, 5*time.Second)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /v1/auth/token (small body, budget full) = %v, %v; want 200", resp, err)
	}
	// Two slow small bodies take the last places.
	slow = append(slow, slowRequest(t, addr, "/v1/auth/token", 200, 10), slowRequest(t, addr, "/v1/auth/refresh", 200, 10))
	waitOpen(t, cl, maxConns)
	_, _, accepted := cl.counts()

	// Past the cap, new connections are not served: their requests,
	// complete as they are, get no answer while the slow ones hold every
	// place. Were they served, they would be answered within this wait.
	var waiting []net.Conn
	for range 4 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr)
		waiting = append(waiting, c)
	}
	for i, c := range waiting {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var ne net.Error
		if n, err := c.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("connection %d past the cap: read %d bytes, %v; want no answer while the cap is full", i+1, n, err)
		}
	}
	// One of them is taken from the kernel and held, unserved, for the next
	// place; the others stay in the kernel's queue.
	if _, _, total := cl.counts(); total-accepted > 1 {
		t.Errorf("the server took %d connections past its cap of %d from the kernel; want at most 1, held for the next place", total-accepted, maxConns)
	}

	// As the slow clients go, the waiting ones are served.
	for _, c := range slow {
		c.Close()
	}
	for i, c := range waiting {
		resp, err := readAnswer(c, 5*time.Second)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("connection %d past the cap, once places are free: %v, %v; want 200", i+1, resp, err)
		}
	}
	if _, peak, _ := cl.counts(); peak > maxConns+1 {
		t.Errorf("the server held %d connections at once; want at most max_connections, %d, and one waiting for a place", peak, maxConns)
	}
}

// TestIdleConnectionsGiveWay: with every place taken by kept-alive idle
// connections, a new client is still served, in place of the one idle
// longest.
func TestIdleConnectionsGiveWay(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	const maxConns = 2
	addr, cl := startServe(t, map[string]any{"max_connections": maxConns, "tenants": []any{fakeTenantJSON(f, "acme")}})
	var idle []net.Conn
	for i := range maxConns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		if resp, err := readAnswer(c, 5*time.Second); err != nil || resp.StatusCode != 200 || resp.Close {
			t.Fatalf("kept-alive connection %d: %v, %v; want 200, kept open", i+1, resp, err)
		}
		idle = append(idle, c)
		// net/http flushes the answer before it marks the connection idle,
		// so the client can read it first; give the server that moment, or
		// under load the second connection may be marked idle before the
		// first and "idle longest" names the other one.
		time.Sleep(100 * time.Millisecond)
	}
	waitOpen(t, cl, maxConns)
	resp, err := rawRequest(t, addr, "GET /healthz", "", 5*time.Second)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /healthz with every place held by idle connections: %v, %v; want 200", resp, err)
	}
	idle[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle[0].Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("the connection idle longest: read %d bytes, %v; want it closed (EOF)", n, err)
	}
	// The other still serves.
	fmt.Fprintf(idle[1], "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	if resp, err := readAnswer(idle[1], 5*time.Second); err != nil || resp.StatusCode != 200 {
		t.Errorf("the other kept-alive connection, again: %v, %v; want 200", resp, err)
	}
	if _, peak, _ := cl.counts(); peak > maxConns+1 {
		t.Errorf("the server held %d connections at once; want at most %d and one waiting", peak, maxConns)
	}
}

// TestConnLimitListenerClose: Close ends an Accept whose connection waits
// for a place, as a shutdown at the cap needs, and closes that connection.
func TestConnLimitListenerClose(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limitListener(ln, 1)
	var clients []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	first, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	// Close once the second connection waits for the place the first holds.
	for {
		l.mu.Lock()
		w := l.waiting
		l.mu.Unlock()
		if w {
			break
		}
		time.Sleep(time.Millisecond)
	}
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept waiting at the cap, after Close = %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept waiting at the cap did not return after Close")
	}
	clients[1].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := clients[1].Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("the connection that waited, after Close: %v; want it closed (EOF)", err)
	}
}
