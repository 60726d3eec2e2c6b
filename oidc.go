package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Limits on what the IdP may send us and how long it may take.
const (
	maxIdPResponse     = 1 << 20 // discovery, JWKS and token answers
	idpRequestTimeout  = 10 * time.Second
	discoveryInterval  = time.Hour
	kidRefetchInterval = 10 * time.Second
	minRetryDelay      = 500 * time.Millisecond
	maxRetryDelay      = 30 * time.Second
)

// errIdPUnavailable marks failures where the IdP could not be reached or gave
// an answer we could not use: the caller answers 503 SW_AUTH_IDP_UNAVAILABLE.
var errIdPUnavailable = errors.New("idp unavailable")

// idpEndpoints are the issuer and endpoints of an OpenID Provider, as its
// metadata names them; GET /v1/auth/config passes them on unchanged.
type idpEndpoints struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
	UserinfoEndpoint      string `json:"userinfo_endpoint,omitempty"`
	EndSessionEndpoint    string `json:"end_session_endpoint,omitempty"`
}

// discovery is the part of an OpenID Provider's metadata we use.
type discovery struct {
	idpEndpoints
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported,omitempty"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported,omitempty"`
	// RFC 8414 §2 / RFC 7009: where /v1/auth/logout revokes tokens.
	RevocationEndpoint                     string   `json:"revocation_endpoint,omitempty"`
	RevocationEndpointAuthMethodsSupported []string `json:"revocation_endpoint_auth_methods_supported,omitempty"`
	// Introspection (RFC 7662, RFC 8414 §2), for opaque access tokens.
	IntrospectionEndpoint                     string   `json:"introspection_endpoint,omitempty"`
	IntrospectionEndpointAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported,omitempty"`
	// RFC 9449 §5.1: the proof algorithms the IdP's token endpoint takes.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
}

// supportedAlgs are the signature algorithms we accept at all: asymmetric
// only. "none" and HS* are never accepted (RFC 8725 §3.1).
var supportedAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// provider is one tenant's view of its IdP: the discovery document (the last
// good copy, swapped atomically) and the HTTP client, which it lends to the
// key source, and the caches that hang off the keys.
type provider struct {
	tenant *tenantConfig
	client *http.Client
	log    *slog.Logger
	met    *metrics
	now    func() time.Time

	disc atomic.Pointer[discovery]
	algs atomic.Pointer[[]jose.SignatureAlgorithm] // allowed ∩ advertised
	// discAt is the Unix time of the last good discovery fetch.
	discAt atomic.Int64

	keys    *keySource
	tokens  *tokenCache // nil: no cache, every bearer token verified in full
	refresh *refreshFlights
	revoked *revocations
	// relayed is the record of tokens this service passed on (relayed.go).
	relayed *relayedSet
	// names are userinfo's names for JWTs that carry none (userinfonames.go).
	names *namesCache
	// confirmed holds the tokens that name no kind and that userinfo took
	// as access tokens, by tokenKey, for as long as their names are kept.
	confirmed *namesCache
	// revokeWait bounds /logout's wait for the revocation endpoint.
	revokeWait time.Duration
	// dpop checks the proofs of DPoP-bound tokens.
	dpop *dpopVerifier
	// remote shares one IdP call among requests with one opaque token.
	remote *flightGroup[[32]byte, *remoteAnswer]
}

// newProvider makes a provider for t; call run to start fetching.
func newProvider(t *tenantConfig, log *slog.Logger, met *metrics) *provider {
	p := &provider{
		tenant: t,
		client: newIdPClient(t),
		log:    log.With("tenant", t.ID),
		met:    met,
		now:    time.Now,
	}
	if tokenCacheEnabled {
		budget := t.tokenCacheBytes
		if budget == 0 {
			budget = tokenCacheBytes
		}
		p.tokens = newTokenCache(tokenCacheEntries, budget)
	}
	p.keys = &keySource{get: p.get, discovery: p.disc.Load, log: p.log, met: met, now: func() time.Time { return p.now() }}
	p.refresh = newRefreshFlights(func() time.Time { return p.now() }, t.refreshReplay())
	p.revoked = newRevocations(maxRevocations)
	p.relayed = newRelayedSet(maxRelayed)
	p.names = newNamesCache(maxNamesCache)
	p.confirmed = newNamesCache(maxNamesCache)
	p.revokeWait = logoutRevokeTimeout
	p.dpop = newDPoPVerifier(&t.AccessTokens)
	p.remote = newFlightGroup[[32]byte, *remoteAnswer](func() time.Time { return p.now() }, remoteCallTimeout, 0, maxRemoteFlights)
	return p
}

