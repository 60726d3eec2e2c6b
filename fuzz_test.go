package main

// Fuzz targets for the code that takes outside input (STYLE.md). Whatever
// needs a server or an IdP is built once per process, outside f.Fuzz, so that
// a plain `go test`, which replays the seeds, stays fast.
//
// With -fuzz the inputs, seeds included, are run by worker processes that
// did not make them. A seed that must verify in a worker therefore cannot
// depend on anything random per process: the token targets sign with keys
// derived from fixed seeds, for a fixed https issuer that a rewriting
// transport sends to a local server, at a fixed time.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	fuzzIssuer = "https://idp.example.com"
	fuzzNonce  = "n-0S6_WzA2Mj"
)

// fuzzNow is the provider's clock in the token targets.
var fuzzNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fuzzKeys are the fixed signing keys of the token targets.
type fuzzKeys struct{ rsa, ec, ed testKey }

var (
	fuzzKeysOnce sync.Once
	fuzzKeysVal  fuzzKeys
)

func fuzzSeed(label string) []byte {
	s := sha256.Sum256([]byte("scaiwave-auth fuzz " + label))
	return s[:]
}

// deterministicKeys returns the same RSA, P-256 and Ed25519 keys in every
// process (crypto/rsa ignores a custom random source since Go 1.26, so the
// RSA key is built from primes drawn from a seeded generator).
func deterministicKeys() fuzzKeys {
	fuzzKeysOnce.Do(func() {
		ec, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), fuzzSeed("p256"))
		if err != nil {
			panic(err)
		}
		fuzzKeysVal = fuzzKeys{
			rsa: testKey{kid: "r1", alg: jose.RS256, priv: deterministicRSAKey(fuzzSeed("rsa"), 2048)},
			ec:  testKey{kid: "p1", alg: jose.ES256, priv: ec},
			ed:  testKey{kid: "e1", alg: jose.EdDSA, priv: ed25519.NewKeyFromSeed(fuzzSeed("ed25519"))},
		}
	})
	return fuzzKeysVal
}

func deterministicRSAKey(seed []byte, bits int) *rsa.PrivateKey {
	rng := mrand.NewChaCha8([32]byte(seed))
	one, e := big.NewInt(1), big.NewInt(65537)
	prime := func() *big.Int {
		b := make([]byte, bits/16)
		for {
			rng.Read(b)
			b[0] |= 0xc0 // the two top bits make p·q exactly bits long
			b[len(b)-1] |= 1
			p := new(big.Int).SetBytes(b)
			if p.ProbablyPrime(20) && new(big.Int).GCD(nil, nil, e, new(big.Int).Sub(p, one)).Cmp(one) == 0 {
				return p
			}
		}
	}
	p, q := prime(), prime()
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	k := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537},
		D:         new(big.Int).ModInverse(e, phi),
		Primes:    []*big.Int{p, q},
	}
	k.Precompute()
	if err := k.Validate(); err != nil {
		panic(err)
	}
	return k
}

// fuzzJWKS is the published key set of the fixed keys. The RSA key has no
// alg, so it serves RS* and PS* alike.
func fuzzJWKS(k fuzzKeys) []byte {
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: k.rsa.priv.Public(), KeyID: k.rsa.kid, Use: "sig"},
		{Key: k.ec.priv.Public(), KeyID: k.ec.kid, Algorithm: string(k.ec.alg), Use: "sig"},
		{Key: k.ed.priv.Public(), KeyID: k.ed.kid, Algorithm: string(k.ed.alg), Use: "sig"},
	}})
	if err != nil {
		panic(err)
	}
	return b
}

// fuzzClaims are valid claims, ID and access token alike, at fuzzNow.
func fuzzClaims(mods ...map[string]any) map[string]any {
	return withMods(map[string]any{
		"iss":   fuzzIssuer,
		"sub":   testSubject,
		"aud":   testClientID,
		"azp":   testClientID,
		"exp":   fuzzNow.Add(time.Hour).Unix(),
		"iat":   fuzzNow.Unix(),
		"name":  "Test User",
		"email": "test.user@example.com",
	}, mods...)
}

// routeTo sends every request to srv whatever its URL names, so that a
// provider can use a fixed https issuer against a local server.
type routeTo struct{ srv *httptest.Server }

func (rt routeTo) RoundTrip(r *http.Request) (*http.Response, error) {
	u, err := url.Parse(rt.srv.URL)
	if err != nil {
		return nil, err
	}
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host = u.Scheme, u.Host
	return rt.srv.Client().Transport.RoundTrip(r2)
}

// newFuzzProvider returns a provider for fuzzIssuer whose HTTP calls all go
// to h, with the clock stopped at fuzzNow. It has no discovery or keys yet.
func newFuzzProvider(tb testing.TB, h http.Handler) *provider {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	cfg := &config{Tenants: []tenantConfig{{
		ID:           "acme",
		Issuer:       fuzzIssuer,
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		RedirectURI:  testRedirectURI,
	}}}
	if err := cfg.validate(noEnv); err != nil {
		tb.Fatal(err)
	}
	p := newProvider(&cfg.Tenants[0], slog.New(slog.DiscardHandler), newMetrics())
	p.client.Transport = routeTo{srv}
	p.now = func() time.Time { return fuzzNow }
	return p
}

func fuzzDiscoveryDoc() *discovery {
	return &discovery{idpEndpoints: idpEndpoints{
		Issuer:                fuzzIssuer,
		AuthorizationEndpoint: fuzzIssuer + "/authorize",
		TokenEndpoint:         fuzzIssuer + "/token",
		JWKSURI:               fuzzIssuer + "/jwks",
	}}
}

var errorCodeSyntax = regexp.MustCompile(`^SW_[A-Z_]+$`)

