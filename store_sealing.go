package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
)

// sealer seals what the store keeps for a moment and must not keep in
// clear (a refresh answer replayed to other replicas). The key is the
// database's own, so that every replica sharing it opens what another
// sealed: one 32-byte AES-256-GCM key, made by the first process that needs
// it. This is the minimal form for the replicas work; the browser sign-in's
// cookie sealing brings rotated keys (the attack-review issue), which this
// should then use through the same two methods.
type sealer interface {
	seal(plain, ad []byte) []byte
	open(sealed, ad []byte) ([]byte, error)
}

// gcmSealer is a sealer on one AES-GCM key: nonce || ciphertext+tag.
type gcmSealer struct{ aead cipher.AEAD }

func newGCMSealer(key []byte) (*gcmSealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &gcmSealer{aead: aead}, nil
}

func (g *gcmSealer) seal(plain, ad []byte) []byte {
	out := make([]byte, g.aead.NonceSize(), g.aead.NonceSize()+len(plain)+g.aead.Overhead())
	rand.Read(out)
	return g.aead.Seal(out, out, plain, ad)
}

var errSealedBroken = errors.New("sealed value does not open")

func (g *gcmSealer) open(sealed, ad []byte) ([]byte, error) {
	n := g.aead.NonceSize()
	if len(sealed) < n+g.aead.Overhead() {
		return nil, errSealedBroken
	}
	plain, err := g.aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, errSealedBroken
	}
	return plain, nil
}

// sealingKey is the store's sealer, loaded (and made, the first time any
// process sharing the database asks) once per process.
type sealingKey struct {
	mu sync.Mutex
	s  sealer
}

// sealer returns the database's sealer, creating its key on first use.
// Concurrent first uses in several processes meet on the key's row: one
// insert wins and everybody reads its key.
func (s *store) sealer(ctx context.Context) (sealer, error) {
	s.sealKey.mu.Lock()
	defer s.sealKey.mu.Unlock()
	if s.sealKey.s != nil {
		return s.sealKey.s, nil
	}
	key := make([]byte, 32)
	rand.Read(key)
	if _, err := s.w.ExecContext(ctx, s.fl.q(`INSERT INTO sealing_keys (id, secret, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING`),
		key, s.now().UnixMilli()); err != nil {
		return nil, s.fl.classify(fmt.Errorf("sealing key: %w", err))
	}
	var stored []byte
	if err := s.w.QueryRowContext(ctx, `SELECT secret FROM sealing_keys WHERE id = 1`).Scan(&stored); err != nil {
		return nil, s.fl.classify(fmt.Errorf("sealing key: %w", err))
	}
	g, err := newGCMSealer(stored)
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	s.sealKey.s = g
	return g, nil
}
