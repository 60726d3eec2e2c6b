package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"
)

// maxLoginFailureRows bounds the shared password-failure counters: the
// three in-memory tables' bound together (loginLimiter).
const maxLoginFailureRows = 3 * maxFailEntries

// loginFailurePruneEvery is how many new counters a process creates between
// two checks of the bound.
const loginFailurePruneEvery = 1000

// loginAttempt is loginLimiter.attempt on counters kept in the database,
// for replicas sharing PostgreSQL: one transaction counts the attempt in
// the three counters, in one fixed order (so that concurrent attempts on
// any replica wait for each other and never deadlock), reads the counts
// before it, and takes it back when decide refuses it.
func (s *store) loginAttempt(ctx context.Context, k loginKey, now time.Time) (verdict, error) {
	v, created, err := s.loginAttemptTx(ctx, k, now)
	if err != nil {
		return verdict{}, s.fl.classify(fmt.Errorf("count password failure: %w", err))
	}
	if created && s.loginRows.Add(1)%loginFailurePruneEvery == 0 {
		// On failure the attempt still counted; the bound is enforced next
		// time.
		s.pruneLoginFailures(ctx, now, maxLoginFailureRows)
	}
	return v, nil
}

func (s *store) loginAttemptTx(ctx context.Context, k loginKey, now time.Time) (verdict, bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return verdict{}, false, err
	}
	defer tx.Rollback()
	nowMS, windowStartBefore := now.UnixMilli(), now.Add(-failWindow).UnixMilli()
	var counts [3]int
	var ends [3]time.Time
	created := false
	for i, key := range []counterKey{k.pair, k.addr, k.user} {
		var n int
		var start int64
		err := tx.QueryRowContext(ctx, s.fl.q(`
			INSERT INTO login_failures (key, n, window_start) VALUES ($1, 1, $2)
			ON CONFLICT (key) DO UPDATE SET
				n = CASE WHEN login_failures.window_start <= $3 THEN 1 ELSE login_failures.n + 1 END,
				window_start = CASE WHEN login_failures.window_start <= $3 THEN excluded.window_start ELSE login_failures.window_start END
			RETURNING n, window_start`), hex.EncodeToString(key[:]), nowMS, windowStartBefore).Scan(&n, &start)
		if err != nil {
			return verdict{}, false, err
		}
		counts[i] = n - 1
		if n == 1 {
			created = true
		} else {
			ends[i] = time.UnixMilli(start).Add(failWindow)
		}
	}
	v := decide(now, counts[0], counts[1], counts[2], ends[0], ends[1], ends[2])
	if v.refuse > 0 {
		return v, false, nil // rolled back: a refused attempt does not count
	}
	return v, created, tx.Commit()
}

// loginRelease is loginLimiter.release on the shared counters.
func (s *store) loginRelease(ctx context.Context, k loginKey) error {
	_, err := s.w.ExecContext(ctx, s.fl.q(`UPDATE login_failures SET n = n - 1 WHERE key IN ($1, $2, $3) AND n > 0`),
		hex.EncodeToString(k.pair[:]), hex.EncodeToString(k.addr[:]), hex.EncodeToString(k.user[:]))
	return s.fl.classify(err)
}

// loginSucceed is loginLimiter.succeed on the shared counters.
func (s *store) loginSucceed(ctx context.Context, k loginKey) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.fl.classify(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.fl.q(`DELETE FROM login_failures WHERE key = $1`), hex.EncodeToString(k.pair[:])); err != nil {
		return s.fl.classify(err)
	}
	if _, err := tx.ExecContext(ctx, s.fl.q(`UPDATE login_failures SET n = n - 1 WHERE key IN ($1, $2) AND n > 0`),
		hex.EncodeToString(k.addr[:]), hex.EncodeToString(k.user[:])); err != nil {
		return s.fl.classify(err)
	}
	return s.fl.classify(tx.Commit())
}

// pruneLoginFailures drops counters whose window ended or that count
// nothing, and past max rows, as failCounter.prune does, the ones below the
// lowest limit first (the cheapest to lose), then the oldest.
func (s *store) pruneLoginFailures(ctx context.Context, now time.Time, max int) error {
	if _, err := s.w.ExecContext(ctx, s.fl.q(`DELETE FROM login_failures WHERE window_start <= $1 OR n <= 0`), now.Add(-failWindow).UnixMilli()); err != nil {
		return s.fl.classify(err)
	}
	for _, order := range []string{`WHERE n < ` + fmt.Sprint(pairFailLimit) + ` ORDER BY window_start`, `ORDER BY window_start`} {
		var rows int
		if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM login_failures`).Scan(&rows); err != nil {
			return s.fl.classify(err)
		}
		if rows <= max {
			return nil
		}
		excess := rows - (max - max/10)
		if _, err := s.w.ExecContext(ctx, s.fl.q(`DELETE FROM login_failures WHERE key IN (SELECT key FROM login_failures `+order+` LIMIT $1)`), excess); err != nil {
			return s.fl.classify(err)
		}
	}
	return nil
}
