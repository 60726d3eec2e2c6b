// node oidc-provider configured as the second real OpenID provider of
// scaiwave-auth's interop tests. Everything comes from the environment:
//
//   CLIENT_ID, CLIENT_SECRET, REDIRECT_URI  the service's confidential client
//   API_RESOURCE                            resource indicator (RFC 8707) whose
//                                           access tokens are JWTs (RFC 9068)
//   API_AUDIENCE                            the aud of those JWTs
//   ADDR_HOST                               loopback address (default 127.0.0.1)
//   BACKCHANNEL_LOGOUT_URI                  optional: the client's backchannel_logout_uri
//   POST_LOGOUT_REDIRECT_URI                optional: its post_logout_redirect_uris
//   DPOP_NONCE                              1: DPoP proofs need a server nonce
//
// It listens on an ephemeral port first, builds the issuer from it, and then
// prints one JSON line on stdout: {"issuer":"http://127.0.0.1:PORT"}. One log
// line per request (method, path without query, status) goes to stderr.
//
// Without a resource indicator an access token is opaque (introspectable);
// with resource=API_RESOURCE it is a JWT for API_AUDIENCE, carrying the
// account's name and email (extraTokenClaims). Refresh tokens are issued
// for offline_access and rotated on every use; introspection and revocation
// are on; devInteractions provides the login and consent forms.
import crypto from 'node:crypto';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`provider.mjs: environment variable ${name} is required`);
    process.exit(2);
  }
  return v;
}

const clientId = need('CLIENT_ID');
const clientSecret = need('CLIENT_SECRET');
const redirectUri = need('REDIRECT_URI');
const apiResource = need('API_RESOURCE');
const apiAudience = need('API_AUDIENCE');
const host = process.env.ADDR_HOST || '127.0.0.1';
const backchannelLogoutUri = process.env.BACKCHANNEL_LOGOUT_URI || '';
const postLogoutRedirectUri = process.env.POST_LOGOUT_REDIRECT_URI || '';
if (!['127.0.0.1', '::1', 'localhost'].includes(host)) {
  console.error(`provider.mjs: refusing non-loopback host ${host}`);
  process.exit(2);
}
const apiScope = 'api:read';

// A fresh signing key per run: nothing persists between test runs.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJWK = { ...privateKey.export({ format: 'jwk' }), kid: `interop-${Date.now()}`, use: 'sig', alg: 'RS256' };

// The one test account. devInteractions accepts any login name, so every
// name maps to an account; its claims come from here.
async function findAccount(_ctx, id) {
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        name: 'Alice Interop',
        preferred_username: id,
        email: `${id}@interop.example`,
        email_verified: true,
      };
    },
  };
}

const configuration = {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...(postLogoutRedirectUri && { post_logout_redirect_uris: [postLogoutRedirectUri] }),
    ...(backchannelLogoutUri && { backchannel_logout_uri: backchannelLogoutUri, backchannel_logout_session_required: true }),
  }],
  jwks: { keys: [signingJWK] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  findAccount,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    // DPoP (RFC 9449): a token request with a proof gets tokens bound to
    // its key (cnf.jkt in JWT access tokens and introspection answers).
    // With DPOP_NONCE=1 the token endpoint requires a server nonce
    // (use_dpop_nonce and a DPoP-Nonce header on the first try).
    dPoP: process.env.DPOP_NONCE === '1'
      ? { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true }
      : { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    backchannelLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // The service's code exchange and refresh do not send `resource`:
      // the one granted at the authorization request is used.
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator !== apiResource) throw new errors.InvalidTarget();
        return {
          scope: apiScope,
          audience: apiAudience,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 600,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // An RFC 9068 access token carries no names by default, and a resource
  // server that reads only the token (the service with a JWT access token)
  // then has no display name or email to show. Operators add them with
  // extraTokenClaims so that their resource servers get names: here the
  // account's name and email, as findAccount's claims give them, in access
  // tokens for the API resource only (the opaque ones stay as they were).
  extraTokenClaims: async (ctx, token) => {
    if (token.kind !== 'AccessToken' || token.resourceServer?.audience !== apiAudience || !token.accountId) return undefined;
    const account = await findAccount(ctx, token.accountId);
    const { name, email } = await account.claims('access_token', token.scope, {}, []);
    return { name, email };
  },
  issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  rotateRefreshToken: true,
  // Back-channel logout POSTs go to a relay on 127.0.0.1, which the
  // provider's SSRF guard (a dispatcher refusing special-use addresses)
  // would refuse: everything here is loopback by design.
  fetch: (url, options) => {
    delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    IdToken: 600,
    RefreshToken: 3600,
    Grant: 3600,
    Interaction: 600,
    Session: 3600,
  },
};

const server = http.createServer();
server.listen(0, host, () => {
  const { port } = server.address();
  const h = host.includes(':') ? `[${host}]` : host;
  const issuer = `http://${h}:${port}`;
  const provider = new Provider(issuer, configuration);

  provider.use(async (ctx, next) => {
    const started = Date.now();
    await next();
    console.error(`${new Date().toISOString()} ${ctx.method} ${ctx.path} ${ctx.status} ${Date.now() - started}ms`);
  });
  for (const ev of ['server_error', 'authorization.error', 'grant.error', 'introspection.error', 'revocation.error', 'backchannel.error']) {
    provider.on(ev, (_ctx, err) => console.error(`${new Date().toISOString()} event ${ev}: ${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}${err.cause ? ` (cause: ${err.cause.code || err.cause.message})` : ''}`));
  }

  const handler = provider.callback();
  server.on('request', handler);
  console.log(JSON.stringify({ issuer }));
  console.error(`${new Date().toISOString()} oidc-provider serving issuer=${issuer} client_id=${clientId}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
