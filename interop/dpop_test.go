package interop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// proofKey is a DPoP client's ES256 key, made with the standard library
// only (this module has no dependencies).
type proofKey struct {
	priv *ecdsa.PrivateKey
	jwk  map[string]string // the public JWK
	jkt  string            // its RFC 7638 SHA-256 thumbprint
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newProofKey(t *testing.T) *proofKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := priv.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	x, y := b64(pub[1:33]), b64(pub[33:])
	// RFC 7638 §3.2: the required members in lexicographic order, no spaces.
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	return &proofKey{priv: priv, jwk: map[string]string{"kty": "EC", "crv": "P-256", "x": x, "y": y}, jkt: b64(sum[:])}
}

// proof makes a proof for method and htu, with ath for token when not "";
// mods change the claims (nil deletes), hmods the header.
func (k *proofKey) proof(t *testing.T, method, htu, token string, mods, hmods map[string]any) string {
	t.Helper()
	c := map[string]any{"jti": randomString(16), "htm": method, "htu": htu, "iat": time.Now().Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		c["ath"] = b64(sum[:])
	}
	h := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk}
	apply := func(m, mods map[string]any) {
		for key, v := range mods {
			if v == nil {
				delete(m, key)
			} else {
				m[key] = v
			}
		}
	}
	apply(c, mods)
	apply(h, hmods)
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(c)
	input := b64(hb) + "." + b64(cb)
	switch h["alg"] {
	case "none":
		return input + "."
	case "HS256":
		m := hmac.New(sha256.New, []byte("a shared secret is no proof of anything"))
		m.Write([]byte(input))
		return input + "." + b64(m.Sum(nil))
	}
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))
}

// callDPoP POSTs a JSON body (nil for none) to the service with the given
// Authorization and DPoP headers ("" for none).
func callDPoP(t *testing.T, s *service, path string, body map[string]string, auth, proof string) *apiCall {
	t.Helper()
	h := http.Header{}
	if auth != "" {
		h.Set("Authorization", auth)
	}
	if proof != "" {
		h.Set("DPoP", proof)
	}
	return postAPI(t, s, path, body, h)
}

// dpopPeer is the row whose provider and tenant the DPoP tests use:
// node oidc-provider with its API resource among the tenant's audiences,
// so that both a JWT access token (resource indicator) and an opaque one
// (none) can be had; each test names its own authorization parameters.
const dpopPeer = "node-jwt"

