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
// relayed, which rowid keeps (on PostgreSQL, a column of that name).
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

// boolInt is b as the 0 or 1 an INTEGER column holds on both databases.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

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
// first row but the later expiry.
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
		_, err := tx.ExecContext(ctx, s.fl.q(`INSERT INTO relayed_tokens (tenant_id, key_hash, kind, session_id, ended, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (tenant_id, key_hash) DO UPDATE SET expires_at = greatest(relayed_tokens.expires_at, excluded.expires_at)`),
			tenantID, t.key[:], relayedKindName(t.class), int64(t.session), boolInt(t.ended), t.expires)
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
		if _, err := tx.ExecContext(ctx, s.fl.q(`UPDATE relayed_tokens SET ended = 1 WHERE tenant_id = $1 AND session_id = $2`), tenantID, int64(id)); err != nil {
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
		var in strings.Builder
		for i := range n {
			if i > 0 {
				in.WriteString(", ")
			}
			fmt.Fprintf(&in, "$%d", i+2)
		}
		q := s.fl.q(`DELETE FROM relayed_tokens WHERE tenant_id = $1 AND key_hash IN (` + in.String() + `)`)
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
	rows, err := s.r.QueryContext(ctx, s.fl.q(`SELECT key_hash, kind, session_id, ended, expires_at FROM (
			SELECT rowid, key_hash, kind, session_id, ended, expires_at FROM relayed_tokens
			WHERE tenant_id = $1 AND expires_at > $2 ORDER BY rowid DESC LIMIT $3) AS newest
		ORDER BY rowid`), tenantID, now, max)
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
			ended   bool
			t       relayedToken
		)
		if err := rows.Scan(&key, &kind, &session, &ended, &t.expires); err != nil {
			return nil, fmt.Errorf("load relayed tokens: %w", err)
		}
		if len(key) != len(t.key) {
			continue
		}
		copy(t.key[:], key)
		t.class, t.session, t.ended = relayedKindClass(kind), uint64(session), ended
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load relayed tokens: %w", err)
	}
	return out, nil
}

// pruneRelayed deletes the rows that expired at or before now.
func (s *store) pruneRelayed(ctx context.Context, now int64) error {
	if _, err := s.w.ExecContext(ctx, s.fl.q(`DELETE FROM relayed_tokens WHERE expires_at <= $1`), now); err != nil {
		return fmt.Errorf("prune relayed tokens: %w", err)
	}
	return nil
}
