package main

// -dev answers only requests addressed to a loopback host: its demo users'
// passwords are public, and a web page whose own host name resolves to
// 127.0.0.1 (DNS rebinding) would otherwise reach it from the user's
// browser, as a same-origin request under the attacker's Host, and read
// the answers.

import (
	"net"
	"net/http"
	"strings"
)

// errNotLoopbackHost answers, in -dev, a request whose Host is not loopback.
var errNotLoopbackHost = &apiError{http.StatusNotFound, "SW_NOT_FOUND",
	"the development server answers only requests for a loopback host (localhost, 127.0.0.1 or [::1])"}

// isLoopbackHostHeader reports whether a Host header names localhost or a
// loopback address (127.0.0.0/8, ::1), with or without a port. An empty
// Host is not loopback.
func isLoopbackHostHeader(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if inner, ok := strings.CutPrefix(hostport, "["); ok {
		host, _ = strings.CutSuffix(inner, "]")
	}
	// "localhost." is the same name, absolute.
	return host != "" && isLoopbackHost(strings.TrimSuffix(host, "."))
}
