// Command zitadel-op runs the example OpenID provider of
// github.com/zitadel/oidc (its example/server packages: in-memory storage,
// opaque access tokens, introspection, revocation and a username/password
// login form) on a loopback port, with the clients and the user that
// scaiwave-auth's interop tests need.
//
// It listens first and builds the issuer from the port it got, so the
// caller may pass -addr 127.0.0.1:0; once serving it prints one JSON line on
// stdout: {"issuer": "http://127.0.0.1:PORT"}. Logs go to stderr.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/text/language"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

// users is the example storage's UserStore with the one account the tests
// sign in with, so that its name does not depend on the issuer's host.
type users map[string]*storage.User

func (u users) GetUserByID(id string) *storage.User { return u[id] }

func (u users) GetUserByUsername(name string) *storage.User {
	for _, user := range u {
		if user.Username == name {
			return user
		}
	}
	return nil
}

// ExampleClientID names the JWT-profile service account of the example
// storage; the tests do not use it.
func (u users) ExampleClientID() string { return storage.ServiceUserID }

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	clientID := flag.String("client-id", "scaiwave", "client_id of the confidential web client (the service)")
	clientSecret := flag.String("client-secret", "", "its client secret (required)")
	redirectURI := flag.String("redirect-uri", "", "its redirect URI, the service's /v1/auth/login (required)")
	username := flag.String("username", "alice", "login name of the test user")
	password := flag.String("password", "", "password of the test user (required)")
	flag.Parse()
	if *clientSecret == "" || *redirectURI == "" || *password == "" {
		fmt.Fprintln(os.Stderr, "zitadel-op: -client-secret, -redirect-uri and -password are required")
		os.Exit(2)
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	host, _, _ := net.SplitHostPort(*addr)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		log.Error("refusing a non-loopback address", "addr", *addr)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	issuer := "http://" + ln.Addr().String()

	// WebClient: confidential (client_secret_basic), code flow, refresh
	// tokens, opaque ("Bearer") access tokens whose audience is the client
	// itself; so the client may introspect its own tokens.
	storage.RegisterClients(storage.WebClient(*clientID, *clientSecret, *redirectURI))
	store := storage.NewStorage(users{
		"alice-id": {
			ID:                "alice-id",
			Username:          *username,
			Password:          *password,
			FirstName:         "Alice",
			LastName:          "Interop",
			Email:             "alice@interop.example",
			EmailVerified:     true,
			PreferredLanguage: language.English,
		},
	})
	router := exampleop.SetupServer(issuer, store, log, false)

	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	line, _ := json.Marshal(map[string]string{"issuer": issuer})
	fmt.Println(string(line))
	log.Info("zitadel example OP serving", "issuer", issuer, "client_id", *clientID)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-errc:
		log.Error("serve", "err", err)
		os.Exit(1)
	case <-sig:
		srv.Close()
	}
}
