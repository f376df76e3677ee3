// A real browser through the STS admin console (/admin): Debian's Chromium, headless, driven by playwright-core
// (no browser download), launched like browser-login.mjs.
//
// usage: node admin-browser.mjs --sts URL --user NAME --password PW --out DIR --keystore P12FILE
//                               --keystore-password PW [--sso-session-user NAME]
//                               [--oidc-issuer URL --oidc-secret S --login-user NAME]
//                               [--saml-metadata-url URL]
//   --sts                the STS's base URL, e.g. http://127.0.0.1:8080 (a trailing slash is ignored); over https
//                        its certificate is not checked (ignoreHTTPSErrors: the tests use a self-signed one)
//   --user, --password   an administrator (sts admin create)
//   --out                where the screenshots go (created if missing); on failure failure.png, when a page was open
//   --keystore           a PKCS#12 file with one RSA key pair (2048+ bits), uploaded on /admin/keys
//   --keystore-password  its password (the script first uploads it with the wrong password "wrong-password")
//   --sso-session-user   optional: on /admin/sessions revoke the row of this user (the user name the table
//                        shows before "(subject)", or the subject) instead of the first row; no such row:
//                        nothing is revoked (sessionNote says why)
//   --oidc-issuer, --oidc-secret, --login-user
//                        optional, all three or none: run the identity provider steps P1-P4 (after step 1) with an
//                        OpenID Provider at this issuer (e.g. oidc-idp.mjs) that knows client "sts" with this
//                        secret (redirect URI <sts>/sso/sso-openid/openid-login) and logs in user NAME when given
//                        login_hint=NAME. The SSO session of that login shows on /admin/sessions in step 4.
//   --saml-metadata-url  optional, independent of the OIDC flags: run step S1 (after P4, or after step 1 without
//                        the OIDC flags): add the SAML provider "corp-saml" whose idp_metadata_url is this URL (e.g.
//                        the metadata URL that tests/peers/saml/start-idp.py prints; the STS fetches it on save).
//
// Steps (each at most STEP_LIMIT_MS; every single wait or click at most STEP_TIMEOUT_MS):
//   1. /admin -> /admin/login (redirectedToLogin); #username, #password, #sign-in -> h1 "Dashboard"; read
//      #active-kid (null when absent), #count-providers, #count-clients, #count-sessions, #health, #admin-user;
//      screenshot admin-dashboard.png.
//   Only with --oidc-issuer (see above), right after step 1:
//   P1. /admin/providers: the "Add a provider" form (#provider-source, #provider-secret, #save-provider) with the
//       OIDC provider "corp" but no client secret -> the "Not saved" page: #message (providerNoSecret); then
//       again with the secret -> /admin/providers/corp: #callback-url, whether the h1 shows the display name
//       "Corp <i>SSO</i>" literally with no <i> element; the href of a#test-login (must be
//       /sso/login?provider=corp&return_to=/sso/me, target _blank).
//   P2. A real login: a second page of the same browser context opens that link's URL plus &login_hint=NAME
//       (the console's link has none; oidc-idp.mjs logs in without a form only with one) and must end on
//       /sso/me; then the provider page again (reloaded until #last-login shows, at most STEP_TIMEOUT_MS):
//       #last-outcome, #last-subject, #last-roles, #last-external, #last-claims (JSON); screenshot
//       admin-provider.png.
//   P3. #sample-claims {"groups": ["sts-admins"]}, #preview -> #preview-roles, #preview-external.
//   P4. /admin/providers: screenshot admin-providers.png.
//   Only with --saml-metadata-url, right after P4 (after step 1 without --oidc-issuer):
//   S1. /admin/providers: #provider-source with the SAML provider "corp-saml" (type "saml", idp_metadata_url,
//       the same [roles] as P1), #provider-secret left empty, #save-provider -> must land on
//       /admin/providers/corp-saml: #callback-url (the ACS URL), the href of a#sp-metadata (absolute; null when
//       absent), #provider-state; then that SP metadata URL is fetched with the browser context's cookies
//       (page.request: the console's CSP, default-src 'none', forbids a fetch() inside the page; the URL must
//       be on the STS's origin, else it is not fetched) and the body parsed by the page's DOMParser: metadataOk
//       when the answer is 200 with an XML Content-Type, parses as XML and has an SPSSODescriptor element;
//       screenshot admin-provider-saml.png.
//   2. /admin/applications: register "web-a" named "Web <b>A</b>" (confidential, one redirect URI) -> the secret
//      page: #secret must start with "stscs_"; click [data-copy="secret"], wait for "Copied", compare the
//      clipboard; screenshot admin-application-secret.png; /admin/applications again: the name cell of web-a
//      must read the literal "Web <b>A</b>" and #applications must hold no <b>; screenshot admin-applications.png.
//   3. /admin/keys: screenshot admin-keys.png; import the keystore with a wrong password -> #message; with the
//      right one -> #message "the new active key is <kid>"; /admin/keys, #regenerate (its form's data-confirm
//      makes admin.js call window.confirm; every dialog is accepted and recorded) -> #message with the new kid.
//   4. /admin/sessions: rows of #sessions tbody (0 with #no-sessions) -> sessionsBefore; screenshot
//      admin-sessions.png; when there is a row to revoke (see --sso-session-user), its Revoke button (confirm
//      accepted) -> back on /admin/sessions, sessionsAfter. Nothing revoked: sessionsAfter is null.
//   5. /admin/tokens: #token-name "ci", #create-token -> #secret (must start with "stsadm_"); screenshot
//      admin-token.png.
//   6. /admin/audit: screenshot admin-audit.png; the action code (<code> of the 3rd column, else of the 2nd) of
//      the first 20 rows.
//   7. The header's Sign out (form.logout button) -> logoutUrl (must be /admin/login); then /admin again ->
//      afterLogoutUrl.
//
// Prints exactly ONE line of JSON on stdout:
//   {"ok": true,
//    "redirectedToLogin", "dashboard": {"activeKid", "providers", "clients", "sessions" (numbers, null when not a
//    number), "health", "adminUser", "url"},
//    "appSecretPrefixOk", "appNameCell" (the name cell's text), "appNameEscaped", "appBoldElements",
//    "copyResult": {"button" (its text after the click), "copied": true|false|null, "clipboardMatches":
//    true|false|null, "note"} (copied null: this browser's clipboard itself does not work, see note; false: the
//    button never said "Copied" although the clipboard works, i.e. admin.js did not run: see consoleErrors),
//    "keysBefore": [{"kid", "state"}...], "keysAfter" (after the regeneration),
//    "importWrong": {"status", "title", "message"}, "importRight": {"status", "title", "message", "kid"},
//    "regenerate": {"status", "title", "message", "kid", "confirmShown"},
//    "sessionsBefore", "sessionsAfter", "sessionRevoked": null | {"user", "subject", "confirmShown"}, "sessionNote",
//    "apiToken", "apiTokenPrefixOk", "auditActions": [...], "logoutUrl", "afterLogoutUrl", "afterLogoutPath",
//    only with --oidc-issuer (absent otherwise):
//    "providerNoSecret": {"status", "title", "message", "mentionsSecret" (message matches /client.?secret/i)},
//    "providerCreated": {"url", "callbackUrl", "nameHeading" (the h1 without its <small>), "nameEscaped",
//    "italicElements" (<i> in the h1), "testLoginHref" (absolute), "testLoginTarget"},
//    "providerLogin": {"loginUrl" (where the second page ended), "meEmail" (#email of /sso/me: the user's email
//    as the STS took it, null when absent), "outcome", "subject", "roles", "external" (the texts of #last-roles,
//    #last-external: comma-separated), "claims" (#last-claims parsed; its text when not JSON), "claimsEmail"
//    (claims.email, null when absent), "claimsHaveEmail" (meEmail is an email address and #last-claims
//    contains it)},
//    "providerPreview": {"roles", "external", "error" (the form's error text, null when none)},
//    only with --saml-metadata-url (absent otherwise):
//    "samlProvider": {"url" (where the save ended), "callbackUrl" (#callback-url: the ACS URL), "spMetadataUrl"
//    (a#sp-metadata's absolute href, null when absent), "state" (#provider-state's text), "metadataOk"
//    (true|false, see S1), "metadataNote" (null when metadataOk, else why not)},
//    "dialogs": [{"type", "message"}...], "stepMs": {step: ms},
//    "consoleErrors": ["text (url:line)", ...] (CSP violations arrive here), "pageErrors": [...],
//    "ignoredConsoleErrors": [favicon.ico 404s, which the browser requests on its own; the one "Failed to load
//    resource: ... 4xx" of the deliberate wrong-password import and the one of the deliberately incomplete
//    provider (P1) (a second one is a console error)],
//    "screenshots": {"dashboard", "applicationSecret", "applications", "keys", "sessions", "token", "audit",
//    with --oidc-issuer "provider", "providers", with --saml-metadata-url "samlProvider"},
//    "elapsedMs"}
//   exit 0: the run completed; the values are for the caller (the Rust test) to assert.
//   {"ok": false, "error", "step", "url", "partial" (what was recorded before the failure), "consoleErrors",
//    "pageErrors", "dialogs", "elapsedMs"}, exit 1: any failure, timeouts included (hard limit HARD_LIMIT_MS
//   for the whole run). Exit 2: bad usage. The browser is closed and its temporary profile removed in every case.
//
// Chromium is launched as browser-login.mjs does: a persistent context on a fresh directory, no sandbox (root),
// no GPU, no QUIC, no background networking; clipboard permissions granted to the STS origin.

