package main

// What the service relayed, it remembers: every access, refresh and ID token
// passed on in an answer of /login, /token, /refresh or a handoff's
// redemption is recorded by its SHA-256 (tokenKey), never the token, with
// its kind and the sign-in session it belongs to. So a refresh or ID token
// the service handed out is never accepted as a bearer, whatever its shape
// (Hydra v2.3.0's ID tokens and Dex v2.45.1's refreshed ID tokens carry no
// marker of their kind at all), and /logout can end a whole session: its
// access tokens go on the deny list, its refresh tokens are refused by
// /refresh, also where the IdP has no revocation endpoint (Dex v2.45.1,
// Pocket ID v2.9.0, Casdoor v3.158.0, LemonLDAP::NG 2.16.1).
//
// The record lives in the store (store_relayed.go), so a restart keeps it,
// and in a bounded in-memory set loaded at start, which the cold path of a
// bearer consults. The cached path never does: a token recorded as a refresh
// or ID token is dropped from the verified-token cache as it is recorded,
// before the answer that carries it is written, so no client can have made
// it a cache entry after that.
//
// Each entry also remembers the IdP's session its sign-in belongs to: the
// sid of the verified ID token relayed with it (sidKey), when the IdP names
// one. A back-channel logout naming that sid ends the session here as
// /logout does, which is what signs out an IdP whose access tokens carry no
// sid (Hydra v2.3.0: only its ID tokens do).

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxRelayed bounds one tenant's record, in memory and in the table.
	// An entry costs about 160 bytes in memory (key, entry, map slot, and
	// its place in the eviction order); a sign-in records up to three.
	maxRelayed = 100_000
	// relayedOpaqueRetention is how long a token with no visible exp is
	// remembered: an opaque refresh token can live that long at the IdPs
	// seen here (Dex v2.45.1's introspection gives its refresh tokens 90
	// days; Hydra v2.3.0's live 30), and the record of a signed-out one is
	// what keeps /refresh refusing it where the IdP cannot revoke it. Its
	// bound is maxRelayed, not time.
	relayedOpaqueRetention = 90 * 24 * time.Hour
	// relayedReplacedRetention is how long an opaque refresh token is still
	// remembered once the IdP has rotated it out (a /refresh answered with
	// a new one): long enough for IdPs that honour a replaced token for a
	// grace period (Dex v2.45.1: 3 s), while its introspection says
	// inactive after that. Without it, every hourly refresh of a rotating
	// IdP kept one more entry for 90 days, and a few dozen people filled
	// the bound.
	relayedReplacedRetention = time.Hour
	// relayedAccessRetention is the retention of an opaque access token
	// whose answer had no expires_in: as long as a subject revocation is
	// kept at least.
	relayedAccessRetention = minRevocationRetention
)

// relayedEntry is what is remembered of one relayed token.
type relayedEntry struct {
	session uint64
	expires int64 // Unix seconds
	class   tokenClass
	ended   bool // its session was signed out (/logout, back-channel logout)
	// sid is sidKey of the IdP session (sid) its sign-in's verified ID
	// token named, 0 for none.
	sid uint64
	// sub is the subject its sign-in's verified ID token named, "" when
	// unknown: the deny list counts a signed-out session's access tokens
	// for it.
	sub string
}

// relayedToken is one row: a token's key and what is remembered of it.
type relayedToken struct {
	key [32]byte
	relayedEntry
}

// relayedSet is one tenant's record in memory, bounded by max entries:
// when full, expired entries go first, then the oldest recorded.
type relayedSet struct {
	mu    sync.RWMutex
	m     map[[32]byte]relayedEntry
	order [][32]byte // keys in the order recorded; may hold keys gone from m
	max   int
	// n is len(m), so that a tenant with no record pays one atomic load.
	n atomic.Int64
	// st persists the record; nil keeps it in memory only (tests).
	st *store
	// shared: other processes (replicas) record into st too, and what they
	// record reaches this set by polling (applyRelayed), up to
	// revocationWatchInterval late.
	shared bool
	// addMu serialises additions, so the table and the map agree.
	addMu sync.Mutex
	// epoch changes whenever entries are added, before the tokens they
	// name leave the verified-token cache, so that a bearer check that read
	// it before can tell that its put may have brought one back.
	epoch atomic.Uint64
}

func newRelayedSet(max int) *relayedSet {
	return &relayedSet{m: map[[32]byte]relayedEntry{}, max: max}
}

