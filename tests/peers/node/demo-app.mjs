// A tiny web application (OpenID Connect relying party) signing in through the STS as its OpenID Provider,
// built on npm `openid-client` v6 (discovery, authorization code + PKCE, userinfo, refresh, RP-initiated
// logout) and npm `jose` (access-token verification against the OP's jwks_uri). Only node:http; no
// allowInsecureRequests or other relaxation: the OP must be https, and trusted by this process (the tests
// give it NODE_EXTRA_CA_CERTS=<the STS's test certificate>). Two of these side by side show single sign-on.
//
// usage: node demo-app.mjs --port P --name NAME --issuer URL --client-id ID --client-secret-file FILE
//                          [--auth basic|post] [--audience AUD] [--scope SCOPE] [--login-hint H]
//   P       TCP port on 127.0.0.1 (0 = pick a free one; the READY line then tells which)
//   NAME    display name, e.g. "App A" (shown in <h1 id="app">)
//   URL     the OP's issuer, e.g. https://127.0.0.1:8443; discovery at URL/.well-known/openid-configuration,
//           whose "issuer" must be URL (openid-client compares them as parsed URLs)
//   ID      client_id; FILE holds the client secret (one trailing newline is ignored)
//   --auth  token endpoint client authentication: basic = client_secret_basic (default), post = client_secret_post
//   AUD     the audience the access token must carry (default: ID)
//   SCOPE   default "openid profile email roles offline_access"
//   H       login_hint sent in every authorization request (the test IdP logs that user in without a form)
//
// Redirect URI: http://127.0.0.1:P/callback; post-logout redirect URI: http://127.0.0.1:P/logged-out.
// Prints exactly one line "READY http://127.0.0.1:P" on stdout once discovery succeeded and the port listens;
// everything else goes to stderr. Discovery failure (or bad usage): message on stderr, exit 1 (usage: 2).
//
// Local sessions live in memory, keyed by a random HttpOnly, SameSite=Lax cookie named demo_<P> (cookies
// ignore ports, so two apps on 127.0.0.1 need different names).
//
// Routes:
//   GET  /            no local session: 302 /login. Otherwise verifies the access token (jose: RS256, typ
//                     at+jwt, iss = issuer, aud contains AUD, exp, sub, client_id = ID) and calls userinfo
//                     (so a logout at the OP is noticed); any failure drops the local session, 302 /login.
//                     Page: <h1 id="app">NAME</h1>, <span id="user">sub</span>, <span id="username">
//                     preferred_username or name from userinfo</span>, <ul id="roles"><li>role</li>...</ul>
//                     (the verified access token's roles), <a id="logout" href="/logout">.
//   GET  /login       new local session with random state, nonce and PKCE (S256) verifier; 302 to the
//                     authorization endpoint (response_type=code, scope SCOPE, login_hint H when given).
//   GET  /callback    authorizationCodeGrant (state, nonce, PKCE, ID token required), then: the access token
//                     verified as on /, the ID token's signature verified with jose (iss, aud = ID, RS256),
//                     access-token sub = ID-token sub, and userinfo (its sub = ID-token sub); 302 /.
//                     Any failure: 400 page with <p id="error">message</p> (and a line on stderr).
//   GET  /api/state   {signedIn, sub, roles, accessClaims, idClaims} (access token verified now; when it
//                     does not verify: {signedIn: false, error}).
//   POST /api/refresh refresh_token grant; the new access token is verified as on /; a new ID token, if any,
//                     must have the same sub. 200 {ok: true, accessTokenChanged, refreshTokenChanged,
//                     idTokenReturned, sub, expiresIn, scope}; 401 {ok: false, error} without a session;
//                     502 {ok: false, error} when the grant or a check fails. A cross-origin Origin: 403.
//   GET  /api/userinfo 200 userinfo JSON (expectedSubject = ID-token sub), or 401 {error}.
//   GET  /logout      drops the local session; 302 to the end_session_endpoint with id_token_hint,
//                     post_logout_redirect_uri and state (openid-client adds client_id).
//   GET  /logged-out  <h1 id="logged-out">Signed out of NAME</h1>, <p id="state-ok">true|false</p> (the
//                     state is one this app sent within the last 10 minutes, single use).
// Every response has Cache-Control: no-store; pages carry no script and no CSP header.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';
import * as client from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const TIMEOUT_S = 10; // every request to the OP
const LOGIN_TTL_MS = 10 * 60_000; // a pending login, a logout state