import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const started = Date.now();
const STEP_TIMEOUT_MS = 10_000; // one wait, click or navigation
const STEP_LIMIT_MS = 30_000; // one numbered step
const COPIED_TIMEOUT_MS = 5_000;
const HARD_LIMIT_MS = 120_000; // whole run; a hung browser must not hang the test
const WRONG_PASSWORD = 'wrong-password';
const APP_ID = 'web-a';
const APP_NAME = 'Web <b>A</b>';
const APP_REDIRECT = 'https://web-a.example.com/cb';
const TOKEN_NAME = 'ci';
const PROVIDER_ID = 'corp';
const PROVIDER_NAME = 'Corp <i>SSO</i>';
const PREVIEW_CLAIMS = '{"groups": ["sts-admins"]}';
const SAML_PROVIDER_ID = 'corp-saml';
const SAML_PROVIDER_NAME = 'Corp SAML';
const SAML_MD_NS = 'urn:oasis:names:tc:SAML:2.0:metadata';
// The [[providers]] entry of P1 (without the header), as the form takes it.
function providerSource(issuer) {
  return [
    `id = ${JSON.stringify(PROVIDER_ID)}`,
    'type = "oidc"',
    `display_name = ${JSON.stringify(PROVIDER_NAME)}`,
    `issuer = ${JSON.stringify(issuer)}`,
    'client_id = "sts"',
    'scopes = ["openid", "email", "profile", "groups"]',
    '',
    '[roles]',
    'claim = "groups"',
    'rules = [ { match = "sts-admins", roles = ["admin"] } ]',
    'default_roles = ["user"]',
    '',
  ].join('\n');
}

