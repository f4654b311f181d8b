// The passkey demo's page. It talks only to the demo's backend (/demo/api/...), which calls
// webauthnd's u1 API with a license the page never sees. What a relying party's page needs is
// all here: parse the options the backend relays, call navigator.credentials, send back
// credential.toJSON(), word the errors for a person, and keep the browser's passkey manager in
// step with the WebAuthn Level 3 signals.
"use strict";

const $ = (id) => document.getElementById(id);
let session = null; // the backend's /demo/api/session answer
let conditional = null; // the AbortController of a pending conditional (autofill) request

// --- base64url and the JSON fallbacks (for browsers without the WebAuthn JSON methods) ---

function b64u(buf) {
  const bytes = new Uint8Array(buf);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromB64u(s) {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

const withIds = (list) => (list || []).map((c) => ({ ...c, id: fromB64u(c.id) }));

function parseCreation(json) {
  if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
    return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  }
  return { ...json, challenge: fromB64u(json.challenge), user: { ...json.user, id: fromB64u(json.user.id) },
    excludeCredentials: withIds(json.excludeCredentials) };
}

function parseRequest(json) {
  if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
    return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  }
  return { ...json, challenge: fromB64u(json.challenge), allowCredentials: withIds(json.allowCredentials) };
}

function credentialJSON(cred) {
  if (typeof cred.toJSON === "function") return cred.toJSON();
  const r = cred.response;
  const out = { id: cred.id, rawId: b64u(cred.rawId), type: cred.type,
    authenticatorAttachment: cred.authenticatorAttachment || null,
    clientExtensionResults: cred.getClientExtensionResults(), response: { clientDataJSON: b64u(r.clientDataJSON) } };
  if (r.attestationObject) {
    out.response.attestationObject = b64u(r.attestationObject);
    out.response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
  } else {
    out.response.authenticatorData = b64u(r.authenticatorData);
    out.response.signature = b64u(r.signature);
    out.response.userHandle = r.userHandle ? b64u(r.userHandle) : null;
  }
  return out;
}

// --- the WebAuthn Level 3 signals, where the browser offers them ---

async function signal(name, arg) {
  if (typeof PublicKeyCredential[name] !== "function") return;
  try {
    await PublicKeyCredential[name](arg);
  } catch (e) {
    // A signal is a hint to the passkey manager: its failure changes nothing here.
  }
}

// --- the backend ---

class APIError extends Error {
  constructor(status, body) {
    super((body && body.message) || `the demo backend answered ${status}`);
    this.status = status;
    this.code = (body && body.code) || "";
    this.retryAfter = 0;
  }
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (session && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  const res = await fetch("/demo/api/" + path, { method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body) });
  let json = null;
  try {
    json = await res.json();
  } catch (e) {
    json = null;
  }
  if (!res.ok) {
    const err = new APIError(res.status, json);
    err.retryAfter = Number(res.headers.get("Retry-After")) || 0;
    throw err;
  }
  return json;
}

// --- words for a person ---

function say(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.dataset.kind = kind || "info";
  el.hidden = !text;
}

function explain(e, what, startedAt, timeout) {
  if (e instanceof APIError) {
    switch (e.code) {
      case "credential_unknown":
        return "This passkey is no longer registered here (it was deleted). Your browser was told to forget it: use another passkey, or create an account.";
      case "credential_exists":
        return "This passkey is already registered.";
      case "signature_invalid":
        return "The passkey's signature did not verify, so " + what + " was refused.";
      case "ceremony_not_found":
        return "That took too long and the " + what + " expired. Please try again.";
      case "csrf_refused":
        return "This page's session has ended. Reload the page and try again.";
      case "signed_out":
        return "You are signed out. Sign in again.";
      case "rate_limited":
      case "busy":
        return "Too many attempts right now. Wait " + (e.retryAfter || "a few") + " seconds and try again.";
      case "origin_not_allowed":
        return wrongOrigin();
    }
    return e.message;
  }
  switch (e && e.name) {
    case "NotAllowedError":
      if (timeout && Date.now() - startedAt >= timeout - 1000) {
        return "The passkey prompt timed out. Please try again.";
      }
      return "The passkey prompt was cancelled, or this device has no passkey for it. Nothing was changed.";
    case "InvalidStateError":
      return "This device already has a passkey for this account: use it to sign in, or add one on another device.";
    case "SecurityError":
      return wrongOrigin();
    case "NotSupportedError":
      return "This device cannot make a passkey that this site accepts.";
  }
  return "Something went wrong: " + ((e && e.message) || e);
}