// newIdPClient returns an HTTP client for talking to one IdP: bounded dial,
// TLS and header times, kept-alive connections, at most idpMaxInFlight calls
// in flight (limitedTransport) over at most idpMaxConns connections, the
// tenant's extra roots, and no redirects except for GETs within the same
// scheme.
func newIdPClient(t *tenantConfig) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: idpRequestTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   idpMaxConns,
		MaxConnsPerHost:       idpMaxConns,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{RootCAs: t.roots, MinVersion: tls.VersionTLS12},
	}
	return &http.Client{
		Transport: newLimitedTransport(tr, idpMaxInFlight, idpQueueWait),
		Timeout:   idpRequestTimeout + 5*time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.Method != http.MethodGet || len(via) >= 3 {
				return http.ErrUseLastResponse
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return errors.New("refusing a redirect from https to http")
			}
			return nil
		},
	}
}

// ready reports whether the provider has a discovery document and at least
// one usable key (a tenant whose IdP publishes none refuses every token),
// and the endpoint its access token validation needs (remoteReady).
func (p *provider) ready() bool {
	ks := p.keys.Load()
	return p.disc.Load() != nil && ks != nil && len(ks.keys) > 0 && p.remoteReady()
}

// run fetches discovery and keys until ctx ends: at start with backoff until
// the first success, then hourly, retrying with backoff after a failure. The
// last good copies stay in use while the IdP is down.
func (p *provider) run(ctx context.Context) {
	delay := minRetryDelay
	for {
		next := discoveryInterval
		if err := p.refreshAll(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, errNoUsableKeys) {
				// Published, not kept: retried like a failure until the IdP has a key again.
				p.log.Warn("the IdP's key set has no usable signing key: tokens are refused and the tenant is not ready", "err", err, "retry_in", delay.String())
			} else {
				p.log.Warn("idp metadata fetch failed; keeping the last good copy", "err", err, "retry_in", delay.String())
			}
			next = delay
			delay = min(delay*2, maxRetryDelay)
		} else {
			delay = minRetryDelay
		}
		// Jitter keeps many instances from refreshing in step.
		next += time.Duration(rand.Int64N(int64(next/10) + 1))
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// refreshAll fetches the discovery document, then the key set it names.
func (p *provider) refreshAll(ctx context.Context) error {
	d, err := p.fetchDiscovery(ctx)
	if err != nil {
		return err
	}
	p.publishDiscovery(d)
	if err := p.fetchKeys(ctx, d.JWKSURI); err != nil {
		return err
	}
	return nil
}

// fetchKeys fetches the key set at jwksURI into p.keys.
func (p *provider) fetchKeys(ctx context.Context, jwksURI string) error {
	return p.keys.fetch(ctx, jwksURI)
}

// check fetches discovery and keys once, for -check.
func (p *provider) check(ctx context.Context) (*discovery, *keySet, error) {
	if err := p.refreshAll(ctx); err != nil {
		return nil, nil, err
	}
	if !p.remoteReady() {
		return nil, nil, fmt.Errorf("access_tokens.validation %s: the IdP's discovery names no endpoint for it", p.tenant.AccessTokens.Validation)
	}
	return p.disc.Load(), p.keys.Load(), nil
}

func (p *provider) publishDiscovery(d *discovery) {
	algs := supportedAlgs
	if len(d.IDTokenSigningAlgValuesSupported) > 0 {
		algs = nil
		for _, a := range supportedAlgs {
			if slices.Contains(d.IDTokenSigningAlgValuesSupported, string(a)) {
				algs = append(algs, a)
			}
		}
	}
	p.algs.Store(&algs)
	p.disc.Store(d)
	p.discAt.Store(p.now().Unix())
}

// fetchDiscovery gets and checks the IdP's metadata. The issuer in the
// document must equal the configured one exactly (OIDC Discovery §4.3); a
// {tenantid} template too, literally, as Entra's multi-tenant documents say it.
func (p *provider) fetchDiscovery(ctx context.Context) (*discovery, error) {
	u := p.tenant.discoveryURL()
	body, err := p.get(ctx, "discovery", u)
	if err != nil {
		return nil, err
	}
	var d discovery
	if err := decodeIdPAnswer(body, &d); err != nil {
		return nil, fmt.Errorf("discovery %s: not a JSON metadata document: %w", u, err)
	}
	if d.Issuer != p.tenant.Issuer {
		return nil, fmt.Errorf("discovery %s: issuer mismatch: want %q got %q", u, p.tenant.Issuer, d.Issuer)
	}
	if err := checkEndpointSchemes(p.tenant.Issuer, body); err != nil {
		return nil, fmt.Errorf("discovery %s: %w", u, err)
	}
	for _, f := range []struct{ name, v string }{
		{"authorization_endpoint", d.AuthorizationEndpoint},
		{"token_endpoint", d.TokenEndpoint},
		{"jwks_uri", d.JWKSURI},
	} {
		if err := checkEndpoint(f.v); err != nil {
			return nil, fmt.Errorf("discovery %s: %s: %v", u, f.name, err)
		}
	}
	for _, f := range []*string{&d.UserinfoEndpoint, &d.EndSessionEndpoint, &d.RevocationEndpoint, &d.IntrospectionEndpoint} {
		if *f != "" && checkEndpoint(*f) != nil {
			*f = "" // optional: a broken one is dropped, not fatal
		}
	}
	return &d, nil
}

// checkEndpoint requires an absolute https URL, or http on loopback.
func checkEndpoint(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.Scheme == "https" || (u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return nil
	}
	return fmt.Errorf("%q must be https", s)
}

// get fetches a URL with a size limit and returns the body of a 200.
func (p *provider) get(ctx context.Context, what, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, idpRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	p.met.idpCall(what, outcome(resp, err))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, u, err)
	}
	body, err := readLimited(resp)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: status %d", what, u, resp.StatusCode)
	}
	return body, nil
}

