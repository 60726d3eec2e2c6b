package main

import (
	"context"
	"database/sql"
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

// migrationRelayedSID (schema version 6) adds the IdP's session of each
// relayed token: sid_hash is sidKey of the sid its sign-in's ID token
// carried (a 64-bit hash with the tenant, not the sid), 0 for none, so that
// a back-channel logout naming that sid ends the session here.
const migrationRelayedSID = `ALTER TABLE relayed_tokens ADD COLUMN sid_hash INTEGER NOT NULL DEFAULT 0;`

// migrationRelayedSubject (schema version 11, both databases) keeps the
// subject (sub) of each relayed token's sign-in, ” when unknown, so that
// the access tokens a signed-out session ends are counted for their person
// on the deny list and collapse past 100 like any other (revocations.go).
const migrationRelayedSubject = `ALTER TABLE relayed_tokens ADD COLUMN subject TEXT NOT NULL DEFAULT '';`

// boolInt is b as the 0 or 1 an INTEGER column holds on both databases.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// migrationRelayedSeq (schema version 9) numbers the changes to the record
// of relayed tokens, as version 7 does revocations: each row carries the
// number of the transaction that last added, extended or ended it, from
// meta.relayed_seq, so that every process sharing the database can read
// what the others relayed or signed out since it last looked.
const migrationRelayedSeq = `ALTER TABLE relayed_tokens ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX relayed_tokens_seq ON relayed_tokens (seq);
	INSERT INTO meta (key, value) VALUES ('relayed_seq', 0);`

// nextRelayedSeq takes the next change number in tx. It goes first in the
// transaction: the row lock it takes holds every other writer of the
// record (on any replica) until this one commits, so numbers become
// visible in the order they were given and a reader of "seq > last"
// misses none (relayedSince).
func nextRelayedSeq(ctx context.Context, tx *sql.Tx) (int64, error) {
	var seq int64
	err := tx.QueryRowContext(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'relayed_seq' RETURNING value`).Scan(&seq)
	return seq, err
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
// first row but the later expiry, and the sid it is relayed with, if any.
func (s *store) addRelayed(ctx context.Context, tenantID string, toks []relayedToken) error {
	if len(toks) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.fl.classify(fmt.Errorf("store relayed tokens: %w", err))
	}
	defer tx.Rollback()
	seq, err := nextRelayedSeq(ctx, tx)
	if err != nil {
		return s.fl.classify(fmt.Errorf("store relayed tokens: %w", err))
	}
	for _, t := range toks {
		_, err := tx.ExecContext(ctx, s.fl.q(`INSERT INTO relayed_tokens (tenant_id, key_hash, kind, session_id, ended, expires_at, sid_hash, seq, subject)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (tenant_id, key_hash) DO UPDATE
			SET expires_at = greatest(relayed_tokens.expires_at, excluded.expires_at),
				sid_hash = CASE excluded.sid_hash WHEN 0 THEN relayed_tokens.sid_hash ELSE excluded.sid_hash END,
				subject = CASE excluded.subject WHEN '' THEN relayed_tokens.subject ELSE excluded.subject END,
				seq = excluded.seq`),
			tenantID, t.key[:], relayedKindName(t.class), int64(t.session), boolInt(t.ended), t.expires, int64(t.sid), seq, t.sub)
		if err != nil {
			return s.fl.classify(fmt.Errorf("store relayed tokens: %w", err))
		}
	}
	if err := tx.Commit(); err != nil {
		return s.fl.classify(fmt.Errorf("store relayed tokens: %w", err))
	}
	return nil
}

// endRelayedSessions marks the tokens of sessions signed out, in one
// transaction.
func (s *store) endRelayedSessions(ctx context.Context, tenantID string, sessions []uint64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.fl.classify(fmt.Errorf("end relayed sessions: %w", err))
	}
	defer tx.Rollback()
	seq, err := nextRelayedSeq(ctx, tx)
	if err != nil {
		return s.fl.classify(fmt.Errorf("end relayed sessions: %w", err))
	}
	for _, id := range sessions {
		if _, err := tx.ExecContext(ctx, s.fl.q(`UPDATE relayed_tokens SET ended = 1, seq = $3 WHERE tenant_id = $1 AND session_id = $2`), tenantID, int64(id), seq); err != nil {
			return s.fl.classify(fmt.Errorf("end relayed sessions: %w", err))
		}
	}
	if err := tx.Commit(); err != nil {
		return s.fl.classify(fmt.Errorf("end relayed sessions: %w", err))
	}
	return nil
}

// shortenRelayed brings the expiry of key's row forward to expires, when it
// is later, under a new change number.
func (s *store) shortenRelayed(ctx context.Context, tenantID string, key [32]byte, expires int64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.fl.classify(fmt.Errorf("shorten relayed token: %w", err))
	}
	defer tx.Rollback()
	seq, err := nextRelayedSeq(ctx, tx)
	if err != nil {
		return s.fl.classify(fmt.Errorf("shorten relayed token: %w", err))
	}
	if _, err := tx.ExecContext(ctx, s.fl.q(`UPDATE relayed_tokens SET expires_at = $3, seq = $4
		WHERE tenant_id = $1 AND key_hash = $2 AND expires_at > $3`), tenantID, key[:], expires, seq); err != nil {
		return s.fl.classify(fmt.Errorf("shorten relayed token: %w", err))
	}
	if err := tx.Commit(); err != nil {
		return s.fl.classify(fmt.Errorf("shorten relayed token: %w", err))
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

// relayedByKey returns the row of key, if the record holds one.
func (s *store) relayedByKey(ctx context.Context, tenantID string, key [32]byte) (relayedEntry, bool, error) {
	rows, err := s.r.QueryContext(ctx, s.fl.q(`SELECT '', key_hash, kind, session_id, ended, expires_at, sid_hash, seq, subject
		FROM relayed_tokens WHERE tenant_id = $1 AND key_hash = $2`), tenantID, key[:])
	if err != nil {
		return relayedEntry{}, false, s.fl.classify(fmt.Errorf("load relayed token: %w", err))
	}
	byTenant, _, err := s.scanRelayed(rows)
	if err != nil || len(byTenant[""]) == 0 {
		return relayedEntry{}, false, err
	}
	return byTenant[""][0].relayedEntry, true, nil
}

// relayedSeq is the change number the record is current to: read it
// before liveRelayed, and pass it to relayedSince to learn what came after.
func (s *store) relayedSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'relayed_seq'`).Scan(&seq); err != nil {
		return 0, s.fl.classify(fmt.Errorf("load relayed tokens: %w", err))
	}
	return seq, nil
}

// liveRelayed returns the newest max rows of tenantID that have not expired
// at now (Unix seconds), oldest first.
func (s *store) liveRelayed(ctx context.Context, tenantID string, now int64, max int) ([]relayedToken, error) {
	rows, err := s.r.QueryContext(ctx, s.fl.q(`SELECT '', key_hash, kind, session_id, ended, expires_at, sid_hash, seq, subject FROM (
			SELECT rowid, key_hash, kind, session_id, ended, expires_at, sid_hash, seq, subject FROM relayed_tokens
			WHERE tenant_id = $1 AND expires_at > $2 ORDER BY rowid DESC LIMIT $3) AS newest
		ORDER BY rowid`), tenantID, now, max)
	if err != nil {
		return nil, s.fl.classify(fmt.Errorf("load relayed tokens: %w", err))
	}
	byTenant, _, err := s.scanRelayed(rows)
	return byTenant[""], err
}

// relayedSince returns, by tenant, the rows of the record added, extended or
// ended after change number seq, by this process or another sharing the
// database, in the order of their changes; and the number to pass next
// time.
func (s *store) relayedSince(ctx context.Context, seq int64) (map[string][]relayedToken, int64, error) {
	rows, err := s.r.QueryContext(ctx, s.fl.q(`SELECT tenant_id, key_hash, kind, session_id, ended, expires_at, sid_hash, seq, subject
		FROM relayed_tokens WHERE seq > $1 ORDER BY seq, rowid`), seq)
	if err != nil {
		return nil, seq, s.fl.classify(fmt.Errorf("load relayed tokens: %w", err))
	}
	byTenant, last, err := s.scanRelayed(rows)
	return byTenant, max(seq, last), err
}

// scanRelayed reads rows of (tenant, key_hash, kind, session_id, ended,
// expires_at, sid_hash, seq) by tenant, and the largest seq among them.
func (s *store) scanRelayed(rows *sql.Rows) (map[string][]relayedToken, int64, error) {
	defer rows.Close()
	out := map[string][]relayedToken{}
	var last int64
	for rows.Next() {
		var (
			tenant  string
			key     []byte
			kind    string
			session int64
			sid     int64
			ended   bool
			seq     int64
			t       relayedToken
		)
		if err := rows.Scan(&tenant, &key, &kind, &session, &ended, &t.expires, &sid, &seq, &t.sub); err != nil {
			return nil, 0, s.fl.classify(fmt.Errorf("load relayed tokens: %w", err))
		}
		last = max(last, seq)
		if len(key) != len(t.key) {
			continue
		}
		copy(t.key[:], key)
		t.class, t.session, t.ended, t.sid = relayedKindClass(kind), uint64(session), ended, uint64(sid)
		out[tenant] = append(out[tenant], t)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, s.fl.classify(fmt.Errorf("load relayed tokens: %w", err))
	}
	return out, last, nil
}

// pruneRelayed deletes the rows that expired at or before now.
func (s *store) pruneRelayed(ctx context.Context, now int64) error {
	if _, err := s.w.ExecContext(ctx, s.fl.q(`DELETE FROM relayed_tokens WHERE expires_at <= $1`), now); err != nil {
		return fmt.Errorf("prune relayed tokens: %w", err)
	}
	return nil
}