// The [[providers]] entry of S1 (without the header), as the form takes it.
function samlProviderSource(metadataUrl) {
  return [
    `id = ${JSON.stringify(SAML_PROVIDER_ID)}`,
    'type = "saml"',
    `display_name = ${JSON.stringify(SAML_PROVIDER_NAME)}`,
    `idp_metadata_url = ${JSON.stringify(metadataUrl)}`,
    '',
    '[roles]',
    'claim = "groups"',
    'rules = [ { match = "sts-admins", roles = ["admin"] } ]',
    'default_roles = ["user"]',
    '',
  ].join('\n');
}

let printed = false;
function emit(obj, code) {
  if (printed) return;
  printed = true;
  process.stdout.write(`${JSON.stringify({ ...obj, elapsedMs: Date.now() - started })}\n`);
  process.exitCode = code;
}

const USAGE = 'usage: node admin-browser.mjs --sts URL --user NAME --password PW --out DIR --keystore P12FILE '
  + '--keystore-password PW [--sso-session-user NAME] [--oidc-issuer URL --oidc-secret S --login-user NAME] '
  + '[--saml-metadata-url URL]';
let args;
try {
  ({ values: args } = parseArgs({
    options: {
      sts: { type: 'string' },
      user: { type: 'string' },
      password: { type: 'string' },
      out: { type: 'string' },
      keystore: { type: 'string' },
      'keystore-password': { type: 'string' },
      'sso-session-user': { type: 'string' },
      'oidc-issuer': { type: 'string' },
      'oidc-secret': { type: 'string' },
      'login-user': { type: 'string' },
      'saml-metadata-url': { type: 'string' },
    },
    strict: true,
  }));
  for (const k of ['sts', 'user', 'password', 'out', 'keystore', 'keystore-password']) {
    if (!args[k]) throw new Error(`--${k} is required`);
  }
  new URL(args.sts); // eslint-disable-line no-new
  const oidc = ['oidc-issuer', 'oidc-secret', 'login-user'];
  if (oidc.some((k) => args[k] !== undefined)) {
    for (const k of oidc) if (!args[k]) throw new Error(`--${k} is required with ${oidc.map((o) => `--${o}`).join(', ')}`);
    new URL(args['oidc-issuer']); // eslint-disable-line no-new
  }
  if (args['saml-metadata-url'] !== undefined) {
    if (!args['saml-metadata-url']) throw new Error('--saml-metadata-url must not be empty');
    new URL(args['saml-metadata-url']); // eslint-disable-line no-new
  }
  const st = await fs.stat(args.keystore).catch(() => null);
  if (!st || !st.isFile()) throw new Error(`--keystore ${args.keystore}: no such file`);
} catch (e) {
  console.error(`admin-browser: ${e.message}`);
  console.error(USAGE);
  emit({ ok: false, error: `usage: ${e.message}` }, 2);
  process.exit(2);
}

const sts = args.sts.replace(/\/+$/, '');
const stsOrigin = new URL(sts).origin;
const keystore = path.resolve(args.keystore);
const consoleErrors = [];
const ignoredConsoleErrors = [];
const pageErrors = [];
const dialogs = [];
const out = { ok: true };
const stepMs = {};
let context;
let page;
let profileDir;
let stepName = 'launch';
// Deliberate HTTP errors: path -> how many "Failed to load resource: ... 4xx" console errors to ignore (see the
// console handler).
const expectedHttpErrors = new Map();
const withProviders = args['oidc-issuer'] !== undefined;
const withSaml = args['saml-metadata-url'] !== undefined;

async function cleanup() {
  if (context) {
    const c = context;
    context = undefined;
    let timer;
    await Promise.race([
      c.close().catch(() => {}),
      new Promise((r) => { timer = setTimeout(r, 10_000); }),
    ]);
    clearTimeout(timer);
  }
  if (profileDir) {
    await fs.rm(profileDir, { recursive: true, force: true }).catch(() => {});
    profileDir = undefined;
  }
}