function usage(msg) {
  console.error(`demo-app: ${msg}`);
  console.error('usage: node demo-app.mjs --port P --name NAME --issuer URL --client-id ID --client-secret-file FILE '
    + '[--auth basic|post] [--audience AUD] [--scope SCOPE] [--login-hint H]');
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string' },
      name: { type: 'string' },
      issuer: { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret-file': { type: 'string' },
      auth: { type: 'string', default: 'basic' },
      audience: { type: 'string' },
      scope: { type: 'string', default: 'openid profile email roles offline_access' },
      'login-hint': { type: 'string' },
    },
    strict: true,
  }));
} catch (e) {
  usage(e.message);
}
for (const k of ['port', 'name', 'issuer', 'client-id', 'client-secret-file']) {
  if (!args[k]) usage(`--${k} is required`);
}
if (!/^\d+$/.test(args.port)) usage('--port must be a number');
if (args.auth !== 'basic' && args.auth !== 'post') usage('--auth must be basic or post');
let issuerUrl;
try {
  issuerUrl = new URL(args.issuer);
} catch {
  usage(`--issuer is not a URL: ${args.issuer}`);
}
let clientSecret;
try {
  clientSecret = fs.readFileSync(args['client-secret-file'], 'utf8').replace(/\r?\n$/, '');
} catch (e) {
  usage(`cannot read --client-secret-file: ${e.message}`);
}
if (!clientSecret) usage('the client secret file is empty');

const appName = args.name;
const clientId = args['client-id'];
const audience = args.audience ?? clientId;
const scope = args.scope;
const loginHint = args['login-hint'];

function log(msg) {
  console.error(`demo-app[${appName}]: ${msg}`);
}

// One line describing any error openid-client, oauth4webapi, jose or fetch throws.
function describe(e, depth = 0) {
  if (e === null || typeof e !== 'object') return String(e);
  const parts = [];
  const head = [e.name && e.name !== 'Error' ? e.name : null, e.code].filter(Boolean).join(' ');
  parts.push(head ? `${head}: ${e.message}` : e.message);
  if (typeof e.error === 'string') {
    parts.push(`error=${e.error}${e.error_description ? ` (${e.error_description})` : ''}`);
  }
  if (typeof e.status === 'number') parts.push(`HTTP ${e.status}`);
  if (e instanceof client.WWWAuthenticateChallengeError && Array.isArray(e.cause)) {
    parts.push(`WWW-Authenticate: ${JSON.stringify(e.cause)}`);
  }
  if (e.cause instanceof Response) parts.push(`HTTP ${e.cause.status} from ${e.cause.url || 'the OP'}`);
  else if (e.cause instanceof Error && depth < 3) parts.push(`cause: ${describe(e.cause, depth + 1)}`);
  else if (e.cause && typeof e.cause === 'object' && depth < 3) {
    const c = e.cause;
    const detail = {};
    for (const k of ['attribute', 'claim', 'expected', 'reason', 'error', 'error_description']) {
      if (c[k] !== undefined) detail[k] = c[k];
    }
    if (c.body !== undefined && Object.keys(detail).length) detail.body = c.body;
    if (Object.keys(detail).length) parts.push(`cause: ${JSON.stringify(detail)}`);
  }
  return parts.join('; ');
}

// Discovery before listening; the port is only needed for redirect URIs, which go into requests later.
const clientAuth = args.auth === 'post' ? client.ClientSecretPost(clientSecret) : client.ClientSecretBasic(clientSecret);
let config;
try {
  config = await client.discovery(issuerUrl, clientId, undefined, clientAuth, { timeout: TIMEOUT_S });
} catch (e) {
  console.error(`demo-app[${appName}]: discovery at ${issuerUrl.href} failed: ${describe(e)}`);
  process.exit(1);
}
const meta = config.serverMetadata();
let JWKS;
try {
  JWKS = createRemoteJWKSet(new URL(meta.jwks_uri), { timeoutDuration: TIMEOUT_S * 1000 });
} catch (e) {
  console.error(`demo-app[${appName}]: discovery has no usable jwks_uri (${meta.jwks_uri}): ${describe(e)}`);
  process.exit(1);
}

