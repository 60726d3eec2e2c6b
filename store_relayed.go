package main

import (
	"context"
	"fmt"
	"strings"
)

// migrationRelayed (schema version 5) is the record of relayed tokens
// (relayed.go): no token, only the SHA-256 of each (key_hash, 32 bytes),
// its kind, the sign-in session it was relayed in, and whether /logout
// ended that session. A row goes once expires_at (Unix seconds) has passed,
// when its token cannot be valid any more. Rows are inserted in the order
// relayed, which rowid keeps.
const migrationRelayed = `CREATE TABLE relayed_tokens (
		tenant_id  TEXT NOT NULL,
		key_hash   BLOB NOT NULL,
		kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh', 'id')),
		session_id INTEGER NOT NULL,
		ended      INTEGER NOT NULL DEFAULT 0,
		expires_at INTEGER NOT NULL,
		PRIMARY KEY (tenant_id, key_hash)
	) STRICT;
	CREATE INDEX relayed_tokens_session ON relayed_tokens (tenant_id, session_id);
	CREATE INDEX relayed_tokens_expiry ON relayed_tokens (expires_at);`

// migrationRelayedSID (schema version 6) adds the IdP's session of each
// relayed token: sid_hash is sidKey of the sid its sign-in's ID token
// carried (a 64-bit hash with the tenant, not the sid), 0 for none, so that
// a back-channel logout naming that sid ends the session here.
const migrationRelayedSID = `ALTER TABLE relayed_tokens ADD COLUMN sid_hash INTEGER NOT NULL DEFAULT 0;`

func relayedKindName(c tokenClass) string {
	switch c {
	case classRefresh:
		return "refresh"
	case classID:
		return "id"
	}
	return "access"
}

func relayedKindClass(s string) tokenClass {
	switch s {
	case "refresh":
		return classRefresh
	case "id":
		return classID
	}
	return classAccess
}

// addRelayed stores toks for tenantID in one transaction on the writer
// connection. A token relayed again (a /refresh answer replayed) keeps its
// first row but the later expiry, and the sid it is relayed with, if any.
func (s *store) addRelayed(ctx context.Context, tenantID string, toks []relayedToken) error {
	if len(toks) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store relayed tokens: %w", err)
	}
	defer tx.Rollback()
	for _, t := range toks {
		_, err := tx.ExecContext(ctx, `INSERT INTO relayed_tokens (tenant_id, key_hash, kind, session_id, ended, expires_at, sid_hash)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, key_hash) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at),
				sid_hash = CASE excluded.sid_hash WHEN 0 THEN sid_hash ELSE excluded.sid_hash END`,
			tenantID, t.key[:], relayedKindName(t.class), int64(t.session), t.ended, t.expires, int64(t.sid))
		if err != nil {
			return fmt.Errorf("store relayed tokens: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store relayed tokens: %w", err)
	}
	return nil
}

// endRelayedSessions marks the tokens of sessions signed out, in one
// transaction.
func (s *store) endRelayedSessions(ctx context.Context, tenantID string, sessions []uint64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("end relayed sessions: %w", err)
	}
	defer tx.Rollback()
	for _, id := range sessions {
		if _, err := tx.ExecContext(ctx, `UPDATE relayed_tokens SET ended = 1 WHERE tenant_id = ? AND session_id = ?`, tenantID, int64(id)); err != nil {
			return fmt.Errorf("end relayed sessions: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("end relayed sessions: %w", err)
	}
	return nil
}

// deleteRelayed deletes the rows of keys, which the in-memory bound evicted.
func (s *store) deleteRelayed(ctx context.Context, tenantID string, keys [][32]byte) error {
	for len(keys) > 0 {
		n := min(len(keys), 500)
		args := []any{tenantID}
		for _, k := range keys[:n] {
			args = append(args, k[:])
		}
		q := `DELETE FROM relayed_tokens WHERE tenant_id = ? AND key_hash IN (?` + strings.Repeat(", ?", n-1) + `)`
		if _, err := s.w.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("delete relayed tokens: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}

// liveRelayed returns the newest max rows of tenantID that have not expired
// at now (Unix seconds), oldest first.
func (s *store) liveRelayed(ctx context.Context, tenantID string, now int64, max int) ([]relayedToken, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT key_hash, kind, session_id, ended, expires_at, sid_hash FROM (
			SELECT rowid, key_hash, kind, session_id, ended, expires_at, sid_hash FROM relayed_tokens
			WHERE tenant_id = ? AND expires_at > ? ORDER BY rowid DESC LIMIT ?)
		ORDER BY rowid`, tenantID, now, max)
	if err != nil {
		return nil, fmt.Errorf("load relayed tokens: %w", err)
	}
	defer rows.Close()
	var out []relayedToken
	for rows.Next() {
		var (
			key     []byte
			kind    string
			session int64
			sid     int64
			ended   bool
			t       relayedToken
		)
		if err := rows.Scan(&key, &kind, &session, &ended, &t.expires, &sid); err != nil {
			return nil, fmt.Errorf("load relayed tokens: %w", err)
		}
		if len(key) != len(t.key) {
			continue
		}
		copy(t.key[:], key)
		t.class, t.session, t.ended, t.sid = relayedKindClass(kind), uint64(session), ended, uint64(sid)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load relayed tokens: %w", err)
	}
	return out, nil
}

// pruneRelayed deletes the rows that expired at or before now.
func (s *store) pruneRelayed(ctx context.Context, now int64) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM relayed_tokens WHERE expires_at <= ?`, now); err != nil {
		return fmt.Errorf("prune relayed tokens: %w", err)
	}
	return nil
}
