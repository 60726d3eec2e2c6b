package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxRevocations bounds one tenant's revocations in memory (and so in
	// the table): each costs about 150 bytes. Every entry needs a token the
	// IdP signed, and goes when that token would have expired.
	maxRevocations = 100_000
	// maxTokensPerSubject bounds the access tokens of one subject refused
	// one by one: the next collapses them into one revocation of every
	// token of the subject issued until then, so one account signing out
	// many tokens cannot fill the tenant's set.
	maxTokensPerSubject = 100
	// maxLogoutTokens bounds the jtis of back-channel logout tokens
	// remembered per tenant; each is kept for two leeways (iatWindow).
	maxLogoutTokens = 10_000
	// minRevocationRetention is how long a subject or session revocation is
	// kept at least: the longest access-token lifetime an IdP here is likely
	// to use by default (Dex: 24 h). Longer lifetimes seen on verified tokens
	// extend it (revocations.retention).
	minRevocationRetention = 24 * time.Hour
	// revocationPruneInterval is how often expired revocations are dropped.
	revocationPruneInterval = 10 * time.Minute
)

// errTooManyRevocations is a tenant whose revocation set is full of
// revocations that have not expired yet.
var errTooManyRevocations = errors.New("too many revocations in force")

// revocations are the access tokens one tenant refuses before their exp:
// tokens signed out one by one (/logout), and by subject or session
// (back-channel logout) those issued at or before the logout. They are
// consulted after verification, on the cold path only: recording a
// revocation also drops the tokens it matches from the verified-token
// cache, so a cache hit needs no check (see provider.verifyAccess for the
// race this leaves, and how the epoch closes it).
type revocations struct {
	mu     sync.RWMutex
	tokens map[[32]byte]revokedToken // by the SHA-256 of the token
	// perSub counts the entries of tokens by subject.
	perSub map[string]int
	// by subject, by session, and by subject for tokens without a sid
	subs, sids, subsNoSID map[string]revokedBefore
	max                   int

	// n is the number of entries, so that a tenant with none pays one
	// atomic load per verification.
	n atomic.Int64
	// epoch is bumped each time revocations are added, after the maps and
	// before the cache is purged.
	epoch atomic.Uint64
	// maxLifetime is the longest access-token lifetime seen, in seconds.
	maxLifetime atomic.Int64
	// addMu serialises additions, so the bound holds and the table and the
	// maps agree.
	addMu sync.Mutex
}

// revokedBefore refuses tokens issued at or before iat, until expires (both
// Unix seconds).
type revokedBefore struct{ iat, expires int64 }

// revokedToken is one access token refused until expires; iat (0 for none)
// and sub are its token's, so that a subject revocation can replace it.
type revokedToken struct {
	expires, iat int64
	sub          string
}

func newRevocations(max int) *revocations {
	return &revocations{
		tokens: map[[32]byte]revokedToken{}, perSub: map[string]int{}, subs: map[string]revokedBefore{},
		sids: map[string]revokedBefore{}, subsNoSID: map[string]revokedBefore{}, max: max,
	}
}

// refuses reports whether the verified token with key (its SHA-256) and
// claims c is revoked.
func (rv *revocations) refuses(key [32]byte, c *claims) bool {
	if rv.n.Load() == 0 {
		return false
	}
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	if _, ok := rv.tokens[key]; ok {
		return true
	}
	return rv.matchesLocked(c)
}

// matchesLocked reports whether a subject or session revocation covers c. A
// token without iat counts as issued before any logout.
func (rv *revocations) matchesLocked(c *claims) bool {
	var iat int64
	if c.IssuedAt != nil {
		iat = int64(*c.IssuedAt)
	}
	covered := func(m map[string]revokedBefore, k string) bool {
		e, ok := m[k]
		return ok && iat <= e.iat
	}
	if covered(rv.subs, c.Subject) {
		return true
	}
	if c.SessionID != "" {
		return covered(rv.sids, string(c.SessionID))
	}
	return covered(rv.subsNoSID, c.Subject)
}

