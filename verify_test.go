package main

import (
	"context"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// wantChallenge is the RFC 6750 challenge every refused bearer token gets.
const wantChallenge = `Bearer realm="scaiwave", error="invalid_token"`

// checkRegister asserts a /v1/auth/register answer: 200, or the contract's
// 401 SW_AUTH_UNAUTHENTICATED with the invalid_token challenge.
func checkRegister(t testing.TB, name string, w *httptest.ResponseRecorder, wantStatus int) {
	t.Helper()
	wantCode := ""
	if wantStatus == http.StatusUnauthorized {
		wantCode = "SW_AUTH_UNAUTHENTICATED"
	}
	got := code(t, w)
	if w.Code != wantStatus || got != wantCode {
		t.Errorf("POST /v1/auth/register (%s) = %d %s; want %d %s", name, w.Code, got, wantStatus, wantCode)
		return
	}
	if wantStatus == http.StatusUnauthorized {
		if h := w.Header().Get("WWW-Authenticate"); h != wantChallenge {
			t.Errorf("POST /v1/auth/register (%s): WWW-Authenticate %q; want %q", name, h, wantChallenge)
		}
	}
}

// reasonOf is the Reason of a *verifyError, "" for nil, or a marker for any
// other error (which the handler would not answer with 401).
func reasonOf(err error) string {
	if err == nil {
		return ""
	}
	var ve *verifyError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return "not a *verifyError: " + err.Error()
}

// checkReason asserts the typed reason of a unit-level verify; want "" means
// the token must be accepted.
func checkReason(t testing.TB, name string, err error, want string) {
	t.Helper()
	if got := reasonOf(err); got != want {
		t.Errorf("verify (%s) reason = %q (%v); want %q", name, got, err, want)
	}
}

// checkAccess sends tok through the handler and, for a refusal, asserts the
// reason the verifier gives for it.
func checkAccess(t testing.TB, a *testApp, name, tok string, wantStatus int, wantReason string) {
	t.Helper()
	checkRegister(t, name, a.register(tok), wantStatus)
	if wantStatus == http.StatusOK {
		wantReason = ""
	}
	_, err := a.srv.tenants[0].prov.verifyAccess(context.Background(), tok)
	checkReason(t, name, err, wantReason)
}

func TestAttackSignatures(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	ec := f.addKey(newTestKey(t, jose.ES256, "e1", 0))
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	rsaKey := f.key()

	rogueRSA := testKey{kid: "k1", alg: jose.RS256, priv: testRSAKey(1)}
	rogueEC := testKey{kid: "e1", alg: jose.ES256, priv: newECKey(t, elliptic.P256())}
	good := f.accessToken()
	goodEC := signWith(t, ec, f.accessClaims(), nil)

	pub := &rsaKey.priv.(*rsa.PrivateKey).PublicKey
	pkixDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	jwkJSON, err := json.Marshal(rsaKey.publicJWK())
	if err != nil {
		t.Fatal(err)
	}
	hs := map[string]any{"alg": "HS256", "kid": "k1", "typ": "JWT"}
	claims := f.accessClaims()

	tests := []struct {
		name       string
		token      string
		wantStatus int
		wantReason string
	}{
		{"RS256 signed by the published key", good, 200, ""},
		{"ES256 signed by the published key", goodEC, 200, ""},
		{"RS256 by a key not in the JWKS, published kid", signWith(t, rogueRSA, claims, nil), 401, reasonSignature},
		{"ES256 by a key not in the JWKS, published kid", signWith(t, rogueEC, claims, nil), 401, reasonSignature},
		{"RS256 with a flipped signature bit", flipSig(t, good), 401, reasonSignature},
		{"ES256 with a flipped signature bit", flipSig(t, goodEC), 401, reasonSignature},
		{"RS256 claims swapped under a good signature", swapPayload(t, good, f.accessClaims(map[string]any{"sub": "admin"})), 401, reasonSignature},
		{"RS256 with an empty signature", craft(t, map[string]any{"alg": "RS256", "kid": "k1"}, claims, nil), 401, reasonSignature},
		{"alg none, empty signature", craft(t, map[string]any{"alg": "none", "kid": "k1"}, claims, nil), 401, reasonAlgorithm},
		{"alg None, empty signature", craft(t, map[string]any{"alg": "None", "kid": "k1"}, claims, nil), 401, reasonAlgorithm},
		{"alg none with a non-empty signature", craft(t, map[string]any{"alg": "none", "kid": "k1"}, claims, []byte("x")), 401, reasonAlgorithm},
		{"alg missing", craft(t, map[string]any{"kid": "k1"}, claims, []byte("x")), 401, reasonAlgorithm},
		{"alg rs256 in lowercase", craft(t, map[string]any{"alg": "rs256", "kid": "k1"}, claims, []byte("x")), 401, reasonAlgorithm},
		{"HS256 keyed with the RSA public key as PKIX PEM", hmacToken(t, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkixDER}), hs, claims), 401, reasonAlgorithm},
		{"HS256 keyed with the RSA public key as PKCS#1 PEM", hmacToken(t, pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1}), hs, claims), 401, reasonAlgorithm},
		{"HS256 keyed with the RSA public key as PKIX DER", hmacToken(t, pkixDER, hs, claims), 401, reasonAlgorithm},
		{"HS256 keyed with the RSA public key as PKCS#1 DER", hmacToken(t, pkcs1, hs, claims), 401, reasonAlgorithm},
		{"HS256 keyed with the published JWK JSON", hmacToken(t, jwkJSON, hs, claims), 401, reasonAlgorithm},
		{"HS256 keyed with the modulus", hmacToken(t, pub.N.Bytes(), hs, claims), 401, reasonAlgorithm},
	}
	for _, tc := range tests {
		checkAccess(t, a, tc.name, tc.token, tc.wantStatus, tc.wantReason)
	}
}

