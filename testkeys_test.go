package main

// Keys and crafted tokens: the fake IdP's signing keys, made in the test
// binary and never written to disk, signing with any key and header, and
// tokens built by hand to be malformed, forged or tampered with.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// Test keys are made once per test binary: RSA generation dominates the run
// time otherwise. They are never written to disk.
var (
	rsaKeysOnce sync.Once
	rsaKeys     []*rsa.PrivateKey
)

func testRSAKey(i int) *rsa.PrivateKey {
	rsaKeysOnce.Do(func() {
		for range 4 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	return rsaKeys[i%len(rsaKeys)]
}

// testKey is a signing key of the fake IdP.
type testKey struct {
	kid    string
	alg    jose.SignatureAlgorithm
	priv   crypto.Signer
	hidden bool // signs, but is not in the published key set
}

func (k testKey) publicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// newTestKey makes a key for alg; RSA keys come from the shared pool (n picks one).
func newTestKey(t testing.TB, alg jose.SignatureAlgorithm, kid string, n int) testKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		priv = testRSAKey(n)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.ES512:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("newTestKey: unsupported alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: alg, priv: priv}
}

// signWith signs claims with k; hdr adds protected headers. A kid of "-"
// leaves the kid out.
func signWith(t testing.TB, k testKey, claims any, hdr map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if k.kid != "-" {
		opts = opts.WithHeader("kid", k.kid)
	}
	for name, v := range hdr {
		opts = opts.WithHeader(name, v)
	}
	return signOpts(t, k.alg, k.priv, opts, claims)
}

// b64u is unpadded base64url, the encoding of every JWS segment.
func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// craft builds a compact JWS by hand from a header and claims (any JSON
// value, or a string taken as the raw segment) and signature bytes.
func craft(t testing.TB, header, claims any, sig []byte) string {
	t.Helper()
	seg := func(v any) string {
		if s, ok := v.(string); ok {
			return b64u([]byte(s))
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b64u(b)
	}
	return seg(header) + "." + seg(claims) + "." + b64u(sig)
}

// hmacToken signs header and claims with HS256 under secret, the way an
// attacker who mistakes a public key for an HMAC secret would.
func hmacToken(t testing.TB, secret []byte, header, claims any) string {
	t.Helper()
	unsigned := strings.TrimSuffix(craft(t, header, claims, nil), ".")
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(unsigned))
	return unsigned + "." + b64u(m.Sum(nil))
}

// signOpts signs claims with an arbitrary key and signer options.
func signOpts(t testing.TB, alg jose.SignatureAlgorithm, key any, opts *jose.SignerOptions, claims any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// flipSig flips one bit in the middle of a token's signature.
func flipSig(t testing.TB, tok string) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || len(sig) == 0 {
		t.Fatalf("flipSig: bad signature segment: %v", err)
	}
	sig[len(sig)/2] ^= 0x01
	return tok[:i+1] + b64u(sig)
}

// swapPayload keeps tok's header and signature but replaces its claims.
func swapPayload(t testing.TB, tok string, claims any) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + b64u(b) + "." + parts[2]
}

func newECKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// atHashOf is the at_hash of accessToken for an ID token signed with alg,
// by OIDC Core §3.1.3.6 as written there (and SHA-512 for EdDSA, per its
// errata): the left half of the hash, base64url.
func atHashOf(t testing.TB, alg jose.SignatureAlgorithm, accessToken string) string {
	t.Helper()
	var sum []byte
	switch alg {
	case jose.RS256, jose.PS256, jose.ES256:
		s := sha256.Sum256([]byte(accessToken))
		sum = s[:]
	case jose.RS384, jose.PS384, jose.ES384:
		s := sha512.Sum384([]byte(accessToken))
		sum = s[:]
	case jose.RS512, jose.PS512, jose.ES512, jose.EdDSA:
		s := sha512.Sum512([]byte(accessToken))
		sum = s[:]
	default:
		t.Fatalf("atHashOf: no hash for %s", alg)
	}
	return b64u(sum[:len(sum)/2])
}
