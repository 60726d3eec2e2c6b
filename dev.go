package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
)

const devDatabase = "scaiwave-dev.db"

// devPostLogoutRedirectURI is where -dev's tenant asks the IdP to send the
// browser after signing out: back to the dev app's page on the service at
// base, which says so.
func devPostLogoutRedirectURI(base string) string { return base + devSignedInPath }

// devIDPPath is where -dev serves the development IdP, on the service's own
// listener: its issuer is the listener's URL plus this path.
const devIDPPath = "/dev/idp"

// runDev runs the service on embedded defaults: the development IdP mounted
// at /dev/idp on the same loopback listener, one tenant pointed at it with
// the password grant on, and the database scaiwave-dev.db. It refuses any
// address that is not loopback, since the demo users' passwords are public.
func runDev(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	host, _, err := net.SplitHostPort(o.addr)
	if err != nil {
		return usageErrorf("-addr %q: must be host:port", o.addr)
	}
	if !isLoopbackHost(host) {
		return usageErrorf("-addr %q: -dev listens only on loopback (127.0.0.1, ::1 or localhost): its demo users have public passwords", o.addr)
	}
	db := devDatabase
	if o.dbSet {
		db = o.db
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return listenError(o.addr, err, "-addr HOST:PORT, e.g. -addr 127.0.0.1:8081")
	}
	base := "http://" + ln.Addr().String()
	issuer := base + devIDPPath
	// The IdP's key lives beside a SQLite file; with a PostgreSQL URL (a
	// load run against it) in the working directory.
	keyDir := filepath.Dir(db)
	if isPostgresURL(db) {
		keyDir = "."
	}
	idp, err := newDevIDP(issuer, keyDir)
	if err != nil {
		ln.Close()
		return fmt.Errorf("start the development IdP: %w", err)
	}
	// A demo user signing out at the IdP tells the service at once.
	idp.backchannelLogoutURI = base + "/v1/auth/backchannel-logout"
	idp.postLogoutRedirectURIs = []string{devPostLogoutRedirectURI(base)}
	cfg := &config{
		Addr:     ln.Addr().String(),
		Database: db,
		Tenants: []tenantConfig{{
			ID:       "dev",
			Issuer:   issuer,
			ClientID: devClientID,
			secret:   devClientSecret,
			// The opaque client's tokens say client_id scaiwave-dev-opaque
			// when introspected: accepted as an audience of this tenant.
			Audiences:   []string{devClientID, devOpaqueClientID},
			RedirectURI: base + "/v1/auth/login",
			Scopes:      []string{"openid", "profile", "email", "offline_access"},
			CORSOrigins: []string{"http://localhost:3000", "http://127.0.0.1:3000", "http://localhost:5173", "http://127.0.0.1:5173"},
			Features:    tenantFeatures{Auth: authFeatures{PasswordGrantEnabled: true}},

			PostLoginRedirectURIs: []string{base + devSignedInPath},
			PostLogoutRedirectURI: devPostLogoutRedirectURI(base),
		}},
	}
	if err := cfg.validate(func(string) string { return "" }); err != nil {
		ln.Close()
		return err
	}
	if err := overrideMemoryLimit(cfg, o); err != nil {
		ln.Close()
		return err
	}
	printDevBanner(stdout, base, issuer)
	log, sink := newLogger(stderr, false)
	// Closed last: every line logged until runDev returns is written.
	defer sink.Close()
	slog.SetDefault(log) // as run does
	return serve(ctx, cfg, ln, log, devHandler(idp))
}

func printDevBanner(w io.Writer, base, issuer string) {
	fmt.Fprintf(w, `scaiwave-auth development mode on %[1]s (loopback only)

Development IdP: %[2]s
Demo users:
`, base, issuer)
	for _, u := range devUsers() {
		fmt.Fprintf(w, "  %-6s password %s\n", u.Username, u.Password)
	}
	fmt.Fprintf(w, `
Try it:
  curl -s %[1]s/v1/auth/config
  curl -s -X POST %[1]s/v1/auth/token -d grant_type=password -d username=alice -d password=alice-password
  curl -s -X POST %[1]s/v1/auth/register -H "Authorization: Bearer $ACCESS_TOKEN"
  curl -s -X POST %[1]s/v1/auth/refresh -d refresh_token=$REFRESH_TOKEN
Sign out (the access token is refused from then on, both tokens revoked at the IdP):
  curl -s -X POST %[1]s/v1/auth/logout -H "Authorization: Bearer $ACCESS_TOKEN" -d refresh_token=$REFRESH_TOKEN
Sign alice out at the IdP: it sends a back-channel logout to %[1]s/v1/auth/backchannel-logout
  curl -s "%[2]s/logout?client_id=%[3]s&logout_hint=alice"
Sign in with a code and PKCE (a code alone is refused):
  VERIFIER=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  CHALLENGE=$(printf %%s "$VERIFIER" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')
  curl -si -X POST %[2]s/authorize -d client_id=%[3]s -d response_type=code -d scope=openid -d state=xyz -d redirect_uri=%[1]s/v1/auth/login -d code_challenge=$CHALLENGE -d code_challenge_method=S256 -d username=alice -d password=alice-password | grep -i '^location'
  CODE=...   # the code parameter of that Location
  curl -s -X POST %[1]s/v1/auth/login -d code=$CODE -d code_verifier=$VERIFIER
Sign in in a browser: open this, choose "Open the dev app", then "Sign in" as alice:
  %[1]s/
Opaque access tokens: client %[4]s gets them from the IdP, and /register
asks the IdP's introspection endpoint about them:
  curl -s -u %[4]s:%[5]s %[2]s/token -d grant_type=password -d username=alice -d password=alice-password
  curl -s -X POST %[1]s/v1/auth/register -H "Authorization: Bearer $OPAQUE_TOKEN"
  curl -s -u %[3]s:%[6]s %[2]s/introspect -d token=$OPAQUE_TOKEN

`, base, issuer, devClientID, devOpaqueClientID, devOpaqueClientSecret, devClientSecret)
}