// noteLifetime remembers the lifetime of a verified access token, so that
// subject and session revocations outlive every token they can match.
func (rv *revocations) noteLifetime(c *claims, now time.Time) {
	from := now.Unix()
	if c.IssuedAt != nil {
		from = int64(*c.IssuedAt)
	}
	life := int64(*c.Expiry) - from
	for {
		cur := rv.maxLifetime.Load()
		if life <= cur || rv.maxLifetime.CompareAndSwap(cur, life) {
			return
		}
	}
}

// retention is how long after its iat a subject or session revocation is
// kept: the longest lifetime seen, at least minRevocationRetention, plus the
// leeway verification grants past exp.
func (rv *revocations) retention() time.Duration {
	return max(minRevocationRetention, time.Duration(rv.maxLifetime.Load())*time.Second) + leeway
}

// roomLocked reports whether n more entries fit, dropping expired ones
// first when the set is full. Called with mu held for writing.
func (rv *revocations) roomLocked(n int, now int64) bool {
	if int(rv.n.Load())+n <= rv.max {
		return true
	}
	rv.pruneLocked(now)
	return int(rv.n.Load())+n <= rv.max
}

// pruneLocked drops the entries that expired at or before now.
func (rv *revocations) pruneLocked(now int64) {
	for k, e := range rv.tokens {
		if e.expires <= now {
			rv.dropTokenLocked(k, e)
		}
	}
	for _, m := range []map[string]revokedBefore{rv.subs, rv.sids, rv.subsNoSID} {
		for k, e := range m {
			if e.expires <= now {
				delete(m, k)
			}
		}
	}
	rv.countLocked()
}

func (rv *revocations) countLocked() {
	rv.n.Store(int64(len(rv.tokens) + len(rv.subs) + len(rv.sids) + len(rv.subsNoSID)))
}

func (rv *revocations) dropTokenLocked(k [32]byte, e revokedToken) {
	delete(rv.tokens, k)
	if rv.perSub[e.sub]--; rv.perSub[e.sub] <= 0 {
		delete(rv.perSub, e.sub)
	}
}

// applyLocked adds stored revocations to the maps, widening existing ones.
// A subject revocation drops the token revocations it covers, as the store
// does.
func (rv *revocations) applyLocked(revs []revocation) {
	for _, r := range revs {
		var m map[string]revokedBefore
		switch r.Kind {
		case revokeToken:
			var key [32]byte
			if b, err := hex.DecodeString(r.Value); err == nil && len(b) == len(key) {
				copy(key[:], b)
				e, ok := rv.tokens[key]
				sub := r.Subject
				switch {
				case !ok:
					rv.perSub[sub]++
				case sub == "":
					// The same token revoked again by a path that does
					// not know its subject (a relayed session ended):
					// it stays counted where it was.
					sub = e.sub
				case sub != e.sub:
					if rv.perSub[e.sub]--; rv.perSub[e.sub] <= 0 {
						delete(rv.perSub, e.sub)
					}
					rv.perSub[sub]++
				}
				rv.tokens[key] = revokedToken{expires: max(e.expires, r.ExpiresAt), iat: max(e.iat, r.IssuedBefore), sub: sub}
			}
			continue
		case revokeSub:
			for k, e := range rv.tokens {
				if e.sub == r.Value && e.iat <= r.IssuedBefore && e.expires <= r.ExpiresAt {
					rv.dropTokenLocked(k, e)
				}
			}
			m = rv.subs
		case revokeSID:
			m = rv.sids
		case revokeSubNoSID:
			m = rv.subsNoSID
		default:
			continue
		}
		e := m[r.Value]
		m[r.Value] = revokedBefore{iat: max(e.iat, r.IssuedBefore), expires: max(e.expires, r.ExpiresAt)}
	}
	rv.countLocked()
}

// load adds revocations read from the store at start.
func (rv *revocations) load(revs []revocation) {
	rv.mu.Lock()
	rv.applyLocked(revs)
	rv.mu.Unlock()
	rv.epoch.Add(1)
}

