package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// refreshPollInterval is how often a replica waiting for another's refresh
// looks for its answer.
const refreshPollInterval = 50 * time.Millisecond

// sharedRefresh runs fn, the IdP call for the refresh key names, once
// across every replica sharing the database, and keeps its answer for
// replay (sealed, never in clear) for the others to replay; with no replay
// window, for refreshPollInterval twice, so that the replicas already
// waiting for it get it. On SQLite (one box) it is fn: the process's own
// single flight covers it.
//
// A replica claims the key with one conditional upsert; the winner calls
// the IdP, the others poll for the answer. A claim lasts as long as the
// call may (lease); a winner that dies leaves it to lapse, and the next
// caller claims it. A failure is not kept: the winner removes its claim and
// a waiting replica claims it in turn.
func (s *store) sharedRefresh(ctx context.Context, key refreshFlightKey, lease, replay time.Duration, fn func(context.Context) (*tokenResponse, error)) (*tokenResponse, error) {
	if !s.fl.shared {
		return fn(ctx)
	}
	th, sh := key.rowHashes()
	ad := []byte(th + "/" + sh)
	for {
		claimed, sealed, err := s.claimRefresh(ctx, th, sh, lease)
		if err != nil {
			return nil, err
		}
		if sealed != nil {
			plain, err := s.open(ctx, sealed, ad)
			if err != nil {
				return nil, fmt.Errorf("refresh answer: %w", err)
			}
			var st storedTokens
			if err := json.Unmarshal(plain, &st); err != nil {
				return nil, fmt.Errorf("refresh answer: %w", err)
			}
			return st.answer(), nil
		}
		if claimed {
			return s.refreshAsWinner(ctx, th, sh, ad, max(replay, 2*refreshPollInterval), fn)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for another replica's refresh: %v", errIdPUnavailable, ctx.Err())
		case <-time.After(refreshPollInterval):
		}
	}
}

// rowHashes are the key's refresh_flights columns: the token's hash, and
// the hash of the scope with the thumbprint of the caller's DPoP key, so
// that replicas share an answer only between callers whose proofs are from
// one key, as the process's own single flight does (refreshKey).
func (key refreshFlightKey) rowHashes() (token, scopeAndKey string) {
	token = hex.EncodeToString(key.token[:])
	if key.jkt == "" {
		return token, hex.EncodeToString(key.scope[:])
	}
	h := sha256.New()
	h.Write(key.scope[:])
	h.Write([]byte{0})
	h.Write([]byte(key.jkt))
	return token, hex.EncodeToString(h.Sum(nil))
}

// refreshAsWinner calls fn and stores its sealed answer, or releases the
// claim when it fails.
func (s *store) refreshAsWinner(ctx context.Context, th, sh string, ad []byte, keep time.Duration, fn func(context.Context) (*tokenResponse, error)) (*tokenResponse, error) {
	tr, err := fn(ctx)
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err != nil {
		// Let a waiting replica try: failures are not replayed.
		s.w.ExecContext(bg, s.fl.q(`DELETE FROM refresh_flights WHERE token_hash = $1 AND scope_hash = $2 AND answer IS NULL`), th, sh)
		return nil, err
	}
	// The caller gets its tokens even if they cannot be kept: the other
	// replicas then call the IdP once the claim lapses.
	if plain, err := json.Marshal(storeTokens(tr)); err == nil {
		if sealed, err := s.seal(bg, plain, ad); err == nil {
			s.w.ExecContext(bg, s.fl.q(`UPDATE refresh_flights SET answer = $3, expires_at = $4 WHERE token_hash = $1 AND scope_hash = $2`),
				th, sh, sealed, s.now().Add(keep).UnixMilli())
		}
	}
	return tr, nil
}

// claimRefresh claims the refresh (token hash th, scope hash sh) for lease,
// unless another holds a live claim or a live answer. It returns whether
// this call claimed it, and a live sealed answer if there is one.
func (s *store) claimRefresh(ctx context.Context, th, sh string, lease time.Duration) (bool, []byte, error) {
	now := s.now().UnixMilli()
	until := now + lease.Milliseconds()
	res, err := s.w.ExecContext(ctx, s.fl.q(`
		INSERT INTO refresh_flights (token_hash, scope_hash, claimed_until, answer, expires_at)
		VALUES ($1, $2, $3, NULL, $3)
		ON CONFLICT (token_hash, scope_hash) DO UPDATE
		SET claimed_until = excluded.claimed_until, answer = NULL, expires_at = excluded.expires_at
		WHERE (refresh_flights.answer IS NULL AND refresh_flights.claimed_until < $4)
			OR (refresh_flights.answer IS NOT NULL AND refresh_flights.expires_at < $4)`), th, sh, until, now)
	if err != nil {
		return false, nil, s.fl.classify(fmt.Errorf("claim refresh: %w", err))
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil, nil
	}
	var answer []byte
	var expires int64
	err = s.w.QueryRowContext(ctx, s.fl.q(`SELECT answer, expires_at FROM refresh_flights WHERE token_hash = $1 AND scope_hash = $2`), th, sh).Scan(&answer, &expires)
	switch {
	case isNoRows(err):
		return false, nil, nil // released meanwhile: the next round claims it
	case err != nil:
		return false, nil, s.fl.classify(fmt.Errorf("read refresh: %w", err))
	case answer != nil && expires >= now:
		return false, answer, nil
	}
	return false, nil, nil
}

// forgetRefresh drops what is kept for a refresh token, whatever the scope
// (/logout), on every replica.
func (s *store) forgetRefresh(ctx context.Context, token [32]byte) error {
	if !s.fl.shared {
		return nil
	}
	_, err := s.w.ExecContext(ctx, s.fl.q(`DELETE FROM refresh_flights WHERE token_hash = $1`), hex.EncodeToString(token[:]))
	return s.fl.classify(err)
}

// pruneShortLived drops, on a database replicas share, the refresh answers
// past their window and lapsed claims, the expired handoffs and the
// password-failure counters whose window ended. Each of these goes within
// seconds or minutes anyway; this keeps the tables at what is live.
func (s *store) pruneShortLived(ctx context.Context, now time.Time) error {
	if !s.fl.shared {
		return nil
	}
	ms := now.UnixMilli()
	for _, q := range []string{
		`DELETE FROM refresh_flights WHERE expires_at < $1 AND claimed_until < $1`,
		`DELETE FROM handoffs WHERE expires_at <= $1`,
		`DELETE FROM dpop_proofs WHERE expires_at <= $1`,
	} {
		if _, err := s.w.ExecContext(ctx, s.fl.q(q), ms); err != nil {
			return s.fl.classify(err)
		}
	}
	_, err := s.w.ExecContext(ctx, s.fl.q(`DELETE FROM login_failures WHERE window_start <= $1 OR n <= 0`), now.Add(-failWindow).UnixMilli())
	return s.fl.classify(err)
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
