package main

// A pending browser sign-in travels in the browser, sealed: /authorize
// seals its state, nonce, verifiers and return_to into a cookie with
// AES-256-GCM under a key kept in the database, and the callback opens it.
// No server table of pending sign-ins exists, so no flood of /authorize can
// evict one, and every process on the same database can take the callback.

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

const (
	// signInKeyRotation is how long a key seals before a new one is made.
	signInKeyRotation = 24 * time.Hour
	// signInKeyGrace is how long a key still opens cookies after a newer
	// one took over: as long as a cookie lives.
	signInKeyGrace = signInTTL
	// signInKeyReloadEvery spaces the database reads for a key id this
	// process does not know (another process rotated), which a made-up
	// cookie could otherwise turn into one query per request.
	signInKeyReloadEvery = time.Second
	// maxSealedCookie refuses unopened a cookie value longer than any we
	// make (return_to is bounded by the configuration, not by this).
	maxSealedCookie = 4096
)

// errSealedCookie is a sign-in cookie that does not open: made up, changed,
// sealed for another tenant or cookie name, or under a key no longer kept.
var errSealedCookie = errors.New("sign-in cookie does not open")

// sealedSignIn is what the cookie of one pending sign-in holds.
type sealedSignIn struct {
	State     string `json:"s"`
	Nonce     string `json:"n"`
	Verifier  string `json:"v"` // ours, for the IdP
	ReturnTo  string `json:"r"`
	Challenge string `json:"c,omitempty"` // the app's code_challenge for the handoff
	Created   int64  `json:"t"`           // Unix seconds
}

// signInSealer seals and opens sign-in cookies with the keys in the store,
// making a new key every signInKeyRotation. The store holds one (store.keys)
// and seals with it too (store_sealing.go): one set of keys, one rotation.
type signInSealer struct {
	st  *store
	now func() time.Time

	mu       sync.Mutex
	keys     []signInKey // newest first
	aeads    map[int64]cipher.AEAD
	loadedAt time.Time
}

func newSignInSealer(st *store) *signInSealer {
	return &signInSealer{st: st, now: time.Now, aeads: map[int64]cipher.AEAD{}}
}

// reloadLocked reads the keys from the store.
func (s *signInSealer) reloadLocked(ctx context.Context) error {
	keys, err := s.st.signInKeys(ctx)
	if err != nil {
		return err
	}
	aeads := make(map[int64]cipher.AEAD, len(keys))
	for _, k := range keys {
		if a, ok := s.aeads[k.ID]; ok {
			aeads[k.ID] = a
			continue
		}
		block, err := aes.NewCipher(k.Key)
		if err != nil {
			return fmt.Errorf("sign-in key %d: %w", k.ID, err)
		}
		a, err := cipher.NewGCM(block)
		if err != nil {
			return fmt.Errorf("sign-in key %d: %w", k.ID, err)
		}
		aeads[k.ID] = a
	}
	s.keys, s.aeads, s.loadedAt = keys, aeads, s.now()
	return nil
}

// sealingKey returns the newest key, making one when there is none or the
// newest is older than signInKeyRotation.
func (s *signInSealer) sealingKey(ctx context.Context) (signInKey, cipher.AEAD, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	fresh := func() bool {
		return len(s.keys) > 0 && now.Sub(time.Unix(s.keys[0].CreatedAt, 0)) < signInKeyRotation
	}
	if !fresh() {
		// Another process may have made one already.
		if err := s.reloadLocked(ctx); err != nil {
			return signInKey{}, nil, err
		}
	}
	if !fresh() {
		key := make([]byte, 32)
		rand.Read(key) // never fails since Go 1.24
		// Keys made before the newest one can open nothing once this one
		// is made: the newest stops sealing now, and its cookies outlive
		// it by signInKeyGrace only.
		keepFrom := now.Unix()
		if len(s.keys) > 0 {
			keepFrom = s.keys[0].CreatedAt
		}
		if err := s.st.addSignInKey(ctx, key, now.Unix(), keepFrom); err != nil {
			return signInKey{}, nil, err
		}
		if err := s.reloadLocked(ctx); err != nil {
			return signInKey{}, nil, err
		}
		if len(s.keys) == 0 {
			return signInKey{}, nil, errors.New("sign-in key: none stored after adding one")
		}
	}
	return s.keys[0], s.aeads[s.keys[0].ID], nil
}

