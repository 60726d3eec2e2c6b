package main

// DPoP (RFC 9449) at the bearer endpoints: every check of a proof performs
// its attack against /register with a token bound to the client's key, and
// the binding rules (no downgrade either way) are tested through the mux.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// dpopTestURL is the URL httptest gives /register: what a proof's htu names.
const dpopTestURL = "http://example.com/v1/auth/register"

// dpopKey is a client's proof key.
type dpopKey struct {
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
	jkt  string // its RFC 7638 thumbprint, base64url
}

func newDPoPKey(t testing.TB, alg jose.SignatureAlgorithm) dpopKey {
	t.Helper()
	k := newTestKey(t, alg, "-", 1)
	pub := jose.JSONWebKey{Key: k.priv.Public()}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return dpopKey{alg: alg, priv: k.priv, jkt: b64u(tp)}
}

// proofClaims are valid proof claims for method and htu, bound to token
// (no ath when token is ""); mods change them (nil deletes).
func (k dpopKey) claims(method, htu, token string, mods ...map[string]any) map[string]any {
	c := map[string]any{"jti": rand.Text(), "htm": method, "htu": htu, "iat": time.Now().Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		c["ath"] = b64u(sum[:])
	}
	return withMods(c, mods...)
}

// proof is a valid proof, signed by go-jose with the key embedded as jwk.
func (k dpopKey) proof(t testing.TB, method, htu, token string, mods ...map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	return signOpts(t, k.alg, k.priv, opts, k.claims(method, htu, token, mods...))
}

// rawProof signs header and claims as given, by hand, so that a test can
// put anything in the header (ES256 and RS256 keys only).
func (k dpopKey) rawProof(t testing.TB, header, claims any) string {
	t.Helper()
	unsigned := strings.TrimSuffix(craft(t, header, claims, nil), ".")
	sum := sha256.Sum256([]byte(unsigned))
	var sig []byte
	switch priv := k.priv.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, priv, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:]); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("rawProof: %T", priv)
	}
	return unsigned + "." + b64u(sig)
}

// publicJWK is the key's public JWK as a JSON object.
func (k dpopKey) publicJWK(t testing.TB) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: k.priv.Public()})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// privateJWK is the key's private JWK as a JSON object.
func (k dpopKey) privateJWK(t testing.TB) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: k.priv})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// boundToken is an access token of the fake IdP bound to k.
func (f *fakeIDP) boundToken(k dpopKey, mods ...map[string]any) string {
	return f.accessToken(append([]map[string]any{{"cnf": map[string]any{"jkt": k.jkt}}}, mods...)...)
}

// dpopRegister calls /register with the DPoP scheme; proof "" sends no
// DPoP header.
func (a *testApp) dpopRegister(token, proof string, hdr ...string) *httptest.ResponseRecorder {
	a.t.Helper()
	h := append([]string{"Authorization", "DPoP " + token}, hdr...)
	if proof != "" {
		h = append(h, "DPoP", proof)
	}
	return a.do("POST", "/v1/auth/register", "", h...)
}

// challenges returns the WWW-Authenticate values of an answer, joined.
func challenges(w *httptest.ResponseRecorder) string {
	return strings.Join(w.Result().Header.Values("WWW-Authenticate"), " | ")
}

