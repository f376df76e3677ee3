// A real browser through single sign-on across two relying parties (demo-app.mjs) of the STS as OpenID Provider:
// Debian's Chromium, headless, driven by playwright-core (no browser download), launched like browser-login.mjs.
//
// usage: node sso-browser.mjs --app-a URL --app-b URL --sts URL --idp URL --out DIR
//   --app-a, --app-b  the two demo apps' base URLs (their READY lines), e.g. http://127.0.0.1:40001
//   --sts             the STS's base URL (issuer), e.g. https://127.0.0.1:8443; its certificate is not checked
//                     (ignoreHTTPSErrors: the tests use a self-signed one)
//   --idp             the upstream IdP's base URL (only its origin is used)
//   DIR               where the screenshots go (created if missing); on failure failure.png, when a page was open
//
// Every main-frame navigation request is recorded per step, redirect hops included ("navs", from the request
// event: a 302 hop commits nothing, so framenavigated alone would miss STS -> IdP redirects), and so is every
// committed main-frame URL ("committed", framenavigated). "Visited the IdP" means some nav of the step had the
// IdP's origin; "reached STS login" means some nav had the STS origin and path <sts path>/sso/login.
//
// Steps (each wait at most 20 s):
//   1. app A "/": A -> STS /sso/authorize -> /sso/login -> IdP (automatic login) -> STS callback -> STS
//      authorize -> A /callback -> A "/"; wait for #user (or #error: failure) on A; read #app, #user,
//      #username, #roles li; GET /api/state from the page; screenshot DIR/sso-app-a.png.
//   2. app B "/": the same without the IdP (single sign-on); read the same; GET /api/state;
//      screenshot DIR/sso-app-b.png; bVisitedIdp, bReachedStsLogin.
//   3. app A "/" again (must still show #user), then in the page (same-origin fetch): GET /api/state,
//      POST /api/refresh, GET /api/userinfo, GET /api/state.
//   4. app A /logout -> STS end_session -> A /logged-out; wait for #logged-out; read it and #state-ok;
//      screenshot DIR/sso-logged-out.png.
//   5. From here on every request of the page to the IdP's origin is answered by this script with a stub page
//      (CDP Fetch; redirect hops included), so that a still-living IdP session cannot log the browser back in
//      at the STS and step 6 sees the STS's state as step 4 left it. App B "/": wait until a nav reaches the
//      IdP origin or STS /sso/login (stop waiting once seen, then let the navigation settle), or the chain
//      ends elsewhere (e.g. B still shows #user: bAfterLogoutStillSignedIn); 20 s.
//   6. The same for app A.
//
// Prints exactly ONE line of JSON on stdout:
//   {"ok": true,
//    "aHeading", "aUser", "aUsername", "aRoles": [...], "aUrl", "aNavs", "aCommitted", "aVisitedIdp",
//    "aReachedStsLogin", "aState" (A's /api/state after step 1),
//    "bHeading", "bUser", "bUsername", "bRoles", "bUrl", "bNavs", "bCommitted", "bVisitedIdp", "bReachedStsLogin",
//    "bState",
//    "apiNavs", "aStateBeforeRefresh", "refreshStatus", "refresh" (POST /api/refresh's JSON), "userinfoStatus",
//    "userinfo" (GET /api/userinfo's JSON), "aStateAfterRefresh",
//    "logoutHeading", "stateOk" (true when #state-ok says "true"), "stateOkText", "logoutUrl", "logoutNavs",
//    "logoutCommitted", "logoutVisitedSts",
//    "bAfterLogoutVisitedIdp", "bAfterLogoutReachedStsLogin", "bAfterLogoutStillSignedIn", "bAfterLogoutUrl",
//    "bAfterLogoutNavs", "bAfterLogoutCommitted", "bAfterLogoutNote" (null, or why the wait ended without
//    either), and the same six "aAfterLogout..." for step 6,
//    "blockedIdpRequests": [document URLs answered by the stub],
//    "screenshots": {"appA", "appB", "loggedOut"},
//    "consoleErrors": ["text (url:line)", ...], "pageErrors": [...],
//    "ignoredConsoleErrors": [favicon.ico 404s, which the browser requests on its own], "elapsedMs"}
//   exit 0: the run completed; the values are for the caller (the Rust test) to assert.
//   {"ok": false, "error", "step", "url", "navs" (of the failing step), "consoleErrors", "pageErrors",
//    "elapsedMs"}, exit 1: any failure, timeouts included (hard limit 120 s for the whole run). Exit 2: bad
//   usage. The browser is closed and its temporary profile removed in every case.
//
// Chromium is launched as browser-login.mjs does: a persistent context on a fresh directory, no sandbox (root),
// no GPU, no QUIC, no background networking; plus ignoreHTTPSErrors for the STS's self-signed certificate.