// openingKey returns the key with id when it may still open a cookie: the
// newest, or one whose successor is younger than signInKeyGrace.
func (s *signInSealer) openingKey(ctx context.Context, id int64) (cipher.AEAD, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.openingLocked(ctx, id); err != nil {
		return nil, err
	}
	return s.aeads[id], nil
}

// openingSecret is openingKey's key as bytes, for a key derived from it
// (the DPoP nonces of replicas, dpop.go).
func (s *signInSealer) openingSecret(ctx context.Context, id int64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, err := s.openingLocked(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.keys[i].Key, nil
}

// openingLocked returns the index of key id when it may still open,
// reading the keys again (at most every signInKeyReloadEvery) when it is
// not known. Errors: errSealedCookie, or the store's.
func (s *signInSealer) openingLocked(ctx context.Context, id int64) (int, error) {
	find := func() int {
		for i, k := range s.keys {
			if k.ID == id {
				return i
			}
		}
		return -1
	}
	i := find()
	if i < 0 && s.now().Sub(s.loadedAt) >= signInKeyReloadEvery {
		if err := s.reloadLocked(ctx); err != nil {
			return -1, err
		}
		i = find()
	}
	if i < 0 {
		return -1, errSealedCookie
	}
	if i > 0 && s.now().Sub(time.Unix(s.keys[i-1].CreatedAt, 0)) >= signInKeyGrace {
		return -1, errSealedCookie
	}
	return i, nil
}

// signInAAD binds a sealed cookie to its tenant and its name (which carries
// the state), so that it opens nowhere else.
func signInAAD(tenantID, cookieName string, keyID []byte) []byte {
	return []byte("scaiwave-auth sign-in v1\x00" + tenantID + "\x00" + cookieName + "\x00" + string(keyID))
}

// seal returns the cookie value for p: base64url of the key id (4 bytes),
// the GCM nonce and the sealed JSON.
func (s *signInSealer) seal(ctx context.Context, tenantID, cookieName string, p *sealedSignIn) (string, error) {
	k, aead, err := s.sealingKey(ctx)
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	out := make([]byte, 4, 4+aead.NonceSize()+len(plain)+aead.Overhead())
	binary.BigEndian.PutUint32(out, uint32(k.ID))
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	out = append(out, nonce...)
	out = aead.Seal(out, nonce, plain, signInAAD(tenantID, cookieName, out[:4]))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// open returns what the cookie value sealed, when it opens for this tenant
// and cookie name under a key still kept. Errors: errSealedCookie, or the
// store's error when the keys could not be read.
func (s *signInSealer) open(ctx context.Context, tenantID, cookieName, value string) (*sealedSignIn, error) {
	if len(value) > maxSealedCookie {
		return nil, errSealedCookie
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < 4+12+16 {
		return nil, errSealedCookie
	}
	aead, err := s.openingKey(ctx, int64(binary.BigEndian.Uint32(raw[:4])))
	if err != nil {
		return nil, err
	}
	ns := aead.NonceSize()
	plain, err := aead.Open(nil, raw[4:4+ns], raw[4+ns:], signInAAD(tenantID, cookieName, raw[:4]))
	if err != nil {
		return nil, errSealedCookie
	}
	var p sealedSignIn
	if err := json.Unmarshal(plain, &p); err != nil {
		return nil, errSealedCookie // sealed by us, so a bug or an old format
	}
	return &p, nil
}