func TestDPoPProofChecks(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	a.logLevel.Set(slog.LevelInfo) // the refusals' reasons, to look for proofs in
	key := newDPoPKey(t, jose.ES256)
	other := newDPoPKey(t, jose.ES256)
	rsaKey := newDPoPKey(t, jose.RS256)
	hdr := func(k dpopKey, mods map[string]any) map[string]any {
		h := map[string]any{"typ": "dpop+jwt", "alg": string(k.alg), "jwk": k.publicJWK(t)}
		return withMods(h, mods)
	}
	const (
		proofErr = `DPoP algs="ES256 ES384 ES512 PS256 RS256 EdDSA", error="invalid_dpop_proof"`
		tokenErr = `DPoP algs="ES256 ES384 ES512 PS256 RS256 EdDSA", error="invalid_token"`
	)
	tests := []struct {
		name string
		// make returns the token, the Authorization scheme and the proof
		// ("" for no DPoP header).
		make          func(t *testing.T) (tok, scheme, proof string)
		wantStatus    int
		wantChallenge string // a substring of the WWW-Authenticate values
	}{
		{"valid ES256 proof", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.proof(t, "POST", dpopTestURL, tok)
		}, 200, ""},
		{"valid RS256 proof", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(rsaKey)
			return tok, "DPoP", rsaKey.proof(t, "POST", dpopTestURL, tok)
		}, 200, ""},
		{"valid EdDSA proof", func(t *testing.T) (string, string, string) {
			k := newDPoPKey(t, jose.EdDSA)
			tok := f.boundToken(k)
			return tok, "DPoP", k.proof(t, "POST", dpopTestURL, tok)
		}, 200, ""},
		{"htu normalised: case, default port, query and fragment", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "dpop", key.proof(t, "POST", "HTTP://Example.COM:80/v1/auth/%72egister?x=1#f", tok)
		}, 200, ""},
		{"bound token sent as Bearer", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "Bearer", key.proof(t, "POST", dpopTestURL, tok)
		}, 401, `Bearer realm="scaiwave", error="invalid_token"`},
		{"unbound token sent as DPoP", func(t *testing.T) (string, string, string) {
			tok := f.accessToken()
			return tok, "DPoP", key.proof(t, "POST", dpopTestURL, tok)
		}, 401, tokenErr},
		{"cnf without jkt (another kind of binding)", func(t *testing.T) (string, string, string) {
			tok := f.accessToken(map[string]any{"cnf": map[string]any{"x5t#S256": "abc"}})
			return tok, "DPoP", key.proof(t, "POST", dpopTestURL, tok)
		}, 401, tokenErr},
		{"no DPoP header", func(t *testing.T) (string, string, string) {
			return f.boundToken(key), "DPoP", ""
		}, 401, proofErr},
		{"proof from another key", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", other.proof(t, "POST", dpopTestURL, tok)
		}, 401, tokenErr},
		{"jwk of the bound key, signed by another", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", other.rawProof(t, hdr(key, nil), key.claims("POST", dpopTestURL, tok))
		}, 401, proofErr},
		{"signature altered", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", flipSig(t, key.proof(t, "POST", dpopTestURL, tok))
		}, 401, proofErr},
		{"another method", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.proof(t, "GET", dpopTestURL, tok)
		}, 401, proofErr},
		{"another URL", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.proof(t, "POST", "http://example.com/v1/auth/logout", tok)
		}, 401, proofErr},
		{"another host", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.proof(t, "POST", "http://evil.example/v1/auth/register", tok)
		}, 401, proofErr},
		{"another scheme", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.proof(t, "POST", "https://example.com/v1/auth/register", tok)
		}, 401, proofErr},
		{"iat 61 s old", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.proof(t, "POST", dpopTestURL, tok, map[string]any{"iat": time.Now().Add(-61 * time.Second).Unix()})
		}, 401, proofErr},
		{"iat 61 s ahead", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.proof(t, "POST", dpopTestURL, tok, map[string]any{"iat": time.Now().Add(61 * time.Second).Unix()})
		}, 401, proofErr},
		{"no iat", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.proof(t, "POST", dpopTestURL, tok, map[string]any{"iat": nil})
		}, 401, proofErr},
		{"no ath", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.proof(t, "POST", dpopTestURL, "")
		}, 401, proofErr},
		{"ath of another token", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.proof(t, "POST", dpopTestURL, f.boundToken(key, map[string]any{"jti": "x"}))
		}, 401, proofErr},
		{"no jti", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.proof(t, "POST", dpopTestURL, tok, map[string]any{"jti": nil})
		}, 401, proofErr},
		{"typ JWT", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.rawProof(t, hdr(key, map[string]any{"typ": "JWT"}), key.claims("POST", dpopTestURL, tok))
		}, 401, proofErr},
		{"no typ", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.rawProof(t, hdr(key, map[string]any{"typ": nil}), key.claims("POST", dpopTestURL, tok))
		}, 401, proofErr},
		{"no jwk", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.rawProof(t, hdr(key, map[string]any{"jwk": nil}), key.claims("POST", dpopTestURL, tok))
		}, 401, proofErr},
		{"crit header", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.rawProof(t, hdr(key, map[string]any{"crit": []string{"x"}, "x": 1}), key.claims("POST", dpopTestURL, tok))
		}, 401, proofErr},
		{"private EC key in jwk", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.rawProof(t, hdr(key, map[string]any{"jwk": key.privateJWK(t)}), key.claims("POST", dpopTestURL, tok))
		}, 401, proofErr},
		{"RSA jwk with p and q but no d", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(rsaKey)
			priv := rsaKey.privateJWK(t)
			delete(priv, "d")
			return tok, "DPoP", rsaKey.rawProof(t, hdr(rsaKey, map[string]any{"jwk": priv}), rsaKey.claims("POST", dpopTestURL, tok))
		}, 401, proofErr},
		{"EC jwk with a symmetric k member", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			jwk := withMods(key.publicJWK(t), map[string]any{"k": b64u([]byte("secret"))})
			return tok, "DPoP", key.rawProof(t, hdr(key, map[string]any{"jwk": jwk}), key.claims("POST", dpopTestURL, tok))
		}, 401, proofErr},
		{"empty jti", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.proof(t, "POST", dpopTestURL, tok, map[string]any{"jti": ""})
		}, 401, proofErr},
		{"alg none", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", craft(t, hdr(key, map[string]any{"alg": "none"}), key.claims("POST", dpopTestURL, tok), nil)
		}, 401, proofErr},
		{"HS256 with an oct jwk", func(t *testing.T) (string, string, string) {
			secret := []byte("0123456789abcdef0123456789abcdef")
			// RFC 7638 §3.2's members of an oct key, by hand: go-jose
			// makes no thumbprint of a symmetric key.
			tp := sha256.Sum256([]byte(`{"k":"` + b64u(secret) + `","kty":"oct"}`))
			tok := f.accessToken(map[string]any{"cnf": map[string]any{"jkt": b64u(tp[:])}})
			h := map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": b64u(secret)}}
			return tok, "DPoP", hmacToken(t, secret, h, key.claims("POST", dpopTestURL, tok))
		}, 401, proofErr},
		{"HS256 keyed with the public jwk", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			pub, _ := json.Marshal(key.publicJWK(t))
			return tok, "DPoP", hmacToken(t, pub, hdr(key, map[string]any{"alg": "HS256"}), key.claims("POST", dpopTestURL, tok))
		}, 401, proofErr},
		{"RSA key under 2048 bits", func(t *testing.T) (string, string, string) {
			small, err := rsa.GenerateKey(rand.Reader, 1024)
			if err != nil {
				t.Fatal(err)
			}
			k := dpopKey{alg: jose.RS256, priv: small}
			tp, _ := (&jose.JSONWebKey{Key: &small.PublicKey}).Thumbprint(crypto.SHA256)
			k.jkt = b64u(tp)
			tok := f.boundToken(k)
			return tok, "DPoP", k.proof(t, "POST", dpopTestURL, tok)
		}, 401, proofErr},
		{"not a JWS", func(t *testing.T) (string, string, string) {
			return f.boundToken(key), "DPoP", "not-a-proof"
		}, 401, proofErr},
		{"oversized", func(t *testing.T) (string, string, string) {
			tok := f.boundToken(key)
			return tok, "DPoP", key.proof(t, "POST", dpopTestURL, tok, map[string]any{"pad": strings.Repeat("x", maxProofSize)})
		}, 401, proofErr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, scheme, proof := tc.make(t)
			h := []string{"Authorization", scheme + " " + tok}
			if proof != "" {
				h = append(h, "DPoP", proof)
			}
			w := a.do("POST", "/v1/auth/register", "", h...)
			if w.Code != tc.wantStatus {
				t.Fatalf("POST /v1/auth/register (%s) = %d %s; want %d", tc.name, w.Code, w.Body, tc.wantStatus)
			}
			if tc.wantStatus == 401 {
				if got := code(t, w); got != "SW_AUTH_UNAUTHENTICATED" {
					t.Errorf("code %s; want SW_AUTH_UNAUTHENTICATED", got)
				}
				if ch := challenges(w); !strings.Contains(ch, tc.wantChallenge) || !strings.Contains(ch, `Bearer realm="scaiwave"`) || !strings.Contains(ch, `DPoP algs=`) {
					t.Errorf("WWW-Authenticate %q; want both challenges and %q", ch, tc.wantChallenge)
				}
			}
		})
	}
	logs := a.logs.String()
	if !strings.Contains(logs, "bearer token refused") {
		t.Fatalf("no refusal logged at info level: the check below would see nothing")
	}
	if proofLeaked(logs) {
		t.Errorf("the log holds a proof or token: %s", logs)
	}
}

