// A small, deliberately misbehaving OpenID Provider for the STS's negative tests.
// Only node:http, node:crypto and npm `jose`. Everything but the selected fault behaves correctly.
//
// usage: node hostile-idp.mjs --port P --mode MODE --client-id C --client-secret S [--state-file PATH]
//   P     TCP port on 127.0.0.1 (0 = pick a free one; the READY line tells which). Issuer: http://127.0.0.1:P
//   PATH  append one JSON line per request: {"time": <ms since epoch>, "method": "GET", "path": "/jwks"}
//
// Endpoints:
//   GET  /.well-known/openid-configuration
//   GET  /jwks        one RSA key (kid "hostile-rs256-1"); see unknown-kid-then-rotate
//   GET  /authorize   302 at once to redirect_uri?code=..&state=..&iss=<issuer>; needs client_id=C,
//                     response_type=code, redirect_uri, code_challenge + code_challenge_method=S256
//                     (else 302 with error=invalid_request); remembers nonce, challenge, redirect_uri per code
//   POST /token       client_secret_basic or client_secret_post; code (single use), redirect_uri, PKCE
//                     verifier; answers {access_token, token_type: "Bearer", expires_in: 300, id_token, scope}
//   GET  /userinfo    Bearer access_token -> {"sub": "alice", "email": "alice@example.com", "groups": ["staff"]}
//
// ID token when correct: RS256, kid "hostile-rs256-1", {iss, aud: C, sub: "alice", iat, exp: iat+300,
// nonce (the request's, omitted when the request had none), email, groups}.
//
// MODE:
//   good                     everything correct
//   wrong-aud                aud "someone-else"
//   wrong-iss                iss "http://evil.invalid"
//   expired                  iat 20 min ago, exp 10 min ago
//   bad-signature            signed by another RSA key under the published kid
//   alg-none                 unsecured JWT: header {"alg":"none","typ":"JWT"}, empty signature
//   wrong-nonce              nonce "wrong-<request nonce>"
//   missing-nonce            no nonce claim
//   hs256-with-public-key    HS256 (kid of the RSA key), HMAC secret = the RSA public key as SPKI PEM text
//   hs256-with-public-jwk    HS256 (kid of the RSA key), HMAC secret = the public JWK exactly as /jwks serves it
//   wrong-redirect-iss       authorization response iss "<issuer>/" (trailing slash); ID token correct
//   hang-token               /token waits 30 s before answering (correctly)
//   unknown-kid-then-rotate  ID token signed by a second key (kid "hostile-rs256-2"): the first /jwks
//                            answer has only key 1, every later one keys 1 and 2
//   azp-multi-aud            aud [C, "other"] and no azp
//   crit-exp                 correctly signed (node:crypto), header {"crit": ["exp"], "exp": ...} (RFC 7515 4.1.11)
//   crit-b64                 correctly signed, header {"crit": ["b64"], "b64": true}
//   crit-empty               correctly signed, header {"crit": []}
//   crit-unknown             correctly signed, header {"crit": ["urn:x"], "urn:x": 1}
//   duplicate-alg            correctly signed, header text with "alg" twice ("RS256", then "none")
//
// Prints exactly one line "READY <issuer>" on stdout once listening; refusals and errors go to stderr.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';

const MODES = new Set(['good', 'wrong-aud', 'wrong-iss', 'expired', 'bad-signature', 'alg-none', 'wrong-nonce',
  'missing-nonce', 'hs256-with-public-key', 'hs256-with-public-jwk', 'wrong-redirect-iss', 'hang-token',
  'unknown-kid-then-rotate', 'azp-multi-aud', 'crit-exp', 'crit-b64', 'crit-empty', 'crit-unknown',
  'duplicate-alg']);

function fail(msg) {
  console.error(`hostile-idp: ${msg}`);
  process.exit(2);
}

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    mode: { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'state-file': { type: 'string' },
  },
  strict: true,
});
if (args.port === undefined || !/^\d+$/.test(args.port)) fail('--port P is required');
if (!MODES.has(args.mode)) fail(`--mode must be one of: ${[...MODES].join(', ')}`);
if (!args['client-id'] || args['client-secret'] === undefined) fail('--client-id and --client-secret are required');
const { mode } = args;
const clientId = args['client-id'];
const clientSecret = args['client-secret'];
const stateFile = args['state-file'];

const KID1 = 'hostile-rs256-1';
const KID2 = 'hostile-rs256-2';
const rsa = () => crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const key1 = rsa();
const key2 = rsa(); // the rotated-in key (unknown-kid-then-rotate)
const impostor = rsa(); // bad-signature
const jwk1 = { ...key1.publicKey.export({ format: 'jwk' }), kid: KID1, alg: 'RS256', use: 'sig' };
const jwk2 = { ...key2.publicKey.export({ format: 'jwk' }), kid: KID2, alg: 'RS256', use: 'sig' };
let jwksFetches = 0;

