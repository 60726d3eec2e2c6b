package main

// The browser sign-in, first half: GET /v1/auth/authorize makes the state,
// nonce and PKCE verifier of an authorization request, seals them into a
// cookie named after the state (signinseal.go), and sends the browser to the
// IdP. The callback (callback.go) and the handoff (handoff.go) finish it.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Lifetimes and bounds of the browser sign-in, per tenant.
const (
	signInTTL = 10 * time.Minute
	// maxSignInCookies is how many sign-ins one browser may have under way
	// (tabs); beginning one more drops the oldest.
	maxSignInCookies = 3
	handoffTTL       = 60 * time.Second
	maxHandoffs      = 2_000
	maxHandoffBytes  = 16 << 20
	// evictionWarnEvery spaces the log lines about a full store, which a
	// flood would otherwise turn into one line per request.
	evictionWarnEvery = time.Minute
)

// The cookie of a pending sign-in is this prefix and its state. Over https
// it is Secure and __Host- prefixed (so no sibling host or plain-http page
// can plant it), which requires Path=/; over plain http it is scoped to the
// API's path.
const (
	signInCookiePrefix       = "sw_signin_"
	signInCookiePrefixSecure = "__Host-sw_signin_"
	signInCookiePath         = "/v1/auth/"
)

// randomLen is the length of every random value the sign-in makes: 32 bytes
// of crypto/rand, base64url without padding (also a valid PKCE verifier,
// RFC 7636 §4.1).
const randomLen = 43

// browserSignIn holds the sealer of pending sign-ins and the handoffs of
// every tenant.
type browserSignIn struct {
	trusted []netip.Prefix
	sealer  *signInSealer
	tenants map[*tenant]*tenantSignIns
}

// tenantSignIns are one tenant's handoffs: one made at one tenant's host
// means nothing at another's.
type tenantSignIns struct {
	handoffs *onceStore[handoff]
	// shared, when set, keeps the handoffs in the database instead, for
	// replicas sharing PostgreSQL (store_handoffs.go).
	shared   *store
	lastWarn atomic.Int64 // Unix seconds of the last log line about a full store
}

// newBrowserSignIn makes the handoff store of each tenant, and warns about a
// tenant whose browser sign-in cannot work as configured.
func newBrowserSignIn(ts []*tenant, trusted []netip.Prefix, st *store, log *slog.Logger) *browserSignIn {
	b := &browserSignIn{trusted: trusted, tenants: make(map[*tenant]*tenantSignIns, len(ts))}
	if st != nil {
		b.sealer = st.keys // the store's: one set of keys for all it seals
	} else {
		b.sealer = newSignInSealer(nil) // a server without a store (tests) seals nothing
	}
	for _, t := range ts {
		b.tenants[t] = &tenantSignIns{
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
// tenant's post_login_redirect_uris (the first when absent); the
// code_challenge (S256) binds the later handoff to the app's verifier, and
// is required unless the tenant sets require_handoff_pkce to false. It
// answers 302 to the IdP's authorization endpoint with a state, nonce and
// PKCE challenge of its own, sealed into a cookie named after the state;
// past maxSignInCookies of them in this browser the oldest is dropped.
// Errors: 400 SW_BAD_REQUEST for a return_to not listed or a missing or bad
// challenge, 503 before the IdP's discovery document is known; as a page
// when the browser prefers HTML (writeBrowserError).
func handleAuthorize(b *browserSignIn) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := tenantOf(r)
		v, err := readParams(w, r, true)
		if err != nil {
			writeBrowserError(w, r, t, err)
			return
		}
		returnTo, err := pickReturnTo(t.cfg.PostLoginRedirectURIs, v)
		if err != nil {
			writeBrowserError(w, r, t, err)
			return
		}
		challenge, err := appChallenge(v)
		if err != nil {
			writeBrowserError(w, r, t, err)
			return
		}
		if challenge == "" && t.cfg.requireHandoffPKCE() {
			writeBrowserError(w, r, t, badRequest("code_challenge: required (S256 of a code_verifier your app keeps, with code_challenge_method=S256), so that only the browser that began the sign-in can redeem its handoff"))
			return
		}
		d := t.prov.disc.Load()
		if d == nil {
			writeBrowserError(w, r, t, fmt.Errorf("authorize: %w: no discovery document yet", errIdPUnavailable))
			return
		}
		authURL, err := url.Parse(d.AuthorizationEndpoint)
		if err != nil {
			writeBrowserError(w, r, t, err) // checked at discovery: a bug
			return
		}
		secure := isHTTPS(r, b.trusted)
		state, nonce, verifier := randomValue(), randomValue(), randomValue()
		name := signInCookieName(state, secure)
		value, err := b.sealer.seal(r.Context(), t.cfg.ID, name, &sealedSignIn{
			State: state, Nonce: nonce, Verifier: verifier, ReturnTo: returnTo,
			Challenge: challenge, Created: b.sealer.now().Unix(),
		})
		if err != nil {
			writeBrowserError(w, r, t, fmt.Errorf("authorize: seal the sign-in: %w", err))
			return
		}
		b.dropOldSignIns(w, r, t, secure)

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

		http.SetCookie(w, signInCookie(name, value, secure))
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

// signInCookieName is the name of the cookie of the sign-in with state.
func signInCookieName(state string, secure bool) string {
	if secure {
		return signInCookiePrefixSecure + state
	}
	return signInCookiePrefix + state
}

// signInCookie is a pending sign-in's cookie: HttpOnly, so no script reads
// it, and SameSite=Lax, so the IdP's top-level redirect back carries it
// while other sites' requests do not; it lives as long as a pending
// sign-in. A negative maxAge asks the browser to delete it.
func signInCookie(name, value string, secure bool) *http.Cookie {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     signInCookiePath,
		MaxAge:   int(signInTTL / time.Second),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	if value == "" {
		c.MaxAge = -1
	}
	if secure {
		c.Path, c.Secure = "/", true
	}
	return c
}

// maxSignInCookiesRead bounds the sign-in cookies /authorize opens to find
// the oldest; any beyond are deleted unopened.
const maxSignInCookiesRead = 2 * maxSignInCookies

// dropOldSignIns deletes the sign-in cookies of this browser that no longer
// open, and the oldest of those that do, so that with the one being begun
// the browser holds at most maxSignInCookies.
func (b *browserSignIn) dropOldSignIns(w http.ResponseWriter, r *http.Request, t *tenant, secure bool) {
	prefix := signInCookiePrefix
	if secure {
		prefix = signInCookiePrefixSecure
	}
	type held struct {
		name    string
		created int64
	}
	var live []held
	read := 0
	for _, c := range r.Cookies() {
		if !strings.HasPrefix(c.Name, prefix) {
			continue
		}
		read++
		if read <= maxSignInCookiesRead {
			p, err := b.sealer.open(r.Context(), t.cfg.ID, c.Name, c.Value)
			if err == nil && b.sealer.now().Unix()-p.Created < int64(signInTTL/time.Second) {
				live = append(live, held{c.Name, p.Created})
				continue
			}
		}
		http.SetCookie(w, signInCookie(c.Name, "", secure))
	}
	sort.SliceStable(live, func(i, j int) bool { return live[i].created < live[j].created })
	for len(live) >= maxSignInCookies {
		http.SetCookie(w, signInCookie(live[0].name, "", secure))
		live = live[1:]
	}
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
