package main

// Sender-constrained tokens (DPoP, RFC 9449) at the bearer endpoints: the
// proof of possession a client sends beside a bound token, and the binding
// of the token (cnf.jkt) to the proof's key. SPEC.md, "Sender-constrained
// tokens", is the contract.

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Values of access_tokens.dpop.
const (
	dpopAllowed  = "allowed"  // bound tokens need a proof; unbound bearers pass
	dpopRequired = "required" // every bearer must be DPoP-bound
)

const (
	// maxProofSize bounds a DPoP header before it is parsed: a proof with
	// an RSA 4096 key is about 1.5 KiB.
	maxProofSize = 8 << 10
	// maxJTISize bounds a proof's jti; it is hashed, never kept as sent.
	maxJTISize = 256
	// dpopReplayEntries bounds each tenant's jti replay cache. An entry is
	// 8 bytes of key and 8 of time in the map and again in the ring: 54
	// bytes on the heap with the map's overhead (measured), 13.4 MB full. Only a proof that
	// passed every other check, for a token bound to its key, takes a place,
	// and it stays until its iat is out of the window (iat + leeway, a
	// minute for a client with a good clock): a tenant can take about 4 000
	// bound requests a second, sustained, before proofs are refused.
	dpopReplayEntries = 250_000
	// dpopNonceStep is the life of one server nonce's time window; a nonce
	// is accepted during its window and the next two (2–3 minutes).
	dpopNonceStep    = time.Minute
	dpopNonceWindows = 3
)

// defaultDPoPAlgs are the proof algorithms a tenant accepts unless
// access_tokens.dpop_signing_algs says otherwise.
var defaultDPoPAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.RS256, jose.EdDSA}

// Reasons a DPoP request is refused, beside those of verify.go. The
// challenge tells the client which: a proof, a nonce, or the token.
const (
	reasonDPoPProof   = "invalid dpop proof"
	reasonDPoPNonce   = "dpop nonce required"
	reasonDPoPBinding = "dpop binding"
)

// errDPoPReplayFull is the answer while a tenant's replay cache holds
// dpopReplayEntries proofs whose iat is still in the window: a proof that
// cannot be remembered cannot be accepted.
var errDPoPReplayFull = &apiError{http.StatusTooManyRequests, "SW_RATE_LIMITED", "too many DPoP proofs in the last minute; try again shortly"}

// confirmation is a token's cnf claim (RFC 7800), of a JWT or an
// introspection answer. present is true whenever cnf was there at all, so
// that a binding this service cannot check (mTLS's x5t#S256) is never
// mistaken for no binding.
type confirmation struct {
	JKT     string
	present bool
}

func (c *confirmation) UnmarshalJSON(b []byte) error {
	*c = confirmation{present: string(b) != "null"}
	var v struct {
		JKT looseString `json:"jkt"`
	}
	if josejson.Unmarshal(b, &v) == nil {
		c.JKT = string(v.JKT)
	}
	return nil
}

// dpopVerifier checks a tenant's DPoP proofs. Its replay cache is this
// process's, and with replicas also the database's (shared); so is its
// nonce key (keys; see docs/dpop.md for several replicas).
type dpopVerifier struct {
	mode    string
	algs    []jose.SignatureAlgorithm
	nonces  bool
	trusted []netip.Prefix // proxies whose X-Forwarded-Proto/-Host are believed
	// challenge is the DPoP challenge's algs parameter, made once.
	challenge string
	replay    *jtiCache
	// shared, when set, is the database every replica remembers accepted
	// proofs in, so that a proof replayed to another replica is refused.
	shared   *store
	nonceKey [32]byte
	// keys, when set (replicas), are the sealing keys nonces are made under
	// (dpop_nonce_shared.go), for tenantID.
	keys     *signInSealer
	tenantID string
}

