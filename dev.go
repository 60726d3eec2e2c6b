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
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	base := "http://" + ln.Addr().String()
	issuer := base + devIDPPath
	idp, err := newDevIDP(issuer, filepath.Dir(db))
	if err != nil {
		ln.Close()
		return fmt.Errorf("start the development IdP: %w", err)
	}
	cfg := &config{
		Addr:     ln.Addr().String(),
		Database: db,
		Tenants: []tenantConfig{{
			ID:          "dev",
			Issuer:      issuer,
			ClientID:    devClientID,
			secret:      devClientSecret,
			RedirectURI: base + "/v1/auth/login",
			Scopes:      []string{"openid", "profile", "email", "offline_access"},
			CORSOrigins: []string{"http://localhost:3000", "http://127.0.0.1:3000", "http://localhost:5173", "http://127.0.0.1:5173"},
			Features:    tenantFeatures{Auth: authFeatures{PasswordGrantEnabled: true}},
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
	return serve(ctx, cfg, ln, log, idp.Handler())
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
  curl -s -X POST %[1]s/v1/auth/login -d code=$CODE
Sign in in a browser (the IdP posts the code to /v1/auth/login):
  %[2]s/authorize?client_id=%[3]s&response_type=code&response_mode=form_post&scope=openid+profile+email&redirect_uri=%[1]s/v1/auth/login&state=xyz

`, base, issuer, devClientID)
}
