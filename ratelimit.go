package main

import (
	"context"
	"crypto/sha256"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// The password grant's limits (SPEC.md, /token). Failures count per
// (tenant, username, address), per address across usernames and tenants,
// and per (tenant, username) across addresses. The last bound is far
// higher than the others and slows attempts rather than refusing them, so
// that nobody can lock a user out by guessing at their password from
// elsewhere.
const (
	pairFailLimit  = 10  // per (tenant, username, address)
	addrFailLimit  = 30  // per address (IPv6: per /64), across tenants
	userSlowLimit  = 100 // per (tenant, username), across addresses
	failWindow     = 15 * time.Minute
	maxFailEntries = 100_000 // per table

	// Past userSlowLimit an attempt from an address that has not failed for
	// the user waits slowStep, and slowStep more per pairFailLimit failures
	// beyond the bound, up to maxSlowDelay, then reaches the IdP.
	slowStep     = 250 * time.Millisecond
	maxSlowDelay = 4 * time.Second
)

// loginLimiter counts failed password sign-ins in three tables, each
// bounded to maxFailEntries counters of fixed size.
type loginLimiter struct {
	// mu makes attempt's checks and counts one step across the tables.
	mu    sync.Mutex
	pairs *failCounter // (tenant, username, address)
	addrs *failCounter // address
	users *failCounter // (tenant, username)
	now   func() time.Time
	// sleep waits d or until ctx ends, whichever is first.
	sleep func(ctx context.Context, d time.Duration) error
	// shared, when set, keeps the counters in the database instead, so
	// that replicas sharing it do not multiply the limits (shareWith).
	shared *store
}

// shareWith has the limiter count in st's database when other replicas may
// share it (PostgreSQL); on SQLite, one process, the tables in memory stay.
func (l *loginLimiter) shareWith(st *store) {
	if st != nil && st.fl.shared {
		l.shared = st
	}
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{
		pairs: newFailCounter(pairFailLimit, failWindow, maxFailEntries),
		addrs: newFailCounter(addrFailLimit, failWindow, maxFailEntries),
		users: newFailCounter(userSlowLimit, failWindow, maxFailEntries),
		now:   time.Now,
		sleep: sleepCtx,
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loginKey names the counters one attempt touches.
type loginKey struct {
	pair, addr, user counterKey
}

// newLoginKey derives the counters' keys. username must already be the
// normalised key (usernameKey); addr counts IPv6 clients by their /64, the
// block one client usually holds: counting single addresses would give it
// 2^64 budgets. The per-address key leaves the tenant out on purpose: one
// address guessing at several tenants spends one budget.
func newLoginKey(tenantID, username string, addr netip.Addr) loginKey {
	addr = addr.Unmap()
	a := addr.String()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		a = p.String()
	}
	return loginKey{
		pair: hashKey("pair", tenantID, username, a),
		addr: hashKey("addr", a),
		user: hashKey("user", tenantID, username),
	}
}

// usernameKey is the name a username's failures count under: trimmed and
// lower-cased, so that " Bob", "bob " and "BOB" share one count. It fails,
// with a 400 naming the field, for a username that is blank, is not UTF-8,
// or holds a control character (Unicode Cc: NUL, CR, LF, DEL, C1): no
// IdP's user has such a name, and each would be one more spelling to count
// apart.
func usernameKey(username string) (string, error) {
	if !utf8.ValidString(username) || strings.ContainsFunc(username, unicode.IsControl) {
		return "", badRequest("username: must be UTF-8 text without control characters")
	}
	trimmed := strings.TrimSpace(username)
	if trimmed == "" {
		return "", badRequest("username: required")
	}
	return strings.ToLower(trimmed), nil
}

// counterKey is a counter's name: a truncated SHA-256 of its parts, so
// that each counter costs the same few bytes whatever length of username a
// client sends, and the tables hold no pointers for the collector to scan.
type counterKey [16]byte

func hashKey(parts ...string) counterKey {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	var k counterKey
	copy(k[:], h.Sum(sum[:0]))
	return k
}

// verdict is what the limiter decides about one attempt.
type verdict struct {
	// refuse, when > 0, refuses the attempt: come back after this long.
	refuse time.Duration
	// delay, when > 0, is how long to wait before asking the IdP.
	delay time.Duration
}

// attempt starts a sign-in attempt. When it is not refused it counts, in
// every table, as failed until succeed or release says otherwise: counting
// it before the IdP answers keeps a burst of parallel guesses from all
// passing the check before the first failure is recorded.
//
// Refused: the (tenant, username, address) or the address is at its limit;
// or the user is past userSlowLimit and this address has failed for them in
// the window. Slowed: the user is past userSlowLimit and this address has
// not failed for them, which is how the owner gets in while others guess.
func (l *loginLimiter) attempt(k loginKey) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	pairN, pairEnd := l.pairs.count(k.pair, now)
	addrN, addrEnd := l.addrs.count(k.addr, now)
	userN, userEnd := l.users.count(k.user, now)
	v := decide(now, pairN, addrN, userN, pairEnd, addrEnd, userEnd)
	if v.refuse > 0 {
		return v
	}
	l.pairs.add(k.pair, now)
	l.addrs.add(k.addr, now)
	l.users.add(k.user, now)
	return v
}

// decide is attempt's verdict from the three counts before this attempt and
// when their windows end.
func decide(now time.Time, pairN, addrN, userN int, pairEnd, addrEnd, userEnd time.Time) verdict {
	var v verdict
	if pairN >= pairFailLimit {
		v.refuse = pairEnd.Sub(now)
	}
	if addrN >= addrFailLimit {
		v.refuse = max(v.refuse, addrEnd.Sub(now))
	}
	if v.refuse == 0 && userN >= userSlowLimit {
		if pairN > 0 {
			// Either the address's own failures or the user's window
			// running out ends this refusal; whichever comes first.
			v.refuse = min(pairEnd.Sub(now), userEnd.Sub(now))
		} else {
			v.delay = min(maxSlowDelay, slowStep*time.Duration(1+(userN-userSlowLimit)/pairFailLimit))
		}
	}
	return v
}

// admit runs attempt for a request: a refusal comes back as 429 with
// Retry-After set on w, a slowed attempt returns after its delay, and an
// attempt whose client leaves while it waits is released and returns the
// context's error.
func (l *loginLimiter) admit(ctx context.Context, w http.ResponseWriter, k loginKey) error {
	var v verdict
	if l.shared != nil {
		var err error
		if v, err = l.shared.loginAttempt(ctx, k, l.now()); err != nil {
			return err
		}
	} else {
		v = l.attempt(k)
	}
	if v.refuse > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((v.refuse+time.Second-1)/time.Second)))
		return &apiError{http.StatusTooManyRequests, "SW_RATE_LIMITED", "too many failed sign-in attempts; try again later"}
	}
	if v.delay > 0 {
		if err := l.sleep(ctx, v.delay); err != nil {
			l.release(k)
			return err
		}
	}
	return nil
}