// readLimited reads and closes a response body, failing past maxIdPResponse.
// A body that was too large is not drained, so that connection is dropped.
func readLimited(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxIdPResponse+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(b) > maxIdPResponse {
		return nil, fmt.Errorf("body larger than %d bytes", maxIdPResponse)
	}
	return b, nil
}

func outcome(resp *http.Response, err error) string {
	switch {
	case err != nil:
		return "error"
	case resp.StatusCode < 300:
		return "2xx"
	case resp.StatusCode < 500:
		return "4xx"
	}
	return "5xx"
}

// tokenResponse is a successful answer of the token endpoint (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string   `json:"access_token"`
	TokenType    string   `json:"token_type"`
	RefreshToken string   `json:"refresh_token,omitempty"`
	ExpiresIn    flexInt  `json:"expires_in,omitempty"`
	IDToken      string   `json:"id_token,omitempty"`
	Scope        flexText `json:"scope,omitempty"`

	// sid is the sid of the answer's ID token once it verified
	// (verifyAnswerIDToken), "" when it has none: the IdP's session, which
	// the record of relayed tokens remembers for back-channel logout. Never
	// read from the IdP's JSON, never written to a client.
	sid string
	// sub is the subject of the answer's verified ID token, "" before
	// verification or without one; kept like sid, never read or written.
	sub string

	// dpopNonce is the IdP's DPoP-Nonce header, passed on to the client.
	dpopNonce string
}

// flexInt accepts a JSON number or a numeric string: some IdPs send
// expires_in as "3600".
type flexInt int64

func (n *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	// Written so that NaN, which ParseFloat accepts, fails too.
	if err != nil || !(f >= 0 && f <= 1<<40) {
		return fmt.Errorf("expires_in %q is not a number of seconds", s)
	}
	*n = flexInt(f)
	return nil
}

// flexText accepts a JSON string or list of strings (scope).
type flexText string

func (t *flexText) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*t = flexText(s)
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("scope is neither a string nor a list")
	}
	*t = flexText(strings.Join(l, " "))
	return nil
}

// oauthError is an error answer of the token endpoint (RFC 6749 §5.2). Its
// description comes from the IdP and goes only to the log.
type oauthError struct {
	Status      int
	Code        string
	Description string
	// DPoPNonce is the IdP's DPoP-Nonce header, with use_dpop_nonce.
	DPoPNonce string
}