// TestDPoPNodeOIDCProvider runs a DPoP client with one ES256 key through
// the service against node oidc-provider with DPoP on: sign-in (the code
// exchange at the provider's token endpoint carries the client's proof),
// register, refresh and sign-out, all bound to the key, for a JWT access
// token (RFC 9068, resource indicator) and an opaque one (introspection
// answers with cnf); then every attack on a bound token is refused.
func TestDPoPNodeOIDCProvider(t *testing.T) {
	t.Parallel()
	e := setup(t, peerNamed(t, dpopPeer))
	key := newProofKey(t)
	st, body, err := get(e.svc.base + "/v1/auth/config")
	var cfg struct {
		Data struct {
			TokenEndpoint string   `json:"token_endpoint"`
			DPoPAlgs      []string `json:"dpop_signing_alg_values_supported"`
		}
	}
	if err != nil || st != 200 || json.Unmarshal(body, &cfg) != nil {
		t.Fatalf("GET /v1/auth/config: %d %v", st, err)
	}
	tokenURL := cfg.Data.TokenEndpoint
	t.Logf("/config: token_endpoint %s, dpop_signing_alg_values_supported %v", tokenURL, cfg.Data.DPoPAlgs)
	if !strings.Contains(strings.Join(cfg.Data.DPoPAlgs, " "), "ES256") {
		t.Errorf("/config: dpop_signing_alg_values_supported %v lacks ES256", cfg.Data.DPoPAlgs)
	}
	registerURL, logoutURL := e.svc.base+"/v1/auth/register", e.svc.base+"/v1/auth/logout"

	for _, kind := range []struct {
		name  string
		extra url.Values
	}{
		{"jwt", url.Values{"prompt": {"consent"}, "resource": {nodeAPIResource}}},
		{"opaque", url.Values{"prompt": {"consent"}}},
	} {
		t.Run(kind.name, func(t *testing.T) {
			s := e.loginDPoP(t, kind.extra, key, tokenURL)
			if kind.name == "jwt" {
				claims := describeAccessToken(t, "bound JWT access token", s.access)
				cnf, _ := claims["cnf"].(map[string]any)
				if claims == nil || cnf["jkt"] != key.jkt {
					t.Fatalf("the JWT access token's cnf %v; want jkt %s", claims["cnf"], key.jkt)
				}
			} else {
				st, body := e.providerPost(t, e.idp.introspection, s.access)
				t.Logf("the provider's introspection of the bound opaque token: %d %s", st, body)
				if !strings.Contains(string(body), key.jkt) {
					t.Fatalf("the introspection answer names no cnf.jkt of our key")
				}
			}
			register := func(auth, proof string) *apiCall {
				return callDPoP(t, e.svc, "/v1/auth/register", nil, auth, proof)
			}
			if a := register("DPoP "+s.access, key.proof(t, "POST", registerURL, s.access, nil, nil)); a.status != 200 {
				t.Fatalf("register with the bound token and a proof: %s", a.describe())
			}

			other := newProofKey(t)
			replayed := key.proof(t, "POST", registerURL, s.access, nil, nil)
			if a := register("DPoP "+s.access, replayed); a.status != 200 {
				t.Fatalf("register with a fresh proof: %s", a.describe())
			}
			private := map[string]any{"kty": "EC", "crv": "P-256", "x": key.jwk["x"], "y": key.jwk["y"], "d": b64(key.priv.D.FillBytes(make([]byte, 32)))}
			attacks := []struct{ name, auth, proof string }{
				{"the bound token as Bearer", "Bearer " + s.access, ""},
				{"the bound token as Bearer, with a proof", "Bearer " + s.access, key.proof(t, "POST", registerURL, s.access, nil, nil)},
				{"a proof from another key", "DPoP " + s.access, other.proof(t, "POST", registerURL, s.access, nil, nil)},
				{"a replayed proof", "DPoP " + s.access, replayed},
				{"a proof for another method", "DPoP " + s.access, key.proof(t, "GET", registerURL, s.access, nil, nil)},
				{"a proof for another URL", "DPoP " + s.access, key.proof(t, "POST", logoutURL, s.access, nil, nil)},
				{"a stale iat", "DPoP " + s.access, key.proof(t, "POST", registerURL, s.access, map[string]any{"iat": time.Now().Add(-5 * time.Minute).Unix()}, nil)},
				{"no ath", "DPoP " + s.access, key.proof(t, "POST", registerURL, "", nil, nil)},
				{"a wrong ath", "DPoP " + s.access, key.proof(t, "POST", registerURL, s.access+"x", nil, nil)},
				{"a private key in jwk", "DPoP " + s.access, key.proof(t, "POST", registerURL, s.access, nil, map[string]any{"jwk": private})},
				{"alg none", "DPoP " + s.access, key.proof(t, "POST", registerURL, s.access, nil, map[string]any{"alg": "none"})},
				{"HS256", "DPoP " + s.access, key.proof(t, "POST", registerURL, s.access, nil, map[string]any{"alg": "HS256"})},
				{"no proof", "DPoP " + s.access, ""},
			}
			for _, at := range attacks {
				a := register(at.auth, at.proof)
				ch := strings.Join(a.header.Values("WWW-Authenticate"), " | ")
				if a.status != http.StatusUnauthorized || a.code != "SW_AUTH_UNAUTHENTICATED" || !strings.Contains(ch, "DPoP algs=") {
					t.Errorf("register with %s: want 401 SW_AUTH_UNAUTHENTICATED with a DPoP challenge, got %s (%s)", at.name, a.describe(), ch)
				} else {
					t.Logf("register with %s: refused, %s", at.name, ch)
				}
			}

			a := callDPoP(t, e.svc, "/v1/auth/refresh", map[string]string{"refresh_token": s.refresh}, "", key.proof(t, "POST", tokenURL, "", nil, nil))
			if a.status != 200 || a.data["token_type"] != "DPoP" {
				t.Fatalf("refresh with a proof: want 200 token_type DPoP, got %s", a.describe())
			}
			next, _ := a.data["access_token"].(string)
			refresh, _ := a.data["refresh_token"].(string)
			if a := register("DPoP "+next, key.proof(t, "POST", registerURL, next, nil, nil)); a.status != 200 {
				t.Fatalf("register with the refreshed bound token: %s", a.describe())
			}
			if a := register("Bearer "+next, ""); a.status != 401 {
				t.Errorf("register with the refreshed bound token as Bearer: want 401, got %s", a.describe())
			}

			// (With a refresh token beside it, sign-out goes on with that
			// one alone, as for any access token that does not verify.)
			a = callDPoP(t, e.svc, "/v1/auth/logout", nil, "Bearer "+next, "")
			if a.status != 401 {
				t.Errorf("logout with the bound token as Bearer: want 401, got %s", a.describe())
			}
			a = callDPoP(t, e.svc, "/v1/auth/logout", map[string]string{"refresh_token": refresh}, "DPoP "+next, key.proof(t, "POST", logoutURL, next, nil, nil))
			if a.status != 200 {
				t.Fatalf("logout with a proof: want 200, got %s", a.describe())
			}
			if a := register("DPoP "+next, key.proof(t, "POST", registerURL, next, nil, nil)); a.status != 401 {
				t.Errorf("register after sign-out: want 401, got %s", a.describe())
			}
		})
	}
}