const codes = new Map(); // code -> {nonce, codeChallenge, redirectUri, scope, exp}
const accessTokens = new Map(); // token -> exp (s)
const now = () => Math.floor(Date.now() / 1000);
const random = () => crypto.randomBytes(24).toString('base64url');
const b64json = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

let issuer; // set once listening

function claimsFor(req) {
  const iat = now();
  const c = { iss: issuer, aud: clientId, sub: 'alice', iat, exp: iat + 300 };
  if (req.nonce !== undefined) c.nonce = req.nonce;
  c.email = 'alice@example.com';
  c.groups = ['staff'];
  switch (mode) {
    case 'wrong-aud': c.aud = 'someone-else'; break;
    case 'wrong-iss': c.iss = 'http://evil.invalid'; break;
    case 'expired': c.iat = iat - 1200; c.exp = iat - 600; break;
    case 'wrong-nonce': c.nonce = `wrong-${req.nonce ?? ''}`; break;
    case 'missing-nonce': delete c.nonce; break;
    case 'azp-multi-aud': c.aud = [clientId, 'other']; break;
    default: break;
  }
  return c;
}

function hs256(claims, secret) {
  const input = `${b64json({ alg: 'HS256', typ: 'JWT', kid: KID1 })}.${b64json(claims)}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

// RS256 over a header given as raw JSON text (jose refuses to sign unknown crit names).
function rs256Raw(headerText, claims) {
  const input = `${Buffer.from(headerText).toString('base64url')}.${b64json(claims)}`;
  return `${input}.${crypto.sign('sha256', Buffer.from(input), key1.privateKey).toString('base64url')}`;
}

const CRIT_HEADERS = {
  'crit-exp': `{"alg":"RS256","typ":"JWT","kid":"${KID1}","crit":["exp"],"exp":4102444800}`,
  'crit-b64': `{"alg":"RS256","typ":"JWT","kid":"${KID1}","crit":["b64"],"b64":true}`,
  'crit-empty': `{"alg":"RS256","typ":"JWT","kid":"${KID1}","crit":[]}`,
  'crit-unknown': `{"alg":"RS256","typ":"JWT","kid":"${KID1}","crit":["urn:x"],"urn:x":1}`,
  'duplicate-alg': `{"alg":"RS256","typ":"JWT","kid":"${KID1}","alg":"none"}`,
};

async function idToken(req) {
  const claims = claimsFor(req);
  if (CRIT_HEADERS[mode]) return rs256Raw(CRIT_HEADERS[mode], claims);
  switch (mode) {
    case 'alg-none':
      return `${b64json({ alg: 'none', typ: 'JWT' })}.${b64json(claims)}.`;
    case 'hs256-with-public-key':
      return hs256(claims, Buffer.from(key1.publicKey.export({ format: 'pem', type: 'spki' })));
    case 'hs256-with-public-jwk':
      return hs256(claims, Buffer.from(JSON.stringify(jwk1)));
    default: {
      let key = key1.privateKey;
      let kid = KID1;
      if (mode === 'bad-signature') key = impostor.privateKey;
      if (mode === 'unknown-kid-then-rotate') { key = key2.privateKey; kid = KID2; }
      return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid }).sign(key);
    }
  }
}

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function oauthError(res, status, error, description, headers) {
  console.error(`hostile-idp: ${status} ${error}: ${description}`);
  send(res, status, { error, error_description: description }, headers);
}

function redirect(res, target, params) {
  const url = new URL(target);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  res.writeHead(302, { Location: url.href, 'Cache-Control': 'no-store', 'Content-Length': 0 });
  res.end();
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 65536) { reject(new Error('body too large')); req.destroy(); } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function discovery() {
  return {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    userinfo_endpoint: `${issuer}/userinfo`,
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    code_challenge_methods_supported: ['S256'],
    scopes_supported: ['openid', 'email', 'profile', 'groups'],
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nonce', 'email', 'groups'],
    authorization_response_iss_parameter_supported: true,
  };
}

function authorize(res, q) {
  const redirectUri = q.get('redirect_uri');
  if (q.get('client_id') !== clientId) return send(res, 400, 'unknown client_id\n');
  if (!redirectUri || !URL.canParse(redirectUri)) return send(res, 400, 'missing or invalid redirect_uri\n');
  const state = q.get('state') ?? undefined;
  const iss = mode === 'wrong-redirect-iss' ? `${issuer}/` : issuer;
  const deny = (description) => {
    console.error(`hostile-idp: authorize refused: ${description}`);
    redirect(res, redirectUri, { error: 'invalid_request', error_description: description, state, iss });
  };
  if (q.get('response_type') !== 'code') return deny('response_type must be code');
  if (!q.get('code_challenge')) return deny('code_challenge is required');
  if (q.get('code_challenge_method') !== 'S256') return deny('code_challenge_method must be S256');
  const code = random();
  codes.set(code, {
    nonce: q.get('nonce') ?? undefined,
    codeChallenge: q.get('code_challenge'),
    redirectUri,
    scope: q.get('scope') ?? 'openid',
    exp: now() + 120,
  });
  return redirect(res, redirectUri, { code, state, iss });
}

async function token(req, res) {
  if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
    return oauthError(res, 400, 'invalid_request', 'body must be application/x-www-form-urlencoded');
  }
  const form = new URLSearchParams(await readBody(req));
  // Client authentication: client_secret_basic (RFC 6749 2.3.1: form-urlencoded id and secret) or _post.
  let id;
  let secret;
  const authz = req.headers.authorization;
  if (authz !== undefined) {
    const m = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(authz.trim());
    const decoded = m ? Buffer.from(m[1], 'base64').toString('utf8') : '';
    const i = decoded.indexOf(':');
    if (i < 0) return oauthError(res, 401, 'invalid_client', 'malformed Basic credentials', { 'WWW-Authenticate': 'Basic' });
    try {
      id = decodeURIComponent(decoded.slice(0, i).replace(/\+/g, ' '));
      secret = decodeURIComponent(decoded.slice(i + 1).replace(/\+/g, ' '));
    } catch {
      return oauthError(res, 401, 'invalid_client', 'malformed Basic credentials', { 'WWW-Authenticate': 'Basic' });
    }
    if (form.has('client_secret')) return oauthError(res, 400, 'invalid_request', 'more than one client authentication method');
    if (form.has('client_id') && form.get('client_id') !== id) return oauthError(res, 400, 'invalid_request', 'client_id mismatch');
  } else {
    id = form.get('client_id');
    secret = form.get('client_secret');
  }
  const same = (a, b) => typeof a === 'string' && a.length === b.length && crypto.timingSafeEqual(Buffer.from(a), Buffer.from(b));
  if (!same(id, clientId) || !same(secret, clientSecret)) {
    return oauthError(res, 401, 'invalid_client', 'client authentication failed', authz ? { 'WWW-Authenticate': 'Basic' } : {});
  }
  if (form.get('grant_type') !== 'authorization_code') return oauthError(res, 400, 'unsupported_grant_type', 'only authorization_code');
  const code = form.get('code');
  const grant = code ? codes.get(code) : undefined;
  if (code) codes.delete(code); // single use, also after a failed attempt
  if (!grant || grant.exp < now()) return oauthError(res, 400, 'invalid_grant', 'unknown, used or expired code');
  if (form.get('redirect_uri') !== grant.redirectUri) return oauthError(res, 400, 'invalid_grant', 'redirect_uri mismatch');
  const verifier = form.get('code_verifier');
  if (!verifier || !/^[A-Za-z0-9\-._~]{43,128}$/.test(verifier)) return oauthError(res, 400, 'invalid_grant', 'missing or malformed code_verifier');
  if (crypto.createHash('sha256').update(verifier).digest('base64url') !== grant.codeChallenge) {
    return oauthError(res, 400, 'invalid_grant', 'PKCE verification failed');
  }
  if (mode === 'hang-token') await new Promise((r) => { setTimeout(r, 30_000); });
  const accessToken = random();
  accessTokens.set(accessToken, now() + 300);
  return send(res, 200, {
    access_token: accessToken,
    token_type: 'Bearer',
    expires_in: 300,
    id_token: await idToken(grant),
    scope: grant.scope,
  });
}

function userinfo(req, res) {
  const m = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '');
  const exp = m ? accessTokens.get(m[1]) : undefined;
  if (!exp || exp < now()) {
    return oauthError(res, 401, 'invalid_token', 'unknown or expired access token', { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
  }
  return send(res, 200, { sub: 'alice', email: 'alice@example.com', groups: ['staff'] });
}

async function handle(req, res) {
  const url = new URL(req.url, issuer);
  if (stateFile) {
    fs.appendFileSync(stateFile, `${JSON.stringify({ time: Date.now(), method: req.method, path: url.pathname })}\n`);
  }
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'GET /.well-known/openid-configuration':
      return send(res, 200, discovery());
    case 'GET /jwks': {
      jwksFetches += 1;
      const keys = mode === 'unknown-kid-then-rotate' && jwksFetches > 1 ? [jwk1, jwk2] : [jwk1];
      return send(res, 200, { keys }, { 'Cache-Control': 'no-cache' });
    }
    case 'GET /authorize':
      return authorize(res, url.searchParams);
    case 'POST /token':
      return token(req, res);
    case 'GET /userinfo':
    case 'POST /userinfo':
      return userinfo(req, res);
    default:
      return send(res, 404, 'not found\n');
  }
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => {
    console.error(`hostile-idp: ${req.method} ${req.url}: ${e.stack ?? e}`);
    if (!res.headersSent) send(res, 500, { error: 'server_error' });
    else res.destroy();
  });
});
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(args.port), '127.0.0.1', resolve);
});
server.on('error', (e) => console.error(`hostile-idp: server error: ${e.stack ?? e}`));
issuer = `http://127.0.0.1:${server.address().port}`;

const stop = () => { server.close(() => process.exit(0)); server.closeAllConnections(); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdout.write(`READY ${issuer}\n`);
