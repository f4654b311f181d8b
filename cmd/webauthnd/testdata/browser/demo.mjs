// demo.mjs drives the passkey demo at / (httpapi/demo) as a person would, in Debian's Chromium,
// with CDP virtual authenticators standing in for a phone's passkey provider and a USB key.
//
//   DEMO_LICENSE_KEY=... node demo.mjs <server-url> <wrong-origin-url> <shots-dir>
//
// Each scenario runs in a fresh browser context and saves a screenshot of its final page as
// <shots-dir>/<scenario>.png. It prints ONE JSON line: per scenario, what the page showed at
// each step, the WebAuthn calls and signals the page made, its console errors, every request's
// URL and the responses that carried the license key. Judging is the Go test's job; it exits
// non-zero only when it could not run.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [url, wrongURL, shots] = process.argv.slice(2);
if (!url || !wrongURL || !shots) {
  console.error('usage: node demo.mjs <server-url> <wrong-origin-url> <shots-dir>');
  process.exit(2);
}
const licenseKey = process.env.DEMO_LICENSE_KEY || '';
const stepTimeout = 20_000;
const log = (...a) => console.error('[demo.mjs]', ...a);
mkdirSync(shots, { recursive: true });

const watchdog = setTimeout(() => {
  log('watchdog: giving up after 150 s');
  process.exit(3);
}, 150_000);
watchdog.unref();

// Recorded in every page before its own script runs: the WebAuthn calls (with the username
// field's autocomplete at that moment) and the signals. sessionStorage "conditional" set to
// "off" makes isConditionalMediationAvailable answer false: Chrome's automation resolves a
// conditional request at once when an authenticator holds a passkey, which would sign in by
// itself. Set to "force" it answers true, as a desktop Chrome with its password manager does:
// headless Chromium says false until a virtual authenticator exists, and the test adds that
// only once the page has made its request.
const recorder = () => {
  window.__calls = [];
  window.__signals = [];
  const creds = navigator.credentials;
  if (!creds || !window.PublicKeyCredential) return;
  const field = () => {
    const el = document.getElementById('username');
    return el ? el.getAttribute('autocomplete') : null;
  };
  const get = creds.get.bind(creds);
  creds.get = (o) => {
    const pk = (o && o.publicKey) || {};
    window.__calls.push({ fn: 'get', mediation: o.mediation || '', autocomplete: field(),
      allowCredentials: (pk.allowCredentials || []).length, hasSignal: Boolean(o.signal) });
    return get(o);
  };
  const create = creds.create.bind(creds);
  creds.create = (o) => {
    const pk = (o && o.publicKey) || {};
    window.__calls.push({ fn: 'create', attestation: pk.attestation || '',
      excludeCredentials: (pk.excludeCredentials || []).length });
    return create(o);
  };
  const available = PublicKeyCredential.isConditionalMediationAvailable;
  if (available) {
    PublicKeyCredential.isConditionalMediationAvailable = () => {
      const mode = sessionStorage.getItem('conditional');
      return mode && mode !== 'real' ? Promise.resolve(mode === 'force') : available.call(PublicKeyCredential);
    };
  }
  for (const name of ['signalUnknownCredential', 'signalAllAcceptedCredentials', 'signalCurrentUserDetails']) {
    const f = PublicKeyCredential[name];
    window.__signals.available = (window.__signals.available || 0) + (typeof f === 'function' ? 1 : 0);
    PublicKeyCredential[name] = (arg) => {
      window.__signals.push({ name, arg: JSON.parse(JSON.stringify(arg)) });
      return typeof f === 'function' ? f.call(PublicKeyCredential, arg) : Promise.resolve();
    };
  }
};

// Variants of a browser, applied before the page's script.
const withoutJSONMethods = () => {
  delete PublicKeyCredential.parseCreationOptionsFromJSON;
  delete PublicKeyCredential.parseRequestOptionsFromJSON;
  delete PublicKeyCredential.prototype.toJSON;
  window.__noJSON = true;
};
const withoutWebAuthn = () => {
  delete window.PublicKeyCredential;
};

