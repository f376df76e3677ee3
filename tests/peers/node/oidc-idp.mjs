// A real OpenID Provider (npm `oidc-provider`, OpenID-certified) for the STS interop tests.
// It also serves as a plain OAuth 2.0 authorization server: /auth, /token and /me (userinfo).
//
// usage: node oidc-idp.mjs --port P --config JSON
//   P     TCP port on 127.0.0.1 (0 = pick a free one; the READY line then tells which).
//   JSON  one argument: {
//           "clients": [ oidc-provider client metadata, e.g. {"client_id": "sts", "client_secret": "s3cret",
//                        "redirect_uris": ["http://127.0.0.1:8080/cb"], "token_endpoint_auth_method":
//                        "client_secret_basic", "grant_types": ["authorization_code"], "response_types": ["code"]} ],
//           "users":   { "<login_hint>": { "sub": "alice", "email": "...", "groups": [...], ... }, ... }
//         }
//         A user's accountId is its "sub" (the map key when "sub" is absent); login_hint may be either.
//         Scopes -> claims: openid sub; email email, email_verified; profile name, preferred_username (and the
//         other standard profile claims); groups: groups, org and every other non-standard claim a user has.
//         Claims go into the ID token too (conformIdTokenClaims: false), and into /me (needs scope openid).
//
// Issuer: http://127.0.0.1:P (no trailing slash). PKCE (S256) is required for every client.
// Login is non-interactive: /auth?...&login_hint=alice answers 303 to /interaction/<uid>, which logs alice in,
// grants every requested scope and claim and answers 303 to /auth/<uid>, which answers 303 to
// redirect_uri?code=...&state=...&iss=... (RFC 9207). A missing or unknown login_hint ends in
// redirect_uri?error=access_denied&error_description=...&state=...&iss=... Location headers of the first two
// hops are relative (/interaction/<uid>, /auth/<uid>). With a session cookie for the same user /auth answers
// 303 straight to redirect_uri; a login_hint naming another user ends that session and logs the new one in.
// Endpoints: /.well-known/openid-configuration, /auth, /token, /me (userinfo), /jwks (RS256, kid idp-rs256-1).
// Prints exactly one line "READY <issuer>" on stdout once listening; everything else goes to stderr.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

// oidc-provider prints notices with console.info (stdout): keep stdout for the READY line only.
console.info = console.error;
console.log = console.error;

const { default: Provider, interactionPolicy } = await import('oidc-provider');

function fail(msg) {
  console.error(`oidc-idp: ${msg}`);
  process.exit(2);
}

const { values: args } = parseArgs({
  options: { port: { type: 'string' }, config: { type: 'string' } },
  strict: true,
});
if (args.port === undefined || !/^\d+$/.test(args.port)) fail('--port P is required');
if (args.config === undefined) fail('--config JSON is required');
let config;
try {
  config = JSON.parse(args.config);
} catch (e) {
  fail(`--config is not JSON: ${e.message}`);
}
if (!Array.isArray(config.clients) || config.clients.length === 0) fail('config.clients must be a non-empty array');
if (!config.users || typeof config.users !== 'object') fail('config.users must be an object');

// login_hint -> accountId, accountId -> claims
const hintToAccount = new Map();
const accounts = new Map();
for (const [hint, claims] of Object.entries(config.users)) {
  const accountId = typeof claims.sub === 'string' ? claims.sub : hint;
  hintToAccount.set(hint, accountId);
  accounts.set(accountId, { ...claims, sub: accountId });
}
for (const accountId of accounts.keys()) if (!hintToAccount.has(accountId)) hintToAccount.set(accountId, accountId);

// Scope -> claims. Standard claims under their OIDC scopes; `groups`, `org` and any other claim a user
// carries under the custom `groups` scope.
const standard = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'family_name', 'given_name', 'middle_name', 'nickname', 'preferred_username', 'profile',
    'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale', 'updated_at'],
};
const known = new Set(Object.values(standard).flat());
const custom = new Set(['groups', 'org']);
for (const claims of accounts.values()) for (const k of Object.keys(claims)) if (!known.has(k)) custom.add(k);
const claimsConfig = { ...standard, groups: [...custom] };