// proofLeaked reports whether s holds what starts every proof's header
// segment here: {"alg":… base64url-encoded.
func proofLeaked(s string) bool { return strings.Contains(s, "eyJhbGciOi") }

func TestDPoPReplayedProofRefused(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	key := newDPoPKey(t, jose.ES256)
	tok := f.boundToken(key)
	proof := key.proof(t, "POST", dpopTestURL, tok)
	if w := a.dpopRegister(tok, proof); w.Code != 200 {
		t.Fatalf("first use = %d %s; want 200", w.Code, w.Body)
	}
	w := a.dpopRegister(tok, proof)
	if w.Code != 401 || !strings.Contains(challenges(w), `error="invalid_dpop_proof"`) {
		t.Fatalf("replay = %d %q; want 401 invalid_dpop_proof", w.Code, challenges(w))
	}
	// The same jti from another key is another proof (the cache's key is
	// jti and thumbprint), and a fresh proof passes.
	if w := a.dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok)); w.Code != 200 {
		t.Fatalf("fresh proof = %d %s; want 200", w.Code, w.Body)
	}
}

func TestDPoPBindingSurvivesTheCache(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	key := newDPoPKey(t, jose.ES256)
	tok := f.boundToken(key)
	for i := range 2 {
		if w := a.dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok)); w.Code != 200 {
			t.Fatalf("bound request %d = %d %s; want 200", i, w.Code, w.Body)
		}
	}
	if n := p.tokens.len(); n != 1 {
		t.Fatalf("%d tokens cached; want the bound one", n)
	}
	// Now a cache hit: the binding must still be checked.
	if w := a.register(tok); w.Code != 401 {
		t.Fatalf("cached bound token as Bearer = %d; want 401", w.Code)
	}
	if w := a.dpopRegister(tok, newDPoPKey(t, jose.ES256).proof(t, "POST", dpopTestURL, tok)); w.Code != 401 {
		t.Fatalf("cached bound token with another key's proof = %d; want 401", w.Code)
	}
}

