package main

// The browser sign-in, first half: GET /v1/auth/authorize makes the state,
// nonce and PKCE verifier of an authorization request, keeps them here, binds
// them to the browser with a cookie, and sends the browser to the IdP. The
// callback (callback.go) and the handoff (handoff.go) finish it.

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Lifetimes and bounds of the browser sign-in, per tenant.
const (
	signInTTL         = 10 * time.Minute
	maxPendingSignIns = 10_000
	handoffTTL        = 60 * time.Second
	maxHandoffs       = 2_000
	maxHandoffBytes   = 16 << 20
	// evictionWarnEvery spaces the log lines about a full store, which a
	// flood would otherwise turn into one line per request.
	evictionWarnEvery = time.Minute
)

// The cookie that binds a sign-in to the browser that began it. Over https
// it is Secure and __Host- prefixed (so no sibling host or plain-http page
// can plant it), which requires Path=/; over plain http it is scoped to the
// API's path.
const (
	signInCookieName       = "sw_signin"
	signInCookieNameSecure = "__Host-sw_signin"
	signInCookiePath       = "/v1/auth/"
)

// randomLen is the length of every random value the sign-in makes: 32 bytes
// of crypto/rand, base64url without padding (also a valid PKCE verifier,
// RFC 7636 §4.1).
const randomLen = 43

// browserSignIn holds the pending sign-ins and the handoffs of every tenant.
type browserSignIn struct {
	trusted []netip.Prefix
	tenants map[*tenant]*tenantSignIns
}

// tenantSignIns are one tenant's stores: a state found at one tenant's host
// means nothing at another's.
type tenantSignIns struct {
	pending  *onceStore[pendingSignIn]
	handoffs *onceStore[handoff]
	// shared, when set, keeps the handoffs in the database instead, for
	// replicas sharing PostgreSQL (store_handoffs.go).
	shared   *store
	lastWarn atomic.Int64 // Unix seconds of the last log line about a full store
}

// pendingSignIn is what /authorize keeps about one sign-in, under its state,
// until the callback takes it. Every field has a fixed size (returnTo is
// the configuration's own string), so the count bounds the memory.
type pendingSignIn struct {
	binding   onceKey // SHA-256 of the browser's cookie value
	nonce     string
	verifier  string // ours, for the IdP
	returnTo  string
	challenge string // the app's code_challenge for the handoff; "" for none
}

// pendingSignInSize is what a pending sign-in counts against its store's
// byte bound: its heap with the map and list entries, as measured (10,000
// of them grew the heap by 3.8 MB).
const pendingSignInSize = 384

// newBrowserSignIn makes the stores of each tenant, and warns about a tenant
// whose browser sign-in cannot work as configured.
func newBrowserSignIn(ts []*tenant, trusted []netip.Prefix, st *store, log *slog.Logger) *browserSignIn {
	b := &browserSignIn{trusted: trusted, tenants: make(map[*tenant]*tenantSignIns, len(ts))}
	for _, t := range ts {
		b.tenants[t] = &tenantSignIns{
			pending:  newOnceStore[pendingSignIn](signInTTL, maxPendingSignIns, maxPendingSignIns*pendingSignInSize),
			handoffs: newOnceStore[handoff](handoffTTL, maxHandoffs, maxHandoffBytes),
		}
		if st != nil && st.fl.shared {
			b.tenants[t].shared = st
		}
		if len(t.cfg.PostLoginRedirectURIs) > 0 && !strings.HasSuffix(t.cfg.RedirectURI, "/v1/auth/login") {
			// A proxy may map the path, so this is no error; but usually the
			// IdP then sends the browser somewhere that is not the callback.
			log.Warn("post_login_redirect_uris is set but redirect_uri does not end in /v1/auth/login: the browser sign-in needs the IdP to send the browser back to this service's /v1/auth/login",
				"tenant", t.cfg.ID)
		}
	}
	return b
}

func (b *browserSignIn) of(t *tenant) *tenantSignIns { return b.tenants[t] }

// warnEvicted logs, at most once per evictionWarnEvery, that a store was
// full and dropped its oldest entries.
func (ts *tenantSignIns) warnEvicted(t *tenant, what string, n int) {
	if n == 0 {
		return
	}
	now := time.Now().Unix()
	last := ts.lastWarn.Load()
	if now-last < int64(evictionWarnEvery/time.Second) || !ts.lastWarn.CompareAndSwap(last, now) {
		return
	}
	t.prov.log.Warn("browser sign-in store full: the oldest entries were dropped", "store", what, "dropped", n)
}