func newDPoPVerifier(a *accessTokensConfig) *dpopVerifier {
	v := &dpopVerifier{mode: a.DPoP, algs: a.dpopAlgs, nonces: a.DPoPNonce, replay: newJTICache(dpopReplayEntries)}
	if v.mode == "" {
		v.mode = dpopAllowed
	}
	if v.algs == nil {
		v.algs = defaultDPoPAlgs
	}
	v.challenge = `DPoP algs="` + strings.ReplaceAll(algNames(v.algs), ", ", " ") + `"`
	rand.Read(v.nonceKey[:]) // never fails since Go 1.24
	return v
}

// isDPoPScheme reports whether the request's Authorization header uses the
// DPoP scheme (bearerToken has checked that it is one header).
func isDPoPScheme(r *http.Request) bool {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "dpop")
}

// authenticateRequest is authenticate followed by the last step of the
// bearer pipeline, the binding: see checkBinding.
func (p *provider) authenticateRequest(r *http.Request, raw string) (*claims, error) {
	c, err := p.authenticate(r.Context(), raw)
	if err != nil {
		return nil, err
	}
	if err := p.checkBinding(r, raw, c); err != nil {
		return nil, err
	}
	return c, nil
}

// checkBinding applies SPEC.md's binding rules to a token that verified,
// with claims c: a token with cnf only with the DPoP scheme and a valid
// proof from the key cnf.jkt names; the DPoP scheme only with such a token;
// and, when access_tokens.dpop is required, no unbound bearer at all.
// Errors: *verifyError (reasons reasonDPoP*), errDPoPReplayFull.
func (p *provider) checkBinding(r *http.Request, raw string, c *claims) error {
	v := p.dpop
	if !isDPoPScheme(r) {
		switch {
		case c.Confirmation.present:
			return refuse(reasonDPoPBinding, "a sender-constrained token (cnf) sent as Bearer")
		case v.mode == dpopRequired:
			return refuse(reasonDPoPBinding, "access_tokens.dpop is required and the token is not DPoP-bound")
		}
		return nil
	}
	if c.Confirmation.JKT == "" {
		if c.Confirmation.present {
			return refuse(reasonDPoPBinding, "the token's cnf has no jkt")
		}
		return refuse(reasonDPoPBinding, "DPoP scheme with a token that is not bound (no cnf)")
	}
	pr, err := v.checkProof(r, raw, p.now())
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(pr.thumbprint), []byte(c.Confirmation.JKT)) != 1 {
		return refuse(reasonDPoPBinding, "cnf.jkt is not the thumbprint of the proof's key")
	}
	// Remembered last, so that only a proof that passed everything, for a
	// token bound to its key, takes a place in the bounded cache.
	switch v.replay.add(pr.replayKey, pr.until, p.now()) {
	case jtiReplayed:
		return refuse(reasonDPoPProof, "jti already used")
	case jtiFull:
		p.log.Warn("dpop replay cache full: refusing proofs until entries expire", "entries", dpopReplayEntries)
		return errDPoPReplayFull
	}
	if v.shared != nil {
		fresh, err := v.shared.rememberProof(r.Context(), p.tenant.ID, pr.replayKey, pr.until, p.now())
		if err != nil {
			return err
		}
		if !fresh {
			return refuse(reasonDPoPProof, "jti already used (at another replica)")
		}
	}
	return nil
}

// proofClaims are the claims of a DPoP proof (RFC 9449 §4.2).
type proofClaims struct {
	JTI   *string          `json:"jti"`
	HTM   string           `json:"htm"`
	HTU   string           `json:"htu"`
	IAT   *jwt.NumericDate `json:"iat"`
	ATH   string           `json:"ath"`
	Nonce string           `json:"nonce"`
}

// checkedProof is what a valid proof leaves for the binding and the replay
// cache.
type checkedProof struct {
	thumbprint string // base64url RFC 7638 SHA-256 thumbprint of its jwk
	// replayKey is 8 bytes of the SHA-256 of its jti and thumbprint: the
	// same proof always has the same key, and a stranger's proof has this
	// one by chance once in 2^64.
	replayKey uint64
	until     time.Time // the end of its iat window
}