// tokenRevocation refuses the access token whose SHA-256 is key and whose
// claims are c until exp plus the leeway, past which it no longer verifies.
func tokenRevocation(key [32]byte, c *claims, exp time.Time) revocation {
	var iat int64
	if c.IssuedAt != nil {
		iat = int64(*c.IssuedAt)
	}
	return revocation{Kind: revokeToken, Value: hex.EncodeToString(key[:]), IssuedBefore: iat, ExpiresAt: exp.Add(leeway).Unix(), Subject: c.Subject}
}

// collapseLocked returns revs with each token revocation that would take its
// subject past maxTokensPerSubject replaced by a revocation of every token
// of that subject issued until now, kept as long as such a token can live.
func (rv *revocations) collapseLocked(revs []revocation, now int64) []revocation {
	var out []revocation
	added := map[string]int{}
	collapsed := map[string]int{} // subject → its revocation's index in out
	for _, r := range revs {
		if r.Kind != revokeToken || r.Subject == "" {
			out = append(out, r)
			continue
		}
		if rv.perSub[r.Subject]+added[r.Subject] < maxTokensPerSubject {
			added[r.Subject]++
			out = append(out, r)
			continue
		}
		if i, ok := collapsed[r.Subject]; ok {
			out[i].IssuedBefore = max(out[i].IssuedBefore, r.IssuedBefore)
			out[i].ExpiresAt = max(out[i].ExpiresAt, r.ExpiresAt)
			continue
		}
		exp := max(r.ExpiresAt, now+int64(rv.retention()/time.Second))
		for _, e := range rv.tokens {
			if e.sub == r.Subject {
				exp = max(exp, e.expires)
			}
		}
		collapsed[r.Subject] = len(out)
		out = append(out, revocation{Kind: revokeSub, Value: r.Subject, IssuedBefore: max(now, r.IssuedBefore), ExpiresAt: exp})
	}
	return out
}

// revoke records revs (and jti, for a back-channel logout) in the store,
// then in memory, then drops every token they match from the verified-token
// cache, and returns how many entries of other tokens than the one
// revoked by its hash it dropped. Once it returns, no
// request sees those tokens pass. A token revocation past its subject's
// maxTokensPerSubject becomes a revocation of the subject (collapseLocked).
// Errors: errReplayed and errTooManyLogoutTokens from the store,
// errTooManyRevocations when the set is full of live entries; nothing is
// recorded then.
func (p *provider) revoke(ctx context.Context, st *store, jti *logoutJTI, revs []revocation) (int, error) {
	rv := p.revoked
	rv.addMu.Lock()
	defer rv.addMu.Unlock()
	now := p.now().Unix()
	rv.mu.Lock()
	revs = rv.collapseLocked(revs, now)
	room := rv.roomLocked(len(revs), now)
	rv.mu.Unlock()
	if !room {
		return 0, errTooManyRevocations
	}
	for i := range revs {
		revs[i].TenantID = p.tenant.ID
	}
	if err := st.addRevocations(ctx, p.tenant.ID, jti, maxLogoutTokens, now, revs); err != nil {
		return 0, err
	}
	return p.applyRevocationsLocked(revs), nil
}

// applyRevocations adds revocations another process stored (a replica
// sharing the database) to memory and drops the tokens they match from the
// verified-token cache, as revoke does for its own.
func (p *provider) applyRevocations(revs []revocation) {
	p.revoked.addMu.Lock()
	defer p.revoked.addMu.Unlock()
	p.applyRevocationsLocked(revs)
}

// applyRevocationsLocked is the in-memory half of revoke, called with addMu
// held. It returns how many cache entries it purged besides those of
// tokens revoked by their hash.
func (p *provider) applyRevocationsLocked(revs []revocation) int {
	rv := p.revoked
	rv.mu.Lock()
	rv.applyLocked(revs)
	rv.mu.Unlock()
	rv.epoch.Add(1)
	for _, r := range revs {
		if r.Kind == revokeToken {
			var key [32]byte
			hex.Decode(key[:], []byte(r.Value))
			p.tokens.remove(key)
		}
	}
	rv.mu.RLock()
	purged := p.tokens.removeFunc(rv.matchesLocked)
	rv.mu.RUnlock()
	return purged
}