func TestDPoPIntrospectedBinding(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.introspect = true
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	key := newDPoPKey(t, jose.ES256)
	// node oidc-provider answers token_type DPoP and cnf.jkt for a bound
	// opaque token (RFC 9449 §6.2).
	tok := f.opaqueToken(map[string]any{"token_type": "DPoP", "cnf": map[string]any{"jkt": key.jkt}})
	if w := a.register(tok); w.Code != 401 {
		t.Fatalf("bound opaque token as Bearer = %d %s; want 401", w.Code, w.Body)
	}
	if w := a.dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok)); w.Code != 200 {
		t.Fatalf("bound opaque token with proof = %d %s; want 200", w.Code, w.Body)
	}
	if w := a.dpopRegister(tok, newDPoPKey(t, jose.ES256).proof(t, "POST", dpopTestURL, tok)); w.Code != 401 {
		t.Fatalf("bound opaque token, another key = %d; want 401", w.Code)
	}
}

// TestDPoPIntrospectedBoundTokenNotAtUserinfo: a bound token is good at
// userinfo only with a proof from its key, which the service does not
// hold, so an answer without names does not send it there.
func TestDPoPIntrospectedBoundTokenNotAtUserinfo(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	f.introspect = true
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	key := newDPoPKey(t, jose.ES256)
	noNames := map[string]any{"name": nil, "preferred_username": nil, "email": nil, "cnf": map[string]any{"jkt": key.jkt}}
	tok := f.opaqueToken(noNames)
	if w := a.dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok)); w.Code != 200 {
		t.Fatalf("bound opaque token without names = %d %s; want 200", w.Code, w.Body)
	}
	if n := f.userinfoHits.Load(); n != 0 {
		t.Fatalf("%d userinfo calls with a bound token; want none", n)
	}
}