func TestVerifyKidAbsent(t *testing.T) {
	t.Parallel()
	t.Run("one key", func(t *testing.T) {
		t.Parallel()
		f := newFakeIDP(t)
		a := newTestApp(t, []tenantConfig{f.tenantConfig()})
		k1 := f.key()
		k1.kid = "-"
		rogue := testKey{kid: "-", alg: jose.RS256, priv: testRSAKey(1)}
		checkAccess(t, a, "no kid, signed by the only key", signWith(t, k1, f.accessClaims(), nil), 200, "")
		checkAccess(t, a, "no kid, signed by a key not in the JWKS", signWith(t, rogue, f.accessClaims(), nil), 401, reasonSignature)
	})
	t.Run("several keys", func(t *testing.T) {
		t.Parallel()
		f := newFakeIDP(t)
		k2 := f.addKey(newTestKey(t, jose.RS256, "k2", 1))
		e1 := f.addKey(newTestKey(t, jose.ES256, "e1", 0))
		a := newTestApp(t, []tenantConfig{f.tenantConfig()})
		k2.kid, e1.kid = "-", "-"
		rogue := testKey{kid: "-", alg: jose.RS256, priv: testRSAKey(2)}
		rogueEC := testKey{kid: "-", alg: jose.ES256, priv: newECKey(t, elliptic.P256())}
		p384 := newTestKey(t, jose.ES384, "-", 0)
		checkAccess(t, a, "no kid, RS256 by the second RSA key", signWith(t, k2, f.accessClaims(), nil), 200, "")
		checkAccess(t, a, "no kid, ES256 by the EC key", signWith(t, e1, f.accessClaims(), nil), 200, "")
		checkAccess(t, a, "no kid, RS256 by no published key", signWith(t, rogue, f.accessClaims(), nil), 401, reasonSignature)
		checkAccess(t, a, "no kid, ES256 by no published key", signWith(t, rogueEC, f.accessClaims(), nil), 401, reasonSignature)
		checkAccess(t, a, "no kid, ES384 and no P-384 key", signWith(t, p384, f.accessClaims(), nil), 401, reasonUnknownKey)
	})
}

