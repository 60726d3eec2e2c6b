package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Validation modes of access_tokens.validation (SPEC.md, "Access tokens
// that are not JWTs").
const (
	validationAuto          = "auto"
	validationJWT           = "jwt"
	validationIntrospection = "introspection"
	validationUserinfo      = "userinfo"
)

// googleTokeninfoURL is Google's token information endpoint, accepted as an
// introspection endpoint and read in its own format. Only this exact URL is.
const googleTokeninfoURL = "https://oauth2.googleapis.com/tokeninfo"

// Bounds of access_tokens.cache_seconds.
const (
	defaultAccessCacheSeconds = 60
	maxAccessCacheSeconds     = 3600
)

// accessTokensConfig is a tenant's access_tokens block: what a bearer
// access token may look like beyond the rules every token follows, how
// those that the service cannot verify itself are validated, and how long
// such an answer is believed.
type accessTokensConfig struct {
	// AcceptedIssuers are further exact iss values a bearer access token may
	// carry besides the tenant's issuer (Entra ID v1 tokens say
	// https://sts.windows.net/{tid}/). Keys still come only from the
	// tenant's jwks_uri, and ID tokens still need the tenant's issuer. An
	// entry may hold {tenantid} when the issuer does.
	AcceptedIssuers []string `json:"accepted_issuers"`
	// RequireJWTType, when set, accepts only bearer tokens whose header typ
	// is at+jwt (RFC 9068 §4), so that no other JWT the IdP signs can pass
	// for an access token.
	RequireJWTType bool `json:"require_jwt_type"`

	Validation                    string `json:"validation"`
	IntrospectionEndpoint         string `json:"introspection_endpoint"`
	IntrospectionClientID         string `json:"introspection_client_id"`
	IntrospectionClientSecret     string `json:"introspection_client_secret"`
	IntrospectionClientSecretFile string `json:"introspection_client_secret_file"`
	IntrospectionClientSecretEnv  string `json:"introspection_client_secret_env"`
	// CacheSeconds is a pointer so that an explicit 0 (ask the IdP every
	// time) differs from the field left out (the default).
	CacheSeconds *int `json:"cache_seconds"`

	// DPoP (RFC 9449): "allowed" (the default) checks the proof of every
	// bound token and lets unbound bearers pass; "required" refuses every
	// bearer that is not DPoP-bound. DPoPSigningAlgs are the proof
	// algorithms accepted (default defaultDPoPAlgs); DPoPNonce makes
	// proofs carry a nonce of the service's (DPoP-Nonce, use_dpop_nonce).
	DPoP            string   `json:"dpop"`
	DPoPSigningAlgs []string `json:"dpop_signing_algs"`
	DPoPNonce       bool     `json:"dpop_nonce"`

	// introspectionSecret is the resolved introspection_client_secret*.
	introspectionSecret string
	// cacheTTL is cache_seconds as a duration, the default applied.
	cacheTTL time.Duration
	// dpopAlgs is dpop_signing_algs parsed; nil for the default.
	dpopAlgs []jose.SignatureAlgorithm
}

// validate applies the block's defaults and checks it; issuer is the
// tenant's, whose scheme an introspection endpoint must share. The error
// names the field, starting with "access_tokens.".
func (a *accessTokensConfig) validate(issuer string, getenv func(string) string) error {
	switch a.Validation {
	case "":
		a.Validation = validationAuto
	case validationAuto, validationJWT, validationIntrospection, validationUserinfo:
	default:
		return configErrorf("access_tokens.validation: %q is not one of auto, jwt, introspection, userinfo", a.Validation)
	}
	introspects := a.Validation == validationAuto || a.Validation == validationIntrospection
	for _, f := range []struct{ name, v string }{
		{"introspection_endpoint", a.IntrospectionEndpoint},
		{"introspection_client_id", a.IntrospectionClientID},
		{"introspection_client_secret", a.IntrospectionClientSecret},
		{"introspection_client_secret_file", a.IntrospectionClientSecretFile},
		{"introspection_client_secret_env", a.IntrospectionClientSecretEnv},
	} {
		if f.v != "" && !introspects {
			// A setting that would do nothing is more likely a mistake than a wish.
			return configErrorf("access_tokens.%s: not used with validation %q (only with auto or introspection)", f.name, a.Validation)
		}
	}
	if a.IntrospectionEndpoint != "" {
		if err := checkIntrospectionEndpoint(issuer, a.IntrospectionEndpoint); err != nil {
			return configErrorf("access_tokens.introspection_endpoint: %v", err)
		}
	}
	if err := a.resolveSecret(getenv); err != nil {
		return err
	}
	if err := a.validateDPoP(); err != nil {
		return err
	}
	switch {
	case a.CacheSeconds == nil:
		a.cacheTTL = defaultAccessCacheSeconds * time.Second
	case *a.CacheSeconds < 0 || *a.CacheSeconds > maxAccessCacheSeconds:
		return configErrorf("access_tokens.cache_seconds: %d is not from 0 to %d", *a.CacheSeconds, maxAccessCacheSeconds)
	default:
		a.cacheTTL = time.Duration(*a.CacheSeconds) * time.Second
	}
	return nil
}

// validateDPoP checks access_tokens.dpop and dpop_signing_algs: asymmetric
// algorithms only, as for tokens (RFC 9449 §4.2 forbids none and MACs).
func (a *accessTokensConfig) validateDPoP() error {
	switch a.DPoP {
	case "", dpopAllowed, dpopRequired:
	default:
		return configErrorf("access_tokens.dpop: %q is not one of allowed, required", a.DPoP)
	}
	if a.DPoPSigningAlgs == nil {
		return nil
	}
	if len(a.DPoPSigningAlgs) == 0 {
		return configErrorf("access_tokens.dpop_signing_algs: empty; leave it out for the default (%s)", algNames(defaultDPoPAlgs))
	}
	a.dpopAlgs = nil
	for _, s := range a.DPoPSigningAlgs {
		alg := jose.SignatureAlgorithm(s)
		if !slices.Contains(supportedAlgs, alg) {
			return configErrorf("access_tokens.dpop_signing_algs: %q is not an asymmetric JWS algorithm (one of %s)", s, algNames(supportedAlgs))
		}
		if !slices.Contains(a.dpopAlgs, alg) {
			a.dpopAlgs = append(a.dpopAlgs, alg)
		}
	}
	return nil
}

func algNames(algs []jose.SignatureAlgorithm) string {
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

// resolveSecret reads the introspection client secret from the one source
// that is set. A secret needs introspection_client_id: without it the
// tenant's own client and secret are used.
func (a *accessTokensConfig) resolveSecret(getenv func(string) string) error {
	set := 0
	for _, s := range []string{a.IntrospectionClientSecret, a.IntrospectionClientSecretFile, a.IntrospectionClientSecretEnv} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		return configErrorf("access_tokens.introspection_client_secret: set only one of introspection_client_secret, introspection_client_secret_file and introspection_client_secret_env")
	}
	if set == 1 && a.IntrospectionClientID == "" {
		return configErrorf("access_tokens.introspection_client_secret: needs introspection_client_id (without both, the tenant's own client authenticates)")
	}
	switch {
	case a.IntrospectionClientSecret != "":
		a.introspectionSecret = a.IntrospectionClientSecret
	case a.IntrospectionClientSecretFile != "":
		b, err := os.ReadFile(a.IntrospectionClientSecretFile)
		if err != nil {
			// The path is not secret; the contents never appear in a message.
			return configErrorf("access_tokens.introspection_client_secret_file: %v", errors.Unwrap(err))
		}
		a.introspectionSecret = strings.TrimRight(string(b), "\r\n")
		if a.introspectionSecret == "" {
			return configErrorf("access_tokens.introspection_client_secret_file: %s is empty", printable(a.IntrospectionClientSecretFile))
		}
	case a.IntrospectionClientSecretEnv != "":
		a.introspectionSecret = getenv(a.IntrospectionClientSecretEnv)
		if a.introspectionSecret == "" {
			return configErrorf("access_tokens.introspection_client_secret_env: environment variable %s is unset or empty", printable(a.IntrospectionClientSecretEnv))
		}
	}
	return nil
}

// checkIntrospectionEndpoint requires an absolute URL without user info or
// fragment in the issuer's scheme: https, or http only when the issuer is
// http on a loopback host and so is the endpoint. Google's tokeninfo URL is
// accepted for any issuer, since Google's own issuer names no introspection
// endpoint.
func checkIntrospectionEndpoint(issuer, s string) error {
	if s == googleTokeninfoURL {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.User != nil || u.Fragment != "" || strings.Contains(s, "#") {
		return errors.New("must not have user info or a fragment")
	}
	iu, err := url.Parse(issuer)
	if err != nil {
		return errors.New("the issuer is not a URL")
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && iu.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%q must use the issuer's scheme (https; http only for a loopback issuer and endpoint)", s)
}

// logAccessTokenWarnings logs, at start, what an operator must know about a
// tenant's access token validation.
func logAccessTokenWarnings(log *slog.Logger, t *tenantConfig) {
	if t.AccessTokens.Validation == validationUserinfo {
		log.Warn("access_tokens.validation is userinfo: any token the IdP's userinfo endpoint accepts is accepted, whichever client it was issued to (userinfo cannot tell); prefer introspection or JWT access tokens", "tenant", t.ID)
	}
}