func TestDPoPRequired(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	tc := f.tenantConfig()
	tc.AccessTokens.DPoP = dpopRequired
	a := newTestApp(t, []tenantConfig{tc})
	key := newDPoPKey(t, jose.ES256)
	w := a.register(f.accessToken())
	if w.Code != 401 || !strings.Contains(challenges(w), "DPoP algs=") {
		t.Fatalf("unbound bearer under dpop required = %d %q; want 401 with a DPoP challenge", w.Code, challenges(w))
	}
	tok := f.boundToken(key)
	if w := a.dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok)); w.Code != 200 {
		t.Fatalf("bound token = %d %s; want 200", w.Code, w.Body)
	}
}

func TestDPoPAlgList(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	tc := f.tenantConfig()
	tc.AccessTokens.DPoPSigningAlgs = []string{"ES384"}
	a := newTestApp(t, []tenantConfig{tc})
	es256 := newDPoPKey(t, jose.ES256)
	tok := f.boundToken(es256)
	w := a.dpopRegister(tok, es256.proof(t, "POST", dpopTestURL, tok))
	if w.Code != 401 || !strings.Contains(challenges(w), `DPoP algs="ES384", error="invalid_dpop_proof"`) {
		t.Fatalf("ES256 proof where only ES384 is allowed = %d %q; want 401 naming ES384", w.Code, challenges(w))
	}
	es384 := newDPoPKey(t, jose.ES384)
	tok = f.boundToken(es384)
	if w := a.dpopRegister(tok, es384.proof(t, "POST", dpopTestURL, tok)); w.Code != 200 {
		t.Fatalf("ES384 proof = %d %s; want 200", w.Code, w.Body)
	}
}

func TestDPoPServerNonce(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	tc := f.tenantConfig()
	tc.AccessTokens.DPoPNonce = true
	a := newTestApp(t, []tenantConfig{tc})
	clock := a.stopClock(0)
	key := newDPoPKey(t, jose.ES256)
	tok := f.boundToken(key, map[string]any{"exp": time.Now().Add(time.Hour).Unix()})
	w := a.dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok))
	nonce := w.Header().Get("DPoP-Nonce")
	if w.Code != 401 || !strings.Contains(challenges(w), `error="use_dpop_nonce"`) || nonce == "" {
		t.Fatalf("proof without nonce = %d %q nonce %q; want 401 use_dpop_nonce with a DPoP-Nonce", w.Code, challenges(w), nonce)
	}
	if w := a.dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok, map[string]any{"nonce": "made-up"})); w.Code != 401 {
		t.Fatalf("made-up nonce = %d; want 401", w.Code)
	}
	if w := a.dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok, map[string]any{"nonce": nonce})); w.Code != 200 {
		t.Fatalf("proof with the nonce = %d %s; want 200", w.Code, w.Body)
	}
	// Three minutes on, the nonce is no longer accepted.
	clock.advance(3 * time.Minute)
	iat := map[string]any{"nonce": nonce, "iat": clock.now().Unix()}
	if w := a.dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok, iat)); w.Code != 401 {
		t.Fatalf("proof with a 3-minute-old nonce = %d; want 401", w.Code)
	}
}