// checkEnvelope fails unless the response has one of the allowed statuses and
// a body that is exactly the JSON envelope: data on 200, else an error with
// a code and a message.
func checkEnvelope(t *testing.T, what string, w *httptest.ResponseRecorder, allowed ...int) envelope {
	t.Helper()
	if !slices.Contains(allowed, w.Code) {
		t.Fatalf("%s = %d %s; want one of %v", what, w.Code, w.Body, allowed)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s = %d with Content-Type %q", what, w.Code, ct)
	}
	// data is read raw first, so that a null or a non-object shows.
	var env struct {
		envelope
		Data json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("%s = %d with a body that is not the envelope (%v): %q", what, w.Code, err, w.Body)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("%s = %d with data after the envelope: %q", what, w.Code, w.Body)
	}
	if w.Code == http.StatusOK {
		if env.Error != nil || len(env.Data) == 0 || env.Data[0] != '{' {
			t.Fatalf("%s = 200 without data: %q", what, w.Body)
		}
		if err := json.Unmarshal(env.Data, &env.envelope.Data); err != nil {
			t.Fatalf("%s = 200 with data that is not an object (%v): %q", what, err, w.Body)
		}
		return env.envelope
	}
	if env.Error == nil || env.Data != nil || !errorCodeSyntax.MatchString(env.Error.Code) || env.Error.Message == "" {
		t.Fatalf("%s = %d without a proper error: %q", what, w.Code, w.Body)
	}
	return env.envelope
}

// FuzzBearerHeader checks bearerToken against the RFC 6750 grammar: it
// accepts exactly one header of the form "Bearer" (any case), one or more
// spaces, and a b64token, and returns that token; an empty header or another
// scheme reads as no bearer at all.
func FuzzBearerHeader(f *testing.F) {
	wellFormed := regexp.MustCompile(`^[Bb][Ee][Aa][Rr][Ee][Rr] +[A-Za-z0-9._~+/-]+=*$`)
	for _, v := range []string{
		"Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
		"bearer  abc", "BEARER x==", "BeArEr a-b_c~d+e/f.g",
		"Bearer", "Bearer ", "Bearer  ", "Bearer ===", "Bearer a=b", "Bearer a b",
		"Bearer\tabc", "Bearer abc ", " Bearer abc", "Bearerabc", "Bearer abc\n",
		"Bearer \u00fcml", "Basic dXNlcjpwYXNz", "Token abc", "",
	} {
		f.Add(v, false)
	}
	f.Add("Bearer abc", true)
	f.Fuzz(func(t *testing.T, value string, twice bool) {
		r := &http.Request{Header: http.Header{"Authorization": {value}}}
		if twice {
			r.Header.Add("Authorization", value)
		}
		tok, err := bearerToken(r)
		want := !twice && wellFormed.MatchString(value)
		if err != nil {
			// errNoBearer only for a single header that is empty or of another
			// scheme ("Basic …"): RFC 6750 §3.1, no error code in the challenge.
			if errors.Is(err, errNoBearer) {
				scheme, _, hasSpace := strings.Cut(value, " ")
				if twice || !(value == "" || hasSpace && !strings.EqualFold(scheme, "bearer")) {
					t.Fatalf("bearerToken(%q, twice=%v) = errNoBearer; want a *verifyError", value, twice)
				}
			} else if _, ok := err.(*verifyError); !ok {
				t.Fatalf("bearerToken(%q) error %T %v; want *verifyError or errNoBearer", value, err, err)
			}
			if tok != "" {
				t.Fatalf("bearerToken(%q) = %q with error %v", value, tok, err)
			}
			if want {
				t.Fatalf("bearerToken(%q) refused a well-formed header: %v", value, err)
			}
			return
		}
		if !want {
			t.Fatalf("bearerToken(%q, twice=%v) = %q; want a refusal", value, twice, tok)
		}
		if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
			t.Fatalf("bearerToken(%q) = %q: empty or with white space", value, tok)
		}
		if !strings.EqualFold(value[:6], "bearer") || value[6] != ' ' || strings.TrimLeft(value[6:], " ") != tok {
			t.Fatalf("bearerToken(%q) = %q, which is not what follows the scheme", value, tok)
		}
	})
}

// FuzzRequestID checks that a client's X-Request-Id is echoed only when it is
// short and plain, and that anything else is replaced by a fresh id.
func FuzzRequestID(f *testing.F) {
	plain := regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	fresh := regexp.MustCompile(`^[0-9a-f]{24}$`)
	for _, s := range []string{"", "abc-123", "a:b.c_d", "has space", "line\nbreak", "\u00e9", strings.Repeat("a", 128), strings.Repeat("a", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, given string) {
		got := requestID(given)
		if plain.MatchString(given) {
			if got != given {
				t.Fatalf("requestID(%q) = %q; want it echoed", given, got)
			}
			return
		}
		if !fresh.MatchString(got) {
			t.Fatalf("requestID(%q) = %q; want a fresh id of 24 hex digits", given, got)
		}
	})
}

// FuzzRegisterRequest sends arbitrary bearer tokens and bodies through the
// real handler: whatever comes in, the answer is one of the contract's
// statuses (never 500) in the JSON envelope, and a 401 carries the challenge.
//
// The seeds signed by the fake IdP verify when replayed by `go test`; in a
// fuzz worker, which has its own fake IdP and keys, they are just near-valid
// tokens. FuzzVerifyToken covers verification with fixed keys.
func FuzzRegisterRequest(f *testing.F) {
	idp := newFakeIDP(f)
	app := newTestApp(f, []tenantConfig{idp.tenantConfig()})
	valid := idp.accessToken()
	parts := strings.Split(valid, ".")
	forged, err := json.Marshal(idp.accessClaims(map[string]any{"sub": "admin"}))
	if err != nil {
		f.Fatal(err)
	}
	const form, js = "application/x-www-form-urlencoded", "application/json"
	f.Add(valid, "", []byte(nil))
	f.Add(valid, js, []byte(`{}`))
	f.Add(valid, js, []byte(`{"a":1}`))
	f.Add(valid, form, []byte("a=b&a=c"))
	f.Add(valid, "text/plain", []byte("hello"))
	f.Add(valid[:len(valid)-12], "", []byte(nil))
	f.Add(parts[0]+"."+b64u(forged)+"."+parts[2], "", []byte(nil))
	f.Add(b64u([]byte(`{"alg":"none","typ":"JWT"}`))+"."+parts[1]+".", "", []byte(nil))
	f.Add(idp.accessToken(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), "", []byte(nil))
	f.Add(idp.accessToken(map[string]any{"aud": "someone-else", "azp": nil}), "", []byte(nil))
	f.Add("", "", []byte(nil))
	f.Add("not a token", form, []byte("x=y"))
	f.Fuzz(func(t *testing.T, tok, contentType string, body []byte) {
		r := httptest.NewRequest("POST", "/v1/auth/register", bytes.NewReader(body))
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		w := httptest.NewRecorder()
		app.srv.ServeHTTP(w, r)
		checkEnvelope(t, "POST /v1/auth/register", w, 200, 400, 401, 413, 415, 503)
		if w.Code == http.StatusUnauthorized && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer ") {
			t.Fatalf("POST /v1/auth/register = 401 with WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
		}
	})
}

