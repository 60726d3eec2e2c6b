package main

import (
	"crypto/sha256"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Failed password-grant attempts allowed per window, per tenant+username and
// per client address. The per-address limit is the higher one: many people
// can share an address behind NAT.
const (
	userFailLimit  = 10
	addrFailLimit  = 30
	failWindow     = 15 * time.Minute
	maxFailEntries = 100_000
)

// loginLimiter counts failed sign-ins. Memory is bounded: each table holds
// at most maxFailEntries counters.
type loginLimiter struct {
	// mu makes attempt's check and count one step across both tables.
	mu           sync.Mutex
	users, addrs *failCounter
	now          func() time.Time
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{
		users: newFailCounter(userFailLimit, failWindow, maxFailEntries),
		addrs: newFailCounter(addrFailLimit, failWindow, maxFailEntries),
		now:   time.Now,
	}
}

// attempt starts a sign-in attempt for this user from this address. It
// returns how long to wait when either has no attempts left, else 0, and
// the attempt then counts as failed until succeed or release says
// otherwise: counting it before the IdP answers keeps a burst of parallel
// guesses from all passing the check before the first failure is recorded.
func (l *loginLimiter) attempt(userKey string, addr netip.Addr) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	u, a := userCounterKey(userKey), addrCounterKey(addr)
	if wait := max(l.users.wait(u, now), l.addrs.wait(a, now)); wait > 0 {
		return wait
	}
	l.users.add(u, now)
	l.addrs.add(a, now)
	return 0
}

// userCounterKey hashes the tenant+username key, so that each counter costs
// the same few bytes whatever length of username a client sends.
func userCounterKey(userKey string) string {
	h := sha256.Sum256([]byte(userKey))
	return string(h[:])
}

// addrCounterKey counts IPv6 clients by their /64, the block one client
// usually holds: counting single addresses would give it 2^64 budgets.
func addrCounterKey(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// release takes back an attempt that did not fail for the user's sake (the
// IdP could not be asked, or refused our own client credentials).
func (l *loginLimiter) release(userKey string, addr netip.Addr) {
	l.users.undo(userCounterKey(userKey))
	l.addrs.undo(addrCounterKey(addr))
}

// succeed clears the user's count and takes back the attempt from the
// address (not the address's whole count: one good password must not reset
// an attacker's budget for other accounts).
func (l *loginLimiter) succeed(userKey string, addr netip.Addr) {
	l.users.reset(userCounterKey(userKey))
	l.addrs.undo(addrCounterKey(addr))
}

// failCounter is a fixed-window counter per key.
type failCounter struct {
	mu     sync.Mutex
	m      map[string]failEntry
	limit  int
	window time.Duration
	max    int
}

type failEntry struct {
	n     int
	start time.Time
}

func newFailCounter(limit int, window time.Duration, max int) *failCounter {
	return &failCounter{m: make(map[string]failEntry), limit: limit, window: window, max: max}
}

func (c *failCounter) wait(key string, now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || e.n < c.limit {
		return 0
	}
	end := e.start.Add(c.window)
	if !now.Before(end) {
		delete(c.m, key)
		return 0
	}
	return end.Sub(now)
}

func (c *failCounter) add(key string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if ok && !now.Before(e.start.Add(c.window)) {
		ok = false
	}
	if !ok {
		if len(c.m) >= c.max {
			c.pruneLocked(now)
		}
		e = failEntry{start: now}
	}
	e.n++
	c.m[key] = e
}

// undo takes back one counted failure of key.
func (c *failCounter) undo(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return
	}
	if e.n <= 1 {
		delete(c.m, key)
		return
	}
	e.n--
	c.m[key] = e
}

func (c *failCounter) reset(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

// pruneLocked drops expired windows, then arbitrary entries below the
// limit's count if the table is still full: a counter that has not reached
// its limit is the cheapest to lose.
func (c *failCounter) pruneLocked(now time.Time) {
	for k, e := range c.m {
		if !now.Before(e.start.Add(c.window)) {
			delete(c.m, k)
		}
	}
	for k, e := range c.m {
		if len(c.m) < c.max-c.max/10 {
			return
		}
		if e.n < c.limit {
			delete(c.m, k)
		}
	}
	for k := range c.m {
		if len(c.m) < c.max {
			return
		}
		delete(c.m, k)
	}
}

func (c *failCounter) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// clientAddr is the address of the connection's peer, or, when that peer is
// a trusted proxy, the right-most address in X-Forwarded-For that is not a
// trusted proxy itself.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	peer = peer.Unmap()
	if !isTrusted(peer, trusted) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := parseHop(strings.TrimSpace(hops[i]))
		if err != nil {
			// A garbled hop cannot be believed; the last trusted peer is the answer.
			return peer
		}
		a = a.Unmap()
		if !isTrusted(a, trusted) {
			return a
		}
		peer = a
	}
	return peer
}

// parseHop reads one X-Forwarded-For entry: an address, or address:port as
// some load balancers write it.
func parseHop(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr(), nil
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
