package main

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// handoffPruneEvery is how many handoffs a process stores between two
// checks of a tenant's bound.
const handoffPruneEvery = 100

// storedHandoff is a handoff as sealed in the database.
type storedHandoff struct {
	Tokens    *storedTokens `json:"tokens"`
	Challenge string        `json:"challenge,omitempty"`
	IssuedMS  int64         `json:"issued_ms"`
}

func handoffAD(tenantID string, key onceKey) []byte {
	return []byte("handoff/" + tenantID + "/" + hex.EncodeToString(key[:]))
}

// putHandoff keeps a handoff in the database for handoffTTL, sealed, for
// replicas sharing PostgreSQL: the callback may land on one and the
// redemption on another. At most maxHandoffs per tenant: past that the
// oldest go, as in memory.
func (s *store) putHandoff(ctx context.Context, tenantID string, key onceKey, h handoff) error {
	plain, err := json.Marshal(storedHandoff{Tokens: storeTokens(h.tokens), Challenge: h.challenge, IssuedMS: h.issued.UnixMilli()})
	if err != nil {
		return err
	}
	sealed, err := s.seal(ctx, plain, handoffAD(tenantID, key))
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, s.fl.q(`INSERT INTO handoffs (key, tenant_id, sealed, expires_at) VALUES ($1, $2, $3, $4)`),
		hex.EncodeToString(key[:]), tenantID, sealed, h.issued.Add(handoffTTL).UnixMilli())
	if err != nil {
		return s.fl.classify(fmt.Errorf("store handoff: %w", err))
	}
	if s.handoffPuts.Add(1)%handoffPruneEvery == 0 {
		s.pruneHandoffs(ctx, tenantID, s.now(), maxHandoffs)
	}
	return nil
}

// takeHandoff removes and returns the handoff under key, if there is one
// and it has not expired at now: the delete makes it once across every
// replica.
func (s *store) takeHandoff(ctx context.Context, tenantID string, key onceKey, now time.Time) (handoff, bool, error) {
	var sealed []byte
	var expires int64
	err := s.w.QueryRowContext(ctx, s.fl.q(`DELETE FROM handoffs WHERE key = $1 AND tenant_id = $2 RETURNING sealed, expires_at`),
		hex.EncodeToString(key[:]), tenantID).Scan(&sealed, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return handoff{}, false, nil
	}
	if err != nil {
		return handoff{}, false, s.fl.classify(fmt.Errorf("take handoff: %w", err))
	}
	if now.UnixMilli() >= expires {
		return handoff{}, false, nil
	}
	plain, err := s.open(ctx, sealed, handoffAD(tenantID, key))
	if err != nil {
		return handoff{}, false, fmt.Errorf("take handoff: %w", err)
	}
	var sh storedHandoff
	if err := json.Unmarshal(plain, &sh); err != nil || sh.Tokens == nil {
		return handoff{}, false, fmt.Errorf("take handoff: unreadable")
	}
	return handoff{tokens: sh.Tokens.answer(), challenge: sh.Challenge, issued: time.UnixMilli(sh.IssuedMS)}, true, nil
}

// pruneHandoffs drops expired handoffs, and a tenant's oldest past max.
func (s *store) pruneHandoffs(ctx context.Context, tenantID string, now time.Time, max int) error {
	if _, err := s.w.ExecContext(ctx, s.fl.q(`DELETE FROM handoffs WHERE expires_at <= $1`), now.UnixMilli()); err != nil {
		return s.fl.classify(err)
	}
	var n int
	if err := s.w.QueryRowContext(ctx, s.fl.q(`SELECT count(*) FROM handoffs WHERE tenant_id = $1`), tenantID).Scan(&n); err != nil {
		return s.fl.classify(err)
	}
	if n <= max {
		return nil
	}
	_, err := s.w.ExecContext(ctx, s.fl.q(`DELETE FROM handoffs WHERE key IN (SELECT key FROM handoffs WHERE tenant_id = $1 ORDER BY expires_at LIMIT $2)`), tenantID, n-max)
	return s.fl.classify(err)
}
