package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet is one fetched JWKS, immutable once published.
type keySet struct {
	keys        []jose.JSONWebKey
	fingerprint [32]byte
	gen         uint64 // bumped when the keys differ from the previous set
}

// fetchKeys fetches the key set and publishes it when it parses. A failed
// fetch leaves the cached keys in place.
func (p *provider) fetchKeys(ctx context.Context, jwksURI string) error {
	body, err := p.get(ctx, "jwks", jwksURI)
	if err != nil {
		return err
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("jwks %s: %w", jwksURI, err)
	}
	for _, s := range skipped {
		p.log.Debug("jwks key skipped", "reason", s)
	}
	ks := &keySet{keys: keys, fingerprint: sha256.Sum256(body)}
	// Only the gen is decided under kmu. The scheduled fetches do not
	// restart the unknown-kid interval: a key the IdP starts signing with
	// just after one must still be picked up by its first token.
	p.kmu.Lock()
	defer p.kmu.Unlock()
	if old := p.keys.Load(); old != nil {
		ks.gen = old.gen
		if old.fingerprint != ks.fingerprint {
			ks.gen++
		}
	}
	p.keys.Store(ks)
	return nil
}

// parseJWKS parses a key set key by key. Keys we cannot or must not use are
// skipped with a reason, not fatal: an IdP may publish encryption keys,
// symmetric keys or types newer than us beside its signing keys. It fails
// only when the document is not a key set or no usable key is left.
func parseJWKS(body []byte) ([]jose.JSONWebKey, []string, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, nil, fmt.Errorf("not a JSON key set: %w", err)
	}
	var keys []jose.JSONWebKey
	var skipped []string
	for i, raw := range doc.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d]: %v", i, err))
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, skipped, errors.New("no usable signing key in the key set")
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

// refetchKeysForUnknownKid refetches the key set after a token named a kid we
// do not have. Concurrent callers share one fetch, and these fetches are at
// most one per kidRefetchInterval (the scheduled ones do not count): a real
// rotation is picked up by the first token signed with the new key, while a
// flood of random kids costs the IdP one request per interval. It returns the key set
// to use, the cached one when the fetch fails or is throttled.
func (p *provider) refetchKeysForUnknownKid(ctx context.Context) *keySet {
	p.kmu.Lock()
	flight := p.kflight
	if flight == nil {
		if p.now().Sub(p.lastKeyGet) < kidRefetchInterval {
			p.kmu.Unlock()
			return p.keys.Load()
		}
		p.lastKeyGet = p.now()
		flight = make(chan struct{})
		p.kflight = flight
		d := p.disc.Load()
		// The fetch is not tied to the first caller's context: the others
		// are waiting for it too.
		go func() {
			fctx, cancel := context.WithTimeout(context.Background(), idpRequestTimeout)
			defer cancel()
			p.met.jwksRefetch()
			if err := p.fetchKeys(fctx, d.JWKSURI); err != nil {
				p.log.Warn("jwks refetch for an unknown kid failed; keeping the cached keys", "err", err)
			}
			p.kmu.Lock()
			p.kflight = nil
			p.kmu.Unlock()
			close(flight)
		}()
	}
	p.kmu.Unlock()
	select {
	case <-flight:
	case <-ctx.Done():
	}
	return p.keys.Load()
}