function failure(error) {
  const { ok, ...partial } = out; // eslint-disable-line no-unused-vars
  return {
    ok: false, error, step: stepName, url: safeUrl(), partial: { ...partial, stepMs }, consoleErrors, pageErrors,
    ignoredConsoleErrors, dialogs,
  };
}

const hardLimit = setTimeout(async () => {
  emit(failure(`hard limit of ${HARD_LIMIT_MS} ms reached`), 1);
  await cleanup();
  process.exit(1);
}, HARD_LIMIT_MS);
hardLimit.unref();

function safeUrl() {
  try {
    return page ? page.url() : null;
  } catch {
    return null;
  }
}

function firstLine(e) {
  return String(e && e.message ? e.message : e).split('\n')[0];
}

function pathOf(u) {
  try {
    return new URL(u).pathname;
  } catch {
    return null;
  }
}

// Run one numbered step with its own time limit.
async function step(name, fn) {
  stepName = name;
  const t0 = Date.now();
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`step ${name} took longer than ${STEP_LIMIT_MS} ms`)), STEP_LIMIT_MS);
  });
  try {
    await Promise.race([fn(), limit]);
  } finally {
    clearTimeout(timer);
  }
  stepMs[name] = Date.now() - t0;
}

async function text(selector) {
  const t = await page.locator(selector).first().textContent({ timeout: STEP_TIMEOUT_MS });
  return t === null ? null : t.trim();
}

async function textIfPresent(selector) {
  if ((await page.locator(selector).count()) === 0) return null;
  return text(selector);
}

async function heading() {
  return (await textIfPresent('h1')) ?? '';
}

function num(s) {
  if (s === null || !/^-?\d+$/.test(s)) return null;
  return Number(s);
}

async function goto(urlPath) {
  const resp = await page.goto(`${sts}${urlPath}`, { waitUntil: 'load' });
  return resp ? resp.status() : null;
}

// Click something that submits a form (or follows a link) and wait for the resulting page to load; the status
// of the final document (after redirects).
async function submit(locator) {
  const [resp] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load', timeout: STEP_TIMEOUT_MS }),
    locator.click({ timeout: STEP_TIMEOUT_MS }),
  ]);
  return resp ? resp.status() : null;
}

// The console's message page (message.html): title and text, or an error when this is not one.
async function messagePage(what, status) {
  if ((await page.locator('#message').count()) === 0) {
    throw new Error(`${what}: no #message on the result page (HTTP ${status}, h1 ${JSON.stringify(await heading())}, `
      + `at ${safeUrl()})`);
  }
  return { status, title: await heading(), message: await text('#message') };
}

// On a page that should be something else: the console's own error text, if it shows one.
async function unexpected(what, status) {
  const msg = (await textIfPresent('#message')) ?? (await textIfPresent('#error'));
  return new Error(`${what} (HTTP ${status}, h1 ${JSON.stringify(await heading())}`
    + `${msg === null ? '' : `, says ${JSON.stringify(msg)}`}, at ${safeUrl()})`);
}

function kidOf(message) {
  const m = /the new active key is ([^\s;,]+)/.exec(message ?? '');
  return m ? m[1] : null;
}

// Is the clipboard usable at all in this browser, independently of the page's own script?
async function clipboardProbe() {
  try {
    return await page.evaluate(async () => {
      if (!navigator.clipboard) return { works: false, why: 'navigator.clipboard is undefined' };
      const probe = `probe-${Math.random()}`;
      try {
        await navigator.clipboard.writeText(probe);
        const back = await navigator.clipboard.readText();
        return back === probe ? { works: true } : { works: false, why: 'readText did not return what writeText wrote' };
      } catch (e) {
        return { works: false, why: `${e.name}: ${e.message}` };
      }
    });
  } catch (e) {
    return { works: false, why: `evaluate failed: ${firstLine(e)}` };
  }
}

async function keyRows() {
  return page.$$eval('#keys tbody tr', (rows) => rows.map((r) => {
    const c = r.querySelectorAll('td');
    return { kid: (c[0]?.textContent ?? '').trim(), state: (c[3]?.textContent ?? '').trim() };
  }));
}

async function sessionRowCount() {
  if ((await page.locator('#no-sessions').count()) > 0) return 0;
  if ((await page.locator('#sessions').count()) === 0) {
    throw await unexpected('/admin/sessions shows neither #sessions nor #no-sessions', null);
  }
  return page.locator('#sessions tbody tr').count();
}

// Accept every confirm dialog (the data-confirm forms), recording them; count them to tell whether a click
// went through admin.js's window.confirm.
async function withDialogCount(fn) {
  const before = dialogs.length;
  const r = await fn();
  return { result: r, confirmShown: dialogs.slice(before).some((d) => d.type === 'confirm') };
}