function wrongOrigin() {
  const to = session && session.origins && session.origins[0];
  return "Passkeys here belong to " + (session ? session.rpId : "another address") + ". Open " + (to || "the service's public URL") + ".";
}

// --- the ceremonies ---

async function busy(fn) {
  document.body.dataset.busy = "true";
  for (const b of document.querySelectorAll("button")) b.disabled = true;
  try {
    await fn();
  } finally {
    for (const b of document.querySelectorAll("button")) b.disabled = false;
    document.body.dataset.busy = "false";
  }
}

async function stopConditional() {
  if (conditional) {
    conditional.abort();
    conditional = null;
  }
}

async function create(path, body, what) {
  const opts = await api("POST", path + "/options", body);
  const publicKey = parseCreation(opts.publicKey);
  const started = Date.now();
  let cred;
  try {
    cred = await navigator.credentials.create({ publicKey });
  } catch (e) {
    throw Object.assign(e, { explained: explain(e, what, started, publicKey.timeout) });
  }
  return api("POST", path + "/result", credentialJSON(cred));
}

async function signUp() {
  const username = $("username").value.trim();
  if (!username) {
    say("Choose a username for your new account.", "error");
    $("username").focus();
    return;
  }
  await stopConditional();
  say("");
  try {
    const res = await create("signup", { username }, "sign-up");
    session.csrf = res.csrf;
    await load("Welcome, " + res.username + ": your account and its first passkey are ready.");
    await signal("signalCurrentUserDetails", { rpId: session.rpId, userId: session.userHandle,
      name: session.username, displayName: session.displayName || session.username });
  } catch (e) {
    fail(e, "sign-up");
  }
}

// signIn runs a sign-in: by username, without one (the browser offers the device's
// passkeys), or conditionally (the passkeys appear in the username field's autofill).
async function signIn(username, mediation) {
  const opts = await api("POST", "signin/options", username ? { username } : {});
  const publicKey = parseRequest(opts.publicKey);
  const request = { publicKey };
  if (mediation) {
    conditional = new AbortController();
    request.mediation = mediation;
    request.signal = conditional.signal;
  }
  const started = Date.now();
  let cred;
  try {
    cred = await navigator.credentials.get(request);
  } catch (e) {
    throw Object.assign(e, { explained: explain(e, "sign-in", started, publicKey.timeout) });
  } finally {
    if (mediation) conditional = null;
  }
  try {
    const res = await api("POST", "signin/result", credentialJSON(cred));
    session.csrf = res.csrf;
  } catch (e) {
    if (e.code === "credential_unknown") {
      // The passkey manager still offers a passkey this service has removed: tell it.
      await signal("signalUnknownCredential", { rpId: publicKey.rpId || session.rpId, credentialId: cred.id });
    }
    throw e;
  }
  await load("Signed in.");
  await signal("signalCurrentUserDetails", { rpId: session.rpId, userId: session.userHandle,
    name: session.username, displayName: session.displayName || session.username });
}

function fail(e, what) {
  if (e && e.name === "AbortError") return;
  say(e.explained || explain(e, what), "error");
  if (e instanceof APIError && (e.code === "signed_out" || e.code === "csrf_refused")) {
    session = null;
  }
}

async function startConditional() {
  if (!window.PublicKeyCredential || typeof PublicKeyCredential.isConditionalMediationAvailable !== "function") return;
  let available = false;
  try {
    available = await PublicKeyCredential.isConditionalMediationAvailable();
  } catch (e) {
    available = false;
  }
  if (!available || conditional) return;
  signIn("", "conditional").catch((e) => fail(e, "sign-in"));
}

async function addPasskey(kind) {
  say("");
  try {
    await create("passkeys", { kind }, "new passkey");
    await load(kind === "security-key" ? "Your security key was added." : "Your new passkey was added.");
  } catch (e) {
    fail(e, "new passkey");
  }
}

async function deletePasskey(key) {
  const name = key.authenticatorName || "this passkey";
  if (!window.confirm("Delete " + name + "? You will no longer be able to sign in with it.")) return;
  try {
    const res = await api("DELETE", "passkeys/" + encodeURIComponent(key.fidoKeyHash));
    // Tell the passkey manager which of this user's passkeys remain, so it hides the other.
    await signal("signalAllAcceptedCredentials", res);
    await load("The passkey was deleted.");
  } catch (e) {
    fail(e, "delete");
  }
}