// Listen first, so that --port 0 works and the issuer carries the real port.
let handler = (_req, res) => { res.statusCode = 503; res.end(); };
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(args.port), '127.0.0.1', resolve);
});
server.on('error', (e) => console.error(`oidc-idp: server error: ${e.stack ?? e}`));
const issuer = `http://127.0.0.1:${server.address().port}`;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'idp-rs256-1', alg: 'RS256', use: 'sig' };

// Login prompt also when the session belongs to another user than login_hint names.
const policy = interactionPolicy.base();
policy.get('login').checks.push(new interactionPolicy.Check(
  'login_hint_mismatch',
  'login_hint names another End-User than the session',
  (ctx) => {
    const { oidc } = ctx;
    if (oidc.params.login_hint === undefined || !oidc.session.accountId || oidc.result?.login) return false;
    return hintToAccount.get(oidc.params.login_hint) !== oidc.session.accountId;
  },
));

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  claims: claimsConfig,
  conformIdTokenClaims: false,
  ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Interaction: 600, Session: 3600, Grant: 3600 },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    userinfo: { enabled: true },
    // RFC 9207: oidc-provider 9 always adds `iss` to authorization responses (no flag left to set) and
    // advertises authorization_response_iss_parameter_supported in discovery.
  },
  interactions: {
    policy,
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  async findAccount(_ctx, id) {
    const claims = accounts.get(id);
    if (!claims) return undefined;
    return { accountId: id, claims: async () => structuredClone(claims) };
  },
  async renderError(ctx, out, error) {
    console.error(`oidc-idp: rendered error page: ${JSON.stringify(out)}`);
    ctx.type = 'json';
    ctx.body = out;
  },
});

for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error',
  'introspection.error', 'revocation.error', 'end_session.error', 'jwks.error', 'discovery.error',
  'check_session_origin.error', 'pushed_authorization_request.error']) {
  provider.on(event, (ctx, err) => {
    const e = err ?? ctx;
    console.error(`oidc-idp: ${event}: ${e?.message ?? e}${e?.error_description ? ` (${e.error_description})` : ''}`);
    if (event === 'server_error') console.error(e?.stack);
  });
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params } = details;
  let result;
  if (prompt.name === 'login') {
    const accountId = params.login_hint === undefined ? undefined : hintToAccount.get(params.login_hint);
    if (!accountId) {
      result = {
        error: 'access_denied',
        error_description: params.login_hint === undefined ? 'login_hint is required' : 'unknown login_hint',
      };
    } else {
      // A session of another user (same cookie jar, other login_hint): end it here, else oidc-provider
      // answers /auth/<uid> with an auto-submitting logout form instead of a redirect.
      if (details.session?.accountId && details.session.accountId !== accountId && details.session.cookie) {
        await (await provider.Session.find(details.session.cookie))?.destroy();
        delete details.session;
        await details.save(details.exp - Math.floor(Date.now() / 1000));
      }
      // Log in and consent to everything requested at once, so /auth/<uid> completes the request.
      const grant = new provider.Grant({ accountId, clientId: params.client_id });
      if (params.scope) grant.addOIDCScope(params.scope);
      if (params.claims) {
        const { userinfo = {}, id_token: idToken = {} } = JSON.parse(params.claims);
        grant.addOIDCClaims([...Object.keys(userinfo), ...Object.keys(idToken)]);
      }
      result = { login: { accountId }, consent: { grantId: await grant.save() } };
    }
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    result = { error: 'access_denied', error_description: `unsupported prompt ${prompt.name}` };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

const providerCallback = provider.callback();
handler = (req, res) => {
  if (req.method === 'GET' && /^\/interaction\/[^/?]+(\?|$)/.test(req.url)) {
    interaction(req, res).catch((e) => {
      console.error(`oidc-idp: interaction failed: ${e.stack ?? e}`);
      if (!res.headersSent) {
        res.statusCode = 400;
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ error: e.error ?? 'invalid_request', error_description: e.message }));
      } else {
        res.end();
      }
    });
    return;
  }
  providerCallback(req, res);
};

process.on('SIGTERM', () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
process.on('SIGINT', () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
process.stdout.write(`READY ${issuer}\n`);