func TestDPoPForwardedURL(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	cfg := &config{Tenants: []tenantConfig{f.tenantConfig()}, TrustedProxies: []string{"10.0.0.0/8"}}
	a := startTestApp(t, cfg, t.TempDir()+"/test.db", true)
	key := newDPoPKey(t, jose.ES256)
	const public = "https://auth.example.org/v1/auth/register"
	fwd := []string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "auth.example.org"}
	send := func(remote string) int {
		tok := f.boundToken(key)
		h := append([]string{"Authorization", "DPoP " + tok, "DPoP", key.proof(t, "POST", public, tok)}, fwd...)
		return a.doFrom(t.Context(), remote, "POST", "/v1/auth/register", "", h...).Code
	}
	if got := send("10.1.2.3:5555"); got != 200 {
		t.Errorf("through a trusted proxy = %d; want 200", got)
	}
	if got := send("192.0.2.7:5555"); got != 401 {
		t.Errorf("forwarded headers from an untrusted peer = %d; want 401", got)
	}
}

func TestDPoPLogout(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	key := newDPoPKey(t, jose.ES256)
	tok := f.boundToken(key)
	const logoutURL = "http://example.com/v1/auth/logout"
	if w := a.do("POST", "/v1/auth/logout", "", "Authorization", "Bearer "+tok); w.Code != 401 {
		t.Fatalf("logout with the bound token as Bearer = %d %s; want 401", w.Code, w.Body)
	}
	if w := a.do("POST", "/v1/auth/logout", "", "Authorization", "DPoP "+tok, "DPoP", key.proof(t, "POST", dpopTestURL, tok)); w.Code != 401 {
		t.Fatalf("logout with a proof for /register = %d; want 401", w.Code)
	}
	if w := a.do("POST", "/v1/auth/logout", "", "Authorization", "DPoP "+tok, "DPoP", key.proof(t, "POST", logoutURL, tok)); w.Code != 200 {
		t.Fatalf("logout with a proof = %d %s; want 200", w.Code, w.Body)
	}
	if w := a.dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok)); w.Code != 401 {
		t.Fatalf("register after logout = %d; want 401", w.Code)
	}
}

func TestDPoPReplayCacheBounded(t *testing.T) {
	t.Parallel()
	c := newJTICache(3)
	now := time.Unix(1_700_000_000, 0)
	window := now.Add(leeway)
	for i := range uint64(3) {
		if got := c.add(i, window, now); got != jtiAdded {
			t.Fatalf("add %d = %v; want added", i, got)
		}
	}
	if got := c.add(0, window, now.Add(leeway-time.Second)); got != jtiReplayed {
		t.Fatalf("replay within the window = %v; want replayed", got)
	}
	if got := c.add(9, window, now.Add(time.Second)); got != jtiFull {
		t.Fatalf("fourth entry = %v; want full", got)
	}
	if n := c.len(); n != 3 || len(c.seen) != 3 {
		t.Fatalf("%d entries, %d in the map; want 3", n, len(c.seen))
	}
	// Once the first entries have expired, new ones take their places, and
	// the map and ring never hold more than the bound.
	for i := range uint64(200) {
		at := window.Add(time.Duration(i) * time.Second)
		c.add(10+i, at.Add(leeway), at)
		if len(c.seen) > 3 || len(c.ring) > 3 {
			t.Fatalf("after %d adds: %d in the map, ring of %d; want at most 3", i, len(c.seen), len(c.ring))
		}
	}
	// An expired jti may come back: its proof's iat is out of the window.
	later := window.Add(time.Hour)
	if got := c.add(0, later.Add(leeway), later); got != jtiAdded {
		t.Fatalf("expired key = %v; want added", got)
	}
}