// classOf is what key's token was relayed as: classUnnamed when it never
// was (or is forgotten), else its class.
// epochNow is the set's epoch (0 for no set).
func (rs *relayedSet) epochNow() uint64 {
	if rs == nil {
		return 0
	}
	return rs.epoch.Load()
}

func (rs *relayedSet) classOf(key [32]byte) tokenClass {
	if rs == nil || rs.n.Load() == 0 {
		return classUnnamed
	}
	rs.mu.RLock()
	e, ok := rs.m[key]
	rs.mu.RUnlock()
	if !ok {
		return classUnnamed
	}
	return e.class
}

// find returns the entry of key; with replicas, one this set does not know
// yet is looked up in the store (another replica may have recorded it less
// than a poll ago), so that a refresh on one replica of a token relayed on
// another joins its session. Errors come from the store.
func (rs *relayedSet) find(ctx context.Context, tenantID string, key [32]byte) (relayedEntry, bool, error) {
	if e, ok := rs.lookup(key); ok || !rs.shared {
		return e, ok, nil
	}
	return rs.st.relayedByKey(ctx, tenantID, key)
}

// lookup returns the entry of key.
func (rs *relayedSet) lookup(key [32]byte) (relayedEntry, bool) {
	if rs == nil || rs.n.Load() == 0 {
		return relayedEntry{}, false
	}
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	e, ok := rs.m[key]
	return e, ok
}

// addLocked puts toks into the map and returns the keys evicted to keep
// the bound, and how many of them had not expired. Called with mu held for
// writing.
func (rs *relayedSet) addLocked(toks []relayedToken, now int64) (evicted [][32]byte, live int) {
	rs.epoch.Add(1)
	for _, t := range toks {
		if _, ok := rs.m[t.key]; !ok {
			rs.order = append(rs.order, t.key)
		}
		rs.m[t.key] = t.relayedEntry
	}
	if len(rs.m) > rs.max {
		evicted = rs.pruneLocked(now)
	}
	for len(rs.m) > rs.max && len(rs.order) > 0 {
		k := rs.order[0]
		rs.order = rs.order[1:]
		if _, ok := rs.m[k]; ok {
			delete(rs.m, k)
			evicted = append(evicted, k)
			live++
		}
	}
	rs.n.Store(int64(len(rs.m)))
	return evicted, live
}

// pruneLocked drops the entries expired at now, compacts the order, and
// returns the keys dropped.
func (rs *relayedSet) pruneLocked(now int64) (dropped [][32]byte) {
	kept := rs.order[:0:0]
	for _, k := range rs.order {
		e, ok := rs.m[k]
		if !ok {
			continue
		}
		if e.expires <= now {
			delete(rs.m, k)
			dropped = append(dropped, k)
			continue
		}
		kept = append(kept, k)
	}
	rs.order = kept
	rs.n.Store(int64(len(rs.m)))
	return dropped
}

// prune drops the expired entries.
func (rs *relayedSet) prune(now time.Time) {
	rs.mu.Lock()
	rs.pruneLocked(now.Unix())
	rs.mu.Unlock()
}

// load adds entries read from the store at start, oldest first.
func (rs *relayedSet) load(toks []relayedToken, now time.Time) {
	rs.mu.Lock()
	rs.addLocked(toks, now.Unix())
	rs.mu.Unlock()
}

// apply adds rows another process recorded or ended (read by polling the
// store) to memory: the store's row is the truth, so it replaces what this
// set knew of the key. The bound holds as in record, but the rows go from
// memory only: every replica's memory follows one table, and the replica
// that records evicts in the table.
func (rs *relayedSet) apply(toks []relayedToken, now time.Time) {
	rs.mu.Lock()
	rs.addLocked(toks, now.Unix())
	rs.mu.Unlock()
}

// applyRelayed adds rows of this tenant's record that a poll of the store
// read, and drops each refresh and ID token among them from the
// verified-token cache, as relay does for its own: one this replica
// accepted as a bearer before it learned the kind is refused from now on.
// (An opaque one cached under its remoteKey is caught by
// refusedAsRelayed.)
func (p *provider) applyRelayed(toks []relayedToken) {
	p.relayed.apply(toks, p.now())
	for _, t := range toks {
		if t.class != classAccess {
			p.tokens.remove(t.key)
		}
	}
}