async function verifyAccessToken(token) {
  const { payload } = await jwtVerify(token, JWKS, {
    issuer: meta.issuer,
    audience,
    algorithms: ['RS256'],
    typ: 'at+jwt',
    requiredClaims: ['exp', 'sub'],
  });
  if (payload.client_id !== clientId) {
    throw new Error(`access token client_id is ${JSON.stringify(payload.client_id)}, not ${JSON.stringify(clientId)}`);
  }
  if (payload.roles !== undefined && !Array.isArray(payload.roles)) {
    throw new Error(`access token roles is not an array: ${JSON.stringify(payload.roles)}`);
  }
  return payload;
}

// openid-client checks the ID token's claims (iss, aud, azp, exp, iat, sub, nonce) but, for a token that
// came straight from the token endpoint over TLS, not its signature: jose checks that too.
async function verifyIdTokenSignature(token) {
  const { payload } = await jwtVerify(token, JWKS, { issuer: meta.issuer, audience: clientId, algorithms: ['RS256'] });
  return payload;
}

const sessions = new Map(); // id -> session
const logoutStates = new Map(); // state -> expiry (ms)
let port;
let base;
let cookieName;

function sweep() {
  const now = Date.now();
  for (const [s, exp] of logoutStates) if (exp < now) logoutStates.delete(s);
  for (const [id, s] of sessions) {
    if (!s.tokens && s.login && s.login.created + LOGIN_TTL_MS < now) sessions.delete(id);
  }
}
setInterval(sweep, 60_000).unref();

function getSession(req) {
  const header = req.headers.cookie ?? '';
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    if (part.slice(0, i).trim() === cookieName) {
      const s = sessions.get(part.slice(i + 1).trim());
      if (s) return s;
    }
  }
  return undefined;
}

function newSession(res) {
  const id = crypto.randomBytes(32).toString('base64url');
  const s = { id, created: Date.now() };
  sessions.set(id, s);
  res.setHeader('Set-Cookie', `${cookieName}=${id}; Path=/; HttpOnly; SameSite=Lax`);
  return s;
}

function dropSession(res, s) {
  if (s) sessions.delete(s.id);
  res.setHeader('Set-Cookie', `${cookieName}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`);
}