// scenario runs fn in a new context and collects what every page of it did.
async function scenario(browser, name, fn) {
  const context = await browser.newContext({ viewport: { width: 420, height: 900 }, deviceScaleFactor: 1 });
  await context.addInitScript(recorder);
  const rec = { steps: {}, consoleErrors: [], pageErrors: [], requests: [], refusals: 0, keyInResponses: [] };
  context.on('request', (r) => rec.requests.push(r.url()));
  context.on('response', async (r) => {
    if (r.status() >= 400) rec.refusals++;
    if (!licenseKey) return;
    try {
      const text = (await r.body()).toString('latin1') + JSON.stringify(await r.allHeaders());
      if (text.includes(licenseKey)) rec.keyInResponses.push(r.url());
    } catch (e) {
      // A response without a body (a redirect) carries nothing.
    }
  });
  const pages = [];
  const newPage = async () => {
    const page = await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') rec.consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => rec.pageErrors.push(String(e)));
    page.on('dialog', (d) => d.accept());
    page.cdp = await context.newCDPSession(page);
    await page.cdp.send('WebAuthn.enable', { enableUI: false });
    pages.push(page);
    return page;
  };
  try {
    // snap saves a screenshot of a step (the README shows two).
    const snap = (page, step) => page.screenshot({ path: join(shots, `demo-${name}-${step}.png`), fullPage: true });
    await fn({ context, newPage, rec, snap });
  } catch (e) {
    rec.error = String(e && e.stack ? e.stack : e);
  }
  const last = pages[pages.length - 1];
  if (last) await last.screenshot({ path: join(shots, `demo-${name}.png`), fullPage: true }).catch((e) => log('screenshot:', e));
  await context.close();
  return rec;
}

// authenticator adds a virtual authenticator to a page: a phone's or laptop's passkey provider
// (ctap2, internal, discoverable, user-verifying), or a U2F security key.
async function authenticator(page, kind) {
  const options = kind === 'u2f'
    ? { protocol: 'u2f', transport: 'usb', hasResidentKey: false, hasUserVerification: false, automaticPresenceSimulation: true }
    : { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true,
      automaticPresenceSimulation: true };
  const { authenticatorId } = await page.cdp.send('WebAuthn.addVirtualAuthenticator', { options });
  return authenticatorId;
}

async function credentials(page, id) {
  const { credentials } = await page.cdp.send('WebAuthn.getCredentials', { authenticatorId: id });
  return credentials.map((c) => ({ credentialId: c.credentialId, isResidentCredential: c.isResidentCredential, rpId: c.rpId }));
}

// state is what a person sees, plus what the page recorded.
async function state(page) {
  return page.evaluate(() => {
    const $ = (id) => document.getElementById(id);
    const visible = (id) => Boolean($(id)) && !$(id).hidden;
    return {
      signedIn: visible('signed-in'), signedOut: visible('signed-out'),
      who: $('who') ? $('who').textContent : '',
      status: visible('status') ? $('status').textContent : '', statusKind: $('status') ? $('status').dataset.kind || '' : '',
      notice: visible('notice') ? $('notice').textContent : '',
      noticeLink: visible('notice') && $('notice').querySelector('a') ? $('notice').querySelector('a').href : '',
      passkeys: [...document.querySelectorAll('#passkeys li')].map((li) => ({
        fidoKeyHash: li.dataset.fidoKeyHash, credentialId: li.dataset.credentialId, text: li.textContent,
        deletable: Boolean(li.querySelector('button')) })),
      token: $('token') ? $('token').textContent : '',
      calls: window.__calls || [], signals: window.__signals || [], signalsAvailable: (window.__signals || {}).available || 0,
      noJSON: Boolean(window.__noJSON),
    };
  });
}

// act clicks a button (after filling the username field when name is a string) and waits
// until the page is idle again.
async function act(page, button, name) {
  await page.bringToFront(); // Chrome refuses WebAuthn to a tab that is not in front
  if (typeof name === 'string') await page.fill('#username', name);
  await page.click(button);
  await page.waitForSelector('body[data-busy="false"]', { timeout: stepTimeout });
  const s = await state(page);
  log(`${button}${typeof name === 'string' ? ` (${name || 'no username'})` : ''}:`, s.status || s.notice || (s.signedIn ? 'signed in' : 'signed out'));
  return s;
}

async function open(page, at) {
  const res = await page.goto(at, { waitUntil: 'load' });
  if (!res || !res.ok()) throw new Error(`GET ${at}: ${res && res.status()}`);
  await page.waitForSelector('body[data-busy="false"]', { timeout: stepTimeout });
}

// demoSession reads the backend's session as the page does (the passkeys' attestation format).
const demoSession = (page) => page.evaluate(async () => (await fetch('/demo/api/session')).json());