// FuzzVerifyToken gives arbitrary strings to provider.verify, both kinds, and
// to verifyAccess: the only errors are *verifyError, and nothing verifies
// except a token signed here, byte for byte in its canonical encoding.
func FuzzVerifyToken(f *testing.F) {
	keys := deterministicKeys()
	jwks := fuzzJWKS(keys)
	p := newFuzzProvider(f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	}))
	p.publishDiscovery(fuzzDiscoveryDoc())
	// The clock is stopped, so after the first unknown-kid refetch every
	// later one is throttled: a bogus kid costs no HTTP call.
	if err := p.fetchKeys(context.Background(), fuzzIssuer+"/jwks"); err != nil {
		f.Fatal(err)
	}

	// signed holds the signing inputs (header.payload) of the tokens made
	// here. ES256 and PS256 signatures are randomized, so a worker knows the
	// inputs, not the exact tokens, that the coordinator signed.
	signed := map[string]bool{}
	sign := func(k testKey, c map[string]any, hdr map[jose.HeaderKey]any) string {
		tok := signWith(f, k, c, hdr)
		signed[tok[:strings.LastIndexByte(tok, '.')]] = true
		return tok
	}
	ps256 := keys.rsa
	ps256.alg = jose.PS256
	noKid := keys.ed
	noKid.kid = "-"
	unknownKid := keys.ed
	unknownKid.kid = "e2"
	attacker := testKey{kid: "e1", alg: jose.EdDSA, priv: ed25519.NewKeyFromSeed(fuzzSeed("attacker"))}

	access := sign(keys.ed, fuzzClaims(), nil)
	id := sign(keys.rsa, fuzzClaims(map[string]any{"nonce": fuzzNonce}), nil)
	parts := strings.Split(access, ".")
	forged, err := json.Marshal(fuzzClaims(map[string]any{"sub": "admin"}))
	if err != nil {
		f.Fatal(err)
	}
	rsaDER, err := x509.MarshalPKIXPublicKey(keys.rsa.priv.Public())
	if err != nil {
		f.Fatal(err)
	}
	hsInput := b64u([]byte(`{"alg":"HS256","kid":"r1","typ":"JWT"}`)) + "." + parts[1]
	mac := hmac.New(sha256.New, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER}))
	mac.Write([]byte(hsInput))

	for _, s := range []struct {
		raw   string
		id    bool
		nonce string
	}{
		{access, false, ""},
		{access, true, ""},
		{id, true, fuzzNonce},
		{id, true, "another-nonce"},
		{sign(keys.ec, fuzzClaims(), nil), false, ""},
		{sign(ps256, fuzzClaims(map[string]any{"nonce": fuzzNonce}), nil), true, fuzzNonce},
		{sign(noKid, fuzzClaims(), nil), false, ""},
		{sign(keys.ed, fuzzClaims(), map[jose.HeaderKey]any{"typ": "at+jwt"}), true, ""},
		{sign(keys.ed, fuzzClaims(map[string]any{"aud": []string{testClientID, "other"}, "azp": "other"}), nil), true, ""},
		{sign(keys.ed, fuzzClaims(map[string]any{"aud": "other", "azp": nil}), nil), false, ""},
		{sign(keys.ed, fuzzClaims(map[string]any{"exp": fuzzNow.Add(-time.Hour).Unix()}), nil), false, ""},
		{sign(keys.ed, fuzzClaims(map[string]any{"nbf": fuzzNow.Add(time.Hour).Unix()}), nil), false, ""},
		{sign(keys.ed, fuzzClaims(map[string]any{"iss": fuzzIssuer + "/"}), nil), false, ""},
		{sign(keys.ed, fuzzClaims(map[string]any{"sub": nil, "iat": nil}), nil), true, ""},
		{sign(keys.ed, fuzzClaims(map[string]any{"exp": "tomorrow", "name": 7}), nil), false, ""},
		{sign(keys.ed, fuzzClaims(), map[jose.HeaderKey]any{"crit": []string{"exp"}, "exp": 1}), false, ""},
		{signWith(f, unknownKid, fuzzClaims(), nil), false, ""},
		{signWith(f, attacker, fuzzClaims(), map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: attacker.priv.Public()}}), false, ""},
		{signWith(f, attacker, fuzzClaims(), map[jose.HeaderKey]any{"jku": "https://evil.example/jwks"}), false, ""},
		{parts[0] + "." + b64u(forged) + "." + parts[2], false, ""},
		{b64u([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".", false, ""},
		{hsInput + "." + b64u(mac.Sum(nil)), false, ""},
		{access[:len(access)-9], false, ""},
		{parts[0] + "." + parts[1] + ".", false, ""},
		{"a.b.c.d.e", false, ""},
		{"..", true, ""},
		{"", false, ""},
	} {
		f.Add(s.raw, s.id, s.nonce)
	}

	ours := func(raw string) bool {
		i := strings.LastIndexByte(raw, '.')
		if i < 0 || !signed[raw[:i]] {
			return false
		}
		for _, seg := range strings.Split(raw, ".") {
			b, err := base64.RawURLEncoding.DecodeString(seg)
			if err != nil || b64u(b) != seg {
				return false
			}
		}
		return true
	}
	check := func(t *testing.T, what, raw string, kind tokenKind, nonce string, c *claims, err error) {
		t.Helper()
		if err != nil {
			ve, ok := err.(*verifyError)
			if !ok {
				t.Fatalf("%s(%q) error %T %v; want *verifyError", what, raw, err, err)
			}
			if c != nil {
				t.Fatalf("%s(%q) returned claims with error %v", what, raw, err)
			}
			if len(raw) >= 16 && strings.Count(raw, ".") == 2 && strings.Contains(ve.Detail, raw) {
				t.Fatalf("%s(%q): the refusal quotes the token: %v", what, raw, err)
			}
			return
		}
		if !ours(raw) {
			t.Fatalf("%s accepted %q as an %s, but it is not a token signed here", what, raw, kind)
		}
		if c == nil || c.Issuer != fuzzIssuer || c.Subject == "" || c.Expiry == nil || fuzzNow.After(c.Expiry.Time().Add(leeway)) {
			t.Fatalf("%s(%q) accepted claims %+v", what, raw, c)
		}
		if kind == kindIDToken && (!c.Audience.Contains(testClientID) || c.IssuedAt == nil || nonce != "" && string(c.Nonce) != nonce) {
			t.Fatalf("%s(%q, nonce %q) accepted ID token claims %+v", what, raw, nonce, c)
		}
	}
	f.Fuzz(func(t *testing.T, raw string, idToken bool, nonce string) {
		ctx := context.Background()
		kind := kindAccessToken
		if idToken {
			kind = kindIDToken
		}
		c, err := p.verify(ctx, raw, kind, nonce)
		check(t, "verify", raw, kind, nonce, c, err)
		if kind != kindAccessToken {
			return
		}
		ca, errA := p.verifyAccess(ctx, raw)
		check(t, "verifyAccess", raw, kind, "", ca, errA)
		if (err == nil) != (errA == nil) {
			t.Fatalf("verify and verifyAccess disagree on %q: %v, %v", raw, err, errA)
		}
	})
}

