// run.mjs drives Debian's Chromium through the relying-party page that browser_test.go serves,
// with a CDP virtual authenticator standing in for a platform passkey provider.
//
//   node run.mjs <rp-url> [username]
//
// It clicks the page's buttons in order, prints ONE JSON line with every step's result to
// stdout and the browser's console errors to stderr. It exits 0 whenever it could run the
// steps (judging the results is the Go test's job) and non-zero when it could not.
import { chromium } from 'playwright-core';

const [url, username = 'alice'] = process.argv.slice(2);
if (!url) {
  console.error('usage: node run.mjs <rp-url> [username]');
  process.exit(2);
}

const executablePath = '/usr/bin/chromium';
const stepTimeout = 20_000; // per click; the whole run is bounded by the Go test's 120 s
const log = (...a) => console.error('[run.mjs]', ...a);

// A last resort: never outlive the Go test's timeout with a hung browser.
const watchdog = setTimeout(() => {
  log('watchdog: giving up after 100 s');
  process.exit(3);
}, 100_000);
watchdog.unref();

// chromium.launch gives the browser a fresh profile in a temporary directory of its own (and
// refuses --user-data-dir), so nothing carries over between runs.
let browser;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const out = await run(browser);
  process.stdout.write(JSON.stringify(out) + '\n');
} catch (e) {
  log('failed:', e && e.stack ? e.stack : e);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch((e) => log('close:', e));
  clearTimeout(watchdog);
}

async function run(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const consoleErrors = [];
  const pageErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') {
      consoleErrors.push(m.text());
      log('console error:', m.text());
    }
  });
  page.on('pageerror', (e) => {
    pageErrors.push(String(e));
    log('page error:', e);
  });

  // The virtual authenticator: a user-verifying platform authenticator with resident keys,
  // as a phone or laptop passkey provider is.
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  const credentials = async () => {
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    return credentials.map((c) => ({
      credentialId: c.credentialId, // standard base64 in CDP
      isResidentCredential: c.isResidentCredential,
      rpId: c.rpId,
      userHandle: c.userHandle,
      userName: c.userName,
      signCount: c.signCount,
    }));
  };

  const response = await page.goto(url, { waitUntil: 'load' });
  if (!response || !response.ok()) throw new Error(`GET ${url}: ${response && response.status()}`);
  const secure = await page.evaluate(() => window.isSecureContext);
  const parsersPresent = await page.evaluate(() =>
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function' &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function');

  // click fills the username (or clears it), presses a button and returns what the page's
  // handler recorded for that press.
  let presses = 0;
  const click = async (button, name) => {
    await page.fill('#username', name);
    await page.click(button);
    presses++;
    await page.waitForFunction((n) => window.results.length >= n, presses, { timeout: stepTimeout });
    const r = await page.evaluate((n) => window.results[n - 1], presses);
    log(`${button} (${name || 'no username'}):`, r.step, r.status ?? '', r.error ? `${r.error.name}: ${r.error.message}` : '');
    return r;
  };

  const out = { chromium: browser.version(), secureContext: secure, parsersPresent };
  out.register = await click('#register', username);
  out.credentialsAfterRegister = await credentials();
  out.duplicateRegister = await click('#register', username);
  out.credentialsAfterDuplicate = await credentials();
  out.signInDiscoverable = await click('#signin', '');
  out.signInByUsername = await click('#signin', username);
  out.signInTampered = await click('#signin-tampered', username);
  out.credentialsAtEnd = await credentials();
  // The final page, for a person to look at (shots/ is ignored by git).
  await page.screenshot({ path: new URL('./shots/rp-page.png', import.meta.url).pathname, fullPage: true });
  out.consoleErrors = consoleErrors;
  out.pageErrors = pageErrors;
  await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
  await context.close();
  return out;
}
