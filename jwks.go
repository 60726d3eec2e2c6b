package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet is one fetched JWKS, immutable once published.
type keySet struct {
	keys        []jose.JSONWebKey
	fingerprint [32]byte
	gen         uint64 // bumped when the keys differ from the previous set
}

// keySource is one IdP's key set: the last good copy, swapped atomically,
// and the refetch an unknown kid triggers, throttled. The provider supplies
// the HTTP client and the discovery document that names the JWKS URI.
type keySource struct {
	// get is the provider's IdP client; discovery its current document,
	// which names the JWKS URI a refetch asks.
	get       func(ctx context.Context, what, u string) ([]byte, error)
	discovery func() *discovery
	log       *slog.Logger
	met       *metrics
	now       func() time.Time

	cur atomic.Pointer[keySet]

	// mu guards the refetch state: one fetch in flight at a time, and no
	// more than one per kidRefetchInterval.
	mu      sync.Mutex
	flight  chan struct{}
	lastGet time.Time
}

// Load returns the last good key set, nil before the first fetch.
func (s *keySource) Load() *keySet { return s.cur.Load() }

// errNoUsableKeys is returned by fetch when the key set it published holds
// no key we can verify with: from then on every token is refused.
var errNoUsableKeys = errors.New("no usable signing key in the key set: every token is refused until the IdP publishes one")

// fetch fetches the key set and publishes it when it parses, even when none
// of its keys is usable: a withdrawn key must stop verifying whatever the
// IdP publishes instead (fail closed). Only a failed fetch (transport
// error, error status, unparsable body) leaves the cached keys in place.
// A published set without a usable key returns errNoUsableKeys (wrapped).
func (s *keySource) fetch(ctx context.Context, jwksURI string) error {
	body, err := s.get(ctx, "jwks", jwksURI)
	if err != nil {
		return err
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("jwks %s: %w", jwksURI, err)
	}
	for _, sk := range skipped {
		s.log.Debug("jwks key skipped", "reason", sk)
	}
	ks := &keySet{keys: keys, fingerprint: sha256.Sum256(body)}
	// Only the gen is decided under mu. The scheduled fetches do not
	// restart the unknown-kid interval: a key the IdP starts signing with
	// just after one must still be picked up by its first token.
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.cur.Load(); old != nil {
		ks.gen = old.gen
		if old.fingerprint != ks.fingerprint {
			ks.gen++
		}
	}
	s.cur.Store(ks)
	if len(keys) == 0 {
		return fmt.Errorf("jwks %s: %w", jwksURI, errNoUsableKeys)
	}
	return nil
}

// parseJWKS parses a key set key by key. Keys we cannot or must not use are
// skipped with a reason, not fatal: an IdP may publish encryption keys,
// symmetric keys or types newer than us beside its signing keys. It fails
// only when the document is not a key set (a JSON object whose "keys" is an
// array, RFC 7517 §5); a set with no usable key is no error, and yields
// no keys.
func parseJWKS(body []byte) ([]jose.JSONWebKey, []string, error) {
	var doc map[string]json.RawMessage
	if err := decodeIdPAnswer(body, &doc); err != nil {
		return nil, nil, fmt.Errorf("not a JSON key set: %w", err)
	}
	var raws []json.RawMessage
	if keys, ok := doc["keys"]; !ok || bytes.Equal(keys, []byte("null")) || json.Unmarshal(keys, &raws) != nil {
		return nil, nil, errors.New("not a JSON key set: no \"keys\" array")
	}
	var keys []jose.JSONWebKey
	var skipped []string
	for i, raw := range raws {
		k, err := parseJWK(raw)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d]: %v", i, err))
			continue
		}
		keys = append(keys, k)
	}
	return keys, skipped, nil
}

func parseJWK(raw json.RawMessage) (jose.JSONWebKey, error) {
	var head struct {
		Kty string `json:"kty"`
		Use string `json:"use"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("not a JSON object: %w", err)
	}
	switch head.Kty {
	case "RSA", "EC", "OKP":
	default:
		return jose.JSONWebKey{}, fmt.Errorf("key type %q is not used for signatures we accept", head.Kty)
	}
	if head.Use != "" && head.Use != "sig" {
		return jose.JSONWebKey{}, fmt.Errorf("use %q is not sig", head.Use)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return jose.JSONWebKey{}, err
	}
	if !k.IsPublic() {
		// An IdP that publishes private material is broken; use only the public half.
		k = k.Public()
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return jose.JSONWebKey{}, fmt.Errorf("RSA key of %d bits is under 2048", pub.N.BitLen())
		}
		// crypto/rsa refuses these keys at every verification, so such a
		// key is skipped here rather than counted as usable.
		if pub.N.Bit(0) == 0 || pub.E < 3 || pub.E%2 == 0 || pub.E > 1<<31-1 {
			return jose.JSONWebKey{}, errors.New("RSA key with an even modulus or an unusable exponent")
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return jose.JSONWebKey{}, fmt.Errorf("unsupported key %T", k.Key)
	}
	return k, nil
}

// keyFits reports whether k can verify a signature made with alg.
func keyFits(k *jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve.Params().Name == "P-256"
		case "ES384":
			return pub.Curve.Params().Name == "P-384"
		case "ES512":
			return pub.Curve.Params().Name == "P-521"
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// refetchForUnknownKid refetches the key set after a token named a kid we
// do not have. Concurrent callers share one fetch, and these fetches are at
// most one per kidRefetchInterval (the scheduled ones do not count): a real
// rotation is picked up by the first token signed with the new key, while a
// flood of random kids costs the IdP one request per interval. It returns the key set
// to use, the cached one when the fetch fails or is throttled.
func (s *keySource) refetchForUnknownKid(ctx context.Context) *keySet {
	s.mu.Lock()
	flight := s.flight
	if flight == nil {
		if s.now().Sub(s.lastGet) < kidRefetchInterval {
			s.mu.Unlock()
			return s.cur.Load()
		}
		s.lastGet = s.now()
		flight = make(chan struct{})
		s.flight = flight
		d := s.discovery()
		// The fetch is not tied to the first caller's context: the others
		// are waiting for it too.
		go func() {
			fctx, cancel := context.WithTimeout(context.Background(), idpRequestTimeout)
			defer cancel()
			s.met.jwksRefetch()
			switch err := s.fetch(fctx, d.JWKSURI); {
			case errors.Is(err, errNoUsableKeys):
				s.log.Warn("jwks refetch for an unknown kid: the IdP's key set has no usable signing key", "err", err)
			case err != nil:
				s.log.Warn("jwks refetch for an unknown kid failed; keeping the cached keys", "err", err)
			}
			s.mu.Lock()
			s.flight = nil
			s.mu.Unlock()
			close(flight)
		}()
	}
	s.mu.Unlock()
	select {
	case <-flight:
	case <-ctx.Done():
	}
	return s.cur.Load()
}