// sourceStrings returns the string literals of the named source files, also
// cut at their format verbs: the text that the server may put in a message
// whatever the request.
func sourceStrings(tb testing.TB, files ...string) []string {
	tb.Helper()
	verb := regexp.MustCompile(`%[-+# 0]*[0-9*]*(\.[0-9*]+)?[a-zA-Z%]`)
	out := []string{fmt.Sprintf("request body is over %d bytes", maxBodyBytes)}
	fset := token.NewFileSet()
	for _, name := range files {
		file, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			tb.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					out = append(out, s)
					out = append(out, verb.Split(s, -1)...)
				}
			}
			return true
		})
	}
	return out
}

// requestParams returns the parameter names of a request, and the values of
// its secret parameters, read the way readParams reads them.
func requestParams(contentType string, body []byte, query string) (keys, secrets []string) {
	vals := []url.Values{}
	q, _ := url.ParseQuery(query)
	vals = append(vals, q)
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "application/x-www-form-urlencoded":
		v, _ := url.ParseQuery(string(body))
		vals = append(vals, v)
	case "application/json":
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) == nil {
			v := url.Values{}
			for k, raw := range m {
				var s string
				json.Unmarshal(raw, &s)
				v.Add(k, s)
			}
			vals = append(vals, v)
		}
	}
	for _, v := range vals {
		for k, vs := range v {
			keys = append(keys, k)
			if k == "password" || k == "code" || k == "refresh_token" {
				secrets = append(secrets, vs...)
			}
		}
	}
	return keys, secrets
}

// leaks reports whether msg shows secret beyond what our own text and the
// request's parameter names explain. Messages about a parameter start with
// its (truncated) name.
func leaks(msg, secret string, keys, statics []string) bool {
	for _, s := range statics {
		if strings.Contains(s, secret) {
			return false
		}
	}
	best := ""
	for _, k := range keys {
		if tk := truncate(k, 40); k != "" && len(tk) > len(best) && strings.HasPrefix(msg, tk+": ") {
			best = tk
		}
	}
	return strings.Contains(msg[len(best):], secret)
}

