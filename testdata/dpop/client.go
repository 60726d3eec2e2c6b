//go:build ignore

// client.go is a DPoP client (RFC 9449) for trying scaiwave-auth by hand:
// it makes an ES256 key, signs in with the password grant through the
// service (the proof goes on to the IdP, which binds the tokens to the
// key), registers, refreshes, signs out, and shows the attacks a bound
// token withstands. Standard library only.
//
//	go run . -dev &                              # the service and its dev IdP
//	go run testdata/dpop/client.go               # -base http://127.0.0.1:8080
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

var b64 = base64.RawURLEncoding.EncodeToString

type key struct {
	priv *ecdsa.PrivateKey
	jwk  map[string]string
}

func newKey() key {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	pub, _ := priv.PublicKey.Bytes() // 0x04 || X || Y
	return key{priv, map[string]string{"kty": "EC", "crv": "P-256", "x": b64(pub[1:33]), "y": b64(pub[33:])}}
}

// proof signs a DPoP proof for method and htu; with token, its ath.
func (k key) proof(method, htu, token string) string {
	h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk})
	c := map[string]any{"jti": b64(randomBytes(16)), "htm": method, "htu": htu, "iat": time.Now().Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		c["ath"] = b64(sum[:])
	}
	cb, _ := json.Marshal(c)
	input := b64(h) + "." + b64(cb)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.priv, digest[:])
	if err != nil {
		panic(err)
	}
	return input + "." + b64(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// post sends a form with the Authorization and DPoP headers given ("" for
// none) and returns the status, the envelope's data and the challenges.
func post(u string, form url.Values, auth, proof string) (int, map[string]any, string) {
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env struct{ Data map[string]any }
	json.Unmarshal(b, &env)
	return resp.StatusCode, env.Data, strings.Join(resp.Header.Values("WWW-Authenticate"), ", ")
}

func main() {
	base := flag.String("base", "http://127.0.0.1:8080", "the service")
	user := flag.String("user", "alice", "username")
	pass := flag.String("password", "alice-password", "password")
	flag.Parse()

	resp, err := http.Get(*base + "/v1/auth/config")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var cfg struct {
		Data struct {
			TokenEndpoint string   `json:"token_endpoint"`
			Algs          []string `json:"dpop_signing_alg_values_supported"`
		}
	}
	json.NewDecoder(resp.Body).Decode(&cfg)
	resp.Body.Close()
	tokenURL := cfg.Data.TokenEndpoint // the htu of proofs the IdP receives
	fmt.Printf("IdP token endpoint %s, DPoP algorithms %v\n", tokenURL, cfg.Data.Algs)

	k := newKey()
	st, d, _ := post(*base+"/v1/auth/token", url.Values{"grant_type": {"password"}, "username": {*user}, "password": {*pass}}, "", k.proof("POST", tokenURL, ""))
	at, _ := d["access_token"].(string)
	rt, _ := d["refresh_token"].(string)
	fmt.Printf("sign-in:                     %d token_type=%v\n", st, d["token_type"])
	if st != 200 {
		os.Exit(1)
	}
	reg := *base + "/v1/auth/register"
	st, d, _ = post(reg, nil, "DPoP "+at, k.proof("POST", reg, at))
	fmt.Printf("register with a proof:       %d participant=%v\n", st, d["participant_id"])
	st, _, ch := post(reg, nil, "Bearer "+at, "")
	fmt.Printf("the bound token as Bearer:   %d %s\n", st, ch)
	st, _, ch = post(reg, nil, "DPoP "+at, newKey().proof("POST", reg, at))
	fmt.Printf("another key's proof:         %d %s\n", st, ch)
	p := k.proof("POST", reg, at)
	post(reg, nil, "DPoP "+at, p)
	st, _, ch = post(reg, nil, "DPoP "+at, p)
	fmt.Printf("a replayed proof:            %d %s\n", st, ch)

	st, d, _ = post(*base+"/v1/auth/refresh", url.Values{"refresh_token": {rt}}, "", k.proof("POST", tokenURL, ""))
	at, _ = d["access_token"].(string)
	if s, _ := d["refresh_token"].(string); s != "" {
		rt = s
	}
	fmt.Printf("refresh with a proof:        %d token_type=%v\n", st, d["token_type"])
	logout := *base + "/v1/auth/logout"
	st, d, _ = post(logout, url.Values{"refresh_token": {rt}}, "DPoP "+at, k.proof("POST", logout, at))
	fmt.Printf("sign-out with a proof:       %d revoked=%v\n", st, d["revoked"])
	st, _, _ = post(reg, nil, "DPoP "+at, k.proof("POST", reg, at))
	fmt.Printf("register after sign-out:     %d\n", st)
}