// checkProof checks the request's one DPoP header as RFC 9449 §4.3 says, for
// the access token raw, at now; the replay cache is the caller's. Details
// of a refusal never quote the proof.
func (v *dpopVerifier) checkProof(r *http.Request, raw string, now time.Time) (*checkedProof, error) {
	hs := r.Header.Values("DPoP")
	if len(hs) != 1 {
		return nil, refuse(reasonDPoPProof, "%d DPoP headers; want exactly one", len(hs))
	}
	proof := hs[0]
	if len(proof) > maxProofSize {
		return nil, refuse(reasonDPoPProof, "%d bytes", len(proof))
	}
	if strings.Count(proof, ".") != 2 {
		return nil, refuse(reasonDPoPProof, "not a compact JWS")
	}
	jws, err := jose.ParseSignedCompact(proof, v.algs)
	if err != nil {
		if strings.Contains(err.Error(), "algorithm") {
			return nil, refuse(reasonDPoPProof, "alg: %v", err)
		}
		return nil, refuse(reasonDPoPProof, "%v", err)
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); strings.TrimPrefix(strings.ToLower(typ), "application/") != "dpop+jwt" {
		return nil, refuse(reasonDPoPProof, "typ %q is not dpop+jwt", truncate(typ, 40))
	}
	if _, ok := h.ExtraHeaders[jose.HeaderKey("crit")]; ok {
		return nil, refuse(reasonDPoPProof, "crit")
	}
	// go-jose (v4.1.9) refuses a header jwk with any private or symmetric
	// member (d, p, q, dp, dq, qi, oth, k) before this point; the tests
	// send each, so that an upgrade that loosens this is noticed.
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, refuse(reasonDPoPProof, "jwk: a public key is required")
	}
	if k, ok := jwk.Key.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		return nil, refuse(reasonDPoPProof, "jwk: RSA key of %d bits", k.N.BitLen())
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, refuse(reasonDPoPProof, "signature does not verify under its jwk")
	}
	var pc proofClaims
	if err := josejson.Unmarshal(payload, &pc); err != nil {
		return nil, refuse(reasonDPoPProof, "claims: %s", claimsErrorKind(err))
	}
	switch {
	case pc.JTI == nil || *pc.JTI == "":
		return nil, refuse(reasonDPoPProof, "no jti")
	case len(*pc.JTI) > maxJTISize:
		return nil, refuse(reasonDPoPProof, "jti of %d bytes", len(*pc.JTI))
	case pc.HTM != r.Method:
		return nil, refuse(reasonDPoPProof, "htm is not %s", r.Method)
	case pc.IAT == nil:
		return nil, refuse(reasonDPoPProof, "no iat")
	}
	if want := v.requestURL(r); !sameHTU(pc.HTU, want) {
		return nil, refuse(reasonDPoPProof, "htu is not %s", truncate(want, 200))
	}
	if d := now.Sub(pc.IAT.Time()); d > leeway || d < -leeway {
		return nil, refuse(reasonDPoPProof, "iat is %v from now, beyond %v", d.Round(time.Second), leeway)
	}
	ath := sha256.Sum256([]byte(raw))
	if subtle.ConstantTimeCompare([]byte(pc.ATH), []byte(base64.RawURLEncoding.EncodeToString(ath[:]))) != 1 {
		return nil, refuse(reasonDPoPProof, "ath is not the hash of the access token")
	}
	if v.nonces && !v.validNonce(r.Context(), pc.Nonce, now) {
		return nil, refuse(reasonDPoPNonce, "nonce missing, unknown or expired")
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, refuse(reasonDPoPProof, "jwk: no thumbprint: %v", err)
	}
	out := &checkedProof{thumbprint: base64.RawURLEncoding.EncodeToString(tp), until: pc.IAT.Time().Add(leeway)}
	hk := sha256.New()
	hk.Write([]byte(*pc.JTI))
	hk.Write([]byte{0})
	hk.Write(tp)
	var sum [32]byte
	out.replayKey = binary.LittleEndian.Uint64(hk.Sum(sum[:0]))
	return out, nil
}

