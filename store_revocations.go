package main

import (
	"context"
	"errors"
	"fmt"
)

// Kinds of revocation, as stored in revocations.kind.
const (
	revokeToken    = "token"     // one access token, by the hex SHA-256 of it
	revokeSub      = "sub"       // every token of a subject
	revokeSID      = "sid"       // every token of a session
	revokeSubNoSID = "sub_nosid" // a subject's tokens that name no session
)

// revocation is a row of the revocations table: access tokens of one tenant
// refused until ExpiresAt (Unix seconds), when none of them can be valid.
// For the subject and session kinds, only tokens issued at or before
// IssuedBefore (Unix seconds) are refused, so that a later sign-in works.
// Subject is the sub of a token revocation's token, so that they can be
// counted per subject.
type revocation struct {
	TenantID     string
	Kind         string
	Value        string
	IssuedBefore int64
	ExpiresAt    int64
	Subject      string
}

// logoutJTI is the jti of a back-channel logout token, remembered until
// ExpiresAt (Unix seconds), past which the token is refused anyway.
type logoutJTI struct {
	ID        string
	ExpiresAt int64
}

var (
	// errReplayed is a logout token whose jti was accepted before.
	errReplayed = errors.New("logout token already used")
	// errTooManyLogoutTokens is a tenant with maxLive logout tokens still
	// remembered: more would grow the table without bound.
	errTooManyLogoutTokens = errors.New("too many logout tokens remembered")
)

// addRevocations stores revs for tenantID in one transaction on the writer
// connection, with jti, when not nil, as a logout token accepted once. A
// revocation already stored is widened, never narrowed: the later of the two
// issued_before and expires_at wins. A subject revocation deletes the token
// revocations of that subject that it covers (issued_before of a token
// revocation is its token's iat), so that they take no room. Errors: errReplayed when jti was seen
// before, errTooManyLogoutTokens when the tenant has maxLive unexpired jtis
// (now is Unix seconds), nothing stored in either case.
func (s *store) addRevocations(ctx context.Context, tenantID string, jti *logoutJTI, maxLive int, now int64, revs []revocation) error {
	return s.fl.classify(s.addRevocationsTx(ctx, tenantID, jti, maxLive, now, revs))
}

func (s *store) addRevocationsTx(ctx context.Context, tenantID string, jti *logoutJTI, maxLive int, now int64, revs []revocation) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store revocation: %w", err)
	}
	defer tx.Rollback()
	// The sequence number goes first: the row lock it takes holds every
	// other writer of revocations (on any replica) until this one commits,
	// so numbers become visible in the order they were given and a watcher
	// reading "seq > last" misses none (revocationsSince).
	var seq int64
	if err := tx.QueryRowContext(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'revocation_seq' RETURNING value`).Scan(&seq); err != nil {
		return fmt.Errorf("store revocation: %w", err)
	}
	if jti != nil {
		res, err := tx.ExecContext(ctx, s.fl.q(`INSERT INTO logout_tokens (tenant_id, jti, expires_at) VALUES ($1, $2, $3)
			ON CONFLICT (tenant_id, jti) DO NOTHING`), tenantID, jti.ID, jti.ExpiresAt)
		if err != nil {
			return fmt.Errorf("store logout token: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errReplayed
		}
		var live int
		if err := tx.QueryRowContext(ctx, s.fl.q(`SELECT count(*) FROM logout_tokens WHERE tenant_id = $1 AND expires_at > $2`),
			tenantID, now).Scan(&live); err != nil {
			return fmt.Errorf("count logout tokens: %w", err)
		}
		if live > maxLive {
			return errTooManyLogoutTokens
		}
	}
	for _, r := range revs {
		_, err := tx.ExecContext(ctx, s.fl.q(`INSERT INTO revocations (tenant_id, kind, value, issued_before, expires_at, subject, seq)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (tenant_id, kind, value) DO UPDATE
			SET issued_before = greatest(revocations.issued_before, excluded.issued_before),
				expires_at = greatest(revocations.expires_at, excluded.expires_at),
				subject = CASE WHEN revocations.subject = '' THEN excluded.subject ELSE revocations.subject END,
				seq = excluded.seq`),
			tenantID, r.Kind, r.Value, r.IssuedBefore, r.ExpiresAt, r.Subject, seq)
		if err != nil {
			return fmt.Errorf("store revocation: %w", err)
		}
		if r.Kind == revokeSub {
			if _, err := tx.ExecContext(ctx, s.fl.q(`DELETE FROM revocations WHERE tenant_id = $1 AND kind = 'token' AND subject = $2 AND issued_before <= $3 AND expires_at <= $4`),
				tenantID, r.Value, r.IssuedBefore, r.ExpiresAt); err != nil {
				return fmt.Errorf("store revocation: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store revocation: %w", err)
	}
	return nil
}

// liveRevocations returns every revocation that has not expired at now
// (Unix seconds), of all tenants, and the sequence number they are current
// to: pass it to revocationsSince to learn what comes after.
func (s *store) liveRevocations(ctx context.Context, now int64) ([]revocation, int64, error) {
	// The number first: a revocation committed between the two reads is
	// read now and again by the next revocationsSince, never missed.
	var seq int64
	if err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'revocation_seq'`).Scan(&seq); err != nil {
		return nil, 0, s.fl.classify(fmt.Errorf("load revocations: %w", err))
	}
	revs, _, err := s.queryRevocations(ctx, `WHERE expires_at > $1`, now)
	return revs, seq, err
}

// revocationsSince returns the revocations added or widened after sequence
// number seq, by this process or another sharing the database, and the
// number to pass next time.
func (s *store) revocationsSince(ctx context.Context, seq int64) ([]revocation, int64, error) {
	revs, last, err := s.queryRevocations(ctx, `WHERE seq > $1`, seq)
	return revs, max(seq, last), err
}

func (s *store) queryRevocations(ctx context.Context, where string, arg int64) ([]revocation, int64, error) {
	rows, err := s.r.QueryContext(ctx, s.fl.q(`SELECT tenant_id, kind, value, issued_before, expires_at, subject, seq FROM revocations `+where), arg)
	if err != nil {
		return nil, 0, s.fl.classify(fmt.Errorf("load revocations: %w", err))
	}
	defer rows.Close()
	var out []revocation
	var last int64
	for rows.Next() {
		var r revocation
		var seq int64
		if err := rows.Scan(&r.TenantID, &r.Kind, &r.Value, &r.IssuedBefore, &r.ExpiresAt, &r.Subject, &seq); err != nil {
			return nil, 0, s.fl.classify(fmt.Errorf("load revocations: %w", err))
		}
		out = append(out, r)
		last = max(last, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, s.fl.classify(fmt.Errorf("load revocations: %w", err))
	}
	return out, last, nil
}

// pruneRevocations deletes the revocations and logout token ids that expired
// at or before now (Unix seconds) and returns how many rows went.
func (s *store) pruneRevocations(ctx context.Context, now int64) (int64, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("prune revocations: %w", err)
	}
	defer tx.Rollback()
	var n int64
	for _, q := range []string{`DELETE FROM revocations WHERE expires_at <= $1`, `DELETE FROM logout_tokens WHERE expires_at <= $1`} {
		res, err := tx.ExecContext(ctx, s.fl.q(q), now)
		if err != nil {
			return 0, fmt.Errorf("prune revocations: %w", err)
		}
		k, _ := res.RowsAffected()
		n += k
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("prune revocations: %w", err)
	}
	return n, nil
}
