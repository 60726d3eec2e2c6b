// Package interop holds scaiwave-auth's interoperability tests against real
// OpenID providers that were not written here: the example OP of
// github.com/zitadel/oidc (module in ./zitadel), node oidc-provider (in
// ./node), Ory Hydra (module in ./hydra) and LemonLDAP::NG (Debian packages,
// configuration in ./lemonldap). It is a module of its own, so the product's
// `go test ./...` never runs it; run it with interop/run.sh, which installs
// the providers first.
//
// One scenario for every provider: TestInterop runs the table of providers
// (peers) × steps, each provider with its own service on loopback ports,
// signing in through the provider's own pages over HTTP the way a browser
// would, and checks the service against SPEC.md. README.md shows the same
// table; TestREADMETable keeps the two equal.
//
// Tokens, codes and secrets are never printed: only their lengths, or the
// claims of a token that say which client and audience it is for.
package interop