import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const started = Date.now();
const WAIT_MS = 20_000;
const STEP_TIMEOUT_MS = 10_000;
const SETTLE_MS = 2_000;
const HARD_LIMIT_MS = 120_000; // whole run; a hung browser must not hang the test

let printed = false;
function emit(obj, code) {
  if (printed) return;
  printed = true;
  process.stdout.write(`${JSON.stringify({ ...obj, elapsedMs: Date.now() - started })}\n`);
  process.exitCode = code;
}

let args;
let origins;
try {
  ({ values: args } = parseArgs({
    options: {
      'app-a': { type: 'string' },
      'app-b': { type: 'string' },
      sts: { type: 'string' },
      idp: { type: 'string' },
      out: { type: 'string' },
    },
    strict: true,
  }));
  for (const k of ['app-a', 'app-b', 'sts', 'idp', 'out']) {
    if (!args[k]) throw new Error(`--${k} is required`);
  }
  origins = {
    a: new URL(args['app-a']).origin,
    b: new URL(args['app-b']).origin,
    sts: new URL(args.sts).origin,
    idp: new URL(args.idp).origin,
  };
} catch (e) {
  console.error(`sso-browser: ${e.message}`);
  console.error('usage: node sso-browser.mjs --app-a URL --app-b URL --sts URL --idp URL --out DIR');
  emit({ ok: false, error: `usage: ${e.message}` }, 2);
  process.exit(2);
}

const appA = args['app-a'].replace(/\/+$/, '');
const appB = args['app-b'].replace(/\/+$/, '');
const stsLoginPath = new URL(`${args.sts.replace(/\/+$/, '')}/sso/login`).pathname;
const consoleErrors = [];
const ignoredConsoleErrors = [];
const pageErrors = [];
const blockedIdpRequests = [];
let context;
let page;
let profileDir;
let stepName = 'launch';
let cur = null; // the current step's record

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
  return { ok: false, error, step: stepName, url: safeUrl(), navs: cur ? cur.navs : [], consoleErrors, pageErrors };
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

function parse(u) {
  try {
    return new URL(u);
  } catch {
    return null;
  }
}
const isIdp = (u) => parse(u)?.origin === origins.idp;
const isStsLogin = (u) => {
  const p = parse(u);
  return p !== null && p.origin === origins.sts && p.pathname === stsLoginPath;
};
const isSts = (u) => parse(u)?.origin === origins.sts;

function startStep(name) {
  stepName = name;
  cur = { navs: [], committed: [], onNav: null };
  return cur;
}

function noteNav(url) {
  if (!cur) return;
  cur.navs.push(url);
  if (cur.onNav) cur.onNav(url);
}

function all(rec) {
  return [...rec.navs, ...rec.committed];
}

async function text(selector) {
  const t = await page.locator(selector).first().textContent({ timeout: STEP_TIMEOUT_MS });
  return t === null ? null : t.trim();
}

// Navigate to url and wait until the app at origin shows #user; #error anywhere ends the wait as a failure.
async function signedInAt(url, origin, what) {
  const deadline = Date.now() + WAIT_MS;
  try {
    await page.goto(url, { waitUntil: 'commit', timeout: WAIT_MS });
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out');
      await page.locator('#user, #error').first().waitFor({ state: 'visible', timeout: left });
      const here = parse(page.url());
      if (await page.locator('#error').first().isVisible()) {
        const msg = await text('#error').catch(() => '?');
        throw new Error(`error page at ${page.url()}: ${msg}`);
      }
      if (here && here.origin === origin) break;
      await page.waitForTimeout(100); // #user on some other origin: keep waiting for the app
    }
  } catch (e) {
    throw new Error(`${what} did not show #user (limit ${WAIT_MS} ms; at ${safeUrl()}): ${firstLine(e)}`);
  }
  return {
    heading: await text('#app'),
    user: await text('#user'),
    username: await text('#username'),
    roles: (await page.locator('#roles li').allTextContents()).map((r) => r.trim()),
    url: page.url(),
  };
}

async function getJson(method, urlPath) {
  return page.evaluate(async ([m, p]) => {
    const r = await fetch(p, { method: m, credentials: 'same-origin', headers: { accept: 'application/json' } });
    const body = await r.text();
    try {
      return { status: r.status, body: JSON.parse(body) };
    } catch {
      return { status: r.status, body: { nonJsonBody: body.slice(0, 500) } };
    }
  }, [method, urlPath]);
}

