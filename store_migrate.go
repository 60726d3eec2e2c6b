package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// migrations are applied in order; PRAGMA user_version holds how many have
// run. Append only: an applied migration is never edited.
//
// Times are Unix seconds (UTC). Participant and workspace ids are random
// UUIDs (v4); workspace ids carry a "ws-" prefix.
var migrations = []string{
	`CREATE TABLE participants (
		id                    TEXT PRIMARY KEY,
		tenant_id             TEXT NOT NULL,
		issuer                TEXT NOT NULL,
		subject               TEXT NOT NULL,
		display_name          TEXT NOT NULL,
		email                 TEXT NOT NULL DEFAULT '',
		personal_workspace_id TEXT NOT NULL UNIQUE,
		created_at            INTEGER NOT NULL,
		updated_at            INTEGER NOT NULL,
		UNIQUE (tenant_id, issuer, subject)
	) STRICT;
	CREATE TABLE workspaces (
		id                   TEXT PRIMARY KEY,
		tenant_id            TEXT NOT NULL,
		owner_participant_id TEXT NOT NULL REFERENCES participants(id) ON DELETE CASCADE,
		kind                 TEXT NOT NULL CHECK (kind IN ('personal')),
		name                 TEXT NOT NULL,
		created_at           INTEGER NOT NULL
	) STRICT;
	CREATE UNIQUE INDEX workspaces_one_personal ON workspaces (owner_participant_id) WHERE kind = 'personal';
	CREATE INDEX participants_tenant ON participants (tenant_id, created_at);
	-- meta.generation changes whenever rows are deleted, so that a running
	-- service drops what it holds in memory.
	CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
	INSERT INTO meta (key, value) VALUES ('generation', 0);`,
	// Version 2: sign-out. revocations are access tokens refused before
	// their exp; logout_tokens the jti of each back-channel logout token
	// accepted, so none is accepted twice. Times are Unix seconds (UTC). A
	// row goes once expires_at has passed: no token it matches is valid by
	// then. No token is stored: kind 'token' keeps the hex SHA-256 of one
	// access token; 'sub' refuses a subject's tokens, 'sid' a session's, and
	// 'sub_nosid' the subject's tokens that name no session, each for tokens
	// issued (iat) at or before issued_before.
	`CREATE TABLE revocations (
		tenant_id     TEXT NOT NULL,
		kind          TEXT NOT NULL CHECK (kind IN ('token', 'sub', 'sid', 'sub_nosid')),
		value         TEXT NOT NULL,
		issued_before INTEGER NOT NULL,
		expires_at    INTEGER NOT NULL,
		PRIMARY KEY (tenant_id, kind, value)
	) STRICT;
	CREATE INDEX revocations_expiry ON revocations (expires_at);
	CREATE TABLE logout_tokens (
		tenant_id  TEXT NOT NULL,
		jti        TEXT NOT NULL,
		expires_at INTEGER NOT NULL,
		PRIMARY KEY (tenant_id, jti)
	) STRICT;
	CREATE INDEX logout_tokens_expiry ON logout_tokens (tenant_id, expires_at);`,
	// Version 3: the keys that seal pending browser sign-ins into their
	// cookies (store_keys.go), shared by every process on this database.
	`CREATE TABLE signin_keys (
		id         INTEGER PRIMARY KEY,
		key        BLOB NOT NULL,
		created_at INTEGER NOT NULL
	) STRICT;`,
	// Version 4: the subject of a revoked access token (kind 'token'), so
	// that one subject's tokens can be counted and collapsed into one 'sub'
	// revocation ('' for rows stored before). From this version a 'token'
	// row's issued_before is its token's iat (0 for none).
	`ALTER TABLE revocations ADD COLUMN subject TEXT NOT NULL DEFAULT '';
	CREATE INDEX revocations_subject ON revocations (tenant_id, subject) WHERE kind = 'token';`,
	migrationRelayed,    // version 5, store_relayed.go
	migrationRelayedSID, // version 6, store_relayed.go
	// Version 7: several replicas. Each revocation carries the number of
	// the transaction that last added or widened it, from
	// meta.revocation_seq, so that every process sharing the database can
	// read what changed since it last looked.
	`ALTER TABLE revocations ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX revocations_seq ON revocations (seq);
	INSERT INTO meta (key, value) VALUES ('revocation_seq', 0);`,
	// Version 8: several replicas. refresh_flights holds the refreshes in
	// flight and their answers, sealed with the sign-in keys
	// (store_sealing.go), for the replay window, keyed by the hex SHA-256 of
	// the tenant and refresh token and of the scope (store_refresh.go);
	// login_failures the password limiter's counters shared by replicas
	// (store_loginfail.go); handoffs the browser sign-ins' handoffs, sealed,
	// keyed by the hex SHA-256 of the reference (store_handoffs.go). Times
	// are Unix milliseconds.
	`CREATE TABLE refresh_flights (
		token_hash    TEXT NOT NULL,
		scope_hash    TEXT NOT NULL,
		claimed_until INTEGER NOT NULL,
		answer        BLOB,
		expires_at    INTEGER NOT NULL,
		PRIMARY KEY (token_hash, scope_hash)
	) STRICT;
	CREATE INDEX refresh_flights_expiry ON refresh_flights (expires_at);
	CREATE TABLE login_failures (
		key          TEXT PRIMARY KEY,
		n            INTEGER NOT NULL,
		window_start INTEGER NOT NULL
	) STRICT;
	CREATE INDEX login_failures_window ON login_failures (window_start);
	CREATE TABLE handoffs (
		key        TEXT PRIMARY KEY,
		tenant_id  TEXT NOT NULL,
		sealed     BLOB NOT NULL,
		expires_at INTEGER NOT NULL
	) STRICT;
	CREATE INDEX handoffs_tenant ON handoffs (tenant_id, expires_at);`,
	migrationRelayedSeq,     // version 9, store_relayed.go
	migrationDPoPProofs,     // version 10, store_dpop.go
	migrationRelayedSubject, // version 11, store_relayed.go
}

