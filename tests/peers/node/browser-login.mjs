// A real browser as a test peer: Debian's Chromium, headless, driven by playwright-core (no browser download).
// It logs in through the STS's delegated login, reads /sso/me, uses its copy button, signs out.
//
// usage: node browser-login.mjs --sts URL --provider ID --user LOGIN_HINT --out DIR [--form]
//   URL         the STS's base URL, e.g. http://127.0.0.1:8080 (a trailing slash is ignored)
//   ID          provider id for /sso/login?provider=ID
//   LOGIN_HINT  passed as login_hint; the test IdP (oidc-idp.mjs) logs that user in without a form
//   DIR         where me.png goes (created if missing); on failure failure.png, when a page was open
//   --form      the provider has our own username and password form (LDAP): the script checks that the
//               username is prefilled with LOGIN_HINT, types the password from the environment variable
//               STS_TEST_PASSWORD (never a command-line argument), screenshots the form
//               (DIR/login-form.png), submits it, then goes on as above
//
// Steps: /sso/login?provider=ID&login_hint=LOGIN_HINT, follow the IdP round trip until the path is /sso/me
// (20 s); read #subject, #email, #username, #roles li, #access-token; click [data-copy="access-token"], wait
// for "Copied", read the clipboard in the page; full-page screenshot DIR/me.png; the page's Sign out button (the h1 must say
// "signed out"); then /sso/me again and record where the browser ends up.
//
// Prints exactly ONE line of JSON on stdout:
//   {"ok": true, "subject", "email", "username", "roles": [...], "token",
//    "clipboardMatches": true|false|null, "clipboardNote": null|"why null or false",
//    "consoleErrors": ["text (url:line)", ...], "pageErrors": ["message", ...],
//    "ignoredConsoleErrors": [favicon.ico 404s, which the browser requests on its own],
//    "afterLogoutPath", "afterLogoutUrl", "afterLogoutHasToken", "logoutHeading", "screenshot", "elapsedMs"}
//   exit 0: the values are for the caller (the Rust test) to assert.
//   {"ok": false, "error", "url", "consoleErrors", "pageErrors", "elapsedMs"}, exit 1: any failure, timeouts
//   included. Exit 2: bad usage. The browser is closed and its temporary profile removed in every case.
//
// clipboardMatches: true when navigator.clipboard.readText() equals the token text; false when it differs, or
// when the button never said "Copied" although the clipboard works in this browser (the page's script is
// broken, e.g. blocked by CSP: see consoleErrors); null, with clipboardNote, only when this browser's clipboard
// itself does not work (checked with a direct writeText/readText in the page).
//
// Chromium is launched as tests/peers/PEERS.md says: a persistent context on a fresh directory
// (--user-data-dir in args is rejected by Playwright), no sandbox (root), no GPU, no QUIC, and no background
// networking (the machine's closed network refuses Chromium's own connections).

import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const started = Date.now();
const LOGIN_TIMEOUT_MS = 20_000;
const STEP_TIMEOUT_MS = 10_000;
const COPIED_TIMEOUT_MS = 5_000;
const HARD_LIMIT_MS = 90_000; // whole run; a hung browser must not hang the test

let printed = false;
function emit(obj, code) {
  if (printed) return;
  printed = true;
  process.stdout.write(`${JSON.stringify({ ...obj, elapsedMs: Date.now() - started })}\n`);
  process.exitCode = code;
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      sts: { type: 'string' },
      provider: { type: 'string' },
      user: { type: 'string' },
      out: { type: 'string' },
      form: { type: 'boolean' },
    },
    strict: true,
  }));
  for (const k of ['sts', 'provider', 'user', 'out']) {
    if (!args[k]) throw new Error(`--${k} is required`);
  }
  new URL(args.sts); // eslint-disable-line no-new
} catch (e) {
  console.error(`browser-login: ${e.message}`);
  console.error('usage: node browser-login.mjs --sts URL --provider ID --user LOGIN_HINT --out DIR');
  emit({ ok: false, error: `usage: ${e.message}` }, 2);
  process.exit(2);
}

const sts = args.sts.replace(/\/+$/, '');
const stsOrigin = new URL(sts).origin;
const consoleErrors = [];
const ignoredConsoleErrors = [];
const pageErrors = [];
let context;
let page;
let profileDir;

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