// refusedAsRelayed is the refusal of a token, already verified and cached,
// that the record now names a refresh or ID token; nil otherwise. Only
// replicas need it: a process alone drops such a token from its cache when
// it records it.
func (p *provider) refusedAsRelayed(raw string) error {
	if !p.relayed.shared || p.relayed.n.Load() == 0 {
		return nil
	}
	if why := bearerRefusal(decideKind(kindSignals{relayed: p.relayed.classOf(tokenKey(raw))})); why != "" {
		return refuse(reasonTokenType, "%s", why)
	}
	return nil
}

// relay records what the answer tr passes on, before it is written: its
// access token, refresh token and ID token, in one session; given is the
// refresh token a /refresh call was made with ("" otherwise), whose session
// the answer joins. The session's IdP sid is that of tr's verified ID token
// (tr.sid), else the one given's session had. An ID token that is the access token byte for byte
// (Casdoor v3.158.0's default) is recorded as the access token it also is.
// Each refresh and ID token is dropped from the verified-token cache. Errors
// come from the store; nothing is passed on then.
func (p *provider) relay(ctx context.Context, tr *tokenResponse, given string) error {
	now := p.now()
	session, givenKnown, sid, subject := uint64(0), false, uint64(0), ""
	if given != "" {
		e, ok, err := p.relayed.find(ctx, p.tenant.ID, tokenKey(given))
		if err != nil {
			return err
		}
		if ok {
			session, givenKnown, sid, subject = e.session, true, e.sid, e.sub
		}
	}
	if tr.sid != "" {
		sid = sidKey(p.tenant.ID, tr.sid)
	}
	if tr.sub != "" {
		subject = tr.sub
	}
	if session == 0 {
		session = newSessionID()
	}
	var toks []relayedToken
	add := func(raw string, class tokenClass, fallback time.Duration) {
		if raw == "" {
			return
		}
		exp := jwtExpiry(raw)
		if exp == 0 {
			exp = now.Add(fallback).Unix()
		}
		toks = append(toks, relayedToken{key: tokenKey(raw), relayedEntry: relayedEntry{session: session, expires: exp + int64(leeway/time.Second), class: class, sid: sid, sub: subject}})
	}
	accessLife := relayedAccessRetention
	if tr.ExpiresIn > 0 {
		accessLife = time.Duration(tr.ExpiresIn) * time.Second
	}
	add(tr.AccessToken, classAccess, accessLife)
	if tr.RefreshToken != tr.AccessToken {
		add(tr.RefreshToken, classRefresh, relayedOpaqueRetention)
	}
	if tr.IDToken != tr.AccessToken {
		add(tr.IDToken, classID, relayedAccessRetention)
	}
	if given != "" && !givenKnown && given != tr.RefreshToken {
		// A refresh token this service did not relay (its record evicted,
		// or from before the record) that the IdP just honoured: it is one,
		// and joins the session, so that /logout finds it.
		add(given, classRefresh, relayedOpaqueRetention)
	}
	live, err := p.relayed.record(ctx, p.tenant.ID, toks, now)
	if err != nil {
		return err
	}
	if given != "" && tr.RefreshToken != "" && tr.RefreshToken != given && jwtExpiry(given) == 0 {
		// The IdP rotated the opaque refresh token given out: it is dead
		// there soon, so the record need not hold it for 90 days.
		if err := p.relayed.shorten(ctx, p.tenant.ID, tokenKey(given), now.Add(relayedReplacedRetention).Unix()); err != nil {
			return err
		}
	}
	if live > 0 {
		p.log.Warn("the record of relayed tokens is full: the oldest were forgotten before they expired", "forgotten", live, "bound", maxRelayed)
	}
	for _, t := range toks {
		if t.class != classAccess {
			p.tokens.remove(t.key)
		}
	}
	if tr.RefreshToken != "" {
		p.tokens.remove(remoteKey(p.tenant.ID, tr.RefreshToken))
	}
	if tr.IDToken != "" && tr.IDToken != tr.AccessToken {
		p.tokens.remove(remoteKey(p.tenant.ID, tr.IDToken))
	}
	return nil
}

// shorten brings the expiry of key's entry forward to expires, when it is
// later, in the store and in memory; other replicas learn it by polling.
func (rs *relayedSet) shorten(ctx context.Context, tenantID string, key [32]byte, expires int64) error {
	rs.addMu.Lock()
	defer rs.addMu.Unlock()
	if rs.st != nil {
		if err := rs.st.shortenRelayed(ctx, tenantID, key, expires); err != nil {
			return err
		}
	}
	rs.mu.Lock()
	if e, ok := rs.m[key]; ok && e.expires > expires {
		e.expires = expires
		rs.m[key] = e
	}
	rs.mu.Unlock()
	return nil
}

