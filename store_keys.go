package main

import (
	"context"
	"fmt"
)

// signInKey is a row of signin_keys: an AES-256 key that seals pending
// browser sign-ins into their cookies (signinseal.go). CreatedAt is Unix
// seconds. The newest key seals; older ones only open, for a grace period.
type signInKey struct {
	ID        int64
	Key       []byte
	CreatedAt int64
}

// maxSignInKeys is how many keys signInKeys reads: the sealing key and the
// ones before it that may still open a cookie. Older rows are deleted.
const maxSignInKeys = 3

// signInKeys returns the newest maxSignInKeys keys, newest first.
func (s *store) signInKeys(ctx context.Context) ([]signInKey, error) {
	rows, err := s.r.QueryContext(ctx, s.fl.q(`SELECT id, key, created_at FROM signin_keys ORDER BY created_at DESC, id DESC LIMIT $1`), maxSignInKeys)
	if err != nil {
		return nil, s.fl.classify(fmt.Errorf("load sign-in keys: %w", err))
	}
	defer rows.Close()
	var out []signInKey
	for rows.Next() {
		var k signInKey
		if err := rows.Scan(&k.ID, &k.Key, &k.CreatedAt); err != nil {
			return nil, fmt.Errorf("load sign-in keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load sign-in keys: %w", err)
	}
	return out, nil
}

// addSignInKey stores a new sealing key made at now (Unix seconds) and
// deletes the keys created before keepFrom (Unix seconds), which can no
// longer open a cookie. Two processes rotating at once each add one: both
// keys open cookies, and the newer seals.
func (s *store) addSignInKey(ctx context.Context, key []byte, now, keepFrom int64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.fl.classify(fmt.Errorf("add sign-in key: %w", err))
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.fl.q(`INSERT INTO signin_keys (key, created_at) VALUES ($1, $2)`), key, now); err != nil {
		return fmt.Errorf("add sign-in key: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.fl.q(`DELETE FROM signin_keys WHERE created_at < $1`), keepFrom); err != nil {
		return fmt.Errorf("add sign-in key: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add sign-in key: %w", err)
	}
	return nil
}