// Steps 5 and 6: does going to the app make the browser go upstream (STS login / IdP) again?
async function afterLogout(appUrl, origin) {
  const rec = cur;
  let seen;
  const seenP = new Promise((resolve) => { seen = resolve; });
  rec.onNav = (u) => { if (isIdp(u) || isStsLogin(u)) seen('upstream'); };
  let note = null;
  const nav = page.goto(`${appUrl}/`, { waitUntil: 'load', timeout: WAIT_MS })
    .then(() => 'loaded', (e) => { note = `navigation: ${firstLine(e)}`; return 'nav-error'; });
  let timer;
  const timeout = new Promise((r) => { timer = setTimeout(() => r('timeout'), WAIT_MS); });
  let outcome = await Promise.race([seenP, nav, timeout]);
  if (outcome === 'loaded') {
    // The first load may be a page that moves on by itself (a form post, a meta refresh): a short grace.
    const grace = new Promise((r) => setTimeout(() => r('settled'), SETTLE_MS));
    outcome = await Promise.race([seenP, grace]);
  }
  if (outcome === 'upstream') {
    // Seen; let the navigation come to rest (the IdP is stubbed, so it ends soon) without failing on it.
    const rest = new Promise((r) => setTimeout(r, SETTLE_MS));
    await Promise.race([nav, rest]);
  }
  clearTimeout(timer);
  await page.waitForLoadState('load', { timeout: SETTLE_MS }).catch(() => {});
  const navs = all(rec);
  const here = parse(page.url());
  let stillSignedIn = false;
  try {
    stillSignedIn = here !== null && here.origin === origin && (await page.locator('#user').count()) > 0;
  } catch {}
  if (outcome === 'timeout') note = note ?? `neither the IdP nor STS login was reached within ${WAIT_MS} ms`;
  else if (outcome !== 'upstream') note = note ?? `the navigation ended at ${page.url()} without reaching the IdP or STS login`;
  rec.onNav = null;
  return {
    visitedIdp: navs.some(isIdp),
    reachedStsLogin: navs.some(isStsLogin),
    stillSignedIn,
    url: page.url(),
    navs: rec.navs,
    committed: rec.committed,
    note: outcome === 'upstream' ? null : note,
  };
}