func TestAttackHeaders(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	idpKey := f.key()

	attackerRSA := testRSAKey(1)
	attackerEC := newECKey(t, elliptic.P256())
	attackerJWKS, err := json.Marshal(map[string]any{"keys": []jose.JSONWebKey{
		{Key: attackerRSA.Public(), KeyID: "evil", Algorithm: "RS256", Use: "sig"},
		{Key: attackerRSA.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var attackerHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(attackerJWKS)
	}))
	defer evil.Close()

	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: f.issuer},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, attackerRSA.Public(), attackerRSA)
	if err != nil {
		t.Fatal(err)
	}
	x5c := []string{base64.StdEncoding.EncodeToString(der)}

	attackerJWK := jose.JSONWebKey{Key: attackerRSA.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}
	attackerECJWK := jose.JSONWebKey{Key: attackerEC.Public(), Algorithm: "ES256", Use: "sig"}
	claims := f.accessClaims()
	opts := func(kid string, hdr map[jose.HeaderKey]any) *jose.SignerOptions {
		o := (&jose.SignerOptions{}).WithType("JWT")
		if kid != "" {
			o = o.WithHeader("kid", kid)
		}
		for k, v := range hdr {
			o = o.WithHeader(k, v)
		}
		return o
	}
	embed := &jose.SignerOptions{EmbedJWK: true}

	tests := []struct {
		name       string
		token      string
		wantReason string
	}{
		{"jwk header with the attacker's RSA key, kid k1", signOpts(t, jose.RS256, attackerRSA, opts("k1", map[jose.HeaderKey]any{"jwk": attackerJWK}), claims), reasonSignature},
		{"jwk header with the attacker's RSA key, no kid", signOpts(t, jose.RS256, attackerRSA, opts("", map[jose.HeaderKey]any{"jwk": attackerJWK}), claims), reasonSignature},
		{"EmbedJWK with the attacker's RSA key", signOpts(t, jose.RS256, attackerRSA, embed, claims), reasonSignature},
		{"EmbedJWK with the attacker's EC key", signOpts(t, jose.ES256, attackerEC, embed, claims), reasonUnknownKey},
		{"jwk header with the attacker's EC key, kid k1", signOpts(t, jose.ES256, attackerEC, opts("k1", map[jose.HeaderKey]any{"jwk": attackerECJWK}), claims), reasonUnknownKey},
		{"jku to the attacker, kid only there", signOpts(t, jose.RS256, attackerRSA, opts("evil", map[jose.HeaderKey]any{"jku": evil.URL + "/jwks"}), claims), reasonUnknownKey},
		{"jku to the attacker, kid k1", signOpts(t, jose.RS256, attackerRSA, opts("k1", map[jose.HeaderKey]any{"jku": evil.URL + "/jwks"}), claims), reasonSignature},
		{"x5u to the attacker, kid k1", signOpts(t, jose.RS256, attackerRSA, opts("k1", map[jose.HeaderKey]any{"x5u": evil.URL + "/cert.pem"}), claims), reasonSignature},
		{"x5u to the attacker, no kid", signOpts(t, jose.RS256, attackerRSA, opts("", map[jose.HeaderKey]any{"x5u": evil.URL + "/cert.pem"}), claims), reasonSignature},
		{"x5c with the attacker's certificate, kid k1", signOpts(t, jose.RS256, attackerRSA, opts("k1", map[jose.HeaderKey]any{"x5c": x5c}), claims), reasonSignature},
		{"x5c with the attacker's certificate, no kid", signOpts(t, jose.RS256, attackerRSA, opts("", map[jose.HeaderKey]any{"x5c": x5c}), claims), reasonSignature},
		{"crit naming an unknown extension, real key", signWith(t, idpKey, claims, map[jose.HeaderKey]any{"crit": []string{"urn:example:ext"}, "urn:example:ext": true}), reasonHeader},
		{"crit naming b64, real key", signWith(t, idpKey, claims, map[jose.HeaderKey]any{"crit": []string{"b64"}, "b64": true}), reasonHeader},
		{"crit naming exp, real key", signWith(t, idpKey, claims, map[jose.HeaderKey]any{"crit": []string{"exp"}}), reasonHeader},
		{"empty crit, real key", signWith(t, idpKey, claims, map[jose.HeaderKey]any{"crit": []string{}}), reasonHeader},
	}
	for _, tc := range tests {
		checkAccess(t, a, tc.name, tc.token, 401, tc.wantReason)
	}
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the attacker's server got %d requests; want 0 (jku and x5u are never fetched)", n)
	}
	// The same headers on a token the IdP signed change nothing: they are
	// ignored, not a reason in themselves.
	checkAccess(t, a, "jku and x5u to the attacker on a token signed by the real key",
		signWith(t, idpKey, claims, map[jose.HeaderKey]any{"jku": evil.URL + "/jwks", "x5u": evil.URL + "/c"}), 200, "")
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the attacker's server got %d requests; want 0", n)
	}
}