// requestURL is the URL the client sent the request to, without query: the
// scheme and host of the connection, or those a trusted proxy names in
// X-Forwarded-Proto and X-Forwarded-Host (the first value of each, the one
// the proxy facing the client wrote).
func (v *dpopVerifier) requestURL(r *http.Request) string {
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if v.fromTrustedProxy(r) {
		if xfp, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ","); strings.TrimSpace(xfp) != "" {
			scheme = strings.ToLower(strings.TrimSpace(xfp))
		}
		if xfh, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ","); strings.TrimSpace(xfh) != "" {
			host = strings.TrimSpace(xfh)
		}
	}
	return scheme + "://" + host + r.URL.EscapedPath()
}

func (v *dpopVerifier) fromTrustedProxy(r *http.Request) bool {
	if len(v.trusted) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	return err == nil && isTrusted(peer.Unmap(), v.trusted)
}

// sameHTU reports whether a proof's htu names the request URL want, both
// normalised as RFC 9449 §4.3 asks (RFC 3986 §6.2.2–6.2.3): scheme and
// host case-insensitive, a default port the same as none, an empty path
// "/", percent-encodings in either case and of unreserved characters the
// same as the characters; query and fragment ignored.
func sameHTU(htu, want string) bool {
	a, err := url.Parse(htu)
	if err != nil || a.Scheme == "" || a.Host == "" || a.User != nil || a.Opaque != "" {
		return false
	}
	b, err := url.Parse(want)
	if err != nil {
		return false
	}
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		normHost(a.Scheme, a.Host) == normHost(b.Scheme, b.Host) &&
		normPath(a.EscapedPath()) == normPath(b.EscapedPath())
}

func normHost(scheme, host string) string {
	host = strings.ToLower(host)
	switch strings.ToLower(scheme) {
	case "https":
		host = strings.TrimSuffix(host, ":443")
	case "http":
		host = strings.TrimSuffix(host, ":80")
	}
	return strings.TrimSuffix(host, ":")
}