// FuzzRequestBody sends arbitrary bodies and queries to /login, /token and
// /refresh, whose IdP rejects every grant: never a 500, always the envelope,
// and never the password, code or refresh token in the answer.
func FuzzRequestBody(f *testing.F) {
	idp := newFakeIDP(f)
	idp.set(func(i *fakeIDP) {
		i.tokenFn = func(url.Values, *http.Request) (int, any) {
			return 400, map[string]string{"error": "invalid_grant", "error_description": "rejected"}
		}
	})
	app := newTestApp(f, []tenantConfig{idp.tenantConfig()})
	statics := sourceStrings(f, "handlers.go", "server.go", "respond.go", "bearer.go", "oidc.go", "jwks.go", "refresh.go", "verify.go", "tokencache.go", "jsonbody.go")
	paths := []string{"/v1/auth/login", "/v1/auth/token", "/v1/auth/refresh"}
	const form, js = "application/x-www-form-urlencoded", "application/json"
	verifier := strings.Repeat("v", 43)
	for _, s := range []struct {
		endpoint           uint8
		ctype, body, query string
	}{
		{0, form, "code=SplxlOBeZQQYbYS6WxSbIA&redirect_uri=" + url.QueryEscape(testRedirectURI), ""},
		{0, js, `{"code":"SplxlOBeZQQYbYS6WxSbIA","code_verifier":"` + verifier + `","nonce":"n"}`, ""},
		{0, form, "", "code=SplxlOBeZQQYbYS6WxSbIA"},
		{0, form, "code=abcdefghijkl", "code=mnopqrstuvwx"},
		{0, form, "code=abcdefghijkl&code=abcdefghijkl", ""},
		{0, form, "code=abcdefghijkl&redirect_uri=https://evil.example/", ""},
		{0, form, "code=abcdefghijkl&code_verifier=short", ""},
		{0, form, "code=%zz", ""},
		{1, form, "grant_type=password&username=alice&password=correct-horse-battery", ""},
		{1, js, `{"grant_type":"password","username":"alice","password":"hunter2hunter2"}`, ""},
		{1, js, `{"grant_type":"password","username":"alice","password":5}`, ""},
		{1, js + "; charset=utf-8", `{"grant_type":"password","username":"alice","password":"p\u0061ssw0rd-long"}`, ""},
		{1, form, "grant_type=client_credentials&password=secret-secret", ""},
		{2, form, "refresh_token=rt-0123456789abcdef", ""},
		{2, js, `{"refresh_token":"rt-0123456789abcdef","scope":"openid"}`, ""},
		{2, js, `["refresh_token"]`, ""},
		{2, js, `{"refresh_token":null}`, ""},
		{2, "text/plain", "refresh_token=rt-0123456789abcdef", ""},
		{2, "", "refresh_token=rt-0123456789abcdef", ""},
	} {
		f.Add(s.endpoint, s.ctype, []byte(s.body), s.query)
	}
	// The limiter's clock moves a whole window per reading, so every attempt
	// finds its counters expired: otherwise the fuzzer soon sees only 429s.
	var ticks atomic.Int64
	app.srv.limiter.now = func() time.Time {
		return fuzzNow.Add(time.Duration(ticks.Add(1)) * failWindow)
	}
	f.Fuzz(func(t *testing.T, endpoint uint8, contentType string, body []byte, query string) {
		path := paths[int(endpoint)%len(paths)]
		r := httptest.NewRequest("POST", path, bytes.NewReader(body))
		r.URL.RawQuery = query
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		w := httptest.NewRecorder()
		app.srv.ServeHTTP(w, r)
		env := checkEnvelope(t, "POST "+path, w, 400, 401, 413, 415, 429, 503)
		keys, secrets := requestParams(contentType, body, query)
		for _, s := range secrets {
			if len(s) >= 8 && leaks(env.Error.Message, s, keys, statics) {
				t.Fatalf("POST %s = %d %q shows the secret parameter value %q", path, w.Code, env.Error.Message, s)
			}
		}
	})
}

// FuzzJWKS gives arbitrary bytes to parseJWKS: every key it returns is public
// and usable for verification (RSA of 2048 bits or more that crypto/rsa
// accepts, a point on a NIST curve, or Ed25519), and it fails exactly when
// the body is not a key set (a JSON object whose "keys" is an array); a key
// set without a usable key is no error, and yields none (fail closed).
func FuzzJWKS(f *testing.F) {
	keys := deterministicKeys()
	jwk := func(k jose.JSONWebKey) string {
		b, err := json.Marshal(k)
		if err != nil {
			f.Fatal(err)
		}
		return string(b)
	}
	curveKey := func(c elliptic.Curve, label string) *ecdsa.PrivateKey {
		b := make([]byte, (c.Params().BitSize+7)/8)
		copy(b[1:], fuzzSeed(label))
		k, err := ecdsa.ParseRawPrivateKey(c, b)
		if err != nil {
			f.Fatal(err)
		}
		return k
	}
	small := deterministicRSAKey(fuzzSeed("rsa-1024"), 1024)
	f.Add(fuzzJWKS(keys))
	for _, set := range [][]string{
		{jwk(jose.JSONWebKey{Key: curveKey(elliptic.P384(), "p384").Public(), KeyID: "p384"}), jwk(jose.JSONWebKey{Key: curveKey(elliptic.P521(), "p521").Public(), KeyID: "p521", Algorithm: "ES512"})},
		{jwk(jose.JSONWebKey{Key: keys.ed.priv, KeyID: "private"})},
		{jwk(jose.JSONWebKey{Key: keys.rsa.priv, KeyID: "private-rsa"})},
		{jwk(jose.JSONWebKey{Key: small.Public(), KeyID: "small"})},
		{jwk(jose.JSONWebKey{Key: keys.rsa.priv.Public(), KeyID: "enc", Use: "enc"}), `{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}`},
		{`{"kty":"OKP","crv":"X25519","x":"` + b64u(make([]byte, 32)) + `"}`, `{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}`},
		{`{"kty":"RSA","n":"` + b64u(keys.rsa.priv.Public().(*rsa.PublicKey).N.Bytes()) + `","e":"AQ"}`},
		{`{"kty":"RSA","e":"AQAB"}`, `{"kty":"EC"}`, `{"kty":"OKP","crv":"Ed25519","x":"AAAA"}`},
		{`1`, `"x"`, `null`, `[]`, `{"kty":5}`},
		{},
	} {
		f.Add([]byte(`{"keys":[` + strings.Join(set, ",") + `]}`))
	}
	for _, s := range []string{`{"keys":null}`, `{}`, `[]`, `null`, `{"keys":{}}`, `not json`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, _, err := parseJWKS(body)
		var doc map[string]json.RawMessage
		var list []json.RawMessage
		// A member named twice anywhere makes it no key set at all: an IdP
		// answer read strictly (idpjson.go), whichever copy a decoder keeps.
		isSet := checkMembersOnce(body) == nil && json.Unmarshal(body, &doc) == nil && string(doc["keys"]) != "null" && json.Unmarshal(doc["keys"], &list) == nil
		if (err == nil) != isSet || err != nil && len(got) != 0 {
			t.Fatalf("parseJWKS(%q) = %d keys, error %v; a key set: %v", body, len(got), err, isSet)
		}
		for i, k := range got {
			if !k.IsPublic() || !k.Valid() || (k.Use != "" && k.Use != "sig") {
				t.Fatalf("parseJWKS(%q): key %d (%T, use %q) is not a valid public signing key", body, i, k.Key, k.Use)
			}
			switch pub := k.Key.(type) {
			case *rsa.PublicKey:
				if pub.N.BitLen() < 2048 {
					t.Fatalf("parseJWKS(%q): key %d is RSA of %d bits", body, i, pub.N.BitLen())
				}
				// crypto/rsa checks the key before the signature: a bad key
				// gives another error than ErrVerification.
				sig := make([]byte, (pub.N.BitLen()+7)/8)
				if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, make([]byte, 32), sig); !errors.Is(err, rsa.ErrVerification) {
					t.Fatalf("parseJWKS(%q): key %d is an RSA key that crypto/rsa refuses: %v", body, i, err)
				}
			case *ecdsa.PublicKey:
				if _, err := pub.ECDH(); err != nil {
					t.Fatalf("parseJWKS(%q): key %d is an unusable EC key: %v", body, i, err)
				}
			case ed25519.PublicKey:
				if len(pub) != ed25519.PublicKeySize {
					t.Fatalf("parseJWKS(%q): key %d is an Ed25519 key of %d bytes", body, i, len(pub))
				}
			default:
				t.Fatalf("parseJWKS(%q): key %d is a %T", body, i, k.Key)
			}
		}
	})
}

