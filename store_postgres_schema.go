package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// pgMigrations are the PostgreSQL schema, one entry per schema version as
// in migrations (SQLite): the same tables, columns and meaning, in
// PostgreSQL's types. The version reached is the largest in schema_version.
// Append only, and in step with migrations.
var pgMigrations = []string{
	`CREATE TABLE participants (
		id                    TEXT PRIMARY KEY,
		tenant_id             TEXT NOT NULL,
		issuer                TEXT NOT NULL,
		subject               TEXT NOT NULL,
		display_name          TEXT NOT NULL,
		email                 TEXT NOT NULL DEFAULT '',
		personal_workspace_id TEXT NOT NULL UNIQUE,
		created_at            BIGINT NOT NULL,
		updated_at            BIGINT NOT NULL,
		UNIQUE (tenant_id, issuer, subject)
	);
	CREATE TABLE workspaces (
		id                   TEXT PRIMARY KEY,
		tenant_id            TEXT NOT NULL,
		owner_participant_id TEXT NOT NULL REFERENCES participants(id) ON DELETE CASCADE,
		kind                 TEXT NOT NULL CHECK (kind IN ('personal')),
		name                 TEXT NOT NULL,
		created_at           BIGINT NOT NULL
	);
	CREATE UNIQUE INDEX workspaces_one_personal ON workspaces (owner_participant_id) WHERE kind = 'personal';
	CREATE INDEX participants_tenant ON participants (tenant_id, created_at);
	CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
	INSERT INTO meta (key, value) VALUES ('generation', 0);`,
	`CREATE TABLE revocations (
		tenant_id     TEXT NOT NULL,
		kind          TEXT NOT NULL CHECK (kind IN ('token', 'sub', 'sid', 'sub_nosid')),
		value         TEXT NOT NULL,
		issued_before BIGINT NOT NULL,
		expires_at    BIGINT NOT NULL,
		PRIMARY KEY (tenant_id, kind, value)
	);
	CREATE INDEX revocations_expiry ON revocations (expires_at);
	CREATE TABLE logout_tokens (
		tenant_id  TEXT NOT NULL,
		jti        TEXT NOT NULL,
		expires_at BIGINT NOT NULL,
		PRIMARY KEY (tenant_id, jti)
	);
	CREATE INDEX logout_tokens_expiry ON logout_tokens (tenant_id, expires_at);`,
	`ALTER TABLE revocations ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
	CREATE INDEX revocations_seq ON revocations (seq);
	INSERT INTO meta (key, value) VALUES ('revocation_seq', 0);`,
	`CREATE TABLE sealing_keys (
		id         INTEGER PRIMARY KEY,
		secret     BYTEA NOT NULL,
		created_at BIGINT NOT NULL
	);
	CREATE TABLE refresh_flights (
		token_hash    TEXT NOT NULL,
		scope_hash    TEXT NOT NULL,
		claimed_until BIGINT NOT NULL,
		answer        BYTEA,
		expires_at    BIGINT NOT NULL,
		PRIMARY KEY (token_hash, scope_hash)
	);
	CREATE INDEX refresh_flights_expiry ON refresh_flights (expires_at);
	CREATE TABLE login_failures (
		key          TEXT PRIMARY KEY,
		n            INTEGER NOT NULL,
		window_start BIGINT NOT NULL
	);
	CREATE INDEX login_failures_window ON login_failures (window_start);
	CREATE TABLE handoffs (
		key        TEXT PRIMARY KEY,
		tenant_id  TEXT NOT NULL,
		sealed     BYTEA NOT NULL,
		expires_at BIGINT NOT NULL
	);
	CREATE INDEX handoffs_tenant ON handoffs (tenant_id, expires_at);`,
}

// pgMigrationLock is the key of the advisory lock under which one replica
// migrates while the others starting with it wait ("scaiwave" in ASCII).
const pgMigrationLock = 0x7363616977617665

// pgPoolSize is the most connections one replica opens: requests beyond it
// wait for a connection, so N replicas need N×pgPoolSize of the server's
// max_connections (default 100).
const pgPoolSize = 16

// openPostgresDB opens the PostgreSQL database at url through the
// database/sql driver named driverName, migrates it and starts the store.
// Error messages name the database without its password.
func openPostgresDB(ctx context.Context, driverName, url string, opts []storeOption) (*store, error) {
	db, err := sql.Open(driverName, url)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", databaseForLog(url), err)
	}
	db.SetMaxOpenConns(pgPoolSize)
	db.SetMaxIdleConns(pgPoolSize)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := migratePostgres(ctx, db, pgMigrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", databaseForLog(url), err)
	}
	s, err := startStore(ctx, db, db, postgresFlavor(), opts)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", databaseForLog(url), err)
	}
	return s, nil
}

// migratePostgres applies the migrations the database has not seen, under
// a session advisory lock so that replicas starting together migrate once:
// the others wait, then find nothing left to do. A database at a newer
// version than this binary knows is refused.
func migratePostgres(ctx context.Context, db *sql.DB, migs []string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(pgMigrationLock)); err != nil {
		return fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(pgMigrationLock))
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var v int
	if err := conn.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > len(migs) {
		return fmt.Errorf("schema version %d is newer than this binary knows (%d): refusing to run an older binary on it", v, len(migs))
	}
	for ; v < len(migs); v++ {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate to schema version %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migs[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to schema version %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)`, v+1, time.Now().Unix()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to schema version %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate to schema version %d: %w", v+1, err)
		}
	}
	return nil
}

// postgresFlavor: queries as written, a pool of writers.
func postgresFlavor() *flavor {
	return &flavor{name: "postgres", unavailable: pgUnavailable, shared: true}
}

// pgUnavailable reports whether err means the server cannot be reached or
// is going away: a broken or refused connection, a timeout, or an
// SQLSTATE of class 08 (connection exception), 57P01-57P03 (shutting down,
// starting up) or 53300 (too many connections).
func pgUnavailable(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne):
		return true
	}
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		code := se.SQLState()
		return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "57P") || code == "53300"
	}
	return false
}