// record stores toks, then adds them in memory; what the bound evicts (the
// expired first, then the oldest recorded) goes from the table too. It
// returns how many entries that had not expired were evicted.
func (rs *relayedSet) record(ctx context.Context, tenantID string, toks []relayedToken, now time.Time) (liveEvicted int, err error) {
	rs.addMu.Lock()
	defer rs.addMu.Unlock()
	if rs.st != nil {
		if err := rs.st.addRelayed(ctx, tenantID, toks); err != nil {
			return 0, err
		}
	}
	rs.mu.Lock()
	evicted, live := rs.addLocked(toks, now.Unix())
	rs.mu.Unlock()
	if len(evicted) > 0 && rs.st != nil {
		// Oldest first: the entries nearest their end. One evicted before it
		// expired lets a refresh or ID token that names no kind (Hydra
		// v2.3.0's ID token) pass as a bearer again; maxRelayed is sized so
		// that a tenant does not get there within its tokens' lifetimes.
		// The table follows the memory's bound; a failure here leaves rows
		// the next start loads within the bound again, oldest dropped.
		_ = rs.st.deleteRelayed(ctx, tenantID, evicted)
	}
	return live, nil
}

// endSessions marks every relayed token of the sessions of keys, and of
// the sessions relayed with the IdP session sid (a sidKey; 0 for none), as
// signed out, and returns the access tokens among them still valid at now,
// for the deny list. A key this service never relayed ends nothing, and is
// not recorded: /logout takes any string as a refresh token, and recording
// those would let anyone push real records out of the bound. Errors come
// from the store.
func (rs *relayedSet) endSessions(ctx context.Context, tenantID string, keys [][32]byte, sid uint64, now time.Time) ([]relayedToken, error) {
	rs.addMu.Lock()
	defer rs.addMu.Unlock()
	sessions := map[uint64]bool{}
	rs.mu.RLock()
	for _, k := range keys {
		if e, ok := rs.m[k]; ok {
			sessions[e.session] = true
		}
	}
	if sid != 0 {
		for _, e := range rs.m {
			if e.sid == sid {
				sessions[e.session] = true
			}
		}
	}
	if len(sessions) == 0 {
		// Nothing of this service's: a made-up refresh token costs a map
		// look-up, not a walk over the whole record under addMu, which
		// every sign-in's answer waits for.
		rs.mu.RUnlock()
		return nil, nil
	}
	var access []relayedToken
	for k, e := range rs.m {
		if sessions[e.session] && e.class == classAccess && e.expires > now.Unix() {
			access = append(access, relayedToken{key: k, relayedEntry: e})
		}
	}
	rs.mu.RUnlock()
	ids := make([]uint64, 0, len(sessions))
	for s := range sessions {
		ids = append(ids, s)
	}
	if rs.st != nil {
		if err := rs.st.endRelayedSessions(ctx, tenantID, ids); err != nil {
			return nil, err
		}
	}
	rs.mu.Lock()
	for k, e := range rs.m {
		if sessions[e.session] {
			e.ended = true
			rs.m[k] = e
		}
	}
	rs.mu.Unlock()
	return access, nil
}

// endedRefresh reports whether key is a refresh token signed out here.
func (rs *relayedSet) endedRefresh(key [32]byte) bool {
	e, ok := rs.lookup(key)
	return ok && e.ended
}

// sidKey is what the record keeps of an IdP session id: 64 bits of the
// SHA-256 of the tenant and the sid, never 0. A sid is no secret, and
// shortening it keeps the record's entries one size; two sessions sharing a
// key (about one chance in 4 billion within a full record) would only be signed
// out together.
func sidKey(tenantID, sid string) uint64 {
	h := sha256.New()
	h.Write([]byte(tenantID))
	h.Write([]byte{0})
	h.Write([]byte(sid))
	if k := binary.BigEndian.Uint64(h.Sum(nil)); k != 0 {
		return k
	}
	return 1
}

// newSessionID is a random non-zero session id.
func newSessionID() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		// Kept within int64's positive range: the store's column is signed.
		if id := binary.BigEndian.Uint64(b[:]) >> 1; id != 0 {
			return id
		}
	}
}