func TestSameHTU(t *testing.T) {
	t.Parallel()
	const want = "https://auth.example.com/v1/auth/register"
	tests := []struct {
		htu  string
		same bool
	}{
		{want, true},
		{"HTTPS://AUTH.example.com/v1/auth/register", true},
		{"https://auth.example.com:443/v1/auth/register", true},
		{"https://auth.example.com/v1/auth/register?a=b#c", true},
		{"https://auth.example.com/v1/auth/%72egister", true},
		{"http://auth.example.com/v1/auth/register", false},
		{"https://auth.example.com:8443/v1/auth/register", false},
		{"https://auth.example.com/v1/auth/register/", false},
		{"https://auth.example.com/V1/auth/register", false},
		{"https://user@auth.example.com/v1/auth/register", false},
		{"/v1/auth/register", false},
		{"", false},
		{"https://other.example.com/v1/auth/register", false},
	}
	for _, tc := range tests {
		if got := sameHTU(tc.htu, want); got != tc.same {
			t.Errorf("sameHTU(%q, %q) = %v; want %v", tc.htu, want, got, tc.same)
		}
	}
	if !sameHTU("http://h:80", "http://h/") {
		t.Error("an empty path is /")
	}
}

func TestDPoPConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		a       accessTokensConfig
		wantErr string
	}{
		{"defaults", accessTokensConfig{}, ""},
		{"required", accessTokensConfig{DPoP: "required"}, ""},
		{"unknown mode", accessTokensConfig{DPoP: "on"}, "access_tokens.dpop:"},
		{"HS256", accessTokensConfig{DPoPSigningAlgs: []string{"ES256", "HS256"}}, "access_tokens.dpop_signing_algs:"},
		{"none", accessTokensConfig{DPoPSigningAlgs: []string{"none"}}, "access_tokens.dpop_signing_algs:"},
		{"empty list", accessTokensConfig{DPoPSigningAlgs: []string{}}, "access_tokens.dpop_signing_algs:"},
	}
	for _, tc := range tests {
		err := tc.a.validate("https://idp.example.com", func(string) string { return "" })
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: validate = %v; want %q", tc.name, err, tc.wantErr)
		}
	}
}