func TestAttackMalformedTokens(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	ec := f.addKey(newTestKey(t, jose.ES256, "e1", 0))
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	pub := f.key().priv.Public()

	enc, err := jose.NewEncrypter(jose.A128GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: pub, KeyID: "k1"},
		(&jose.EncrypterOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(f.accessClaims())
	jwe, err := enc.Encrypt(payload)
	if err != nil {
		t.Fatal(err)
	}
	jweCompact, err := jwe.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}

	// sized is a validly signed token padded to the largest length not over n.
	sized := func(n int) string {
		t.Helper()
		base := len(signWith(t, ec, f.accessClaims(map[string]any{"pad": ""}), nil))
		pad := (n-base)*3/4 - 4
		best := ""
		for ; ; pad++ {
			tok := signWith(t, ec, f.accessClaims(map[string]any{"pad": strings.Repeat("p", pad)}), nil)
			if len(tok) > n {
				return best
			}
			best = tok
		}
	}
	atLimit := sized(maxTokenSize)
	if len(atLimit) < maxTokenSize-3 {
		t.Fatalf("test setup: token at the limit is %d bytes", len(atLimit))
	}
	overLimit := signWith(t, ec, f.accessClaims(map[string]any{"pad": strings.Repeat("p", maxTokenSize)}), nil)
	hdr := b64u([]byte(`{"alg":"ES256","kid":"e1"}`))

	tests := []struct {
		name       string
		token      string
		wantStatus int
		wantReason string
	}{
		{"JWE with five parts", jweCompact, 401, reasonMalformed},
		{"five empty parts", "....", 401, reasonMalformed},
		{"a million dots", strings.Repeat(".", 1_000_000), 401, reasonTooLarge},
		{"16 KiB of dots", strings.Repeat(".", maxTokenSize), 401, reasonMalformed},
		{"validly signed, just over 16 KiB", overLimit, 401, reasonTooLarge},
		{fmt.Sprintf("validly signed, %d bytes", len(atLimit)), atLimit, 200, ""},
		{"one dot", "abc.def", 401, reasonMalformed},
		{"garbage base64", "abc.def.ghi", 401, reasonMalformed},
		{"header not JSON", b64u([]byte("not json")) + "." + b64u([]byte("{}")) + ".c2ln", 401, reasonMalformed},
		{"payload not base64", hdr + ".a.c2ln", 401, reasonMalformed},
		{"empty header, so no alg", "." + b64u(payload) + ".c2ln", 401, reasonAlgorithm},
	}
	for _, tc := range tests {
		checkAccess(t, a, tc.name, tc.token, tc.wantStatus, tc.wantReason)
	}

	// Unit level only: no bearer can carry these.
	g := f.accessToken()
	for _, tc := range []struct{ name, token, wantReason string }{
		{"empty token", "", reasonMalformed},
		{"JWS JSON serialization", `{"protected":"a.b","payload":"c","signature":"d.e"}`, reasonMalformed},
		{"whitespace inside", g[:10] + " " + g[10:], reasonMalformed},
	} {
		_, err := p.verify(context.Background(), tc.token, kindAccessToken, "")
		checkReason(t, tc.name, err, tc.wantReason)
	}
}

