package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// logoutRevokeTimeout bounds how long /logout waits for the IdP's revocation
// endpoint: the user is signed out here either way, and an IdP that does not
// answer in time only turns revoked into false.
const logoutRevokeTimeout = 5 * time.Second

// revokeAtIdP asks the IdP's revocation endpoint (RFC 7009) to revoke the
// refresh token and the access token, those that are not empty, at once,
// waiting at most p.revokeWait. It reports whether the IdP confirmed every
// one: false when discovery names no revocation endpoint, and for any
// answer but 200 (RFC 7009 §2.2), including unsupported_token_type, and for
// no answer in time. The calls go through the tenant's IdP client, so they
// count against its cap on calls in flight (idplimit.go), and end with ctx:
// a caller that has gone leaves no call to the IdP behind.
func (p *provider) revokeAtIdP(ctx context.Context, refresh, access string) bool {
	d := p.disc.Load()
	if d == nil || d.RevocationEndpoint == "" || (refresh == "" && access == "") {
		return false
	}
	// Tied to the caller: anyone can send /logout a made-up refresh token,
	// and abandoned requests must not keep calling the IdP with the
	// tenant's credentials. The access token is refused here already
	// whatever the IdP hears; a caller that hangs up gave up on the answer.
	ctx, cancel := context.WithTimeout(ctx, p.revokeWait)
	defer cancel()
	type job struct{ token, hint string }
	var jobs []job
	if refresh != "" {
		jobs = append(jobs, job{refresh, "refresh_token"})
	}
	if access != "" {
		jobs = append(jobs, job{access, "access_token"})
	}
	errs := make(chan error, len(jobs))
	for _, j := range jobs {
		go func() { errs <- p.revokeToken(ctx, d, j.token, j.hint) }()
	}
	ok := true
	for range jobs {
		if err := <-errs; err != nil {
			p.log.Warn("token revocation at the IdP failed", "err", err)
			ok = false
		}
	}
	return ok
}

// revokeToken posts one RFC 7009 revocation request with the tenant's
// client authentication and returns nil on a 200.
func (p *provider) revokeToken(ctx context.Context, d *discovery, token, hint string) error {
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.RevocationEndpoint, nil)
	if err != nil {
		return fmt.Errorf("revoke %s: %w", hint, err)
	}
	setClientAuth(req, form, p.tenant.ClientID, p.tenant.secret, d.RevocationEndpointAuthMethodsSupported)
	body := form.Encode()
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	p.met.idpCall("revocation", outcome(resp, err))
	if err != nil {
		return fmt.Errorf("revoke %s: %v", hint, redactURLError(err))
	}
	// The body says nothing we act on; read it (bounded) so the connection
	// can be reused.
	readLimited(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revoke %s: status %d", hint, resp.StatusCode)
	}
	return nil
}