// FuzzDiscovery serves arbitrary bytes as the discovery document: either
// fetchDiscovery fails, or the document names our issuer exactly, has
// acceptable endpoints, and yields an algorithm list within ours.
func FuzzDiscovery(f *testing.F) {
	var doc atomic.Pointer[[]byte]
	p := newFuzzProvider(f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(*doc.Load())
	}))
	good := map[string]any{
		"issuer":                                fuzzIssuer,
		"authorization_endpoint":                fuzzIssuer + "/authorize",
		"token_endpoint":                        fuzzIssuer + "/token",
		"jwks_uri":                              fuzzIssuer + "/jwks",
		"userinfo_endpoint":                     fuzzIssuer + "/userinfo",
		"end_session_endpoint":                  fuzzIssuer + "/logout",
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post"},
		"code_challenge_methods_supported":      []string{"S256", "plain"},
	}
	for _, mods := range []map[string]any{
		nil,
		{"issuer": fuzzIssuer + "/"},
		{"issuer": nil},
		{"jwks_uri": "http://idp.example.com/jwks"},
		{"jwks_uri": "http://127.0.0.1:8080/jwks", "token_endpoint": "http://localhost/token"},
		{"userinfo_endpoint": "http://127.0.0.1:8080/userinfo"},
		{"revocation_endpoint": "HTTP://127.0.0.1/revoke", "mtls_endpoint_aliases": map[string]any{"token_endpoint": "http://[::1]/t"}},
		{"token_endpoint": "/token"},
		{"userinfo_endpoint": "ftp://idp.example.com/u", "end_session_endpoint": ":"},
		{"id_token_signing_alg_values_supported": []string{"HS256", "none"}},
		{"id_token_signing_alg_values_supported": []string{}},
		{"id_token_signing_alg_values_supported": "RS256"},
		{"authorization_endpoint": 7},
	} {
		d := withMods(good, mods)
		b, err := json.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{}`, `[]`, `null`, `<html>`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		doc.Store(&body)
		d, err := p.fetchDiscovery(context.Background())
		if err != nil {
			if d != nil {
				t.Fatalf("fetchDiscovery(%q) returned a document with error %v", body, err)
			}
			return
		}
		if d.Issuer != fuzzIssuer {
			t.Fatalf("fetchDiscovery(%q) accepted issuer %q", body, d.Issuer)
		}
		for _, u := range []string{d.AuthorizationEndpoint, d.TokenEndpoint, d.JWKSURI} {
			if err := checkEndpoint(u); err != nil {
				t.Fatalf("fetchDiscovery(%q) accepted endpoint %q: %v", body, u, err)
			}
		}
		for _, u := range []string{d.UserinfoEndpoint, d.EndSessionEndpoint} {
			if u != "" && checkEndpoint(u) != nil {
				t.Fatalf("fetchDiscovery(%q) kept optional endpoint %q", body, u)
			}
		}
		// The issuer is https: no endpoint may take us to plain http.
		for _, u := range []string{d.AuthorizationEndpoint, d.TokenEndpoint, d.JWKSURI, d.UserinfoEndpoint, d.EndSessionEndpoint} {
			if strings.HasPrefix(strings.ToLower(u), "http:") {
				t.Fatalf("fetchDiscovery(%q) accepted the plain-http endpoint %q under an https issuer", body, u)
			}
		}
		p.publishDiscovery(d)
		for _, a := range *p.algs.Load() {
			advertised := d.IDTokenSigningAlgValuesSupported
			if !slices.Contains(supportedAlgs, a) || len(advertised) > 0 && !slices.Contains(advertised, string(a)) {
				t.Fatalf("fetchDiscovery(%q): algorithm %s allowed", body, a)
			}
		}
	})
}

// FuzzTokenResponse serves an arbitrary status and body from the token
// endpoint: provider.token returns a usable Bearer response, an
// *oauthError, or an error wrapping errIdPUnavailable; nothing else.
func FuzzTokenResponse(f *testing.F) {
	type answer struct {
		status int
		body   []byte
	}
	var ans atomic.Pointer[answer]
	p := newFuzzProvider(f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := ans.Load()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		w.Write(a.body)
	}))
	p.publishDiscovery(fuzzDiscoveryDoc())
	for _, s := range []struct {
		status uint16
		body   string
	}{
		{0, `{"access_token":"at","token_type":"Bearer","expires_in":300,"refresh_token":"rt","id_token":"x.y.z","scope":"openid email"}`},
		{0, `{"access_token":"at","token_type":"bearer","expires_in":"3600","scope":["openid","email"]}`},
		{0, `{"access_token":"at","expires_in":1.5e3}`},
		{0, `{"access_token":"at","expires_in":null,"scope":null}`},
		{0, `{"access_token":"at","expires_in":-1}`},
		{0, `{"access_token":"at","token_type":"mac"}`},
		{0, `{"access_token":"","token_type":"Bearer"}`},
		{0, `{"access_token":7}`},
		{0, `not json`},
		{200, `{"error":"invalid_grant","error_description":"expired"}`},
		{201, `{"error":"invalid_client"}`},
		{200, `{"error":""}`},
		{200, `<html>bad request</html>`},
		{100, `{"access_token":"at"}`},
		{300, `{"error":"server_error"}`},
	} {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status uint16, body []byte) {
		code := 200 + int(status)%400
		ans.Store(&answer{code, body})
		tr, err := p.token(context.Background(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt-fuzz"}})
		var oe *oauthError
		switch {
		case err == nil:
			if tr == nil || tr.AccessToken == "" || tr.TokenType != "Bearer" || code != http.StatusOK {
				t.Fatalf("token(%d %q) = %+v; want a Bearer access token from a 200", code, body, tr)
			}
			if tr.ExpiresIn < 0 || tr.ExpiresIn > 1<<40 {
				t.Fatalf("token(%d %q): expires_in %d is not a number of seconds", code, body, tr.ExpiresIn)
			}
		case errors.As(err, &oe):
			if _, ok := err.(*oauthError); !ok || tr != nil || oe.Code == "" || oe.Status != code || code < 400 || code > 499 {
				t.Fatalf("token(%d %q) = %+v, %#v", code, body, tr, err)
			}
		case errors.Is(err, errIdPUnavailable):
			if tr != nil {
				t.Fatalf("token(%d %q) = %+v with error %v", code, body, tr, err)
			}
		default:
			t.Fatalf("token(%d %q) error %T %v; want *oauthError or errIdPUnavailable", code, body, err, err)
		}
	})
}

// fuzzConfigDirEnv names the directory of FuzzConfig's files to the fuzzing
// workers, which inherit the environment that f.Fuzz finds.
const fuzzConfigDirEnv = "SCAIWAVE_FUZZ_CONFIG_DIR"

// fuzzConfigFiles writes the files that FuzzConfig lets configurations name.
// The first process makes a temporary directory of its own, removed when the
// test ends, and passes its path on to the fuzzing workers, so that every
// process agrees on the paths and nothing is left outside the test's
// temporary folder. Each file is written whole and renamed into place.
func fuzzConfigFiles(f *testing.F) map[string]string {
	f.Helper()
	dir := os.Getenv(fuzzConfigDirEnv)
	if dir == "" {
		dir = f.TempDir()
		f.Setenv(fuzzConfigDirEnv, dir)
	}
	priv := ed25519.NewKeyFromSeed(fuzzSeed("ca"))
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "scaiwave fuzz CA"},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		f.Fatal(err)
	}
	files := map[string]string{
		"secret":  "s3cret\n",
		"empty":   "",
		"not-pem": "not a certificate\n",
		"ca.pem":  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	}
	paths := map[string]string{"missing": filepath.Join(dir, "missing"), "devnull": os.DevNull}
	for name, content := range files {
		path := filepath.Join(dir, name)
		paths[name] = path
		if b, err := os.ReadFile(path); err == nil && string(b) == content {
			continue
		}
		tmp, err := os.CreateTemp(dir, name+".*")
		if err != nil {
			f.Fatal(err)
		}
		_, err = tmp.WriteString(content)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			os.Remove(tmp.Name())
			f.Fatal(err)
		}
	}
	return paths
}

// FuzzConfig gives arbitrary bytes to parseConfig: either a *configError with
// a one-line message, or a configuration with a tenant, openid among its
// scopes and audiences, which validate leaves as it is when run again.
func FuzzConfig(f *testing.F) {
	files := fuzzConfigFiles(f)
	allowed := map[string]bool{}
	for _, p := range files {
		allowed[p] = true
	}
	getenv := func(name string) string {
		if name == "SCAIWAVE_FUZZ_SECRET" {
			return "env-secret"
		}
		return ""
	}
	tenant := func(mods map[string]any) map[string]any {
		return withMods(map[string]any{
			"id":           "acme",
			"issuer":       "https://idp.example.com/realms/acme",
			"client_id":    "scaiwave",
			"redirect_uri": "https://auth.acme.example/v1/auth/login",
		}, mods)
	}
	add := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	add(map[string]any{
		"addr":            "127.0.0.1:8080",
		"database":        "/var/lib/scaiwave/auth.db",
		"metrics_addr":    "127.0.0.1:9090",
		"trusted_proxies": []string{"10.0.0.0/8", "192.168.1.1", "::1"},
		"tenants": []any{tenant(map[string]any{
			"hosts":              []string{"Auth.Acme.Example."},
			"client_secret_file": files["secret"],
			"scopes":             []string{"openid", "profile", "email", "offline_access"},
			"audiences":          []string{"scaiwave"},
			"cors_origins":       []string{"https://App.acme.example"},
			"ca_file":            files["ca.pem"],
			"features":           map[string]any{"auth": map[string]any{"password_grant_enabled": true, "refresh_token_rotation": false}},
		})},
	})
	for _, tenants := range [][]any{
		{tenant(nil)},
		{tenant(map[string]any{"issuer": "http://127.0.0.1:5556/dex", "client_secret_env": "SCAIWAVE_FUZZ_SECRET"})},
		{tenant(map[string]any{"hosts": []string{"a.example"}}), tenant(map[string]any{"id": "b", "hosts": []string{"B.example."}})},
		{tenant(map[string]any{"hosts": []string{"a.example"}}), tenant(map[string]any{"hosts": []string{"A.example"}})},
		{tenant(map[string]any{"client_secret": "x", "client_secret_env": "Y"})},
		{tenant(map[string]any{"client_secret_env": "UNSET"})},
		{tenant(map[string]any{"client_secret_file": files["empty"]})},
		{tenant(map[string]any{"client_secret_file": files["missing"]})},
		{tenant(map[string]any{"ca_file": files["not-pem"]})},
		{tenant(map[string]any{"ca_file": files["devnull"]})},
		{tenant(map[string]any{"issuer": "http://idp.example.com"})},
		{tenant(map[string]any{"issuer": "https://idp.example.com/?q#f"})},
		{tenant(map[string]any{"scopes": []string{"profile"}})},
		{tenant(map[string]any{"scopes": []string{"openid", "a b"}})},
		{tenant(map[string]any{"audiences": []string{""}})},
		{tenant(map[string]any{"cors_origins": []string{"https://app.example.com/path"}})},
		{tenant(map[string]any{"redirect_uri": "/relative"})},
		{tenant(map[string]any{"id": "bad id!"})},
		{tenant(map[string]any{"hosts": []string{"host:8080"}})},
		{tenant(map[string]any{"features": map[string]any{"auth": map[string]any{"password_grant": true}}})},
		{tenant(map[string]any{"scopes": "openid"})},
		{},
	} {
		add(map[string]any{"tenants": tenants})
	}
	for _, s := range []string{
		`{"tenants":[{"id":"a","issuer":"https://i.example","client_id":"c","redirect_uri":"https://r.example/"}]} {}`,
		`{"addr":"nonsense","tenants":[]}`,
		`{"trusted_proxies":["10.0.0.0/33"]}`,
		`{"tenants":[{"id":1}]}`,
		`{"tenants":`,
		`{"typo":1}`,
		`null`, `[]`, ``, "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Configurations name files; read none but ours (think of /dev/zero).
		// A document that does not decode leniently fails the real decoder
		// too, before anything is read.
		var pre config
		if json.NewDecoder(bytes.NewReader(b)).Decode(&pre) == nil {
			for _, tc := range pre.Tenants {
				if tc.ClientSecretFile != "" && !allowed[tc.ClientSecretFile] || tc.CAFile != "" && !allowed[tc.CAFile] {
					return
				}
			}
		}
		cfg, err := parseConfig(b, getenv)
		if err != nil {
			ce, ok := err.(*configError)
			if !ok || cfg != nil {
				t.Fatalf("parseConfig(%q) = %v, %T %v; want only a *configError", b, cfg, err, err)
			}
			if ce.msg == "" || strings.ContainsFunc(ce.msg, unicode.IsControl) {
				t.Fatalf("parseConfig(%q): message %q is not one printable line", b, ce.msg)
			}
			return
		}
		if len(cfg.Tenants) == 0 {
			t.Fatalf("parseConfig(%q) accepted a configuration without tenants", b)
		}
		for i, tc := range cfg.Tenants {
			if !slices.Contains(tc.Scopes, "openid") || len(tc.Audiences) == 0 {
				t.Fatalf("parseConfig(%q): tenants[%d] has scopes %q, audiences %q", b, i, tc.Scopes, tc.Audiences)
			}
		}
		before, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.validate(getenv); err != nil {
			t.Fatalf("parseConfig(%q) accepted a configuration that fails validation when run again: %v", b, err)
		}
		if after, _ := json.Marshal(cfg); !bytes.Equal(before, after) {
			t.Fatalf("parseConfig(%q): validating again changed the configuration\nfrom %s\nto   %s", b, before, after)
		}
	})
}

// FuzzClientAddr gives clientAddr arbitrary peers and X-Forwarded-For
// values (one header per line) with a fixed trusted set: an untrusted peer
// is the answer whatever the header says, and a trusted one is replaced only
// by an address that the header names (bare, or with a port).
func FuzzClientAddr(f *testing.F) {
	var trusted []netip.Prefix
	for _, s := range []string{"10.0.0.0/8", "192.168.1.0/24", "::1", "fd00::/8"} {
		p, err := parsePrefix(s)
		if err != nil {
			f.Fatal(err)
		}
		trusted = append(trusted, p)
	}
	isProxy := func(a netip.Addr) bool {
		return slices.ContainsFunc(trusted, func(p netip.Prefix) bool { return p.Contains(a) })
	}
	for _, s := range [][2]string{
		{"203.0.113.7:5555", ""},
		{"203.0.113.7:5555", "10.0.0.9"},
		{"10.0.0.1:80", "203.0.113.7"},
		{"10.0.0.1:80", "198.51.100.1, 203.0.113.7, 10.1.1.1"},
		{"10.0.0.1:80", "198.51.100.1\n10.0.0.2, 192.168.1.4"},
		{"10.0.0.1:80", "garbage, 10.2.2.2"},
		{"10.0.0.1:80", "10.2.2.2, 10.3.3.3"},
		{"10.0.0.1:80", ""},
		{"[::1]:8080", "2001:db8::1"},
		{"[::ffff:10.0.0.1]:1", "::ffff:198.51.100.1"},
		{"[fe80::1%eth0]:80", "203.0.113.7"},
		{"[fd00::1]:443", "fe80::1%25eth0, fd00::2"},
		{"10.0.0.1", "203.0.113.7:1234"},
		{"not an address", "203.0.113.7"},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		var hops []string
		if xff != "" {
			for _, v := range strings.Split(xff, "\n") {
				r.Header.Add("X-Forwarded-For", v)
				hops = append(hops, strings.Split(v, ",")...)
			}
		}
		got := clientAddr(r, trusted)
		host, _, err := net.SplitHostPort(remote)
		if err != nil {
			host = remote
		}
		peer, err := netip.ParseAddr(host)
		if err != nil {
			if got.IsValid() {
				t.Fatalf("clientAddr(%q, %q) = %s for a peer that is not an address", remote, xff, got)
			}
			return
		}
		peer = peer.Unmap()
		if !isProxy(peer) {
			if got != peer {
				t.Fatalf("clientAddr(%q, %q) = %s; want the untrusted peer %s", remote, xff, got, peer)
			}
			return
		}
		named := slices.ContainsFunc(hops, func(h string) bool {
			h = strings.TrimSpace(h)
			a, err := netip.ParseAddr(h)
			if ap, perr := netip.ParseAddrPort(h); err != nil && perr == nil {
				a, err = ap.Addr(), nil
			}
			return err == nil && a.Unmap() == got
		})
		if !got.IsValid() || got != peer && !named {
			t.Fatalf("clientAddr(%q, %q) = %s, neither the peer nor a forwarded address", remote, xff, got)
		}
	})
}