// release takes back an attempt that did not fail for the user's sake (the
// IdP could not be asked, or refused our own client credentials).
func (l *loginLimiter) release(k loginKey) {
	if l.shared != nil {
		// A release lost to a database error leaves one failure counted.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.shared.loginRelease(ctx, k)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pairs.undo(k.pair)
	l.addrs.undo(k.addr)
	l.users.undo(k.user)
}

// succeed clears the (tenant, username, address) count and takes back the
// attempt from the address and the user. Not their whole counts: one good
// password must not reset an attacker's budget for other accounts, nor the
// count of guesses others made at this one.
func (l *loginLimiter) succeed(k loginKey) {
	if l.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.shared.loginSucceed(ctx, k)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pairs.reset(k.pair)
	l.addrs.undo(k.addr)
	l.users.undo(k.user)
}

// failCounter is a fixed-window counter per key, bounded to max keys. The
// loginLimiter's mutex guards it.
type failCounter struct {
	m      map[counterKey]failEntry
	limit  int
	window time.Duration
	max    int
}

type failEntry struct {
	n     int32
	start int64 // Unix nanoseconds: a time.Time would hold a pointer
}

func newFailCounter(limit int, window time.Duration, max int) *failCounter {
	return &failCounter{m: make(map[counterKey]failEntry), limit: limit, window: window, max: max}
}

// count returns the key's count in its current window and when that
// window ends; 0 once it has ended.
func (c *failCounter) count(key counterKey, now time.Time) (int, time.Time) {
	e, ok := c.m[key]
	if !ok {
		return 0, time.Time{}
	}
	end := time.Unix(0, e.start).Add(c.window)
	if !now.Before(end) {
		delete(c.m, key)
		return 0, time.Time{}
	}
	return int(e.n), end
}

func (c *failCounter) add(key counterKey, now time.Time) {
	e, ok := c.m[key]
	if ok && !now.Before(time.Unix(0, e.start).Add(c.window)) {
		ok = false
	}
	if !ok {
		if len(c.m) >= c.max {
			c.prune(now)
		}
		e = failEntry{start: now.UnixNano()}
	}
	e.n++
	c.m[key] = e
}

// undo takes back one counted failure of key.
func (c *failCounter) undo(key counterKey) {
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

func (c *failCounter) reset(key counterKey) { delete(c.m, key) }

// prune makes room down to nine tenths of max, so that a full table costs
// one scan per max/10 new keys rather than one per key: expired windows go
// first, then counters below the limit (the cheapest to lose: at worst an
// attacker's count starts again), and only then any.
func (c *failCounter) prune(now time.Time) {
	target := c.max - c.max/10
	for k, e := range c.m {
		if !now.Before(time.Unix(0, e.start).Add(c.window)) {
			delete(c.m, k)
		}
	}
	for k, e := range c.m {
		if len(c.m) <= target {
			return
		}
		if int(e.n) < c.limit {
			delete(c.m, k)
		}
	}
	for k := range c.m {
		if len(c.m) <= target {
			return
		}
		delete(c.m, k)
	}
}

func (c *failCounter) len() int { return len(c.m) }

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