// isSQLiteBusy reports whether err is SQLite's SQLITE_BUSY (5), extended
// codes included.
func isSQLiteBusy(err error) bool {
	var se interface{ Code() int }
	return errors.As(err, &se) && se.Code()&0xff == 5
}

// migrate runs the migrations the database has not seen yet, each in its own
// transaction with the user_version bump. The version is read again inside
// each write transaction: another process may be migrating the same file at
// the same moment, and must not make this one apply a migration twice.
func migrate(ctx context.Context, db *sql.DB) error {
	var version int
	for attempt := 1; ; attempt++ {
		err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version)
		if err == nil {
			break
		}
		// A file that other processes are creating at this moment (its WAL
		// being set up) answers SQLITE_BUSY at once, without waiting for
		// busy_timeout: ask again a little later, for up to 5 s.
		if !isSQLiteBusy(err) || attempt == 100 {
			return fmt.Errorf("read schema version: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("read schema version: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	for version != len(migrations) {
		if version > len(migrations) {
			return fmt.Errorf("schema version %d is newer than this binary knows (%d): refusing to run an older binary on it", version, len(migrations))
		}
		var err error
		if version, err = applyMigration(ctx, db); err != nil {
			return err
		}
	}
	return nil
}

// applyMigration applies the next migration, if any, and returns the schema
// version it leaves.
func applyMigration(ctx context.Context, db *sql.DB) (int, error) {
	tx, err := db.BeginTx(ctx, nil) // immediate: holds the write lock from here
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if v >= len(migrations) {
		return v, nil
	}
	if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
		return 0, fmt.Errorf("migrate to schema version %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return 0, fmt.Errorf("migrate to schema version %d: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("migrate to schema version %d: %w", v+1, err)
	}
	return v + 1, nil
}