// normPath decodes percent-encoded unreserved characters and writes the
// other encodings in upper case.
func normPath(p string) string {
	if p == "" {
		return "/"
	}
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			c := unhex(p[i+1])<<4 | unhex(p[i+2])
			if isUnreserved(c) {
				b.WriteByte(c)
			} else {
				b.WriteString(strings.ToUpper(p[i : i+3]))
			}
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// nonce returns the server nonce of now's window: the window's number and
// an HMAC of it under the process's key, so that nothing is stored; with
// replicas, under a key they share (sharedNonce).
func (v *dpopVerifier) nonce(ctx context.Context, now time.Time) string {
	w := uint64(now.Unix()) / uint64(dpopNonceStep/time.Second)
	if v.keys != nil {
		if n, ok := v.sharedNonce(ctx, w); ok {
			return n
		}
	}
	return v.nonceFor(w)
}

func (v *dpopVerifier) nonceFor(window uint64) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], window)
	m := hmac.New(sha256.New, v.nonceKey[:])
	m.Write(b[:8])
	var sum [32]byte
	copy(b[8:], m.Sum(sum[:0]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validNonce reports whether n is a nonce this process (or, with
// replicas, any of them) made in now's window or one of the
// dpopNonceWindows-1 before it.
func (v *dpopVerifier) validNonce(ctx context.Context, n string, now time.Time) bool {
	b, err := strictB64.DecodeString(n)
	if err != nil || (len(b) != 24 && (len(b) != sharedNonceLen || v.keys == nil)) {
		return false
	}
	w := binary.BigEndian.Uint64(b[:8])
	cur := uint64(now.Unix()) / uint64(dpopNonceStep/time.Second)
	if w > cur || cur-w >= dpopNonceWindows {
		return false
	}
	if len(b) == sharedNonceLen {
		return v.validSharedNonce(ctx, b)
	}
	return hmac.Equal([]byte(v.nonceFor(w)), []byte(n))
}

// setChallenges writes the two challenges of a 401 from a bearer endpoint,
// Bearer (RFC 6750) and DPoP (RFC 9449 §7.1), with the error code on the
// scheme the request used; with server nonces, a DPoP refusal carries a
// fresh DPoP-Nonce.
func setChallenges(w http.ResponseWriter, r *http.Request, p *provider, ve *verifyError) {
	v := p.dpop
	bearer, dpop := `Bearer realm="scaiwave"`, v.challenge
	if ve != nil {
		code := "invalid_token"
		switch ve.Reason {
		case reasonDPoPProof:
			code = "invalid_dpop_proof"
		case reasonDPoPNonce:
			code = "use_dpop_nonce"
		}
		if isDPoPScheme(r) || ve.Reason == reasonDPoPNonce || ve.Reason == reasonDPoPProof {
			dpop += `, error="` + code + `"`
		} else {
			bearer += `, error="` + code + `"`
		}
	}
	h := w.Header()
	h.Add("WWW-Authenticate", bearer)
	h.Add("WWW-Authenticate", dpop)
	if v.nonces && ve != nil && isDPoPScheme(r) {
		h.Set("DPoP-Nonce", v.nonce(r.Context(), p.now()))
	}
}

// unauthenticatedMessage is the message of a 401 for a refused token.
func unauthenticatedMessage(ve *verifyError) string {
	switch ve.Reason {
	case reasonDPoPProof:
		return "the DPoP proof is invalid"
	case reasonDPoPNonce:
		return "the DPoP proof must carry the server's nonce: retry with the DPoP-Nonce header's value"
	case reasonDPoPBinding:
		return "the token's DPoP binding does not hold: a bound token needs Authorization: DPoP and a proof from its key"
	}
	return "the bearer token is invalid or expired"
}

// jtiCache remembers the proofs accepted whose iat is still in the window,
// at most max of them: a map for the look-up and a ring in the order of
// arrival. Entries leave from the ring's head once expired; one that
// expires early behind one that does not waits for it (at most the window
// longer), which keeps every removal constant work and never removes an
// entry early.
type jtiCache struct {
	mu   sync.Mutex
	max  int
	seen map[uint64]int64 // key → Unix nanoseconds it expires
	ring []jtiEntry       // oldest at head
	head int
	n    int
}

type jtiEntry struct {
	key uint64
	exp int64
}

type jtiOutcome int

const (
	jtiAdded jtiOutcome = iota
	jtiReplayed
	jtiFull
)

func newJTICache(max int) *jtiCache {
	return &jtiCache{max: max, seen: make(map[uint64]int64)}
}

// add records key until until, unless it is recorded and not expired at now
// (jtiReplayed) or the cache holds max entries it cannot drop yet (jtiFull).
func (c *jtiCache) add(key uint64, until, now time.Time) jtiOutcome {
	t := now.UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.n > 0 {
		e := &c.ring[c.head]
		if e.exp > t {
			break
		}
		if c.seen[e.key] == e.exp {
			delete(c.seen, e.key)
		}
		*e = jtiEntry{}
		c.head = (c.head + 1) % len(c.ring)
		c.n--
	}
	if exp, ok := c.seen[key]; ok && exp > t {
		return jtiReplayed
	}
	if c.n == c.max {
		return jtiFull
	}
	if c.n == len(c.ring) {
		c.grow()
	}
	exp := max(until.UnixNano(), t+1)
	c.ring[(c.head+c.n)%len(c.ring)] = jtiEntry{key, exp}
	c.n++
	c.seen[key] = exp
	return jtiAdded
}

// grow doubles the ring, up to max, keeping the order of arrival.
func (c *jtiCache) grow() {
	size := min(max(2*len(c.ring), 64), c.max)
	ring := make([]jtiEntry, size)
	for i := range c.n {
		ring[i] = c.ring[(c.head+i)%len(c.ring)]
	}
	c.ring, c.head = ring, 0
}

func (c *jtiCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