// jwtExpiry is the exp of a token that is a JWT, unverified (the token
// comes from the IdP's own answer, and the time only says how long to
// remember it), or 0 when it is no JWT or names no numeric exp.
func jwtExpiry(raw string) int64 {
	if strings.Count(raw, ".") != 2 || len(raw) > maxTokenSize {
		return 0
	}
	_, rest, _ := strings.Cut(raw, ".")
	payload, _, _ := strings.Cut(rest, ".")
	b, err := strictB64.DecodeString(payload)
	if err != nil {
		return 0
	}
	var c struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil {
		return 0
	}
	f, err := c.Exp.Float64()
	if err != nil || f <= 0 || f > 1<<40 {
		return 0
	}
	return int64(f)
}

// loadRelayed reads the record in force from the store into each tenant's
// set, at start.
func (s *server) loadRelayed(ctx context.Context) error {
	// The number first: a row changed between the two reads is read now
	// and again by the next poll, never missed.
	seq, err := s.store.relayedSeq(ctx)
	if err != nil {
		return err
	}
	s.relSeq.Store(seq)
	now := time.Now()
	for _, t := range s.tenants {
		toks, err := s.store.liveRelayed(ctx, t.cfg.ID, now.Unix(), maxRelayed)
		if err != nil {
			return err
		}
		t.prov.relayed.load(toks, now)
	}
	return nil
}

// pollRelayed applies the changes to the record stored since s.relSeq, by
// this process or any other on the same database.
func (s *server) pollRelayed(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	byTenant, next, err := s.store.relayedSince(qctx, s.relSeq.Load())
	if err != nil {
		return err
	}
	for _, t := range s.tenants {
		if toks := byTenant[t.cfg.ID]; len(toks) > 0 {
			t.prov.applyRelayed(toks)
		}
	}
	s.relSeq.Store(next)
	return nil
}

// pruneRelayed drops what expired by now from memory and from the store.
func (s *server) pruneRelayed(ctx context.Context, now time.Time) error {
	for _, t := range s.tenants {
		t.prov.relayed.prune(now)
	}
	return s.store.pruneRelayed(ctx, now.Unix())
}

// relayTokens records what tr passes on (relay), then writes it as the
// answer; given is the refresh token of a /refresh call, "" otherwise. When
// the record cannot be stored, the tokens are not passed on.
func relayTokens(w http.ResponseWriter, r *http.Request, t *tenant, tr *tokenResponse, given string) {
	if err := t.prov.relay(r.Context(), tr, given); err != nil {
		writeError(w, r, err)
		return
	}
	writeTokens(w, tr)
}

// endRelayedSessions signs out the sessions of the tokens /logout was given:
// keys are the keys of the bearer tokens that verified, refresh the refresh
// token ("" when none). Every access token
// relayed in those sessions goes on the deny list, and their refresh tokens
// are refused by /refresh from now on. Errors: errTooManyRevocations, and
// the store's.
func (p *provider) endRelayedSessions(ctx context.Context, st *store, keys [][32]byte, refresh string) error {
	if refresh != "" {
		keys = append(keys, tokenKey(refresh))
	}
	access, err := p.relayed.endSessions(ctx, p.tenant.ID, keys, 0, p.now())
	if err != nil || len(access) == 0 {
		return err
	}
	_, err = p.revoke(ctx, st, nil, accessRevocations(access))
	return err
}

// endRelayedSID signs out the sessions relayed with the IdP session sid, as
// endRelayedSessions does, and returns the revocations of their access
// tokens still valid, for the caller to store with the logout token's own
// (handleBackchannelLogout). Their refresh tokens are refused by /refresh
// from now on. Errors come from the store.
func (p *provider) endRelayedSID(ctx context.Context, sid string) ([]revocation, error) {
	if sid == "" {
		return nil, nil
	}
	access, err := p.relayed.endSessions(ctx, p.tenant.ID, nil, sidKey(p.tenant.ID, sid), p.now())
	if err != nil {
		return nil, err
	}
	return accessRevocations(access), nil
}

// accessRevocations are the deny-list entries of relayed access tokens,
// each kept until its token expires.
func accessRevocations(access []relayedToken) []revocation {
	revs := make([]revocation, 0, len(access))
	for _, a := range access {
		revs = append(revs, revocation{Kind: revokeToken, Value: hex.EncodeToString(a.key[:]), ExpiresAt: a.expires, Subject: a.sub})
	}
	return revs
}