async function signOut() {
  try {
    await api("POST", "signout");
  } catch (e) {
    // Signed out either way.
  }
  session = null;
  await load("You are signed out.");
}

// --- the page ---

function when(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function passkeyItem(key, onlyOne) {
  const li = document.createElement("li");
  li.className = "passkey";
  li.dataset.fidoKeyHash = key.fidoKeyHash;
  li.dataset.credentialId = key.credentialId;
  const name = document.createElement("p");
  name.className = "name";
  const title = document.createElement("span");
  // The model's name where metadata knows it; otherwise what the record says of the kind.
  title.textContent = key.authenticatorName ||
    (key.attestationFormat === "fido-u2f" ? "Security key (U2F)" : key.backupEligible ? "Synced passkey" : "Passkey");
  name.append(title);
  if (!onlyOne) {
    const del = document.createElement("button");
    del.type = "button";
    del.className = "danger";
    del.textContent = "Delete";
    del.setAttribute("aria-label", "Delete " + title.textContent + " created " + when(key.createdAt));
    del.addEventListener("click", () => busy(() => deletePasskey(key)));
    name.append(del);
  }
  const dl = document.createElement("dl");
  const rows = [["Created", when(key.createdAt)], ["Last used", when(key.lastUsedAt)],
    ["Backed up", key.backupState ? "yes" : (key.backupEligible ? "not yet" : "no (this device only)")],
    ["Linked DID", key.did || "none"]];
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
  li.append(name, dl);
  return li;
}

function render() {
  const signedIn = Boolean(session && session.signedIn);
  $("signed-out").hidden = signedIn;
  $("signed-in").hidden = !signedIn;
  if (!signedIn) return;
  $("who").textContent = session.username;
  const list = $("passkeys");
  list.replaceChildren(...(session.passkeys || []).map((k) => passkeyItem(k, session.passkeys.length === 1)));
  const token = $("token");
  if (session.token) {
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify({ header: session.token.header, claims: session.token.claims }, null, 2);
    pre.tabIndex = 0;
    pre.setAttribute("aria-label", "The token's decoded header and claims");
    token.replaceChildren(pre);
  } else {
    const p = document.createElement("p");
    p.textContent = "A registration issues no token: sign out and sign in with your passkey to see one here.";
    token.replaceChildren(p);
  }
  $("jwks-url").textContent = session.publicKeys;
  $("issuer").textContent = session.issuer;
}

async function load(message) {
  session = await api("GET", "session");
  render();
  if (message !== undefined) say(message, message ? "ok" : "info");
  if (!session.signedIn) startConditional();
}

function blocked(text, link) {
  const el = $("notice");
  el.replaceChildren(text);
  if (link) {
    const a = document.createElement("a");
    a.href = link;
    a.textContent = link;
    el.append(" Open ", a, ".");
  }
  el.hidden = false;
  $("signed-out").hidden = true;
  $("signed-in").hidden = true;
}

async function main() {
  $("signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(async () => {
      await stopConditional();
      say("");
      try {
        await signIn($("username").value.trim());
      } catch (e) {
        fail(e, "sign-in");
        if (!session) await load();
        else startConditional();
      }
    });
  });
  $("signup").addEventListener("click", () => busy(async () => {
    await signUp();
    if (!session) await load();
  }));
  $("signout").addEventListener("click", () => busy(signOut));
  $("add-passkey").addEventListener("click", () => busy(() => addPasskey("passkey")));
  $("add-security-key").addEventListener("click", () => busy(() => addPasskey("security-key")));

  try {
    session = await api("GET", "session");
  } catch (e) {
    blocked("The demo's backend did not answer: " + e.message);
    return;
  }
  if (!session.origins.includes(location.origin)) {
    blocked("This page was opened at " + location.origin + ", which is not an origin of this service's passkeys (they belong to " +
      session.rpId + ").", session.origins[0]);
    return;
  }
  if (!window.isSecureContext || !window.PublicKeyCredential || !navigator.credentials) {
    blocked("This browser does not offer passkeys (WebAuthn) on this page. Use a current Chrome, Edge, Safari or Firefox" +
      (window.isSecureContext ? "." : ", over HTTPS."));
    return;
  }
  render();
  if (!session.signedIn) startConditional();
}

main().finally(() => {
  document.body.dataset.busy = "false";
});
