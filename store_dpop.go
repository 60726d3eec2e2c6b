package main

import (
	"context"
	"fmt"
	"time"
)

// migrationDPoPProofs (schema version 10) is the DPoP replay cache shared by
// replicas (dpop.go): the replay key of each proof accepted (8 bytes of the
// SHA-256 of its jti and key thumbprint, as a signed integer) until the end
// of its iat window, in Unix milliseconds. Every row is a proof some
// process's own bounded cache accepted first, so the table holds at most
// that bound per replica, plus the rows expired since the last prune (once
// a minute, pruneShortLived).
const migrationDPoPProofs = `CREATE TABLE dpop_proofs (
		tenant_id  TEXT NOT NULL,
		proof_key  INTEGER NOT NULL,
		expires_at INTEGER NOT NULL,
		PRIMARY KEY (tenant_id, proof_key)
	) STRICT;
	CREATE INDEX dpop_proofs_expiry ON dpop_proofs (expires_at);`

// rememberProof records the replay key of a proof accepted for tenantID
// until until, once across every process on the database: false when the
// key is recorded and has not expired at now (a replay, whichever replica
// saw it first). An expired row is taken over.
func (s *store) rememberProof(ctx context.Context, tenantID string, key uint64, until, now time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.fl.q(`INSERT INTO dpop_proofs (tenant_id, proof_key, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id, proof_key) DO UPDATE SET expires_at = excluded.expires_at
		WHERE dpop_proofs.expires_at <= $4`),
		tenantID, int64(key), max(until.UnixMilli(), now.UnixMilli()+1), now.UnixMilli())
	if err != nil {
		return false, s.fl.classify(fmt.Errorf("remember DPoP proof: %w", err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("remember DPoP proof: %w", err)
	}
	return n == 1, nil
}
