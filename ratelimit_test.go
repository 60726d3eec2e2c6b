package main

// The password grant's rate limits, through POST /v1/auth/token, and the
// limiter, its counters and clientAddr on their own.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	tokRightPassword = "grant_type=password&username=alice&password=alice-pw"
	tokWrongPassword = "grant_type=password&username=alice&password=wrong"
)

// sleepLog stands in for the limiter's wait: it records each delay asked
// for and returns at once, with err.
type sleepLog struct {
	mu     sync.Mutex
	delays []time.Duration
	hook   func(ctx context.Context) error
}

func recordSleeps(l *loginLimiter) *sleepLog {
	s := &sleepLog{}
	l.sleep = func(ctx context.Context, d time.Duration) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.delays = append(s.delays, d)
		if s.hook != nil {
			return s.hook(ctx)
		}
		return nil
	}
	return s
}

// take returns the delays recorded since the last take.
func (s *sleepLog) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.delays
	s.delays = nil
	return d
}

// TestPasswordGuessesElsewhereDoNotLockOut is the lockout attack: wrong
// passwords for alice from one address must not keep her right password,
// from another, from reaching the IdP.
func TestPasswordGuessesElsewhereDoNotLockOut(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	ctx := context.Background()
	const attacker, owner = "198.51.100.7:4000", "203.0.113.9:5000"
	for i := range pairFailLimit {
		w := a.doFrom(ctx, attacker, "POST", "/v1/auth/token", tokWrongPassword)
		tokCheck(t, "/v1/auth/token", fmt.Sprintf("attacker's wrong password %d of %d", i+1, pairFailLimit), w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	}
	w := a.doFrom(ctx, attacker, "POST", "/v1/auth/token", tokWrongPassword)
	tokCheck(t, "/v1/auth/token", "attacker past the limit", w, 429, "SW_RATE_LIMITED")
	before := f.tokenHits.Load()
	w = a.doFrom(ctx, owner, "POST", "/v1/auth/token", tokRightPassword)
	tokCheck(t, "/v1/auth/token", "the owner's right password from another address", w, 200, "")
	if n := f.tokenHits.Load() - before; n != 1 {
		t.Errorf("the owner's sign-in reached the IdP %d times; want 1", n)
	}
}

func TestPasswordRateLimitPerUserAndAddress(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	var clock testClock
	a.srv.limiter.now = clock.now
	ctx := context.Background()
	const from = "198.51.100.1:4000"
	for i := range pairFailLimit {
		w := a.doFrom(ctx, from, "POST", "/v1/auth/token", tokWrongPassword)
		tokCheck(t, "/v1/auth/token", fmt.Sprintf("wrong password %d of %d", i+1, pairFailLimit), w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	}
	before := f.tokenHits.Load()
	for _, tc := range []struct{ name, remote, body string }{
		{"right password after the limit", from, tokRightPassword},
		{"username in other case", from, "grant_type=password&username=ALICE&password=alice-pw"},
		{"wrong password after the limit", from, tokWrongPassword},
		{"same address, another port", "198.51.100.1:4001", tokRightPassword},
	} {
		w := a.doFrom(ctx, tc.remote, "POST", "/v1/auth/token", tc.body)
		if tokCheck(t, "/v1/auth/token", tc.name, w, 429, "SW_RATE_LIMITED") {
			if n := tokCheckRetryAfter(t, "/v1/auth/token", tc.name, w); n > int(failWindow/time.Second) {
				t.Errorf("POST /v1/auth/token (%s): Retry-After %d; want at most the window, %d", tc.name, n, int(failWindow/time.Second))
			}
		}
	}
	if n := f.tokenHits.Load() - before; n != 0 {
		t.Errorf("rate-limited attempts reached the IdP %d times; want 0", n)
	}
	// Another user from the same address is not affected.
	w := a.doFrom(ctx, from, "POST", "/v1/auth/token", "grant_type=password&username=carol&password=x")
	tokCheck(t, "/v1/auth/token", "another user from the address", w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	clock.advance(failWindow / 2)
	w = a.doFrom(ctx, from, "POST", "/v1/auth/token", tokRightPassword)
	if tokCheck(t, "/v1/auth/token", "half the window later", w, 429, "SW_RATE_LIMITED") {
		if n := tokCheckRetryAfter(t, "/v1/auth/token", "half the window later", w); n > int(failWindow/time.Second)/2+1 {
			t.Errorf("POST /v1/auth/token half the window later: Retry-After %d; want at most %d", n, int(failWindow/time.Second)/2+1)
		}
	}
	clock.advance(failWindow/2 + time.Second)
	w = a.doFrom(ctx, from, "POST", "/v1/auth/token", tokRightPassword)
	tokCheck(t, "/v1/auth/token", "after the window", w, 200, "")
}

func TestPasswordRateLimitPerUserPerTenant(t *testing.T) {
	t.Parallel()
	f1, f2 := newFakeIDP(t), newFakeIDP(t)
	t1, t2 := f1.tenantConfig(), f2.tenantConfig()
	t1.ID, t1.Hosts = "one", []string{"one.example.com"}
	t2.ID, t2.Hosts = "two", []string{"two.example.com"}
	a := newTestApp(t, []tenantConfig{t1, t2})
	const from = "198.51.100.1:1"
	for range pairFailLimit {
		w := a.doFrom(context.Background(), from, "POST", "http://one.example.com/v1/auth/token", tokWrongPassword)
		tokCheck(t, "/v1/auth/token", "tenant one, wrong password", w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	}
	w := a.doFrom(context.Background(), from, "POST", "http://one.example.com/v1/auth/token", tokRightPassword)
	tokCheck(t, "/v1/auth/token", "tenant one after the limit", w, 429, "SW_RATE_LIMITED")
	w = a.doFrom(context.Background(), from, "POST", "http://two.example.com/v1/auth/token", tokRightPassword)
	tokCheck(t, "/v1/auth/token", "same username and address at tenant two", w, 200, "")
}

func TestPasswordSuccessClearsPairCount(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	const from = "203.0.113.1:4000"
	ctx := context.Background()
	for round := range 2 {
		for i := range pairFailLimit - 1 {
			w := a.doFrom(ctx, from, "POST", "/v1/auth/token", tokWrongPassword)
			tokCheck(t, "/v1/auth/token", fmt.Sprintf("round %d, wrong password %d", round, i+1), w, 401, "SW_AUTH_INVALID_CREDENTIALS")
		}
		// Had the first round's failures been kept, this would be over the limit.
		w := a.doFrom(ctx, from, "POST", "/v1/auth/token", tokRightPassword)
		tokCheck(t, "/v1/auth/token", fmt.Sprintf("round %d, right password", round), w, 200, "")
	}
	// The address's own count survives: a good password of one account does
	// not buy guesses at others.
	for i := range addrFailLimit - 2*(pairFailLimit-1) {
		w := a.doFrom(ctx, from, "POST", "/v1/auth/token", fmt.Sprintf("grant_type=password&username=other%d&password=guess", i))
		tokCheck(t, "/v1/auth/token", "guess at other users", w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	}
	w := a.doFrom(ctx, from, "POST", "/v1/auth/token", "grant_type=password&username=one-more&password=guess")
	tokCheck(t, "/v1/auth/token", "the address past its limit despite two successes", w, 429, "SW_RATE_LIMITED")
}

// TestPasswordRateLimitPerAddress: guesses at made-up usernames lock out the
// address they come from, at every tenant, and no other address anywhere.
func TestPasswordRateLimitPerAddress(t *testing.T) {
	t.Parallel()
	f1, f2 := newFakeIDP(t), newFakeIDP(t)
	t1, t2 := f1.tenantConfig(), f2.tenantConfig()
	t1.ID, t1.Hosts = "one", []string{"one.example.com"}
	t2.ID, t2.Hosts = "two", []string{"two.example.com"}
	a := newTestApp(t, []tenantConfig{t1, t2})
	ctx := context.Background()
	const one, two = "http://one.example.com/v1/auth/token", "http://two.example.com/v1/auth/token"
	const attacker = "198.51.100.7:5555"
	for i := range addrFailLimit {
		w := a.doFrom(ctx, attacker, "POST", one, fmt.Sprintf("grant_type=password&username=user%d&password=guess", i))
		tokCheck(t, "/v1/auth/token", fmt.Sprintf("guess %d of %d", i+1, addrFailLimit), w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	}
	hits := func() int64 { return f1.tokenHits.Load() + f2.tokenHits.Load() }
	before := hits()
	for _, tc := range []struct{ name, remote, target, body string }{
		{"new username from the address", attacker, one, "grant_type=password&username=fresh&password=guess"},
		{"right password from the address", attacker, one, tokRightPassword},
		{"the address at the other tenant", attacker, two, tokRightPassword},
		{"same address, another port", "198.51.100.7:6666", one, tokRightPassword},
	} {
		w := a.doFrom(ctx, tc.remote, "POST", tc.target, tc.body)
		if tokCheck(t, "/v1/auth/token", tc.name, w, 429, "SW_RATE_LIMITED") {
			tokCheckRetryAfter(t, "/v1/auth/token", tc.name, w)
		}
	}
	if n := hits() - before; n != 0 {
		t.Errorf("rate-limited attempts reached the IdP %d times; want 0", n)
	}
	for _, target := range []string{one, two} {
		w := a.doFrom(ctx, "198.51.100.8:5555", "POST", target, tokRightPassword)
		tokCheck(t, "/v1/auth/token", "right password from another address at "+target, w, 200, "")
	}
}

// TestPasswordRateLimitPerUserSlows: guesses at one user from many
// addresses, past the far higher per-user bound, slow the next attempts
// rather than refuse them, so the owner still gets in; addresses that have
// failed for the user are refused.
func TestPasswordRateLimitPerUserSlows(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	sl := recordSleeps(a.srv.limiter)
	ctx := context.Background()
	addr := func(i int) string { return fmt.Sprintf("198.51.%d.%d:1", 100+i/250, i%250+1) }
	// userSlowLimit failures: pairFailLimit each from 9 addresses, one each
	// from 10 more.
	next := 0
	for ; next < 9; next++ {
		for range pairFailLimit {
			w := a.doFrom(ctx, addr(next), "POST", "/v1/auth/token", tokWrongPassword)
			tokCheck(t, "/v1/auth/token", "guess up to the bound", w, 401, "SW_AUTH_INVALID_CREDENTIALS")
		}
	}
	const failedOnce = 9
	for ; next < 19; next++ {
		w := a.doFrom(ctx, addr(next), "POST", "/v1/auth/token", tokWrongPassword)
		tokCheck(t, "/v1/auth/token", "guess up to the bound", w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	}
	if d := sl.take(); len(d) != 0 {
		t.Fatalf("attempts below the per-user bound were slowed: %v", d)
	}

	before := f.tokenHits.Load()
	w := a.doFrom(ctx, "203.0.113.50:1", "POST", "/v1/auth/token", tokRightPassword)
	tokCheck(t, "/v1/auth/token", "the owner, past the bound, from an address that never failed", w, 200, "")
	if d := sl.take(); len(d) != 1 || d[0] <= 0 || d[0] > maxSlowDelay {
		t.Errorf("the owner's attempt past the bound waited %v; want one delay in (0, %v]", d, maxSlowDelay)
	}
	if n := f.tokenHits.Load() - before; n != 1 {
		t.Errorf("the owner's attempt reached the IdP %d times; want 1", n)
	}

	w = a.doFrom(ctx, addr(failedOnce), "POST", "/v1/auth/token", tokRightPassword)
	if tokCheck(t, "/v1/auth/token", "past the bound, from an address that failed once", w, 429, "SW_RATE_LIMITED") {
		tokCheckRetryAfter(t, "/v1/auth/token", "past the bound, from an address that failed once", w)
	}
	if d := sl.take(); len(d) != 0 {
		t.Errorf("a refused attempt waited %v", d)
	}

	// Fresh guessers are slowed too; their guesses reach the IdP and count,
	// and each waits at least as long as the one before, up to the cap.
	before = f.tokenHits.Load()
	const more = 300
	for i := range more {
		w := a.doFrom(ctx, addr(next+i), "POST", "/v1/auth/token", tokWrongPassword)
		tokCheck(t, "/v1/auth/token", "fresh guesser past the bound", w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	}
	next += more
	if n := f.tokenHits.Load() - before; n != more {
		t.Errorf("%d slowed guesses reached the IdP %d times; want %d", more, n, more)
	}
	d := sl.take()
	if len(d) != more {
		t.Fatalf("%d slowed guesses waited %d times; want %d", more, len(d), more)
	}
	for i := 1; i < len(d); i++ {
		if d[i] < d[i-1] || d[i] > maxSlowDelay {
			t.Fatalf("slowed guess %d waited %v after %v; want non-decreasing delays up to %v", i+1, d[i], d[i-1], maxSlowDelay)
		}
	}
	if d[len(d)-1] != maxSlowDelay {
		t.Errorf("the last of %d slowed guesses waited %v; want the cap, %v", more, d[len(d)-1], maxSlowDelay)
	}

	// Another user is not slowed.
	w = a.doFrom(ctx, addr(next), "POST", "/v1/auth/token", "grant_type=password&username=carol&password=x")
	tokCheck(t, "/v1/auth/token", "another user", w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	if d := sl.take(); len(d) != 0 {
		t.Errorf("another user's attempt waited %v", d)
	}

	// A client that leaves while it waits is not asked about, nor counted:
	// its address may try again, slowed, not refused.
	rctx, cancel := context.WithCancel(ctx)
	sl.hook = func(context.Context) error { cancel(); return rctx.Err() }
	before = f.tokenHits.Load()
	w = a.doFrom(rctx, addr(next+1), "POST", "/v1/auth/token", tokRightPassword)
	if w.Code != statusClientClosed {
		t.Errorf("POST /v1/auth/token (client left while slowed) = %d; want %d", w.Code, statusClientClosed)
	}
	sl.hook = nil
	w = a.doFrom(ctx, addr(next+1), "POST", "/v1/auth/token", tokRightPassword)
	tokCheck(t, "/v1/auth/token", "the address whose client left, again", w, 200, "")
	if n := f.tokenHits.Load() - before; n != 1 {
		t.Errorf("the IdP was asked %d times; want 1 (not for the client that left)", n)
	}
}

// TestPasswordUsernameSpellings is the spelling attack: 80 guesses at one
// user, each spelt differently (case, spaces around it), from one address,
// reach the IdP no more often than the per-(user, address) limit allows.
func TestPasswordUsernameSpellings(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	ctx := context.Background()
	const from = "198.51.100.33:1"
	pads := []string{"", " ", "  ", "\u00a0", "\u2003", "\u3000", " \u00a0 ", "\u205f"}
	cases := []string{"carol", "CAROL", "Carol", "cArOl", "caRoL", "CAROl", "cAROL", "carOL", "CaRoL", "cARol"}
	statuses := map[int]int{}
	for i := range 80 {
		name := pads[i%len(pads)] + cases[i/len(pads)%len(cases)] + pads[i/3%len(pads)]
		body := url.Values{"grant_type": {"password"}, "username": {name}, "password": {fmt.Sprintf("guess-%d", i)}}
		statuses[a.doFrom(ctx, from, "POST", "/v1/auth/token", body.Encode()).Code]++
	}
	if hits := f.tokenHits.Load(); hits > pairFailLimit || statuses[401] != int(hits) || statuses[429] != 80-int(hits) {
		t.Errorf("80 guesses at carol, spelt differently: IdP asked %d times, answers %v; want at most %d IdP calls and the rest 429", hits, statuses, pairFailLimit)
	}
	var sent string
	f.set(func(f *fakeIDP) { sent = f.lastForm.Get("username") })
	if strings.TrimSpace(sent) != sent || strings.ToLower(sent) != "carol" {
		t.Errorf("the IdP got username %q; want the client's spelling, trimmed", sent)
	}
	// The trimmed name is what the IdP checks: a right password with a
	// stray space gets in.
	w := a.doFrom(ctx, "198.51.100.34:1", "POST", "/v1/auth/token", "grant_type=password&username=+alice+&password=alice-pw")
	tokCheck(t, "/v1/auth/token", "right password, username with spaces around it", w, 200, "")
}

// TestPasswordUsernameControlCharacters: a username with a control character
// is refused before it is counted or sent to the IdP.
func TestPasswordUsernameControlCharacters(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	ctx := context.Background()
	const from = "198.51.100.44:1"
	names := []string{"\x00alice", "alice\x00", "ali\rce", "alice\n", "alice\r\nX-Injected: 1", "\talice", "al\x7fice",
		"alice\u0085", "alice\x1b[31m", "ali\u009bce", "ali\xffce", "   "}
	for round := range 4 { // more rounds than the address's limit allows failures
		for _, name := range names {
			form := url.Values{"grant_type": {"password"}, "username": {name}, "password": {"alice-pw"}}
			w := a.doFrom(ctx, from, "POST", "/v1/auth/token", form.Encode())
			if tokCheck(t, "/v1/auth/token", fmt.Sprintf("username %q, round %d", name, round), w, 400, "SW_BAD_REQUEST") {
				if msg := decode(t, w).Error.Message; !strings.HasPrefix(msg, "username: ") {
					t.Errorf("POST /v1/auth/token (username %q): message %q does not name the field", name, msg)
				}
			}
		}
		w := a.doFrom(ctx, from, "POST", "/v1/auth/token", `{"grant_type":"password","username":"alice\u0000","password":"alice-pw"}`, "Content-Type", "application/json")
		tokCheck(t, "/v1/auth/token", "JSON username with NUL", w, 400, "SW_BAD_REQUEST")
	}
	if n := f.tokenHits.Load(); n != 0 {
		t.Errorf("usernames with control characters reached the IdP %d times; want 0", n)
	}
	w := a.doFrom(ctx, from, "POST", "/v1/auth/token", tokRightPassword)
	tokCheck(t, "/v1/auth/token", "right password from the same address afterwards (nothing was counted)", w, 200, "")
}

func TestPasswordRateLimitCountsOnlyRefusals(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	ctx := context.Background()
	const from = "198.51.100.77:1"
	// The IdP being down or refusing our client is no failed sign-in.
	for _, tc := range []struct {
		name       string
		mode       string
		answer     tokAnswerFn
		wantStatus int
		wantCode   string
	}{
		{"IdP 500", mode500, nil, 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"IdP down", modeDown, nil, 503, "SW_AUTH_IDP_UNAVAILABLE"},
		{"IdP invalid_client", modeOK, tokOAuthError(401, "invalid_client"), 500, "SW_INTERNAL"},
	} {
		f.set(func(f *fakeIDP) { f.tokenMode, f.tokenFn = tc.mode, tc.answer })
		for range addrFailLimit + 1 {
			w := a.doFrom(ctx, from, "POST", "/v1/auth/token", tokWrongPassword)
			tokCheck(t, "/v1/auth/token", tc.name, w, tc.wantStatus, tc.wantCode)
		}
	}
	f.set(func(f *fakeIDP) { f.tokenMode, f.tokenFn = modeOK, nil })
	// Nor is a good one: an office behind one NAT address signs in all day.
	for i := range addrFailLimit + 5 {
		w := a.doFrom(ctx, from, "POST", "/v1/auth/token", tokRightPassword)
		if !tokCheck(t, "/v1/auth/token", fmt.Sprintf("sign-in %d from one address", i+1), w, 200, "") {
			break
		}
	}
}

// TestPasswordRateLimitConcurrentAttempts: attempts in flight count, so a
// burst of parallel guesses gets no more tries than a sequence would.
func TestPasswordRateLimitConcurrentAttempts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limit  int
		remote func(i int) string
		body   func(i int) string
	}{
		{"one username from one address", pairFailLimit,
			func(i int) string { return fmt.Sprintf("198.51.100.1:%d", i+1) },
			func(int) string { return tokWrongPassword }},
		{"one address, many usernames", addrFailLimit,
			func(int) string { return "198.51.100.200:1" },
			func(i int) string { return fmt.Sprintf("grant_type=password&username=u%d&password=guess", i) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeIDP(t)
			// A password check takes the IdP a while, as a real one's
			// password hashing does.
			f.set(func(f *fakeIDP) {
				f.tokenFn = func(form url.Values, r *http.Request) (int, any) {
					time.Sleep(50 * time.Millisecond)
					return 400, map[string]string{"error": "invalid_grant"}
				}
			})
			a := newTestApp(t, []tenantConfig{f.tenantConfig()})
			n := 3 * tc.limit
			statuses := make([]int, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					statuses[i] = a.doFrom(context.Background(), tc.remote(i), "POST", "/v1/auth/token", tc.body(i)).Code
				})
			}
			close(start)
			wg.Wait()
			var refused, limited int
			for _, s := range statuses {
				switch s {
				case 401:
					refused++
				case 429:
					limited++
				}
			}
			if hits := f.tokenHits.Load(); hits > int64(tc.limit) || refused+limited != n {
				t.Errorf("%d parallel wrong passwords: IdP asked %d times, %d answered 401, %d answered 429; want at most %d IdP calls and the rest 429",
					n, hits, refused, limited, tc.limit)
			}
		})
	}
}

// TestPasswordRateLimitConcurrentPastUserBound: parallel guesses at one user
// from as many addresses all reach the IdP, and exactly those past the
// per-user bound, counted in flight, are slowed.
func TestPasswordRateLimitConcurrentPastUserBound(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	var slowed atomic.Int64
	a.srv.limiter.sleep = func(context.Context, time.Duration) error { slowed.Add(1); return nil }
	n := 3 * userSlowLimit
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a.doFrom(context.Background(), fmt.Sprintf("198.51.%d.%d:1", 100+i/250, i%250+1), "POST", "/v1/auth/token", tokWrongPassword)
		})
	}
	wg.Wait()
	if hits, s := f.tokenHits.Load(), slowed.Load(); hits != int64(n) || s != int64(n-userSlowLimit) {
		t.Errorf("%d parallel guesses from as many addresses: IdP asked %d times, %d slowed; want %d and %d", n, hits, s, n, n-userSlowLimit)
	}
}

func TestPasswordRateLimitForwardedFor(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := startTestApp(t, &config{TrustedProxies: []string{"10.0.0.0/8"}, Tenants: []tenantConfig{f.tenantConfig()}}, t.TempDir()+"/test.db", true)
	ctx := context.Background()
	const proxy = "10.1.2.3:40000"
	guess := func(i int) string { return fmt.Sprintf("grant_type=password&username=user%d&password=guess", i) }

	// Behind the trusted proxy, the client named in X-Forwarded-For is limited.
	for i := range addrFailLimit {
		w := a.doFrom(ctx, proxy, "POST", "/v1/auth/token", guess(i), "X-Forwarded-For", "203.0.113.7")
		tokCheck(t, "/v1/auth/token", "guess via the trusted proxy", w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	}
	w := a.doFrom(ctx, proxy, "POST", "/v1/auth/token", tokRightPassword, "X-Forwarded-For", "203.0.113.7")
	tokCheck(t, "/v1/auth/token", "limited client via the trusted proxy", w, 429, "SW_RATE_LIMITED")
	w = a.doFrom(ctx, proxy, "POST", "/v1/auth/token", tokRightPassword, "X-Forwarded-For", "192.0.2.99, 203.0.113.7")
	tokCheck(t, "/v1/auth/token", "limited client prepends a spoofed hop", w, 429, "SW_RATE_LIMITED")
	w = a.doFrom(ctx, "10.9.9.9:1", "POST", "/v1/auth/token", tokRightPassword, "X-Forwarded-For", "203.0.113.7, 10.1.2.3")
	tokCheck(t, "/v1/auth/token", "limited client via two trusted proxies", w, 429, "SW_RATE_LIMITED")
	w = a.doFrom(ctx, proxy, "POST", "/v1/auth/token", tokRightPassword, "X-Forwarded-For", "203.0.113.8")
	tokCheck(t, "/v1/auth/token", "another client via the same proxy", w, 200, "")

	// An untrusted peer's X-Forwarded-For is ignored: inventing a new
	// address for each guess does not escape the limit.
	const attacker = "198.51.100.9:1"
	for i := range addrFailLimit {
		w := a.doFrom(ctx, attacker, "POST", "/v1/auth/token", guess(100+i), "X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i+1))
		tokCheck(t, "/v1/auth/token", "guess with a spoofed X-Forwarded-For", w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	}
	w = a.doFrom(ctx, attacker, "POST", "/v1/auth/token", tokRightPassword, "X-Forwarded-For", "192.0.2.200")
	tokCheck(t, "/v1/auth/token", "spoofing peer after the limit", w, 429, "SW_RATE_LIMITED")
	// ... and the spoofed addresses were not charged.
	w = a.doFrom(ctx, proxy, "POST", "/v1/auth/token", tokRightPassword, "X-Forwarded-For", "192.0.2.1")
	tokCheck(t, "/v1/auth/token", "an address the attacker spoofed", w, 200, "")
}

// TestPasswordRateLimitForwardedForBroadRange: behind proxies trusted as a
// whole /8, a client that writes its own X-Forwarded-For entries (made-up
// clients, or addresses inside the trusted range that look like more
// proxies) still counts under the address the proxy saw; the left-most,
// spoofed entries are never charged.
func TestPasswordRateLimitForwardedForBroadRange(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := startTestApp(t, &config{TrustedProxies: []string{"10.0.0.0/8"}, Tenants: []tenantConfig{f.tenantConfig()}}, t.TempDir()+"/test.db", true)
	ctx := context.Background()
	const proxy, client = "10.0.0.1:40000", "203.0.113.7"
	spoofs := func(i int) string {
		return []string{
			fmt.Sprintf("192.0.2.%d", i+1),
			fmt.Sprintf("192.0.2.%d, 10.9.%d.1", i+1, i),
			fmt.Sprintf("10.7.%d.7", i),
			fmt.Sprintf("198.51.100.%d:443, 10.1.1.%d, 10.2.2.2", i+1, i),
		}[i%4]
	}
	for i := range addrFailLimit {
		// The proxy appends the address it saw to what the client sent.
		xff := spoofs(i) + ", " + client
		w := a.doFrom(ctx, proxy, "POST", "/v1/auth/token", fmt.Sprintf("grant_type=password&username=user%d&password=guess", i), "X-Forwarded-For", xff)
		tokCheck(t, "/v1/auth/token", "guess with prepended hops "+xff, w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	}
	w := a.doFrom(ctx, proxy, "POST", "/v1/auth/token", tokRightPassword, "X-Forwarded-For", spoofs(99)+", "+client)
	tokCheck(t, "/v1/auth/token", "the client past its limit, with yet other prepended hops", w, 429, "SW_RATE_LIMITED")
	w = a.doFrom(ctx, "10.200.0.1:1", "POST", "/v1/auth/token", tokRightPassword, "X-Forwarded-For", client+", 10.0.0.1")
	tokCheck(t, "/v1/auth/token", "the client through another chain of trusted proxies", w, 429, "SW_RATE_LIMITED")
	// None of the spoofed addresses was charged.
	for i := range 4 {
		first, _, _ := strings.Cut(spoofs(i), ",")
		first, _, _ = strings.Cut(first, ":443")
		w := a.doFrom(ctx, proxy, "POST", "/v1/auth/token", tokRightPassword, "X-Forwarded-For", first)
		tokCheck(t, "/v1/auth/token", "an address the client spoofed: "+first, w, 200, "")
	}
}

func TestPasswordRateLimitIgnoresForwardedForByDefault(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	for i := range addrFailLimit {
		w := a.doFrom(context.Background(), "10.1.2.3:1", "POST", "/v1/auth/token", fmt.Sprintf("grant_type=password&username=user%d&password=guess", i),
			"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1))
		tokCheck(t, "/v1/auth/token", "guess, no trusted proxies", w, 401, "SW_AUTH_INVALID_CREDENTIALS")
	}
	w := a.doFrom(context.Background(), "10.1.2.3:1", "POST", "/v1/auth/token", tokRightPassword, "X-Forwarded-For", "203.0.113.200")
	tokCheck(t, "/v1/auth/token", "no trusted proxies, after the limit", w, 429, "SW_RATE_LIMITED")
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	tests := []struct {
		name    string
		remote  string
		xff     []string // X-Forwarded-For headers, in order
		trusted []netip.Prefix
		want    string // "" for the invalid address
	}{
		{"no header", "203.0.113.1:1234", nil, trusted, "203.0.113.1"},
		{"spoofed header from an untrusted peer", "203.0.113.1:1234", []string{"192.0.2.1"}, trusted, "203.0.113.1"},
		{"header from a proxy, no trusted proxies configured", "10.0.0.1:1234", []string{"192.0.2.1"}, nil, "10.0.0.1"},
		{"trusted proxy", "10.0.0.1:1234", []string{"192.0.2.1"}, trusted, "192.0.2.1"},
		{"trusted proxy, client prepends a spoof", "10.0.0.1:1234", []string{"198.51.100.66, 192.0.2.1"}, trusted, "192.0.2.1"},
		{"trusted proxy, client prepends hops inside the trusted range", "10.0.0.1:1234", []string{"10.66.0.1, 198.51.100.66, 10.0.0.9, 192.0.2.1"}, trusted, "192.0.2.1"},
		{"chain of trusted proxies", "10.0.0.1:1234", []string{"192.0.2.1, 10.0.0.3, 10.0.0.2"}, trusted, "192.0.2.1"},
		{"chain over two headers", "10.0.0.1:1234", []string{"198.51.100.66, 192.0.2.1", "10.0.0.2"}, trusted, "192.0.2.1"},
		{"only trusted hops", "10.0.0.1:1234", []string{"10.0.0.3, 10.0.0.2"}, trusted, "10.0.0.3"},
		{"empty header from a trusted proxy", "10.0.0.1:1234", []string{""}, trusted, "10.0.0.1"},
		{"garbage hop right of the client", "10.0.0.1:1234", []string{"192.0.2.1, garbage, 10.0.0.2"}, trusted, "10.0.0.2"},
		{"garbage hop as the only hop", "10.0.0.1:1234", []string{"garbage"}, trusted, "10.0.0.1"},
		{"garbage left of the client", "10.0.0.1:1234", []string{"garbage, 192.0.2.1"}, trusted, "192.0.2.1"},
		{"hop written as address:port", "10.0.0.1:1234", []string{"192.0.2.1:50312"}, trusted, "192.0.2.1"},
		{"IPv6 hop with a port", "10.0.0.1:1234", []string{"[2001:db8::1]:443"}, trusted, "2001:db8::1"},
		{"spaces around hops", "10.0.0.1:1234", []string{"  192.0.2.1 ,10.0.0.2  "}, trusted, "192.0.2.1"},
		{"IPv4-mapped trusted peer", "[::ffff:10.0.0.1]:1234", []string{"192.0.2.1"}, trusted, "192.0.2.1"},
		{"IPv4-mapped client hop", "10.0.0.1:1234", []string{"::ffff:192.0.2.1"}, trusted, "192.0.2.1"},
		{"IPv6 trusted proxy", "[2001:db8:ffff::1]:443", []string{"2001:db8:1::5"}, trusted, "2001:db8:1::5"},
		{"IPv6 untrusted peer", "[2001:db8:1::1]:443", []string{"192.0.2.1"}, trusted, "2001:db8:1::1"},
		{"remote address without a port", "203.0.113.1", nil, trusted, "203.0.113.1"},
		{"unparseable remote address", "@pipe", []string{"192.0.2.1"}, trusted, ""},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		for _, h := range tc.xff {
			r.Header.Add("X-Forwarded-For", h)
		}
		got := clientAddr(r, tc.trusted)
		want := netip.Addr{}
		if tc.want != "" {
			want = netip.MustParseAddr(tc.want)
		}
		if got != want {
			t.Errorf("clientAddr (%s): %v; want %v", tc.name, got, want)
		}
	}
}

func TestFailCounterBounded(t *testing.T) {
	t.Parallel()
	const limit, maxKeys = 3, 100
	c := newFailCounter(limit, time.Minute, maxKeys)
	key := func(format string, i int) counterKey { return hashKey(fmt.Sprintf(format, i)) }
	count := func(k counterKey, now time.Time) int { n, _ := c.count(k, now); return n }
	now := time.Now()
	for i := range 5 {
		for range limit {
			c.add(key("blocked-%d", i), now)
		}
	}
	for i := range 50 * maxKeys {
		c.add(key("flood-%d", i), now)
		if n := c.len(); n > maxKeys {
			t.Fatalf("after %d distinct keys the counter holds %d entries; want at most %d", i+1, n, maxKeys)
		}
	}
	// A flood of single failures must not buy back a blocked key's attempts.
	for i := range 5 {
		if n := count(key("blocked-%d", i), now); n < limit {
			t.Errorf("blocked-%d counts %d after a flood of other keys; want %d", i, n, limit)
		}
	}
	// Once the window is over, nothing counts and expired entries go first.
	later := now.Add(time.Minute)
	if n := count(key("blocked-%d", 0), later); n != 0 {
		t.Errorf("blocked-0 after its window counts %d; want 0", n)
	}
	for i := range maxKeys {
		c.add(key("later-%d", i), later)
	}
	if n := c.len(); n > maxKeys {
		t.Errorf("after the window the counter holds %d entries; want at most %d", n, maxKeys)
	}
	if n := count(key("later-%d", maxKeys-1), later); n != 1 {
		t.Errorf("the last key added after the window counts %d; want 1", n)
	}

	// When every entry is at its limit, the table still stays bounded.
	full := newFailCounter(limit, time.Minute, maxKeys)
	for i := range 5 * maxKeys {
		for range limit {
			full.add(key("blocked-%d", i), now)
		}
		if n := full.len(); n > maxKeys {
			t.Fatalf("after %d blocked keys the counter holds %d entries; want at most %d", i+1, n, maxKeys)
		}
	}
}

// TestLoginLimiterBounded: attempts with ever new usernames from ever new
// addresses leave each of the limiter's tables at most maxFailEntries long.
func TestLoginLimiterBounded(t *testing.T) {
	t.Parallel()
	l := newLoginLimiter()
	for i := range maxFailEntries + maxFailEntries/2 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.attempt(newLoginKey("acme", fmt.Sprintf("user%d", i), a))
	}
	for _, tc := range []struct {
		name  string
		c     *failCounter
		limit int
	}{
		{"pairs", l.pairs, pairFailLimit},
		{"addrs", l.addrs, addrFailLimit},
		{"users", l.users, userSlowLimit},
	} {
		if n := tc.c.len(); n > maxFailEntries {
			t.Errorf("login limiter %s: %d entries after %d distinct attempts; want at most %d", tc.name, n, maxFailEntries+maxFailEntries/2, maxFailEntries)
		}
		if tc.c.limit != tc.limit || tc.c.max != maxFailEntries || tc.c.window != failWindow {
			t.Errorf("login limiter %s: limit %d, max %d, window %v; want %d, %d, %v", tc.name, tc.c.limit, tc.c.max, tc.c.window, tc.limit, maxFailEntries, failWindow)
		}
	}
}

// TestRateLimitCountsIPv6ByPrefix: one client holding a /64 gets one budget,
// not one per address.
func TestRateLimitCountsIPv6ByPrefix(t *testing.T) {
	t.Parallel()
	l := newLoginLimiter()
	for i := range addrFailLimit {
		a := netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1))
		if v := l.attempt(newLoginKey("acme", fmt.Sprintf("user%d", i), a)); v.refuse > 0 {
			t.Fatalf("attempt %d from the /64 refused early", i)
		}
	}
	if v := l.attempt(newLoginKey("acme", "another", netip.MustParseAddr("2001:db8:1:2:ffff::9"))); v.refuse == 0 {
		t.Errorf("attempt %d from the same /64 was not refused", addrFailLimit+1)
	}
	if v := l.attempt(newLoginKey("acme", "another", netip.MustParseAddr("2001:db8:1:3::1"))); v.refuse > 0 {
		t.Errorf("an attempt from another /64 was refused")
	}
}