func TestVerifyAccessTokenClaims(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	now := time.Now()
	at := func(d time.Duration) int64 { return now.Add(d).Unix() }
	tests := []struct {
		name       string
		mods       map[string]any
		wantStatus int
		wantReason string
	}{
		{"valid", nil, 200, ""},
		{"wrong iss", map[string]any{"iss": "https://evil.example"}, 401, reasonIssuer},
		{"iss with a trailing slash", map[string]any{"iss": f.issuer + "/"}, 401, reasonIssuer},
		{"iss in another case", map[string]any{"iss": strings.ToUpper(f.issuer)}, 401, reasonIssuer},
		{"iss missing", map[string]any{"iss": nil}, 401, reasonIssuer},
		{"wrong aud and wrong azp", map[string]any{"aud": "other", "azp": "other"}, 401, reasonAudience},
		{"wrong aud, no azp", map[string]any{"aud": "other", "azp": nil}, 401, reasonAudience},
		{"no aud, no azp", map[string]any{"aud": nil, "azp": nil}, 401, reasonAudience},
		{"several audiences without ours, azp wrong", map[string]any{"aud": []string{"a", "b"}, "azp": "evil"}, 401, reasonAudience},
		{"aud a prefix of ours", map[string]any{"aud": testClientID[:4], "azp": nil}, 401, reasonAudience},
		{"wrong aud, azp is the client id", map[string]any{"aud": "other"}, 200, ""},
		{"no aud, azp is the client id", map[string]any{"aud": nil}, 200, ""},
		{"several audiences with ours, no azp", map[string]any{"aud": []string{"other", testClientID}, "azp": nil}, 200, ""},
		{"several audiences with ours, wrong azp", map[string]any{"aud": []string{"other", testClientID}, "azp": "other"}, 200, ""},
		{"expired beyond the leeway", map[string]any{"exp": at(-2 * time.Minute)}, 401, reasonExpired},
		{"expired within the leeway", map[string]any{"exp": at(-30 * time.Second)}, 200, ""},
		{"nbf beyond the leeway", map[string]any{"nbf": at(2 * time.Minute)}, 401, reasonNotYetValid},
		{"nbf within the leeway", map[string]any{"nbf": at(30 * time.Second)}, 200, ""},
		{"iat beyond the leeway", map[string]any{"iat": at(2 * time.Minute)}, 401, reasonNotYetValid},
		{"iat within the leeway", map[string]any{"iat": at(30 * time.Second)}, 200, ""},
		{"iat missing (access token)", map[string]any{"iat": nil}, 200, ""},
		{"exp missing", map[string]any{"exp": nil}, 401, reasonMissingClaim},
		{"exp null", map[string]any{"exp": json.RawMessage("null")}, 401, reasonMissingClaim},
		{"sub missing", map[string]any{"sub": nil}, 401, reasonMissingClaim},
		{"sub empty", map[string]any{"sub": ""}, 401, reasonMissingClaim},
		{"exp a string", map[string]any{"exp": "tomorrow"}, 401, reasonMalformed},
		{"exp beyond any real date", map[string]any{"exp": 1e300}, 401, reasonMalformed},
		{"sub a number", map[string]any{"sub": 42}, 401, reasonMalformed},
		{"aud a number", map[string]any{"aud": 42}, 401, reasonMalformed},
	}
	for _, tc := range tests {
		checkAccess(t, a, tc.name, f.accessToken(tc.mods), tc.wantStatus, tc.wantReason)
	}
}

func TestVerifyAudiencesConfigured(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	tc := f.tenantConfig()
	tc.Audiences = []string{"api://scaiwave", "api://other"}
	a := newTestApp(t, []tenantConfig{tc})
	for _, c := range []struct {
		name       string
		mods       map[string]any
		wantStatus int
	}{
		{"aud is a configured audience, no azp", map[string]any{"aud": "api://other", "azp": nil}, 200},
		{"aud is the client id but not a configured audience, no azp", map[string]any{"aud": testClientID, "azp": nil}, 401},
		{"aud unknown, azp is the client id", map[string]any{"aud": "api://unknown"}, 200},
		{"aud unknown, azp another client", map[string]any{"aud": "api://unknown", "azp": "other"}, 401},
	} {
		want := ""
		if c.wantStatus == 401 {
			want = reasonAudience
		}
		checkAccess(t, a, c.name, f.accessToken(c.mods), c.wantStatus, want)
	}
}

// TestVerifyLeewayBoundaries pins the one 60 s leeway on exp, nbf and iat
// with a fixed clock, to the second.
func TestVerifyLeewayBoundaries(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	t0 := time.Now().Truncate(time.Second)
	p.now = func() time.Time { return t0 } // before any verify: read without locks
	s := func(d time.Duration) int64 { return t0.Add(d).Unix() }
	for _, tc := range []struct {
		name       string
		mods       map[string]any
		wantReason string
	}{
		{"exp 60 s ago", map[string]any{"exp": s(-60 * time.Second), "iat": s(-time.Hour)}, ""},
		{"exp 61 s ago", map[string]any{"exp": s(-61 * time.Second), "iat": s(-time.Hour)}, reasonExpired},
		{"nbf in 60 s", map[string]any{"nbf": s(60 * time.Second), "iat": s(0)}, ""},
		{"nbf in 61 s", map[string]any{"nbf": s(61 * time.Second), "iat": s(0)}, reasonNotYetValid},
		{"iat in 60 s", map[string]any{"iat": s(60 * time.Second)}, ""},
		{"iat in 61 s", map[string]any{"iat": s(61 * time.Second)}, reasonNotYetValid},
	} {
		mods := map[string]any{"exp": s(5 * time.Minute)}
		for k, v := range tc.mods {
			mods[k] = v
		}
		for _, kind := range []tokenKind{kindAccessToken, kindIDToken} {
			_, err := p.verify(context.Background(), f.accessToken(mods), kind, "")
			checkReason(t, tc.name+", "+kind.String(), err, tc.wantReason)
		}
	}
}

