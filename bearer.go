package main

import (
	"errors"
	"net/http"
	"strings"
)

// errNoBearer is a request without credentials: RFC 6750 §3.1 says the
// challenge then carries no error code.
var errNoBearer = errors.New("no bearer token")

// bearerToken extracts the token of an "Authorization: Bearer" or
// "Authorization: DPoP" header (RFC 9449 §7.1; checkBinding tells them
// apart): one header, the scheme in any case, one token of the b64token
// syntax.
func bearerToken(r *http.Request) (string, error) {
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		return "", errNoBearer
	}
	if len(hs) > 1 {
		return "", refuse(reasonMalformed, "several Authorization headers")
	}
	if hs[0] == "" {
		return "", errNoBearer
	}
	scheme, tok, ok := strings.Cut(hs[0], " ")
	isBearer := strings.EqualFold(scheme, "bearer") || strings.EqualFold(scheme, "dpop")
	if ok && !isBearer {
		// Another scheme (Basic, …) is no bearer token at all: RFC 6750
		// §3.1 says the challenge then carries no error code.
		return "", errNoBearer
	}
	if !ok || !isBearer {
		return "", refuse(reasonMalformed, "not a Bearer authorization")
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" || !isB64Token(tok) {
		return "", refuse(reasonMalformed, "bearer token is not a single b64token")
	}
	return tok, nil
}

// isB64Token checks RFC 6750 §2.1: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
// It runs on every bearer request, so it is a table lookup per byte.
func isB64Token(s string) bool {
	t := strings.TrimRight(s, "=")
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		if !b64TokenChars[t[i]] {
			return false
		}
	}
	return true
}

var b64TokenChars = func() (tab [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/") {
		tab[c] = true
	}
	return tab
}()