// loginDPoP signs in at the provider with PKCE and posts the code to the
// service's /v1/auth/login with a proof for the provider's token endpoint,
// which the service passes on: the tokens come back bound to key.
func (e *env) loginDPoP(t *testing.T, extra url.Values, key *proofKey, tokenURL string) *session {
	t.Helper()
	az := e.authorize(t, extra)
	a := callDPoP(t, e.svc, "/v1/auth/login", az.form, "", key.proof(t, "POST", tokenURL, "", nil, nil))
	if a.status != http.StatusOK {
		t.Fatalf("/v1/auth/login with a proof: want 200, got %s", a.describe())
	}
	if a.data["token_type"] != "DPoP" {
		t.Fatalf("/v1/auth/login with a proof: token_type %v, want DPoP", a.data["token_type"])
	}
	str := func(k string) string { s, _ := a.data[k].(string); return s }
	s := &session{access: str("access_token"), refresh: str("refresh_token"), idToken: str("id_token"), browser: az.browser}
	if s.access == "" || s.refresh == "" {
		t.Fatalf("/v1/auth/login: %s", a.describe())
	}
	t.Logf("/v1/auth/login with a proof: %s", a.describe())
	return s
}

// TestDPoPNodeOIDCProviderNonce: with a provider that requires DPoP nonces,
// the service passes its use_dpop_nonce and DPoP-Nonce on, and the client's
// retry with the nonce signs in and refreshes.
func TestDPoPNodeOIDCProviderNonce(t *testing.T) {
	t.Parallel()
	p := *peerNamed(t, dpopPeer)
	p.start = func(t *testing.T, p *peer, svcBase, redirectURI string) *idp {
		return startNodeOPWith(t, p, svcBase, redirectURI, "DPOP_NONCE=1")
	}
	e := setup(t, &p)
	key := newProofKey(t)
	tokenURL := e.disc.TokenEndpoint
	// The sign-in at the provider, then the code exchange twice: without
	// and with the nonce.
	s := e.loginDPoPNonce(t, key, tokenURL)
	registerURL := e.svc.base + "/v1/auth/register"
	if a := callDPoP(t, e.svc, "/v1/auth/register", nil, "DPoP "+s.access, key.proof(t, "POST", registerURL, s.access, nil, nil)); a.status != 200 {
		t.Fatalf("register with the bound token: %s", a.describe())
	}
	form := map[string]string{"refresh_token": s.refresh}
	a := callDPoP(t, e.svc, "/v1/auth/refresh", form, "", key.proof(t, "POST", tokenURL, "", nil, nil))
	nonce := a.header.Get("DPoP-Nonce")
	if a.status == 400 && nonce != "" {
		t.Logf("refresh without a nonce: %s, DPoP-Nonce given; retrying with it", a.describe())
		a = callDPoP(t, e.svc, "/v1/auth/refresh", form, "", key.proof(t, "POST", tokenURL, "", map[string]any{"nonce": nonce}, nil))
	}
	if a.status != 200 || a.data["token_type"] != "DPoP" {
		t.Fatalf("refresh with the nonce: want 200 token_type DPoP, got %s", a.describe())
	}
}

// loginDPoPNonce is loginDPoP against a provider that wants nonces: the
// first exchange must come back 400 with the provider's DPoP-Nonce, and
// the retry with a proof carrying it must succeed with the same code.
func (e *env) loginDPoPNonce(t *testing.T, key *proofKey, tokenURL string) *session {
	t.Helper()
	az := e.authorize(t, url.Values{"prompt": {"consent"}})
	form := az.form
	a := callDPoP(t, e.svc, "/v1/auth/login", form, "", key.proof(t, "POST", tokenURL, "", nil, nil))
	dpopNonce := a.header.Get("DPoP-Nonce")
	if a.status != 400 || a.code != "SW_BAD_REQUEST" || !strings.Contains(a.msg, "use_dpop_nonce") || dpopNonce == "" {
		t.Fatalf("/v1/auth/login without a nonce: want 400 SW_BAD_REQUEST naming use_dpop_nonce with a DPoP-Nonce header, got %s (DPoP-Nonce %q)", a.describe(), dpopNonce)
	}
	t.Logf("/v1/auth/login without a nonce: %s; DPoP-Nonce passed on", a.describe())
	a = callDPoP(t, e.svc, "/v1/auth/login", form, "", key.proof(t, "POST", tokenURL, "", map[string]any{"nonce": dpopNonce}, nil))
	if a.status != 200 || a.data["token_type"] != "DPoP" {
		t.Fatalf("/v1/auth/login with the nonce: want 200 token_type DPoP, got %s", a.describe())
	}
	str := func(k string) string { s, _ := a.data[k].(string); return s }
	return &session{access: str("access_token"), refresh: str("refresh_token"), idToken: str("id_token"), browser: az.browser}
}