func TestVerifyIDToken(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	p := a.srv.tenants[0].prov
	k := f.key()
	typed := func(typ string) string {
		return signWith(t, k, f.idClaims("n-1"), map[jose.HeaderKey]any{"typ": typ})
	}
	tests := []struct {
		name       string
		token      string
		nonce      string
		wantReason string
	}{
		{"valid, nonce sent and equal", f.idToken("n-1"), "n-1", ""},
		{"valid, nonce not sent but present", f.idToken("n-1"), "", ""},
		{"valid, no nonce either side", f.idToken(""), "", ""},
		{"nonce mismatch", f.idToken("n-1"), "n-2", reasonNonce},
		{"nonce a prefix of the one sent", f.idToken("n"), "n-1", reasonNonce},
		{"nonce missing when one was sent", f.idToken(""), "n-1", reasonNonce},
		{"nonce not a string when one was sent", f.idToken("", map[string]any{"nonce": 7}), "7", reasonNonce},
		{"iat missing", f.idToken("n-1", map[string]any{"iat": nil}), "n-1", reasonMissingClaim},
		{"sub missing", f.idToken("n-1", map[string]any{"sub": nil}), "n-1", reasonMissingClaim},
		{"exp missing", f.idToken("n-1", map[string]any{"exp": nil}), "n-1", reasonMissingClaim},
		{"expired", f.idToken("n-1", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), "n-1", reasonExpired},
		{"wrong iss", f.idToken("n-1", map[string]any{"iss": f.issuer + "/x"}), "n-1", reasonIssuer},
		{"aud without the client id, azp the client id", f.idToken("n-1", map[string]any{"aud": "other"}), "n-1", reasonAudience},
		{"aud missing", f.idToken("n-1", map[string]any{"aud": nil}), "n-1", reasonAudience},
		{"several audiences, no azp", f.idToken("n-1", map[string]any{"aud": []string{testClientID, "other"}, "azp": nil}), "n-1", reasonAZP},
		{"several audiences, wrong azp", f.idToken("n-1", map[string]any{"aud": []string{testClientID, "other"}, "azp": "other"}), "n-1", reasonAZP},
		{"several audiences, azp the client id", f.idToken("n-1", map[string]any{"aud": []string{testClientID, "other"}}), "n-1", ""},
		{"one audience, no azp", f.idToken("n-1", map[string]any{"azp": nil}), "n-1", ""},
		{"one audience, wrong azp", f.idToken("n-1", map[string]any{"azp": "other"}), "n-1", reasonAZP},
		{"typ at+jwt", typed("at+jwt"), "n-1", reasonTokenType},
		{"typ AT+JWT", typed("AT+JWT"), "n-1", reasonTokenType},
		{"typ application/at+jwt", typed("application/at+jwt"), "n-1", reasonTokenType},
		{"typ JWT", typed("JWT"), "n-1", ""},
	}
	for _, tc := range tests {
		_, err := p.verify(context.Background(), tc.token, kindIDToken, tc.nonce)
		checkReason(t, tc.name, err, tc.wantReason)
	}
	// The typ rule is for ID tokens: an access token says at+jwt legitimately.
	at := signWith(t, k, f.accessClaims(), map[jose.HeaderKey]any{"typ": "at+jwt"})
	checkAccess(t, a, "access token with typ at+jwt", at, 200, "")
	// And the audience rules differ: aud without the client id but azp the
	// client id is an access token, not an ID token.
	tok := f.idToken("", map[string]any{"aud": "other"})
	_, err := p.verify(context.Background(), tok, kindAccessToken, "")
	checkReason(t, "aud other, azp client id, as access token", err, "")
}