// BenchmarkRegisterDPoP is /register with a bound token, cached and cold,
// beside the same without DPoP and beside its floor, go-jose parsing and
// verifying one ES256 proof alone. Every bound call sends a fresh proof,
// signed beforehand, and a cold call a fresh token; run with a fixed count
// so that none runs out:
//
//	go test -run '^$' -bench RegisterDPoP -benchtime 4000x -count 6
func BenchmarkRegisterDPoP(b *testing.B) {
	const n = 30_000
	f := newFakeIDP(b)
	idpKey := f.addKey(newTestKey(b, jose.ES256, "e1", 0))
	a := newTestApp(b, []tenantConfig{f.tenantConfig()})
	key := newDPoPKey(b, jose.ES256)
	bound := signWith(b, idpKey, f.accessClaims(map[string]any{"cnf": map[string]any{"jkt": key.jkt}, "exp": time.Now().Add(time.Hour).Unix()}), nil)
	plain := signWith(b, idpKey, f.accessClaims(map[string]any{"exp": time.Now().Add(time.Hour).Unix()}), nil)
	if w := a.dpopRegister(bound, key.proof(b, "POST", dpopTestURL, bound)); w.Code != 200 {
		b.Fatalf("register = %d %s", w.Code, w.Body)
	}
	type call struct{ tok, proof string }
	// Each kind of call draws from its own supply, across the runs the
	// benchmark makes of it.
	supply := func(boundTok bool, cold bool) func() call {
		calls := make([]call, n)
		for i := range calls {
			tok := plain
			if cold {
				mods := map[string]any{"jti": fmt.Sprint(i), "exp": time.Now().Add(time.Hour).Unix()}
				if boundTok {
					mods["cnf"] = map[string]any{"jkt": key.jkt}
				}
				tok = signWith(b, idpKey, f.accessClaims(mods), nil)
			} else if boundTok {
				tok = bound
			}
			calls[i].tok = tok
			if boundTok {
				calls[i].proof = key.proof(b, "POST", dpopTestURL, tok)
			}
		}
		next := 0
		return func() call {
			if next == len(calls) {
				b.Fatalf("out of prepared calls after %d; use -benchtime with fewer", next)
			}
			next++
			return calls[next-1]
		}
	}
	b.Run("floor-es256-proof", func(b *testing.B) {
		proof := key.proof(b, "POST", dpopTestURL, bound)
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := jws.Verify(jws.Signatures[0].Protected.JSONWebKey); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tc := range []struct {
		name        string
		bound, cold bool
	}{
		{"cached/bearer", false, false},
		{"cached/dpop", true, false},
		{"cold/bearer", false, true},
		{"cold/dpop", true, true},
	} {
		next := supply(tc.bound, tc.cold)
		b.Run(tc.name, func(b *testing.B) {
			prov := a.srv.tenants[0].prov
			b.ReportAllocs()
			defer cpuPerOp(b)()
			for b.Loop() {
				c := next()
				req := httptest.NewRequest("POST", "/v1/auth/register", nil)
				if tc.bound {
					req.Header.Set("Authorization", "DPoP "+c.tok)
					req.Header.Set("DPoP", c.proof)
				} else {
					req.Header.Set("Authorization", "Bearer "+c.tok)
				}
				w := httptest.NewRecorder()
				a.srv.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("register = %d %s", w.Code, w.Body)
				}
			}
			if tc.cold {
				// Cold calls leave their tokens behind: a later run of the
				// cached kinds must not find a cache full of them.
				prov.tokens = newTokenCache(tokenCacheEntries, tokenCacheBytes)
			}
		})
	}
}

// TestDPoPReplayCacheFullRefuses: a full replay cache refuses new proofs
// (429 with Retry-After) rather than accept them unremembered.
func TestDPoPReplayCacheFullRefuses(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	a.srv.tenants[0].prov.dpop.replay = newJTICache(1)
	key := newDPoPKey(t, jose.ES256)
	tok := f.boundToken(key)
	if w := a.dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok)); w.Code != 200 {
		t.Fatalf("first proof = %d %s; want 200", w.Code, w.Body)
	}
	w := a.dpopRegister(tok, key.proof(t, "POST", dpopTestURL, tok))
	if w.Code != 429 || code(t, w) != "SW_RATE_LIMITED" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("second proof with the cache full = %d %s; want 429 SW_RATE_LIMITED with Retry-After", w.Code, w.Body)
	}
}

// TestDPoPCORS: a browser app (where DPoP keys usually live, in WebCrypto)
// may send the DPoP header and read DPoP-Nonce.
func TestDPoPCORS(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	w := a.do("OPTIONS", "/v1/auth/register", "", "Origin", "https://app.example.com", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization, dpop")
	if !strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "DPoP") {
		t.Errorf("preflight: Access-Control-Allow-Headers %q lacks DPoP", w.Header().Get("Access-Control-Allow-Headers"))
	}
	w = a.do("GET", "/v1/auth/config", "", "Origin", "https://app.example.com")
	if !strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "DPoP-Nonce") {
		t.Errorf("Access-Control-Expose-Headers %q lacks DPoP-Nonce", w.Header().Get("Access-Control-Expose-Headers"))
	}
}

// FuzzDPoPProof: whatever a client puts in the DPoP header and the proof's
// htu, checking it returns an answer, never a panic.
func FuzzDPoPProof(f *testing.F) {
	key := newDPoPKey(f, jose.ES256)
	f.Add(key.proof(f, "POST", dpopTestURL, "tok"), dpopTestURL)
	f.Add("e30.e30.", "http://[::1]:80/%zz")
	f.Add("..", "HTTP://Example.COM:80/a/%7e?x#y")
	v := newDPoPVerifier(&accessTokensConfig{})
	f.Fuzz(func(t *testing.T, proof, htu string) {
		r := httptest.NewRequest("POST", "/v1/auth/register", nil)
		r.Header.Set("DPoP", proof)
		v.checkProof(r, "tok", time.Now())
		sameHTU(htu, dpopTestURL)
		sameHTU(dpopTestURL, htu)
		normPath(htu)
	})
}