// handleAuthorize begins a browser sign-in: return_to must be one of the
// tenant's post_login_redirect_uris (the first when absent); an optional
// code_challenge (S256) binds the later handoff to the app's verifier. It
// answers 302 to the IdP's authorization endpoint with a state, nonce and
// PKCE challenge of its own, and sets the cookie that binds them to this
// browser. Errors: 400 SW_BAD_REQUEST for a return_to not listed or a bad
// challenge, 503 before the IdP's discovery document is known.
func handleAuthorize(b *browserSignIn) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := tenantOf(r)
		v, err := readParams(w, r, true)
		if err != nil {
			writeError(w, r, err)
			return
		}
		returnTo, err := pickReturnTo(t.cfg.PostLoginRedirectURIs, v)
		if err != nil {
			writeError(w, r, err)
			return
		}
		challenge, err := appChallenge(v)
		if err != nil {
			writeError(w, r, err)
			return
		}
		d := t.prov.disc.Load()
		if d == nil {
			writeError(w, r, fmt.Errorf("authorize: %w: no discovery document yet", errIdPUnavailable))
			return
		}
		authURL, err := url.Parse(d.AuthorizationEndpoint)
		if err != nil {
			writeError(w, r, err) // checked at discovery: a bug
			return
		}
		secure := isHTTPS(r, b.trusted)
		binding := ""
		if c, err := r.Cookie(signInCookieFor(secure)); err == nil && wellFormedRandom(c.Value) {
			// Another sign-in in this browser is under way (a second tab):
			// both stay bound to the one cookie.
			binding = c.Value
		} else {
			binding = randomValue()
		}
		state, nonce, verifier := randomValue(), randomValue(), randomValue()
		ts := b.of(t)
		evicted := ts.pending.put(onceKeyOf(state), pendingSignIn{
			binding:   onceKeyOf(binding),
			nonce:     nonce,
			verifier:  verifier,
			returnTo:  returnTo,
			challenge: challenge,
		}, pendingSignInSize)
		ts.warnEvicted(t, "pending sign-ins", evicted)

		q := authURL.Query() // an endpoint may carry its own parameters (Azure B2C's p=)
		q.Set("response_type", "code")
		q.Set("client_id", t.cfg.ClientID)
		q.Set("redirect_uri", t.cfg.RedirectURI)
		q.Set("scope", strings.Join(t.cfg.Scopes, " "))
		q.Set("state", state)
		q.Set("nonce", nonce)
		q.Set("code_challenge", s256(verifier))
		q.Set("code_challenge_method", "S256")
		authURL.RawQuery = q.Encode()
		authURL.Fragment, authURL.RawFragment = "", "" // RFC 6749 §3.1: the endpoint has none

		http.SetCookie(w, signInCookie(binding, secure))
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Location", authURL.String())
		w.WriteHeader(http.StatusFound)
	})
}

// pickReturnTo returns the return_to parameter when it is, byte for byte,
// one of the tenant's post_login_redirect_uris, or the first of them when
// the parameter is absent. Anything else is a 400, never a redirect: an
// unlisted URL would make the service an open redirector.
func pickReturnTo(allowed []string, v url.Values) (string, error) {
	if len(allowed) == 0 {
		return "", badRequest("return_to: this tenant has no post_login_redirect_uris, so the browser sign-in is off")
	}
	if !v.Has("return_to") {
		return allowed[0], nil
	}
	if i := slices.Index(allowed, v.Get("return_to")); i >= 0 {
		return allowed[i], nil
	}
	return "", badRequest("return_to: not one of this tenant's post_login_redirect_uris (they are compared exactly)")
}

// appChallenge reads the app's optional PKCE challenge: S256 only, since
// plain would put the verifier itself in the URL.
func appChallenge(v url.Values) (string, error) {
	c, m := v.Get("code_challenge"), v.Get("code_challenge_method")
	switch {
	case c == "" && m == "":
		return "", nil
	case c == "":
		return "", badRequest("code_challenge: required with code_challenge_method")
	case m != "S256":
		return "", badRequest("code_challenge_method: must be S256")
	case !wellFormedRandom(c):
		return "", badRequest("code_challenge: must be the base64url SHA-256 of the code_verifier (43 characters)")
	}
	return c, nil
}

// isHTTPS reports whether the browser reached us over https: directly, or
// through a trusted proxy that says so in X-Forwarded-Proto. Of several
// values the first counts, the one the proxy facing the browser wrote.
func isHTTPS(r *http.Request, trusted []netip.Prefix) bool {
	if r.TLS != nil {
		return true
	}
	xfp := r.Header.Get("X-Forwarded-Proto")
	if xfp == "" {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !isTrusted(peer.Unmap(), trusted) {
		return false
	}
	first, _, _ := strings.Cut(xfp, ",")
	return strings.EqualFold(strings.TrimSpace(first), "https")
}

func signInCookieFor(secure bool) string {
	if secure {
		return signInCookieNameSecure
	}
	return signInCookieName
}

// signInCookie is the binding cookie: HttpOnly, so no script reads it, and
// SameSite=Lax, so the IdP's top-level redirect back carries it while other
// sites' requests do not; it lives as long as a pending sign-in.
func signInCookie(value string, secure bool) *http.Cookie {
	c := &http.Cookie{
		Name:     signInCookieFor(secure),
		Value:    value,
		Path:     signInCookiePath,
		MaxAge:   int(signInTTL / time.Second),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	if secure {
		c.Path, c.Secure = "/", true
	}
	return c
}

// checkBinding checks that the request carries the cookie whose hash the
// sign-in was bound to, in constant time.
func checkBinding(r *http.Request, trusted []netip.Prefix, want onceKey) error {
	c, err := r.Cookie(signInCookieFor(isHTTPS(r, trusted)))
	if err != nil {
		return badRequest("the sign-in cookie is missing: finish the sign-in in the browser that began it, on the host of redirect_uri")
	}
	got := onceKeyOf(c.Value)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return badRequest("the sign-in cookie does not match this sign-in: finish the sign-in in the browser that began it")
	}
	return nil
}

// randomValue is 32 bytes from crypto/rand, base64url-encoded.
func randomValue() string {
	var b [32]byte
	rand.Read(b[:]) // never fails since Go 1.24
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// wellFormedRandom reports whether s has the shape of a randomValue (or of
// an S256 challenge, which has the same).
func wellFormedRandom(s string) bool {
	return len(s) == randomLen && !strings.ContainsFunc(s, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_')
	})
}

// s256 is the RFC 7636 S256 challenge of a verifier.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