func TestVerifyAlgorithms(t *testing.T) {
	t.Parallel()
	t.Run("IdP advertises only ES256", func(t *testing.T) {
		t.Parallel()
		f := newFakeIDP(t)
		e1 := f.addKey(newTestKey(t, jose.ES256, "e1", 0))
		f.set(func(f *fakeIDP) { f.algs = []string{"ES256"} })
		a := newTestApp(t, []tenantConfig{f.tenantConfig()})
		checkAccess(t, a, "RS256 with a published key, not advertised", f.accessToken(), 401, reasonAlgorithm)
		checkAccess(t, a, "ES256, advertised", signWith(t, e1, f.accessClaims(), nil), 200, "")
	})
	t.Run("IdP advertises none and RS256", func(t *testing.T) {
		t.Parallel()
		f := newFakeIDP(t)
		f.set(func(f *fakeIDP) { f.algs = []string{"none", "RS256"} })
		a := newTestApp(t, []tenantConfig{f.tenantConfig()})
		checkAccess(t, a, "alg none though advertised", craft(t, map[string]any{"alg": "none", "kid": "k1"}, f.accessClaims(), nil), 401, reasonAlgorithm)
		checkAccess(t, a, "RS256", f.accessToken(), 200, "")
	})
	t.Run("IdP advertises only HS256", func(t *testing.T) {
		t.Parallel()
		f := newFakeIDP(t)
		f.set(func(f *fakeIDP) { f.algs = []string{"HS256"} })
		a := newTestApp(t, []tenantConfig{f.tenantConfig()})
		checkAccess(t, a, "RS256 when nothing acceptable is advertised", f.accessToken(), 401, reasonAlgorithm)
	})
	t.Run("every family", func(t *testing.T) {
		t.Parallel()
		f := newFakeIDP(t)
		keys := []testKey{
			f.addKey(newTestKey(t, jose.RS384, "rs384", 1)),
			f.addKey(newTestKey(t, jose.RS512, "rs512", 2)),
			f.addKey(newTestKey(t, jose.PS256, "ps256", 1)),
			f.addKey(newTestKey(t, jose.PS384, "ps384", 2)),
			f.addKey(newTestKey(t, jose.PS512, "ps512", 3)),
			f.addKey(newTestKey(t, jose.ES256, "es256", 0)),
			f.addKey(newTestKey(t, jose.ES384, "es384", 0)),
			f.addKey(newTestKey(t, jose.ES512, "es512", 0)),
			f.addKey(newTestKey(t, jose.EdDSA, "eddsa", 0)),
		}
		noAlg := testRSAKey(3)
		f.set(func(f *fakeIDP) {
			b, _ := json.Marshal(jose.JSONWebKey{Key: noAlg.Public(), KeyID: "noalg", Use: "sig"})
			f.extraJWKS = []json.RawMessage{b}
		})
		a := newTestApp(t, []tenantConfig{f.tenantConfig()})
		for _, k := range keys {
			checkAccess(t, a, string(k.alg)+" with a fitting key", signWith(t, k, f.accessClaims(), nil), 200, "")
		}
		checkAccess(t, a, "RS256 by a published key without alg", signWith(t, testKey{kid: "noalg", alg: jose.RS256, priv: noAlg}, f.accessClaims(), nil), 200, "")
		checkAccess(t, a, "PS512 by a published key without alg", signWith(t, testKey{kid: "noalg", alg: jose.PS512, priv: noAlg}, f.accessClaims(), nil), 200, "")

		rsa0 := f.key().priv
		junk := []byte("not a signature")
		claims := f.accessClaims()
		for _, tc := range []struct{ name, token string }{
			{"RS256 header naming an EC key", signWith(t, testKey{kid: "es256", alg: jose.RS256, priv: rsa0}, claims, nil)},
			{"RS256 header naming an Ed25519 key", signWith(t, testKey{kid: "eddsa", alg: jose.RS256, priv: rsa0}, claims, nil)},
			{"PS256 header naming a key published for RS256", signWith(t, testKey{kid: "k1", alg: jose.PS256, priv: rsa0}, claims, nil)},
			{"RS256 header naming a key published for PS256", signWith(t, testKey{kid: "ps256", alg: jose.RS256, priv: testRSAKey(1)}, claims, nil)},
			{"ES256 header naming the P-384 key", craft(t, map[string]any{"alg": "ES256", "kid": "es384"}, claims, junk)},
			{"ES512 header naming the P-256 key", craft(t, map[string]any{"alg": "ES512", "kid": "es256"}, claims, junk)},
			{"EdDSA header naming an RSA key", craft(t, map[string]any{"alg": "EdDSA", "kid": "noalg"}, claims, junk)},
			{"ES256 header naming an RSA key", craft(t, map[string]any{"alg": "ES256", "kid": "noalg"}, claims, junk)},
		} {
			checkAccess(t, a, tc.name, tc.token, 401, reasonUnknownKey)
		}
	})
}
