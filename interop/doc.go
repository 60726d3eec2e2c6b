// Package interop holds scaiwave-auth's interoperability tests against two
// real OpenID providers that were not written here: the example OP of
// github.com/zitadel/oidc (module in ./zitadel) and node oidc-provider (in
// ./node). It is a module of its own, so the product's `go test ./...` never
// runs it; run it with interop/run.sh, which installs both providers first.
//
// The tests build the product binary from the repository root, start each
// provider and the service on loopback ports, sign in through the
// provider's own login form over HTTP the way a browser would, and check
// /v1/auth/login, /register, /refresh and revocation against SPEC.md.
//
// Tokens, codes and secrets are never printed: only their lengths, or the
// claims of a token that say which client and audience it is for.
package interop