async function run() {
  const { chromium } = await import('playwright-core');
  await fs.mkdir(args.out, { recursive: true });
  profileDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sts-sso-browser-'));
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
  context.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const loc = msg.location();
    const line = loc && loc.url ? `${msg.text()} (${loc.url}:${loc.lineNumber})` : msg.text();
    let favicon = false;
    try {
      favicon = Boolean(loc && loc.url) && new URL(loc.url).pathname === '/favicon.ico';
    } catch {}
    (favicon ? ignoredConsoleErrors : consoleErrors).push(line);
  });
  context.on('weberror', (err) => {
    const e = err.error();
    pageErrors.push(e && e.message ? e.message : String(e));
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  page.on('request', (r) => {
    try {
      if (r.isNavigationRequest() && r.frame() === page.mainFrame()) noteNav(r.url());
    } catch {}
  });
  page.on('framenavigated', (f) => {
    if (cur && f === page.mainFrame()) cur.committed.push(f.url());
  });
  const shots = {
    appA: path.resolve(args.out, 'sso-app-a.png'),
    appB: path.resolve(args.out, 'sso-app-b.png'),
    loggedOut: path.resolve(args.out, 'sso-logged-out.png'),
  };
  const out = { ok: true };

  // 1. app A: the full chain through the IdP
  let rec = startStep('1-app-a');
  const a = await signedInAt(`${appA}/`, origins.a, 'app A');
  Object.assign(out, {
    aHeading: a.heading, aUser: a.user, aUsername: a.username, aRoles: a.roles, aUrl: a.url,
    aNavs: rec.navs, aCommitted: rec.committed, aVisitedIdp: all(rec).some(isIdp),
    aReachedStsLogin: all(rec).some(isStsLogin),
  });
  out.aState = (await getJson('GET', '/api/state')).body;
  await page.screenshot({ path: shots.appA, fullPage: true });

  // 2. app B: single sign-on, no IdP
  rec = startStep('2-app-b');
  const b = await signedInAt(`${appB}/`, origins.b, 'app B');
  Object.assign(out, {
    bHeading: b.heading, bUser: b.user, bUsername: b.username, bRoles: b.roles, bUrl: b.url,
    bNavs: rec.navs, bCommitted: rec.committed, bVisitedIdp: all(rec).some(isIdp),
    bReachedStsLogin: all(rec).some(isStsLogin),
  });
  out.bState = (await getJson('GET', '/api/state')).body;
  await page.screenshot({ path: shots.appB, fullPage: true });

  // 3. on app A: refresh and userinfo through A's API, from A's page
  rec = startStep('3-app-a-api');
  await signedInAt(`${appA}/`, origins.a, 'app A (again)');
  out.apiNavs = rec.navs;
  out.aStateBeforeRefresh = (await getJson('GET', '/api/state')).body;
  const refresh = await getJson('POST', '/api/refresh');
  out.refreshStatus = refresh.status;
  out.refresh = refresh.body;
  const userinfo = await getJson('GET', '/api/userinfo');
  out.userinfoStatus = userinfo.status;
  out.userinfo = userinfo.body;
  out.aStateAfterRefresh = (await getJson('GET', '/api/state')).body;

  // 4. sign out of A: RP-initiated logout at the STS, back to A /logged-out
  rec = startStep('4-logout');
  try {
    await page.goto(`${appA}/logout`, { waitUntil: 'commit', timeout: WAIT_MS });
    await page.locator('#logged-out').waitFor({ state: 'visible', timeout: WAIT_MS });
  } catch (e) {
    throw new Error(`logout did not reach #logged-out (limit ${WAIT_MS} ms; at ${safeUrl()}): ${firstLine(e)}`);
  }
  out.logoutHeading = await text('#logged-out');
  out.stateOkText = await text('#state-ok');
  out.stateOk = out.stateOkText === 'true';
  out.logoutUrl = page.url();
  out.logoutNavs = rec.navs;
  out.logoutCommitted = rec.committed;
  out.logoutVisitedSts = all(rec).some(isSts);
  await page.screenshot({ path: shots.loggedOut, fullPage: true });

  // 5./6. From now on the IdP is answered by a stub (see the header), then B and A again.
  const cdp = await context.newCDPSession(page);
  cdp.on('Fetch.requestPaused', (ev) => {
    const done = (p) => p.catch((e) => { if (context) console.error(`sso-browser: Fetch: ${firstLine(e)}`); });
    if (isIdp(ev.request.url)) {
      if (ev.resourceType === 'Document') {
        blockedIdpRequests.push(ev.request.url);
        if (cur && !cur.navs.includes(ev.request.url)) noteNav(ev.request.url);
      }
      const html = '<!doctype html><title>stopped</title><h1 id="sso-browser-stopped">sso-browser stopped the '
        + 'browser at the IdP</h1>';
      done(cdp.send('Fetch.fulfillRequest', {
        requestId: ev.requestId,
        responseCode: 200,
        responseHeaders: [{ name: 'Content-Type', value: 'text/html; charset=utf-8' }, { name: 'Cache-Control', value: 'no-store' }],
        body: Buffer.from(html).toString('base64'),
      }));
    } else {
      done(cdp.send('Fetch.continueRequest', { requestId: ev.requestId }));
    }
  });
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: `${origins.idp}/*`, requestStage: 'Request' }] });

  startStep('5-app-b-after-logout');
  const b2 = await afterLogout(appB, origins.b);
  Object.assign(out, {
    bAfterLogoutVisitedIdp: b2.visitedIdp, bAfterLogoutReachedStsLogin: b2.reachedStsLogin,
    bAfterLogoutStillSignedIn: b2.stillSignedIn, bAfterLogoutUrl: b2.url, bAfterLogoutNavs: b2.navs,
    bAfterLogoutCommitted: b2.committed, bAfterLogoutNote: b2.note,
  });

  startStep('6-app-a-after-logout');
  const a2 = await afterLogout(appA, origins.a);
  Object.assign(out, {
    aAfterLogoutVisitedIdp: a2.visitedIdp, aAfterLogoutReachedStsLogin: a2.reachedStsLogin,
    aAfterLogoutStillSignedIn: a2.stillSignedIn, aAfterLogoutUrl: a2.url, aAfterLogoutNavs: a2.navs,
    aAfterLogoutCommitted: a2.committed, aAfterLogoutNote: a2.note,
  });
  stepName = 'done';
  // The CDP session stays attached until the browser closes: detached, the stub would stop answering (a late
  // favicon request of the stub page would reach the IdP).

  return {
    ...out,
    blockedIdpRequests,
    screenshots: shots,
    consoleErrors,
    ignoredConsoleErrors,
    pageErrors,
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
