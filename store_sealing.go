package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// The store seals what it keeps for a moment and must not keep in clear (a
// refresh answer replayed to other replicas, a handoff's tokens) with the
// keys that seal the browser sign-in's cookies (signinseal.go): one set of
// rotated AES-256-GCM keys in signin_keys, shared by every process on the
// database, so that a replica opens what another sealed. What the store
// seals lives for seconds (refreshReplayWindow, handoffTTL), well inside
// the signInKeyGrace an older key still opens for after a rotation.

// storeSealPrefix starts the additional data of every value the store
// seals, so that nothing it seals opens as a sign-in cookie, whose
// additional data starts otherwise (signInAAD), nor the other way round.
const storeSealPrefix = "scaiwave-auth store v1\x00"

// errSealedBroken is a sealed value that does not open: changed, sealed for
// other additional data, or under a key no longer kept.
var errSealedBroken = errors.New("sealed value does not open")

// storedTokens is an IdP's answer as the store seals it (a refresh answer,
// a handoff's tokens): its JSON, and beside it what the service learned of
// it and keeps out of that JSON, which another replica relaying it needs:
// the ID token's sid for the record of relayed tokens, and the IdP's DPoP
// nonce for the client.
type storedTokens struct {
	tokenResponse
	SID       string `json:"sw_sid,omitempty"`
	Sub       string `json:"sw_sub,omitempty"`
	DPoPNonce string `json:"sw_dpop_nonce,omitempty"`
}

func storeTokens(tr *tokenResponse) *storedTokens {
	return &storedTokens{tokenResponse: *tr, SID: tr.sid, Sub: tr.sub, DPoPNonce: tr.dpopNonce}
}

func (st *storedTokens) answer() *tokenResponse {
	tr := st.tokenResponse
	tr.sid, tr.sub, tr.dpopNonce = st.SID, st.Sub, st.DPoPNonce
	return &tr
}

func storeSealAD(keyID, ad []byte) []byte {
	return append(append(append([]byte(storeSealPrefix), keyID...), 0), ad...)
}

// seal seals plain with ad under the newest key: the key id (4 bytes), the
// GCM nonce, then the ciphertext and tag. It makes the first key when the
// database has none.
func (s *store) seal(ctx context.Context, plain, ad []byte) ([]byte, error) {
	k, aead, err := s.keys.sealingKey(ctx)
	if err != nil {
		return nil, s.fl.classify(fmt.Errorf("sealing key: %w", err))
	}
	out := make([]byte, 4+aead.NonceSize(), 4+aead.NonceSize()+len(plain)+aead.Overhead())
	binary.BigEndian.PutUint32(out, uint32(k.ID))
	rand.Read(out[4:])
	return aead.Seal(out, out[4:], plain, storeSealAD(out[:4], ad)), nil
}

// open returns what seal sealed with ad. Errors: errSealedBroken, or the
// store's error when the keys could not be read.
func (s *store) open(ctx context.Context, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < 4+12+16 {
		return nil, errSealedBroken
	}
	aead, err := s.keys.openingKey(ctx, int64(binary.BigEndian.Uint32(sealed[:4])))
	switch {
	case errors.Is(err, errSealedCookie):
		return nil, errSealedBroken
	case err != nil:
		return nil, s.fl.classify(fmt.Errorf("sealing key: %w", err))
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, sealed[4:4+n], sealed[4+n:], storeSealAD(sealed[:4], ad))
	if err != nil {
		return nil, errSealedBroken
	}
	return plain, nil
}