async function run() {
  const { chromium } = await import('playwright-core');
  await fs.mkdir(args.out, { recursive: true });
  profileDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sts-admin-browser-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
    ignoreHTTPSErrors: true,
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stsOrigin });
  // Every page of the context (CSP violations arrive as console errors). The browser's own /favicon.ico request
  // logs "Failed to load resource: ... 404" when the server has none; that is not the page's doing.
  context.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const loc = msg.location();
    const line = loc && loc.url ? `${msg.text()} (${loc.url}:${loc.lineNumber})` : msg.text();
    let favicon = false;
    try {
      favicon = Boolean(loc && loc.url) && new URL(loc.url).pathname === '/favicon.ico';
    } catch {}
    // The deliberate wrong-password import (and the incomplete provider of P1) is answered with an HTTP error,
    // which Chromium logs as "Failed to load resource: ... status of 400": expected once, so ignored once.
    let expected = false;
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text())) {
      let p = null;
      try {
        p = new URL(loc.url).pathname;
      } catch {}
      const left = expectedHttpErrors.get(p) ?? 0;
      if (left > 0) {
        expected = true;
        expectedHttpErrors.set(p, left - 1);
      }
    }
    (favicon || expected ? ignoredConsoleErrors : consoleErrors).push(line);
  });
  context.on('weberror', (err) => {
    const e = err.error();
    pageErrors.push(e && e.message ? e.message : String(e));
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  page.on('dialog', (d) => {
    dialogs.push({ type: d.type(), message: d.message(), url: safeUrl() });
    d.accept().catch(() => {});
  });
  const shot = (name) => path.resolve(args.out, name);
  const screenshots = {
    dashboard: shot('admin-dashboard.png'),
    applicationSecret: shot('admin-application-secret.png'),
    applications: shot('admin-applications.png'),
    keys: shot('admin-keys.png'),
    sessions: shot('admin-sessions.png'),
    token: shot('admin-token.png'),
    audit: shot('admin-audit.png'),
  };
  if (withProviders) {
    screenshots.provider = shot('admin-provider.png');
    screenshots.providers = shot('admin-providers.png');
  }
  if (withSaml) screenshots.samlProvider = shot('admin-provider-saml.png');

  // 1. sign in
  await step('1-login', async () => {
    await goto('/admin');
    out.redirectedToLogin = pathOf(page.url()) === '/admin/login';
    if (!out.redirectedToLogin) throw await unexpected('/admin without a session did not end on /admin/login', null);
    await page.locator('#username').fill(args.user);
    await page.locator('#password').fill(args.password);
    const status = await submit(page.locator('#sign-in'));
    const h1 = await heading();
    if (h1 !== 'Dashboard') throw await unexpected(`sign-in did not reach the dashboard (h1 ${JSON.stringify(h1)})`, status);
    out.dashboard = {
      activeKid: await textIfPresent('#active-kid'),
      providers: num(await text('#count-providers')),
      clients: num(await text('#count-clients')),
      sessions: num(await text('#count-sessions')),
      health: await textIfPresent('#health'),
      adminUser: await textIfPresent('#admin-user'),
      url: page.url(),
    };
    await page.screenshot({ path: screenshots.dashboard, fullPage: true });
  });

  // P1-P4 (only with --oidc-issuer): an identity provider added in the console, a real login through it, the
  // role-mapping preview, the list.
  if (withProviders) {
    const providerPath = `/admin/providers/${PROVIDER_ID}`;
    const source = providerSource(args['oidc-issuer']);

    // P1. add a provider: first without its client secret (refused), then with it
    await step('P1-provider-create', async () => {
      await goto('/admin/providers');
      if ((await page.locator('#provider-source').count()) === 0) throw await unexpected('/admin/providers has no #provider-source', null);
      await page.locator('#provider-source').fill(source);
      await page.locator('#provider-secret').fill('');
      expectedHttpErrors.set('/admin/providers', 1);
      let status = await submit(page.locator('#save-provider'));
      const noSecret = await messagePage('saving a provider without a client secret', status);
      expectedHttpErrors.delete('/admin/providers');
      out.providerNoSecret = { ...noSecret, mentionsSecret: /client.?secret/i.test(noSecret.message ?? '') };

      await goto('/admin/providers');
      await page.locator('#provider-source').fill(source);
      await page.locator('#provider-secret').fill(args['oidc-secret']);
      status = await submit(page.locator('#save-provider'));
      if (pathOf(page.url()) !== providerPath || (await page.locator('#callback-url').count()) === 0) {
        throw await unexpected(`saving the provider did not lead to ${providerPath}`, status);
      }
      const h1 = await page.$eval('h1', (el) => {
        const c = el.cloneNode(true);
        for (const s of c.querySelectorAll('small')) s.remove();
        return { name: c.textContent.trim(), italic: el.querySelectorAll('i').length };
      });
      const link = page.locator('a#test-login');
      const hasLink = (await link.count()) > 0;
      out.providerCreated = {
        url: page.url(),
        callbackUrl: await text('#callback-url'),
        nameHeading: h1.name,
        nameEscaped: h1.name === PROVIDER_NAME && h1.italic === 0,
        italicElements: h1.italic,
        testLoginHref: hasLink ? await link.evaluate((a) => a.href) : null,
        testLoginTarget: hasLink ? await link.getAttribute('target') : null,
      };
    });

    // P2. a real login through it (second page, same context), then the provider page's last login
    await step('P2-provider-login', async () => {
      const href = out.providerCreated.testLoginHref;
      if (href === null) throw await unexpected(`${providerPath} has no a#test-login`, null);
      const u = new URL(href);
      if (u.origin !== stsOrigin || u.pathname !== '/sso/login' || u.searchParams.get('provider') !== PROVIDER_ID) {
        throw new Error(`a#test-login points to ${href}, not ${sts}/sso/login?provider=${PROVIDER_ID}...`);
      }
      u.searchParams.set('login_hint', args['login-user']);
      out.providerLogin = {};
      const second = await context.newPage();
      try {
        second.setDefaultTimeout(STEP_TIMEOUT_MS);
        second.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
        const resp = await second.goto(u.toString(), { waitUntil: 'load' });
        if (pathOf(second.url()) !== '/sso/me') {
          await second.waitForURL((x) => x.pathname === '/sso/me', { waitUntil: 'load' }).catch(() => {});
        }
        out.providerLogin.loginUrl = second.url();
        if (pathOf(second.url()) !== '/sso/me') {
          const body = ((await second.locator('body').textContent().catch(() => '')) ?? '').trim().slice(0, 300);
          throw new Error(`the login through ${PROVIDER_ID} ended on ${second.url()} (HTTP ${resp ? resp.status() : null}), `
            + `not /sso/me: ${JSON.stringify(body)}`);
        }
        const email = second.locator('#email');
        out.providerLogin.meEmail = (await email.count()) > 0 ? ((await email.first().textContent()) ?? '').trim() : null;
      } finally {
        await second.close().catch(() => {});
      }

      await goto(providerPath);
      const until = Date.now() + STEP_TIMEOUT_MS;
      while ((await page.locator('#last-outcome').count()) === 0) {
        if (Date.now() > until) throw await unexpected(`${providerPath} shows no #last-outcome after the login`, null);
        await page.waitForTimeout(200);
        await goto(providerPath);
      }
      const claimsText = (await textIfPresent('#last-claims')) ?? '';
      let claims;
      try {
        claims = JSON.parse(claimsText);
      } catch {
        claims = claimsText;
      }
      const email = claims && typeof claims === 'object' && typeof claims.email === 'string' ? claims.email : null;
      Object.assign(out.providerLogin, {
        outcome: await text('#last-outcome'),
        subject: await textIfPresent('#last-subject'),
        roles: await textIfPresent('#last-roles'),
        external: await textIfPresent('#last-external'),
        claims,
        claimsEmail: email,
        claimsHaveEmail: /^[^\s@]+@[^\s@]+$/.test(out.providerLogin.meEmail ?? '')
          && claimsText.includes(out.providerLogin.meEmail),
      });
      await page.screenshot({ path: screenshots.provider, fullPage: true });
    });

    // P3. role-mapping preview
    await step('P3-provider-preview', async () => {
      await page.locator('#sample-claims').fill(PREVIEW_CLAIMS);
      const status = await submit(page.locator('#preview'));
      const error = await textIfPresent('form[action$="/preview"] .error');
      if ((await page.locator('#preview-roles').count()) === 0 && error === null) {
        throw await unexpected('the preview showed neither #preview-roles nor an error', status);
      }
      out.providerPreview = {
        roles: await textIfPresent('#preview-roles'),
        external: await textIfPresent('#preview-external'),
        error,
      };
    });

    // P4. the list
    await step('P4-providers', async () => {
      await goto('/admin/providers');
      if ((await page.locator('#providers').count()) === 0) throw await unexpected('/admin/providers has no #providers table', null);
      await page.screenshot({ path: screenshots.providers, fullPage: true });
    });
  }

  // S1 (only with --saml-metadata-url): a SAML provider added in the console; its ACS URL and SP metadata
  if (withSaml) {
    await step('S1-saml-provider', async () => {
      const samlPath = `/admin/providers/${SAML_PROVIDER_ID}`;
      await goto('/admin/providers');
      if ((await page.locator('#provider-source').count()) === 0) throw await unexpected('/admin/providers has no #provider-source', null);
      await page.locator('#provider-source').fill(samlProviderSource(args['saml-metadata-url']));
      await page.locator('#provider-secret').fill('');
      const status = await submit(page.locator('#save-provider'));
      if (pathOf(page.url()) !== samlPath || (await page.locator('#callback-url').count()) === 0) {
        throw await unexpected(`saving the SAML provider did not lead to ${samlPath}`, status);
      }
      const link = page.locator('a#sp-metadata');
      const spMetadataUrl = (await link.count()) > 0 ? await link.first().evaluate((a) => a.href) : null;
      out.samlProvider = {
        url: page.url(),
        callbackUrl: await text('#callback-url'),
        spMetadataUrl,
        state: await textIfPresent('#provider-state'),
        metadataOk: false,
        metadataNote: null,
      };
      await page.screenshot({ path: screenshots.samlProvider, fullPage: true });

      // The SP metadata: a fetch() inside the page would be refused by the console's CSP (no connect-src), so
      // it goes through the browser context's request API, which sends the context's cookies like a
      // same-origin fetch would; only to the STS's own origin.
      let note = null;
      if (spMetadataUrl === null) {
        note = `${samlPath} has no a#sp-metadata`;
      } else if (new URL(spMetadataUrl).origin !== stsOrigin) {
        note = `a#sp-metadata points to another origin (${spMetadataUrl}); not fetched`;
      } else {
        let resp = null;
        try {
          resp = await page.request.get(spMetadataUrl, { timeout: STEP_TIMEOUT_MS, maxRedirects: 0, failOnStatusCode: false });
        } catch (e) {
          note = `fetching ${spMetadataUrl} failed: ${firstLine(e)}`;
        }
        if (resp !== null) {
          const contentType = resp.headers()['content-type'] ?? '';
          const body = await resp.text().catch(() => '');
          const parsed = await page.evaluate(({ xml, ns }) => {
            const doc = new DOMParser().parseFromString(xml, 'application/xml');
            if (doc.getElementsByTagName('parsererror').length > 0) return { xml: false, sp: 0, root: null };
            return {
              xml: true,
              sp: doc.getElementsByTagNameNS(ns, 'SPSSODescriptor').length,
              root: doc.documentElement ? doc.documentElement.localName : null,
            };
          }, { xml: body, ns: SAML_MD_NS });
          if (resp.status() !== 200) {
            note = `${spMetadataUrl} answered HTTP ${resp.status()}: ${JSON.stringify(body.slice(0, 200))}`;
          } else if (!/[/+]xml(\s*;|$)/i.test(contentType.trim())) {
            note = `${spMetadataUrl} answered with Content-Type ${JSON.stringify(contentType)}, not XML`;
          } else if (!parsed.xml) {
            note = `${spMetadataUrl} is not well-formed XML: ${JSON.stringify(body.slice(0, 200))}`;
          } else if (parsed.sp === 0 || !body.includes('SPSSODescriptor')) {
            note = `${spMetadataUrl} has no SPSSODescriptor (root element ${JSON.stringify(parsed.root)})`;
          }
        }
      }
      out.samlProvider.metadataOk = note === null;
      out.samlProvider.metadataNote = note;
    });
  }

  // 2. register an application; its secret; the list (escaping)
  await step('2-applications', async () => {
    await goto('/admin/applications');
    await page.locator('#app-id').fill(APP_ID);
    await page.locator('#app-name').fill(APP_NAME);
    await page.locator('#app-type').selectOption('confidential');
    await page.locator('#app-redirects').fill(APP_REDIRECT);
    const status = await submit(page.locator('#register'));
    if ((await page.locator('#secret').count()) === 0) throw await unexpected('registering an application showed no #secret', status);
    const secret = await text('#secret');
    out.appSecretPrefixOk = secret.startsWith('stscs_');

    // the copy button
    const button = page.locator('button[data-copy="secret"]');
    await button.click();
    let copied = true;
    try {
      await page.waitForFunction(
        () => document.querySelector('button[data-copy="secret"]')?.textContent.trim() === 'Copied',
        null,
        { timeout: COPIED_TIMEOUT_MS, polling: 20 },
      );
    } catch {
      copied = false;
    }
    const copyResult = { button: ((await button.textContent()) ?? '').trim(), copied, clipboardMatches: null, note: null };
    if (copied) {
      try {
        const clip = await page.evaluate(() => navigator.clipboard.readText());
        copyResult.clipboardMatches = clip === secret;
        if (!copyResult.clipboardMatches) copyResult.note = `the clipboard holds ${clip.length} other characters, not the secret`;
      } catch (e) {
        copyResult.note = `the button said Copied but readText failed: ${firstLine(e)}`;
      }
    } else {
      const probe = await clipboardProbe();
      if (probe.works) {
        copyResult.note = `the button never said "Copied" within ${COPIED_TIMEOUT_MS} ms, though the clipboard `
          + 'works in this browser (is /admin/static/admin.js loaded? see consoleErrors)';
      } else {
        copyResult.copied = null;
        copyResult.note = `the clipboard does not work in this headless browser: ${probe.why}`;
      }
    }
    out.copyResult = copyResult;
    await page.screenshot({ path: screenshots.applicationSecret, fullPage: true });

    await goto('/admin/applications');
    if ((await page.locator('#applications').count()) === 0) throw await unexpected('/admin/applications has no #applications table', null);
    const cells = await page.$$eval('#applications tbody tr', (rows, id) => {
      for (const r of rows) {
        const c = r.querySelectorAll('td');
        if ((c[0]?.textContent ?? '').trim() === id) return { found: true, name: c[1] ? c[1].textContent : null };
      }
      return { found: false, name: null };
    }, APP_ID);
    if (!cells.found) throw new Error(`${APP_ID} is not in #applications after registering it`);
    out.appNameCell = cells.name === null ? null : cells.name.trim();
    out.appBoldElements = await page.locator('#applications b').count();
    out.appNameEscaped = out.appNameCell === APP_NAME && out.appBoldElements === 0;
    await page.screenshot({ path: screenshots.applications, fullPage: true });
  });

  // 3. signing keys: import (wrong, right password), regenerate
  await step('3-keys', async () => {
    await goto('/admin/keys');
    if ((await page.locator('#keys').count()) === 0) throw await unexpected('/admin/keys has no #keys table', null);
    out.keysBefore = await keyRows();
    await page.screenshot({ path: screenshots.keys, fullPage: true });

    await page.locator('#keystore').setInputFiles(keystore);
    await page.locator('#keystore-password').fill(WRONG_PASSWORD);
    expectedHttpErrors.set('/admin/keys/import', 1);
    let status = await submit(page.locator('#import'));
    out.importWrong = await messagePage('import with a wrong password', status);
    expectedHttpErrors.delete('/admin/keys/import');

    await goto('/admin/keys');
    await page.locator('#keystore').setInputFiles(keystore);
    await page.locator('#keystore-password').fill(args['keystore-password']);
    status = await submit(page.locator('#import'));
    const right = await messagePage('import with the right password', status);
    out.importRight = { ...right, kid: kidOf(right.message) };

    await goto('/admin/keys');
    const { result: regStatus, confirmShown } = await withDialogCount(() => submit(page.locator('#regenerate')));
    const reg = await messagePage('regenerate', regStatus);
    out.regenerate = { ...reg, kid: kidOf(reg.message), confirmShown };

    await goto('/admin/keys');
    out.keysAfter = await keyRows();
  });

  // 4. SSO sessions
  await step('4-sessions', async () => {
    await goto('/admin/sessions');
    out.sessionsBefore = await sessionRowCount();
    await page.screenshot({ path: screenshots.sessions, fullPage: true });
    out.sessionsAfter = null;
    out.sessionRevoked = null;
    out.sessionNote = null;
    if (out.sessionsBefore === 0) {
      out.sessionNote = 'no session to revoke';
      return;
    }
    // The first cell is "username <small>(subject)</small>".
    const rows = await page.$$eval('#sessions tbody tr', (trs) => trs.map((r) => {
      const cell = r.querySelector('td');
      const small = cell?.querySelector('small');
      const all = (cell?.textContent ?? '').trim();
      const sub = small ? small.textContent.trim() : '';
      const user = sub && all.endsWith(sub) ? all.slice(0, all.length - sub.length).trim() : all;
      return { user, subject: sub.replace(/^\((.*)\)$/, '$1') };
    }));
    const want = args['sso-session-user'];
    const index = want === undefined ? 0 : rows.findIndex((r) => r.user === want || r.subject === want);
    if (index < 0) {
      out.sessionNote = `no row of user ${JSON.stringify(want)} (rows: ${JSON.stringify(rows)}); nothing revoked`;
      return;
    }
    const button = page.locator('#sessions tbody tr').nth(index).locator('button', { hasText: 'Revoke' });
    const { result: status, confirmShown } = await withDialogCount(() => submit(button));
    if (pathOf(page.url()) !== '/admin/sessions') throw await unexpected('revoking a session did not lead back to /admin/sessions', status);
    out.sessionRevoked = { ...rows[index], confirmShown };
    out.sessionsAfter = await sessionRowCount();
  });

  // 5. an admin API token
  await step('5-tokens', async () => {
    await goto('/admin/tokens');
    await page.locator('#token-name').fill(TOKEN_NAME);
    const status = await submit(page.locator('#create-token'));
    if ((await page.locator('#secret').count()) === 0) throw await unexpected('creating an API token showed no #secret', status);
    out.apiToken = await text('#secret');
    out.apiTokenPrefixOk = out.apiToken.startsWith('stsadm_');
    await page.screenshot({ path: screenshots.token, fullPage: true });
  });

  // 6. audit log
  await step('6-audit', async () => {
    await goto('/admin/audit');
    if ((await page.locator('#audit').count()) === 0) throw await unexpected('/admin/audit has no #audit table', null);
    await page.screenshot({ path: screenshots.audit, fullPage: true });
    out.auditActions = await page.$$eval('#audit tbody tr', (rows) => rows.slice(0, 20).map((r) => {
      const c = r.querySelectorAll('td');
      const code = c[2]?.querySelector('code') ?? c[1]?.querySelector('code');
      return code ? code.textContent.trim() : null;
    }));
  });

  // 7. sign out
  await step('7-logout', async () => {
    const status = await submit(page.locator('header form.logout button'));
    out.logoutUrl = page.url();
    if (pathOf(out.logoutUrl) !== '/admin/login') throw await unexpected('Sign out did not land on /admin/login', status);
    await goto('/admin');
    out.afterLogoutUrl = page.url();
    out.afterLogoutPath = pathOf(out.afterLogoutUrl);
  });
  stepName = 'done';

  return {
    ...out,
    dialogs,
    stepMs,
    consoleErrors,
    ignoredConsoleErrors,
    pageErrors,
    screenshots,
  };
}

try {
  const result = await run();
  await cleanup();
  emit(result, 0);
} catch (e) {
  const fail = failure(firstLine(e));
  if (page && args.out) {
    await page.screenshot({ path: path.resolve(args.out, 'failure.png'), fullPage: true, timeout: 5_000 })
      .catch(() => {});
  }
  await cleanup();
  emit(fail, 1);
}
clearTimeout(hardLimit);