const hardLimit = setTimeout(async () => {
  emit({ ok: false, error: `hard limit of ${HARD_LIMIT_MS} ms reached`, url: safeUrl(), consoleErrors, pageErrors }, 1);
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

async function text(selector) {
  const t = await page.locator(selector).textContent({ timeout: STEP_TIMEOUT_MS });
  return t === null ? null : t.trim();
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
    return { works: false, why: `evaluate failed: ${e.message}` };
  }
}

async function run() {
  const { chromium } = await import('playwright-core');
  await fs.mkdir(args.out, { recursive: true });
  profileDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sts-browser-'));
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
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stsOrigin });
  // Every page of the context (CSP violations arrive as console errors).
  // The browser's own /favicon.ico request logs "Failed to load resource: ... 404" when the server has none;
  // that is not the page's doing, so it goes to ignoredConsoleErrors.
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

  // a. login round trip: STS -> IdP on 127.0.0.1 (automatic login) -> STS callback -> /sso/me
  const loginUrl = `${sts}/sso/login?provider=${encodeURIComponent(args.provider)}` +
    `&login_hint=${encodeURIComponent(args.user)}`;
  const deadline = Date.now() + LOGIN_TIMEOUT_MS;
  try {
    await page.goto(loginUrl, { waitUntil: args.form ? 'load' : 'commit', timeout: LOGIN_TIMEOUT_MS });
    if (args.form) {
      const password = process.env.STS_TEST_PASSWORD;
      if (!password) throw new Error('--form needs STS_TEST_PASSWORD in the environment');
      const prefilled = await page.locator('#username').inputValue();
      if (prefilled !== args.user) throw new Error(`the form's username is ${JSON.stringify(prefilled)}, not the login_hint`);
      await page.locator('#password').fill(password);
      await page.screenshot({ path: path.join(args.out, 'login-form.png'), fullPage: true });
      await page.locator('form.login-form button[type="submit"]').click();
    }
    await page.waitForURL((u) => u.pathname === '/sso/me', {
      waitUntil: 'load',
      timeout: Math.max(1, deadline - Date.now()),
    });
  } catch (e) {
    throw new Error(`login did not reach /sso/me (limit ${LOGIN_TIMEOUT_MS} ms; at ${safeUrl()}): ${firstLine(e)}`);
  }
  // readText needs the grant for the page's exact origin (writeText after a click does not); should the STS
  // have sent the browser to another spelling of itself (localhost vs 127.0.0.1), grant that origin too.
  const meOrigin = new URL(page.url()).origin;
  if (meOrigin !== stsOrigin) {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: meOrigin });
  }

  // b. what the page shows
  const subject = await text('#subject');
  const email = await text('#email');
  const username = await text('#username');
  const roles = (await page.locator('#roles li').allTextContents()).map((r) => r.trim());
  const token = await text('#access-token');

  // c. the copy button and the clipboard
  const button = page.locator('button[data-copy="access-token"]');
  await button.click();
  let copied = true;
  try {
    await page.waitForFunction(
      () => document.querySelector('button[data-copy="access-token"]')?.textContent.trim() === 'Copied',
      null,
      { timeout: COPIED_TIMEOUT_MS, polling: 20 },
    );
  } catch {
    copied = false;
  }
  let clipboardMatches = null;
  let clipboardNote = null;
  if (copied) {
    try {
      const clip = await page.evaluate(() => navigator.clipboard.readText());
      clipboardMatches = clip === token;
      if (!clipboardMatches) clipboardNote = `clipboard holds ${JSON.stringify(clip.slice(0, 80))}, not the token`;
    } catch (e) {
      clipboardNote = `the button said Copied but readText failed: ${firstLine(e)}`;
    }
  } else {
    const probe = await clipboardProbe();
    if (probe.works) {
      clipboardMatches = false;
      clipboardNote = `the button never said "Copied" within ${COPIED_TIMEOUT_MS} ms, ` +
        'though the clipboard works in this browser (is /sso/static/sts.js loaded? see consoleErrors)';
    } else {
      clipboardNote = `the clipboard does not work in this headless browser: ${probe.why}`;
    }
  }

  // d. screenshot
  const screenshot = path.resolve(args.out, 'me.png');
  await page.screenshot({ path: screenshot, fullPage: true });

  // e. logout with the page's own "Sign out" button (a POST carrying the page's confirmation token), then
  //    /sso/me again
  await Promise.all([
    page.waitForNavigation({ waitUntil: 'load', timeout: STEP_TIMEOUT_MS }),
    page.locator('#logout').click({ timeout: STEP_TIMEOUT_MS }),
  ]);
  const logoutHeading = ((await page.locator('h1').first().textContent({ timeout: STEP_TIMEOUT_MS })) ?? '').trim();
  if (!/signed out/i.test(logoutHeading)) {
    throw new Error(`logout page h1 is ${JSON.stringify(logoutHeading)}, not "signed out" (at ${safeUrl()})`);
  }
  await page.goto(`${sts}/sso/me`, { waitUntil: 'load' });
  // Let any further client-side or meta hops settle; a quiet network for 500 ms, at most 5 s.
  await page.waitForLoadState('networkidle', { timeout: 5_000 }).catch(() => {});
  const after = new URL(page.url());
  const afterLogoutHasToken = (await page.locator('#access-token').count()) > 0;

  return {
    ok: true,
    subject,
    email,
    username,
    roles,
    token,
    clipboardMatches,
    clipboardNote,
    consoleErrors,
    ignoredConsoleErrors,
    pageErrors,
    afterLogoutPath: after.pathname,
    afterLogoutUrl: after.href,
    afterLogoutHasToken,
    logoutHeading,
    screenshot,
  };
}

function firstLine(e) {
  return String(e && e.message ? e.message : e).split('\n')[0];
}

try {
  const result = await run();
  await cleanup();
  emit(result, 0);
} catch (e) {
  const url = safeUrl();
  if (page && args.out) {
    await page.screenshot({ path: path.resolve(args.out, 'failure.png'), fullPage: true, timeout: 5_000 })
      .catch(() => {});
  }
  await cleanup();
  emit({ ok: false, error: firstLine(e), url, consoleErrors, pageErrors }, 1);
}
clearTimeout(hardLimit);
