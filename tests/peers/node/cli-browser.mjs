// Headless Chromium (playwright-core) as the user of a program outside the browser: the sts-login CLI or
// the Python helper prints a URL; this script signs in at the STS through the upstream IdP, then follows
// that URL and does what a person would.
//
// usage: node cli-browser.mjs --sts URL --provider ID --user LOGIN_HINT --url URL --mode MODE --out DIR
//                             [--code USER_CODE] [--deny] [--prefix NAME]
//   MODE code      the authorization code flow: ends on the program's loopback page
//        redirect  the encrypted token redirect: the confirmation page (screenshot), then Allow (or Deny)
//        device    the device page: types USER_CODE when the page asks for it (screenshot), the
//                  confirmation (screenshot), then Allow (or Deny), the done page (screenshot)
//   Screenshots go to DIR/PREFIX-*.png (PREFIX defaults to MODE).
//
// Prints ONE line of JSON on stdout: {"ok": true, "finalUrl", "bodyText", "program", "audience", "scopes",
// "shownCode", "application", "consoleErrors"}, exit 0; or {"ok": false, "error", "url"}, exit 1.

import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    sts: { type: 'string' }, provider: { type: 'string' }, user: { type: 'string' }, url: { type: 'string' },
    mode: { type: 'string' }, out: { type: 'string' }, code: { type: 'string' }, deny: { type: 'boolean' },
    prefix: { type: 'string' },
  },
  strict: true,
});
const sts = args.sts.replace(/\/+$/, '');
const prefix = args.prefix || args.mode;
const consoleErrors = [];
let context;
let page;
let profileDir;
let printed = false;
function emit(obj, code) {
  if (printed) return;
  printed = true;
  process.stdout.write(`${JSON.stringify(obj)}\n`);
  process.exitCode = code;
}
async function cleanup() {
  if (context) await Promise.race([context.close().catch(() => {}), new Promise((r) => setTimeout(r, 10_000))]);
  if (profileDir) await fs.rm(profileDir, { recursive: true, force: true }).catch(() => {});
}
const hard = setTimeout(async () => {
  emit({ ok: false, error: 'hard limit of 90 s reached', url: page ? page.url() : null }, 1);
  await cleanup();
  process.exit(1);
}, 90_000);
hard.unref();

const shot = (name) => page.screenshot({ path: path.join(args.out, `${prefix}-${name}.png`), fullPage: true });
const text = async (sel) => ((await page.locator(sel).textContent()) || '').trim();

async function run() {
  const { chromium } = await import('playwright-core');
  await fs.mkdir(args.out, { recursive: true });
  profileDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sts-cli-browser-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1100, height: 760 },
  });
  context.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const loc = msg.location();
    if (loc && loc.url && loc.url.endsWith('/favicon.ico')) return;
    consoleErrors.push(msg.text());
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);
  page.setDefaultNavigationTimeout(15_000);
  // Sign in at the STS through the upstream IdP (the SSO session the program's request then finds).
  await page.goto(`${sts}/sso/login?provider=${encodeURIComponent(args.provider)}&login_hint=${encodeURIComponent(args.user)}`);
  await page.waitForURL((u) => u.pathname === '/sso/me', { timeout: 20_000 });
  const out = { ok: true };
  const leftSts = (u) => !u.href.startsWith(sts);
  if (args.mode === 'code') {
    await page.goto(args.url);
    await page.waitForURL(leftSts);
  } else if (args.mode === 'redirect') {
    await page.goto(args.url);
    await page.locator('#allow').waitFor();
    out.program = await text('#program');
    out.audience = await text('#audience');
    out.scopes = await text('#scopes');
    await shot('confirm');
    await Promise.all([page.waitForURL(leftSts), page.locator(args.deny ? '#deny' : '#allow').click()]);
  } else if (args.mode === 'device') {
    await page.goto(args.url);
    if (await page.locator('#user_code').count()) {
      await page.locator('#user_code').fill(args.code);
      await shot('code');
      await page.locator('#continue').click();
    }
    await page.locator('#approve').waitFor();
    out.shownCode = await text('#shown-code');
    out.application = await text('#application');
    out.scopes = await text('#scopes');
    await shot('confirm');
    await page.locator(args.deny ? '#deny' : '#approve').click();
    await page.locator('#done').waitFor();
    await shot('done');
  } else {
    throw new Error(`unknown mode ${args.mode}`);
  }
  out.finalUrl = page.url();
  out.bodyText = (await page.locator('body').textContent().catch(() => '')) || '';
  if (args.mode !== 'device') await shot('program');
  out.consoleErrors = consoleErrors;
  emit(out, 0);
}

try {
  await run();
} catch (e) {
  if (page) await shot('failure').catch(() => {});
  emit({ ok: false, error: String(e && e.stack ? e.stack : e), url: page ? page.url() : null, consoleErrors }, 1);
} finally {
  await cleanup();
}