const scenarios = {
  // Sign up, sign out, sign in by username and without, conditional UI, a security key added
  // in a second tab, a passkey deleted, the deleted passkey refused, a bad signature refused.
  async passkeys({ newPage, rec, snap }) {
    const s = rec.steps;
    const phone = await newPage();
    await phone.addInitScript(() => {
      if (!sessionStorage.getItem('conditional')) sessionStorage.setItem('conditional', 'force');
    });
    await open(phone, url);
    // Conditional UI: the page asked at load, with no authenticator yet (else Chrome's
    // automation would answer at once).
    await phone.waitForFunction(() => window.__calls.some((c) => c.mediation === 'conditional'), null, { timeout: stepTimeout });
    s.loaded = await state(phone);
    await phone.evaluate(() => sessionStorage.setItem('conditional', 'off'));
    const internal = await authenticator(phone, 'internal');

    s.signUp = await act(phone, '#signup', 'alice');
    s.credentialsAfterSignUp = await credentials(phone, internal);
    s.signOut = await act(phone, '#signout');
    s.signInByUsername = await act(phone, '#signin', 'alice');
    await act(phone, '#signout');
    s.signInDiscoverable = await act(phone, '#signin', '');
    await act(phone, '#signout');

    // An authenticator answering with a bad signature.
    await phone.cdp.send('WebAuthn.setResponseOverrideBits', { authenticatorId: internal, isBogusSignature: true });
    s.signInBadSignature = await act(phone, '#signin', 'alice');
    await phone.cdp.send('WebAuthn.setResponseOverrideBits', { authenticatorId: internal, isBogusSignature: false });

    // Conditional sign-in: with the passkey on the authenticator, reloading the page lets
    // its autofill request answer.
    await phone.evaluate(() => sessionStorage.setItem('conditional', 'real'));
    await open(phone, url);
    await phone.waitForSelector('#signed-in:not([hidden])', { timeout: stepTimeout });
    await phone.waitForFunction(() => window.__signals.some((x) => x.name === 'signalCurrentUserDetails'), null, { timeout: stepTimeout });
    s.signInConditional = await state(phone);
    await phone.evaluate(() => sessionStorage.setItem('conditional', 'off'));

    // A second tab of the same browser (the same session), with a USB security key.
    const laptop = await newPage();
    await open(laptop, url);
    await laptop.evaluate(() => sessionStorage.setItem('conditional', 'off'));
    const key = await authenticator(laptop, 'u2f');
    s.addSecurityKey = await act(laptop, '#add-security-key');
    s.credentialsOfKey = await credentials(laptop, key);
    s.sessionAfterAdd = await demoSession(laptop);
    await snap(laptop, 'two-passkeys');
    s.addAgainOnPhone = await act(phone, '#add-passkey'); // the phone already has one: refused

    // Delete the phone's passkey from the laptop.
    const phonePasskey = s.credentialsAfterSignUp[0] && s.credentialsAfterSignUp[0].credentialId;
    const target = s.addSecurityKey.passkeys.find((p) => p.credentialId === toB64u(phonePasskey));
    if (!target) throw new Error('the phone passkey is not in the list');
    await laptop.click(`#passkeys li[data-fido-key-hash="${target.fidoKeyHash}"] button`);
    await laptop.waitForSelector('body[data-busy="false"]', { timeout: stepTimeout });
    s.afterDelete = await state(laptop);
    s.credentialsAfterDelete = await credentials(phone, internal);
    await act(laptop, '#signout');

    // The phone still offers its passkey: refused, and the browser is told to forget it.
    await open(phone, url);
    s.signInDeleted = await act(phone, '#signin', '');
    await snap(phone, 'deleted-refused');

    // The security key signs in by username.
    s.signInWithKey = await act(laptop, '#signin', 'alice');
  },

  // The same, in a browser without the WebAuthn JSON methods (the page's fallback), and the
  // refusals a person meets at sign-up.
  async fallback({ newPage, rec }) {
    const s = rec.steps;
    const page = await newPage();
    await page.addInitScript(withoutJSONMethods);
    await page.addInitScript(() => sessionStorage.setItem('conditional', 'off'));
    await open(page, url);
    await authenticator(page, 'internal');
    s.signUpTaken = await act(page, '#signup', 'alice');
    s.signUpEmpty = await act(page, '#signup', '');
    s.signUp = await act(page, '#signup', 'carol');
    await act(page, '#signout');
    s.signUpAgainSameDevice = await act(page, '#signup', 'dave'); // a new name works on the same device
    await act(page, '#signout');
    s.signInByUsername = await act(page, '#signin', 'carol');
    s.signInUnknownUser = await (async () => {
      await act(page, '#signout');
      return act(page, '#signin', 'nobody-here');
    })();
  },

  // The page opened at an origin the default community does not list.
  async wrongOrigin({ newPage, rec }) {
    const page = await newPage();
    await open(page, wrongURL);
    rec.steps.loaded = await state(page);
  },

  // A browser without WebAuthn.
  async noWebAuthn({ newPage, rec }) {
    const page = await newPage();
    await page.addInitScript(withoutWebAuthn);
    await open(page, url);
    rec.steps.loaded = await state(page);
  },
};

function toB64u(std) {
  return (std || '').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// The scenarios above are defined by now: run them.
let browser;
try {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const out = { chromium: browser.version(), scenarios: {} };
  for (const [name, fn] of Object.entries(scenarios)) {
    const started = Date.now();
    out.scenarios[name] = await scenario(browser, name, fn);
    log(`${name}: ${Date.now() - started} ms`, out.scenarios[name].error || '');
  }
  process.stdout.write(JSON.stringify(out) + '\n');
} catch (e) {
  log('failed:', e && e.stack ? e.stack : e);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch((e) => log('close:', e));
  clearTimeout(watchdog);
}