func (e *oauthError) Error() string {
	return fmt.Sprintf("idp answered %d %s: %s", e.Status, e.Code, e.Description)
}

// clientCredentialsInvalid reports an answer that means our own client
// registration is wrong, which no end user can fix.
func (e *oauthError) clientCredentialsInvalid() bool {
	return e.Code == "invalid_client" || e.Code == "unauthorized_client"
}

// token posts a grant to the token endpoint with the tenant's client
// authentication. Errors: *oauthError for an OAuth error answer,
// errIdPUnavailable (wrapped) for everything else that went wrong.
func (p *provider) token(ctx context.Context, form url.Values) (*tokenResponse, error) {
	return p.tokenWithProof(ctx, form, "")
}

// tokenWithProof is token with the client's DPoP proof, when not "", sent
// unchanged in the DPoP header (RFC 9449 §5), so that the IdP binds the
// tokens to the client's key. The IdP's DPoP-Nonce, on an answer or an
// error, is kept for the client (tokenResponse.dpopNonce, oauthError).
func (p *provider) tokenWithProof(ctx context.Context, form url.Values, proof string) (*tokenResponse, error) {
	d := p.disc.Load()
	if d == nil {
		return nil, fmt.Errorf("token: %w: no discovery document yet", errIdPUnavailable)
	}
	grant := form.Get("grant_type")
	t := p.tenant
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.TokenEndpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("token: %w: %v", errIdPUnavailable, err)
	}
	setClientAuth(req, form, t.ClientID, t.secret, d.TokenEndpointAuthMethodsSupported)
	body := form.Encode()
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}

	ctx, cancel := context.WithTimeout(ctx, idpRequestTimeout)
	defer cancel()
	resp, err := p.client.Do(req.WithContext(ctx))
	p.met.idpCall("token_"+grant, outcome(resp, err))
	if err != nil {
		return nil, fmt.Errorf("token %s: %w: %v", grant, errIdPUnavailable, redactURLError(err))
	}
	b, err := readLimited(resp)
	if err != nil {
		return nil, fmt.Errorf("token %s: %w: %v", grant, errIdPUnavailable, err)
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if decodeIdPAnswer(b, &e) == nil && e.Error != "" {
			return nil, &oauthError{Status: resp.StatusCode, Code: e.Error, Description: truncate(e.Description, 200), DPoPNonce: idpNonce(resp)}
		}
		return nil, fmt.Errorf("token %s: %w: status %d without an OAuth error", grant, errIdPUnavailable, resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("token %s: %w: status %d", grant, errIdPUnavailable, resp.StatusCode)
	}
	var tr tokenResponse
	if err := decodeIdPAnswer(b, &tr); err != nil {
		return nil, fmt.Errorf("token %s: %w: answer is not a token response: %v", grant, errIdPUnavailable, jsonErrorKind(err))
	}
	if tr.AccessToken == "" {
		return nil, fmt.Errorf("token %s: %w: answer has no access_token", grant, errIdPUnavailable)
	}
	switch {
	case tr.TokenType == "" || strings.EqualFold(tr.TokenType, "bearer"):
		tr.TokenType = "Bearer"
	case strings.EqualFold(tr.TokenType, "dpop") && proof != "":
		// A DPoP-bound token (RFC 9449 §5): the client must know it.
		tr.TokenType = "DPoP"
	default:
		return nil, fmt.Errorf("token %s: %w: token_type %q is not Bearer, or DPoP for a request with a proof", grant, errIdPUnavailable, truncate(tr.TokenType, 20))
	}
	tr.dpopNonce = idpNonce(resp)
	return &tr, nil
}

// usePostAuth reports whether the IdP lists client_secret_post but not
// client_secret_basic, the default of RFC 6749 and OIDC.
func usePostAuth(methods []string) bool {
	return len(methods) > 0 && !slices.Contains(methods, "client_secret_basic") && slices.Contains(methods, "client_secret_post")
}

// redactURLError drops the URL from a *url.Error: it is ours and harmless,
// but keeping messages to the cause reads better in logs.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// jsonErrorKind describes a JSON error without quoting the input, which may
// hold a token.
func jsonErrorKind(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %s has the wrong type", te.Field)
	}
	return "invalid JSON"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