const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res, status, title, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;margin:2rem;max-width:50rem}h1{color:#225}#error{color:#a00}
code{background:#eee;padding:0 .2em}li{margin:.2em 0}</style></head>
<body>${body}</body></html>
`);
}

function json(res, status, obj) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify(obj));
}

function redirect(res, location) {
  res.statusCode = 302;
  res.setHeader('Location', location);
  res.end();
}

function errorPage(res, status, msg) {
  page(res, status, `${appName}: error`, `<h1 id="app">${esc(appName)}</h1>
<p id="error">${esc(msg)}</p>
<p><a href="/login">Sign in again</a></p>`);
}

function roleList(claims) {
  return Array.isArray(claims.roles) ? claims.roles.map(String) : [];
}

// Access token verified, userinfo answered: the session is good. Throws otherwise.
async function checkSession(s) {
  const accessClaims = await verifyAccessToken(s.tokens.access_token);
  const userinfo = await client.fetchUserInfo(config, s.tokens.access_token, s.idClaims.sub);
  s.accessClaims = accessClaims;
  s.userinfo = userinfo;
  return { accessClaims, userinfo };
}

async function home(req, res) {
  const s = getSession(req);
  if (!s || !s.tokens) {
    redirect(res, '/login');
    return;
  }
  let accessClaims;
  let userinfo;
  try {
    ({ accessClaims, userinfo } = await checkSession(s));
  } catch (e) {
    log(`session no longer valid, signing in again: ${describe(e)}`);
    dropSession(res, s);
    redirect(res, '/login');
    return;
  }
  const username = userinfo.preferred_username ?? userinfo.name ?? '';
  const roles = roleList(accessClaims);
  page(res, 200, appName, `<h1 id="app">${esc(appName)}</h1>
<p>Signed in as <span id="user">${esc(accessClaims.sub)}</span> (<span id="username">${esc(username)}</span>)</p>
<h2>Roles</h2>
<ul id="roles">${roles.map((r) => `<li>${esc(r)}</li>`).join('')}</ul>
<p>Scope: <code id="scope">${esc(accessClaims.scope ?? '')}</code></p>
<p><a id="logout" href="/logout">Sign out</a></p>`);
}

async function login(req, res) {
  const old = getSession(req);
  if (old) sessions.delete(old.id);
  const s = newSession(res);
  const verifier = client.randomPKCECodeVerifier();
  s.login = {
    state: client.randomState(),
    nonce: client.randomNonce(),
    verifier,
    created: Date.now(),
  };
  const params = {
    redirect_uri: `${base}/callback`,
    scope,
    state: s.login.state,
    nonce: s.login.nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  };
  if (loginHint !== undefined) params.login_hint = loginHint;
  redirect(res, client.buildAuthorizationUrl(config, params).href);
}

async function callback(req, res) {
  const s = getSession(req);
  const pending = s?.login;
  if (!pending) {
    log('callback without a login in progress');
    errorPage(res, 400, 'no sign-in in progress (no session cookie, or the sign-in was already completed)');
    return;
  }
  delete s.login; // single use
  try {
    if (pending.created + LOGIN_TTL_MS < Date.now()) throw new Error('the sign-in took too long');
    const tokens = await client.authorizationCodeGrant(config, new URL(req.url, base), {
      pkceCodeVerifier: pending.verifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
    const idClaims = tokens.claims();
    const accessClaims = await verifyAccessToken(tokens.access_token).catch((e) => {
      throw new Error(`access token does not verify: ${describe(e)}`);
    });
    await verifyIdTokenSignature(tokens.id_token).catch((e) => {
      throw new Error(`ID token does not verify: ${describe(e)}`);
    });
    if (accessClaims.sub !== idClaims.sub) {
      throw new Error(`access token sub ${JSON.stringify(accessClaims.sub)} != ID token sub ${JSON.stringify(idClaims.sub)}`);
    }
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub).catch((e) => {
      throw new Error(`userinfo failed: ${describe(e)}`);
    });
    s.tokens = {
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      id_token: tokens.id_token,
      expires_in: tokens.expires_in,
      scope: tokens.scope,
    };
    s.idClaims = idClaims;
    s.accessClaims = accessClaims;
    s.userinfo = userinfo;
    log(`signed in ${idClaims.sub}`);
    redirect(res, '/');
  } catch (e) {
    const msg = describe(e);
    log(`callback failed: ${msg}`);
    dropSession(res, s);
    errorPage(res, 400, msg);
  }
}

async function apiState(req, res) {
  const s = getSession(req);
  if (!s || !s.tokens) {
    json(res, 200, { signedIn: false });
    return;
  }
  try {
    const accessClaims = await verifyAccessToken(s.tokens.access_token);
    json(res, 200, {
      signedIn: true,
      sub: accessClaims.sub,
      roles: roleList(accessClaims),
      accessClaims,
      idClaims: s.idClaims,
    });
  } catch (e) {
    json(res, 200, { signedIn: false, error: `access token does not verify: ${describe(e)}` });
  }
}

function sameOrigin(req) {
  const origin = req.headers.origin;
  return origin === undefined || origin === base;
}

async function apiRefresh(req, res) {
  if (!sameOrigin(req)) {
    json(res, 403, { ok: false, error: `cross-origin request from ${req.headers.origin}` });
    return;
  }
  const s = getSession(req);
  if (!s || !s.tokens) {
    json(res, 401, { ok: false, error: 'not signed in' });
    return;
  }
  if (!s.tokens.refresh_token) {
    json(res, 401, { ok: false, error: 'no refresh token (was offline_access granted?)' });
    return;
  }
  try {
    const tokens = await client.refreshTokenGrant(config, s.tokens.refresh_token);
    const accessClaims = await verifyAccessToken(tokens.access_token).catch((e) => {
      throw new Error(`refreshed access token does not verify: ${describe(e)}`);
    });
    if (accessClaims.sub !== s.idClaims.sub) {
      throw new Error(`refreshed access token sub ${JSON.stringify(accessClaims.sub)} != ${JSON.stringify(s.idClaims.sub)}`);
    }
    const idTokenReturned = typeof tokens.id_token === 'string';
    let idClaims = s.idClaims;
    if (idTokenReturned) {
      idClaims = tokens.claims();
      await verifyIdTokenSignature(tokens.id_token).catch((e) => {
        throw new Error(`refreshed ID token does not verify: ${describe(e)}`);
      });
      // OpenID Connect Core 12.2: same iss and sub as the original ID token.
      if (idClaims.sub !== s.idClaims.sub || idClaims.iss !== s.idClaims.iss) {
        throw new Error(`refreshed ID token sub/iss ${idClaims.sub}/${idClaims.iss} != ${s.idClaims.sub}/${s.idClaims.iss}`);
      }
    }
    const result = {
      ok: true,
      accessTokenChanged: tokens.access_token !== s.tokens.access_token,
      refreshTokenChanged: typeof tokens.refresh_token === 'string' && tokens.refresh_token !== s.tokens.refresh_token,
      idTokenReturned,
      sub: accessClaims.sub,
      expiresIn: tokens.expires_in ?? null,
      scope: tokens.scope ?? null,
    };
    s.tokens = {
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token ?? s.tokens.refresh_token,
      id_token: idTokenReturned ? tokens.id_token : s.tokens.id_token,
      expires_in: tokens.expires_in,
      scope: tokens.scope ?? s.tokens.scope,
    };
    s.idClaims = idClaims;
    s.accessClaims = accessClaims;
    json(res, 200, result);
  } catch (e) {
    const msg = describe(e);
    log(`refresh failed: ${msg}`);
    json(res, 502, { ok: false, error: msg });
  }
}

async function apiUserinfo(req, res) {
  const s = getSession(req);
  if (!s || !s.tokens) {
    json(res, 401, { error: 'not signed in' });
    return;
  }
  try {
    json(res, 200, await client.fetchUserInfo(config, s.tokens.access_token, s.idClaims.sub));
  } catch (e) {
    const msg = describe(e);
    log(`userinfo failed: ${msg}`);
    json(res, 401, { error: msg });
  }
}

function logout(req, res) {
  const s = getSession(req);
  const state = client.randomState();
  logoutStates.set(state, Date.now() + LOGIN_TTL_MS);
  const params = { post_logout_redirect_uri: `${base}/logged-out`, state };
  if (s?.tokens?.id_token) params.id_token_hint = s.tokens.id_token;
  dropSession(res, s);
  try {
    redirect(res, client.buildEndSessionUrl(config, params).href);
  } catch (e) {
    const msg = describe(e);
    log(`logout failed: ${msg}`);
    errorPage(res, 500, msg);
  }
}

function loggedOut(req, res) {
  const state = new URL(req.url, base).searchParams.get('state');
  const exp = state === null ? undefined : logoutStates.get(state);
  const ok = exp !== undefined && exp >= Date.now();
  if (state !== null) logoutStates.delete(state);
  page(res, 200, `${appName}: signed out`, `<h1 id="logged-out">Signed out of ${esc(appName)}</h1>
<p>The logout state matched:</p><p id="state-ok">${ok}</p>
<p><a href="/">Sign in again</a></p>`);
}

const routes = {
  'GET /': home,
  'GET /login': login,
  'GET /callback': callback,
  'GET /api/state': apiState,
  'POST /api/refresh': apiRefresh,
  'GET /api/userinfo': apiUserinfo,
  'GET /logout': logout,
  'GET /logged-out': loggedOut,
};

const server = http.createServer((req, res) => {
  res.setHeader('Cache-Control', 'no-store');
  const path = new URL(req.url, 'http://x').pathname;
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  if (path === '/favicon.ico') {
    res.statusCode = 204;
    res.end();
    return;
  }
  const handler = routes[`${method} ${path}`];
  if (!handler) {
    const known = Object.keys(routes).some((r) => r.endsWith(` ${path}`));
    res.statusCode = known ? 405 : 404;
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end(known ? 'method not allowed\n' : 'not found\n');
    return;
  }
  // Drain any request body (POST /api/refresh takes none).
  req.resume();
  Promise.resolve()
    .then(() => handler(req, res))
    .catch((e) => {
      log(`${method} ${path} failed: ${e.stack ?? e}`);
      if (!res.headersSent) errorPage(res, 500, describe(e));
      else res.end();
    });
});

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(args.port), '127.0.0.1', resolve);
}).catch((e) => {
  console.error(`demo-app[${appName}]: cannot listen on 127.0.0.1:${args.port}: ${e.message}`);
  process.exit(1);
});
server.on('error', (e) => log(`server error: ${e.stack ?? e}`));
port = server.address().port;
base = `http://127.0.0.1:${port}`;
cookieName = `demo_${port}`;

process.on('SIGTERM', () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
process.on('SIGINT', () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
process.stdout.write(`READY ${base}\n`);
