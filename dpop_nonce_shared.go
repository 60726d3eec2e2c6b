package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
)

// With replicas, a server nonce made by one must pass at every other, or a
// client behind a load balancer chases nonces from replica to replica. So
// the nonce's MAC key is derived from the newest of the sealing keys in the
// database (signinseal.go), which every replica reads, and the nonce names
// that key: the window's number (8 bytes), the key's id (4), then 16 bytes
// of HMAC-SHA256 of both. A key still opens for signInKeyGrace after a
// rotation, longer than a nonce lives.

// sharedNonceLen is the decoded length of a nonce of replicas.
const sharedNonceLen = 8 + 4 + 16

// sharedNonceMACKey derives a tenant's nonce MAC key from a sealing key.
func sharedNonceMACKey(secret []byte, tenantID string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("scaiwave-auth dpop nonce v1\x00" + tenantID))
	return m.Sum(nil)
}

func sharedNonceFor(window uint64, keyID int64, macKey []byte) string {
	var b [sharedNonceLen]byte
	binary.BigEndian.PutUint64(b[:8], window)
	binary.BigEndian.PutUint32(b[8:12], uint32(keyID))
	m := hmac.New(sha256.New, macKey)
	m.Write(b[:12])
	var sum [32]byte
	copy(b[12:], m.Sum(sum[:0]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sharedNonce is the nonce of window under the newest sealing key; ok is
// false when the keys cannot be read (the database is away), and the
// caller makes one of its own process instead, which the client trades for
// another replica's if it lands there.
func (v *dpopVerifier) sharedNonce(ctx context.Context, window uint64) (string, bool) {
	k, _, err := v.keys.sealingKey(ctx)
	if err != nil {
		return "", false
	}
	return sharedNonceFor(window, k.ID, sharedNonceMACKey(k.Key, v.tenantID)), true
}

// validSharedNonce reports whether b (a decoded nonce of sharedNonceLen
// bytes, its window already checked) was made by a replica under a key
// that still opens.
func (v *dpopVerifier) validSharedNonce(ctx context.Context, b []byte) bool {
	id := int64(binary.BigEndian.Uint32(b[8:12]))
	secret, err := v.keys.openingSecret(ctx, id)
	if err != nil {
		return false
	}
	want := sharedNonceFor(binary.BigEndian.Uint64(b[:8]), id, sharedNonceMACKey(secret, v.tenantID))
	return hmac.Equal([]byte(want), []byte(base64.RawURLEncoding.EncodeToString(b)))
}