// loadRevocations reads the revocations in force from the store into each
// tenant's set, at start.
func (s *server) loadRevocations(ctx context.Context) error {
	revs, seq, err := s.store.liveRevocations(ctx, time.Now().Unix())
	if err != nil {
		return err
	}
	s.revSeq.Store(seq)
	byTenant := map[string][]revocation{}
	for _, r := range revs {
		byTenant[r.TenantID] = append(byTenant[r.TenantID], r)
	}
	for _, t := range s.tenants {
		t.prov.revoked.load(byTenant[t.cfg.ID])
	}
	return nil
}

// pruneRevocations drops the revocations and logout token ids that expired
// by now from memory and from the store.
func (s *server) pruneRevocations(ctx context.Context, now time.Time) error {
	for _, t := range s.tenants {
		rv := t.prov.revoked
		rv.mu.Lock()
		rv.pruneLocked(now.Unix())
		rv.mu.Unlock()
	}
	if _, err := s.store.pruneRevocations(ctx, now.Unix()); err != nil {
		return fmt.Errorf("prune revocations: %w", err)
	}
	return nil
}

// revocationWatchInterval is how often each process asks the database for
// revocations that others sharing it stored: a logout on one replica is
// refused on all of them within about this long (the contract says 2 s).
const revocationWatchInterval = 500 * time.Millisecond

// runRevocationWatcher applies, every revocationWatchInterval until ctx
// ends, the revocations and the changes to the record of relayed tokens
// (relayed.go) stored since the last look, by this process or any other on
// the same database. Polling a sequence number rather than
// LISTEN/NOTIFY: it works the same on SQLite and PostgreSQL, needs no
// connection held open per replica, and a replica that lost the database
// for a while catches up by the same query, where a listener must reload
// everything to learn what it missed. It costs one indexed query per
// replica per interval.
//
// Every shortLivedPruneEvery polls it also drops the short-lived rows that
// expired (refresh answers, handoffs, password-failure windows).
func (s *server) runRevocationWatcher(ctx context.Context) {
	t := time.NewTicker(revocationWatchInterval)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.pollRevocations(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reading new revocations failed; retrying", "err", err)
			}
			if err := s.pollRelayed(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reading what other replicas relayed failed; retrying", "err", err)
			}
			if n%shortLivedPruneEvery == 0 {
				if err := s.store.pruneShortLived(ctx, time.Now()); err != nil && ctx.Err() == nil {
					s.log.Warn("pruning expired refresh answers and handoffs failed; retrying later", "err", err)
				}
			}
		}
	}
}

// shortLivedPruneEvery: once a minute.
const shortLivedPruneEvery = int(time.Minute / revocationWatchInterval)

// pollRevocations applies the revocations stored since s.revSeq.
func (s *server) pollRevocations(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	revs, next, err := s.store.revocationsSince(qctx, s.revSeq.Load())
	if err != nil {
		return err
	}
	byTenant := map[string][]revocation{}
	for _, r := range revs {
		byTenant[r.TenantID] = append(byTenant[r.TenantID], r)
	}
	for _, t := range s.tenants {
		if rs := byTenant[t.cfg.ID]; len(rs) > 0 {
			t.prov.applyRevocations(rs)
		}
	}
	s.revSeq.Store(next)
	return nil
}

// tokenKey is the verified-token cache's key for a raw token, and the value
// a token revocation keeps: its SHA-256. Tokens up to 4 KiB, nearly all of
// them, are hashed from a copy on the stack: the plain conversion to []byte
// puts a copy of every bearer token on the heap, hit or miss.
func tokenKey(raw string) [32]byte {
	var buf [4 << 10]byte
	if len(raw) <= len(buf) {
		return sha256.Sum256(append(buf[:0], raw...))
	}
	return sha256.Sum256([]byte(raw))
}
