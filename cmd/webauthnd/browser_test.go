//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The browser test: Debian's Chromium, driven by playwright-core (testdata/browser/run.mjs),
// registers a passkey and signs in through a relying party whose backend calls webauthnd, with
// a CDP virtual authenticator as the passkey provider.

const (
	chromiumPath   = "/usr/bin/chromium"
	browserDir     = "testdata/browser"
	browserTimeout = 120 * time.Second
	browserUser    = "alice@example.com"
)

func TestBrowserPasskeyRegistrationAndSignIn(t *testing.T) {
	node := requireBrowserDeps(t)

	// The relying party's port comes first: it is the default community's origin.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	publicURL := fmt.Sprintf("http://localhost:%d", port)
	s := startServer(t, "", "--public-url", publicURL)

	rp := &rpBackend{webauthnd: s.URL, license: s.License, rpID: "localhost"}
	listeners := []net.Listener{ln}
	// Chromium may try localhost as ::1 first; answer there too when the host has IPv6.
	if ln6, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", port)); err == nil {
		listeners = append(listeners, ln6)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	for _, l := range listeners {
		go func() { _ = srv.Serve(l) }()
	}
	t.Cleanup(func() { _ = srv.Close() })

	started := time.Now()
	out, stderr := runBrowser(t, node, publicURL+"/", browserUser)
	t.Logf("browser run took %s (Chromium %s)", time.Since(started).Round(time.Millisecond), out.Chromium)
	if t.Failed() {
		return
	}
	t.Logf("run.mjs stderr:\n%s", stderr)
	for _, x := range rp.log() {
		checkOpenAPI(t, x.req, x.res, x.raw)
	}

	if !out.SecureContext || !out.ParsersPresent {
		t.Fatalf("page is not a secure context (%v) or lacks parseCreationOptionsFromJSON/parseRequestOptionsFromJSON (%v)", out.SecureContext, out.ParsersPresent)
	}
	if len(out.PageErrors) > 0 {
		t.Errorf("uncaught errors in the page: %q", out.PageErrors)
	}
	for _, e := range out.ConsoleErrors {
		// The only error the console should show is the refused tampered sign-in.
		if !strings.Contains(e, "status of 400") {
			t.Errorf("unexpected console error: %s", e)
		}
	}

	// Registration.
	reg := out.Register
	if reg.Step != "result" || reg.Status != http.StatusOK {
		t.Fatalf("registration did not succeed: %s", reg)
	}
	if got := jsonField(reg.Body, "data", "sub"); got != browserUser {
		t.Errorf("registration sub = %q, want %q (%s)", got, browserUser, reg)
	}
	if jsonField(reg.Body, "status") != "success" || jsonField(reg.Body, "credentialId") != reg.CredentialID {
		t.Errorf("registration answer does not name the browser's credential %s: %s", reg.CredentialID, reg)
	}
	credID, err := base64.RawURLEncoding.DecodeString(reg.CredentialID)
	if err != nil || len(credID) == 0 {
		t.Fatalf("credential id %q: %v", reg.CredentialID, err)
	}
	keyHash := sha256.Sum256(credID)
	if jsonField(reg.Body, "fidoKeyHash") != hex.EncodeToString(keyHash[:]) {
		t.Errorf("fidoKeyHash = %q, want %x", jsonField(reg.Body, "fidoKeyHash"), keyHash)
	}
	ro := reg.Options
	if jsonField(ro, "rpId") != "localhost" || jsonField(ro, "userName") != browserUser || jsonField(ro, "residentKey") == "" || len(jsonStrings(ro, "excludeCredentials")) != 0 {
		t.Errorf("first creation options as the browser parsed them: %v", ro)
	}
	userHandle, _ := base64.RawURLEncoding.DecodeString(jsonField(ro, "userId"))
	if len(userHandle) == 0 || string(userHandle) == browserUser {
		t.Errorf("user.id = %q: want an opaque handle, not the username", jsonField(ro, "userId"))
	}
	creds := out.CredentialsAfterRegister
	if len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RPID != "localhost" ||
		!bytes.Equal(cdpBytes(t, creds[0].CredentialID), credID) || !bytes.Equal(cdpBytes(t, creds[0].UserHandle), userHandle) {
		t.Errorf("the authenticator holds %+v, want one discoverable credential %s for localhost with user handle %x", creds, reg.CredentialID, userHandle)
	}

	// A second registration with the same authenticator: webauthnd excludes the credential and
	// the browser refuses before any result reaches the server.
	dup := out.DuplicateRegister
	if dup.Step != "create" || dup.Error == nil || dup.Error.Name != "InvalidStateError" {
		t.Errorf("second registration on the same authenticator: want InvalidStateError from create(), got %s", dup)
	}
	if ex := jsonStrings(dup.Options, "excludeCredentials"); len(ex) != 1 || ex[0] != reg.CredentialID {
		t.Errorf("second creation options exclude %v, want [%s]", ex, reg.CredentialID)
	}
	if len(out.CredentialsAfterDuplicate) != 1 {
		t.Errorf("after the refused registration the authenticator holds %d credentials", len(out.CredentialsAfterDuplicate))
	}

	// Sign-ins: discoverable (no username: the account comes from the authenticator) and by
	// username (allowCredentials names the passkey).
	keys := browserJWKS(t, s)
	for _, tc := range []struct {
		name  string
		step  browserStep
		allow []string
	}{
		{"discoverable", out.SignInDiscoverable, nil},
		{"by username", out.SignInByUsername, []string{reg.CredentialID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.step
			if st.Step != "result" || st.Status != http.StatusOK {
				t.Fatalf("sign-in did not succeed: %s", st)
			}
			if fmt.Sprint(jsonStrings(st.Options, "allowCredentials")) != fmt.Sprint(tc.allow) {
				t.Errorf("allowCredentials = %v, want %v", jsonStrings(st.Options, "allowCredentials"), tc.allow)
			}
			if st.CredentialID != reg.CredentialID || st.UserHandle != jsonField(ro, "userId") {
				t.Errorf("the browser answered with credential %s / user handle %s, want %s / %s", st.CredentialID, st.UserHandle, reg.CredentialID, jsonField(ro, "userId"))
			}
			if jsonField(st.Body, "data", "sub") != browserUser || jsonField(st.Body, "status") != "success" {
				t.Fatalf("sign-in answer: %s", st)
			}
			claims := verifyBrowserToken(t, keys, jsonField(st.Body, "signature_token"), publicURL+"/webauthn/tenants/default")
			for k, want := range map[string]any{"sub": browserUser, "aud": "default", "rpId": "localhost",
				"fidoKeyHash": hex.EncodeToString(keyHash[:]), "uv": true} {
				if claims[k] != want {
					t.Errorf("token claim %s = %v, want %v", k, claims[k], want)
				}
			}
			if _, ok := claims["cloneWarning"]; ok {
				t.Errorf("token carries a clone warning: %v", claims)
			}
		})
	}

	// A sign-in whose signature the page changed by one byte.
	tam := out.SignInTampered
	if tam.Step != "result" || tam.Status != http.StatusBadRequest || jsonField(tam.Body, "code") != "signature_invalid" || jsonField(tam.Body, "status") != "failed" {
		t.Errorf("tampered sign-in: want 400 signature_invalid, got %s", tam)
	}

	// The server side, as the relying party's backend saw webauthnd answer.
	var calls []string
	var tokens []string
	for _, x := range rp.log() {
		calls = append(calls, fmt.Sprintf("%s %d", strings.TrimPrefix(x.path, "/webauthn/u1/"), x.res.StatusCode))
		if strings.HasSuffix(x.path, "/result") && x.sessionInfo == "" {
			t.Errorf("%s was sent without the ceremony's sessionInfo", x.path)
		}
		if x.path == "/webauthn/u1/assertion/result" && x.res.StatusCode == http.StatusOK {
			tokens = append(tokens, jsonField(x.body, "signature_token"))
		}
	}
	want := []string{"attestation/options 200", "attestation/result 200", "attestation/options 200",
		"assertion/options 200", "assertion/result 200", "assertion/options 200", "assertion/result 200",
		"assertion/options 200", "assertion/result 400"}
	if strings.Join(calls, ", ") != strings.Join(want, ", ") {
		t.Errorf("webauthnd calls:\n got %s\nwant %s", strings.Join(calls, ", "), strings.Join(want, ", "))
	}
	if len(tokens) != 2 || tokens[0] != jsonField(out.SignInDiscoverable.Body, "signature_token") || tokens[1] != jsonField(out.SignInByUsername.Body, "signature_token") {
		t.Errorf("the tokens webauthnd issued differ from those the page received")
	}
}

// requireBrowserDeps skips a browser test only when asked to (WEBAUTHND_SKIP_BROWSER=1, or
// -short), fails it (it does not skip it) when Chromium, node or playwright-core is missing, and
// returns node's path.
func requireBrowserDeps(t *testing.T) string {
	t.Helper()
	if os.Getenv("WEBAUTHND_SKIP_BROWSER") == "1" {
		t.Skip("WEBAUTHND_SKIP_BROWSER=1")
	}
	if testing.Short() {
		t.Skip("the browser test does not run in -short mode")
	}
	const hint = "run `make test-deps` (apt-get update && apt-get install -y chromium; npm ci --prefix cmd/webauthnd/testdata/browser), or set WEBAUTHND_SKIP_BROWSER=1 to skip this test"
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser test needs Chromium at %s: %v; %s", chromiumPath, err, hint)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("the browser test needs node (v20 or later) on PATH: %v; %s", err, hint)
	}
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("the browser test needs playwright-core in %s/node_modules: %v; %s", browserDir, err, hint)
	}
	return node
}

// runBrowser runs run.mjs in its own process group, which it kills on timeout, and decodes its
// JSON line. It returns the script's stderr for the log.
func runBrowser(t *testing.T, node, url, username string) (browserRun, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(browserDir, "run.mjs"), url, username)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		// Whatever the browser left behind (it should have closed everything).
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	var out browserRun
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (killed after %s)", err, browserTimeout)
		}
		t.Errorf("node run.mjs: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		return out, stderr.String()
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
		t.Errorf("run.mjs printed no JSON result (%v)\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return out, stderr.String()
}

// browserRun is run.mjs's output.
type browserRun struct {
	Chromium                  string
	SecureContext             bool
	ParsersPresent            bool
	Register                  browserStep
	CredentialsAfterRegister  []cdpCredential
	DuplicateRegister         browserStep
	CredentialsAfterDuplicate []cdpCredential
	SignInDiscoverable        browserStep
	SignInByUsername          browserStep
	SignInTampered            browserStep
	CredentialsAtEnd          []cdpCredential
	ConsoleErrors             []string
	PageErrors                []string
}

// browserStep is what the page recorded for one button press.
type browserStep struct {
	Action        string
	Username      string
	Step          string // how far it got: options, create or get, result (or exception)
	OptionsStatus int
	Options       map[string]any // the options as the browser parsed them
	Error         *struct{ Name, Message string }
	CredentialID  string
	UserHandle    string
	Status        int            // of the result call
	Body          map[string]any // of the options call when it failed, else of the result call
}

func (s browserStep) String() string { b, _ := json.Marshal(s); return string(b) }

// cdpCredential is a credential of the virtual authenticator (binary fields in standard
// base64, as CDP gives them).
type cdpCredential struct {
	CredentialID         string
	IsResidentCredential bool
	RPID                 string `json:"rpId"`
	UserHandle           string
	UserName             string
	SignCount            int
}

// rpBackend is a relying party's backend: it serves its login page and calls webauthnd with
// its license, keeping each ceremony's sessionInfo in a cookie.
type rpBackend struct {
	webauthnd, license, rpID string

	mu        sync.Mutex
	exchanges []rpExchange
}

// rpExchange is one call of the backend to webauthnd.
type rpExchange struct {
	path        string
	sessionInfo string
	req         *http.Request
	res         *http.Response
	raw         []byte
	body        map[string]any
}

const rpCeremonyCookie = "rp_ceremony"

func (rp *rpBackend) log() []rpExchange {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]rpExchange(nil), rp.exchanges...)
}

func (rp *rpBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, rpPage)
		return
	}
	paths := map[string]string{
		"/rp/register/options": "/webauthn/u1/attestation/options",
		"/rp/register/result":  "/webauthn/u1/attestation/result",
		"/rp/signin/options":   "/webauthn/u1/assertion/options",
		"/rp/signin/result":    "/webauthn/u1/assertion/result",
	}
	target, ok := paths[r.URL.Path]
	if !ok || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	var in map[string]any
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil {
		http.Error(w, "bad JSON", http.StatusBadRequest)
		return
	}
	scope := map[string]any{"dns": rp.rpID, "communityId": "default", "tenantId": "default"}
	var body map[string]any
	session := ""
	switch r.URL.Path {
	case "/rp/register/options":
		// The backend decides whose passkey this is; the page only proposes a name.
		body = scope
		body["username"], body["displayName"] = in["username"], in["displayName"]
	case "/rp/signin/options":
		body = scope
		if u, _ := in["username"].(string); u != "" {
			body["username"] = u
		}
	default: // results: the browser's credential.toJSON() with the scope added
		body = in
		for k, v := range scope {
			body[k] = v
		}
		if c, err := r.Cookie(rpCeremonyCookie); err == nil {
			session = c.Value
		}
	}
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, rp.webauthnd+target, bytes.NewReader(raw))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("licensekey", rp.license)
	if session != "" {
		req.Header.Set("sessionInfo", session)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, "webauthnd: "+err.Error(), http.StatusBadGateway)
		return
	}
	resRaw, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		http.Error(w, "webauthnd: "+err.Error(), http.StatusBadGateway)
		return
	}
	x := rpExchange{path: target, sessionInfo: session, req: req, res: res, raw: resRaw}
	_ = json.Unmarshal(resRaw, &x.body)
	rp.mu.Lock()
	rp.exchanges = append(rp.exchanges, x)
	rp.mu.Unlock()
	if s := res.Header.Get("sessionInfo"); s != "" && strings.HasSuffix(target, "/options") {
		http.SetCookie(w, &http.Cookie{Name: rpCeremonyCookie, Value: s, Path: "/rp/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(resRaw)
}

// browserJWKS reads the token verification keys from /publickeys.
func browserJWKS(t *testing.T, s *testServer) []map[string]string {
	t.Helper()
	status, body, _ := s.call(t, "GET", "/webauthn/publickeys", nil, nil)
	raw, _ := json.Marshal(body["keys"])
	var keys []map[string]string
	if err := json.Unmarshal(raw, &keys); status != http.StatusOK || err != nil || len(keys) == 0 {
		t.Fatalf("publickeys: %d %v (%v)", status, body, err)
	}
	return keys
}

// verifyBrowserToken checks a signature_token as a relying party would: ES256 under the JWK of
// /publickeys whose kid (its RFC 7638 thumbprint) the header names, from issuer, for the
// default community, not expired.
func verifyBrowserToken(t *testing.T, keys []map[string]string, token, issuer string) jwt.MapClaims {
	t.Helper()
	if token == "" {
		t.Fatal("no signature_token")
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		for _, k := range keys {
			if k["kid"] != kid {
				continue
			}
			if k["kty"] != "EC" || k["crv"] != "P-256" || (k["alg"] != "" && k["alg"] != "ES256") {
				return nil, fmt.Errorf("JWK %v is not an ES256 key", k)
			}
			thumb := sha256.Sum256(fmt.Appendf(nil, `{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, k["x"], k["y"]))
			if base64.RawURLEncoding.EncodeToString(thumb[:]) != kid {
				return nil, fmt.Errorf("kid %s is not the RFC 7638 thumbprint of its key", kid)
			}
			x, errX := base64.RawURLEncoding.DecodeString(k["x"])
			y, errY := base64.RawURLEncoding.DecodeString(k["y"])
			if err := errors.Join(errX, errY); err != nil {
				return nil, err
			}
			return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		}
		return nil, fmt.Errorf("no JWK with kid %q in /publickeys", kid)
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(issuer), jwt.WithAudience("default"),
		jwt.WithSubject(browserUser), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		t.Fatalf("signature_token does not verify: %v", err)
	}
	if tok.Header["alg"] != "ES256" {
		t.Fatalf("token alg = %v", tok.Header["alg"])
	}
	return claims
}

// jsonField follows keys through nested JSON objects to a string ("" when absent).
func jsonField(m map[string]any, keys ...string) string {
	var v any = m
	for _, k := range keys {
		o, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = o[k]
	}
	s, _ := v.(string)
	return s
}

// jsonStrings is a JSON array of strings (nil when absent or empty).
func jsonStrings(m map[string]any, key string) []string {
	var out []string
	a, _ := m[key].([]any)
	for _, v := range a {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func cdpBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Errorf("CDP base64 %q: %v", s, err)
	}
	return b
}

// rpPage is the relying party's login page. Each button records what happened in
// window.results, which run.mjs reads.
const rpPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>Example relying party</title>
</head>
<body>
<h1>Example relying party</h1>
<p><label>Username <input id="username" autocomplete="username webauthn"></label></p>
<p>
  <button id="register">Create a passkey</button>
  <button id="signin">Sign in with a passkey</button>
  <button id="signin-tampered">Sign in (tampered signature)</button>
</p>
<pre id="output"></pre>
<script>
"use strict";
window.results = [];

function b64url(buf) {
  const bytes = new Uint8Array(buf);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function fromB64url(s) {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

async function post(path, body) {
  const res = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  let json = null;
  try { json = await res.json(); } catch (e) { /* not JSON */ }
  return {status: res.status, body: json};
}

function failure(e) { return {name: e.name, message: String(e.message)}; }

async function register(username) {
  const out = {action: "register", username};
  const opts = await post("/rp/register/options", {username, displayName: "Test " + username});
  out.optionsStatus = opts.status;
  if (opts.status !== 200) { out.step = "options"; out.body = opts.body; return out; }
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(opts.body.data);
  const sel = publicKey.authenticatorSelection || {};
  out.options = {
    rpId: publicKey.rp.id, rpName: publicKey.rp.name,
    userId: b64url(publicKey.user.id), userName: publicKey.user.name, userDisplayName: publicKey.user.displayName,
    excludeCredentials: (publicKey.excludeCredentials || []).map((c) => b64url(c.id)),
    residentKey: sel.residentKey || "", userVerification: sel.userVerification || "",
    attestation: publicKey.attestation || "", algorithms: publicKey.pubKeyCredParams.map((p) => p.alg),
  };
  let credential;
  try {
    credential = await navigator.credentials.create({publicKey});
  } catch (e) {
    out.step = "create"; out.error = failure(e); return out;
  }
  const json = credential.toJSON();
  out.credentialId = credential.id;
  const res = await post("/rp/register/result", json);
  out.step = "result"; out.status = res.status; out.body = res.body;
  return out;
}

async function signIn(username, tamper) {
  const out = {action: tamper ? "signin-tampered" : "signin", username};
  const opts = await post("/rp/signin/options", {username});
  out.optionsStatus = opts.status;
  if (opts.status !== 200) { out.step = "options"; out.body = opts.body; return out; }
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(opts.body);
  out.options = {
    rpId: publicKey.rpId || "", userVerification: publicKey.userVerification || "",
    allowCredentials: (publicKey.allowCredentials || []).map((c) => b64url(c.id)),
  };
  let credential;
  try {
    credential = await navigator.credentials.get({publicKey});
  } catch (e) {
    out.step = "get"; out.error = failure(e); return out;
  }
  const json = credential.toJSON();
  out.credentialId = credential.id;
  out.userHandle = json.response.userHandle || "";
  if (tamper) {
    // One byte of the ECDSA signature's s (the DER stays well formed).
    const sig = fromB64url(json.response.signature);
    sig[sig.length - 1] ^= 0x01;
    json.response.signature = b64url(sig);
  }
  const res = await post("/rp/signin/result", json);
  out.step = "result"; out.status = res.status; out.body = res.body;
  return out;
}

const username = () => document.getElementById("username").value.trim();
const actions = {
  "register": () => register(username()),
  "signin": () => signIn(username(), false),
  "signin-tampered": () => signIn(username(), true),
};
for (const [id, action] of Object.entries(actions)) {
  document.getElementById(id).addEventListener("click", async () => {
    let result;
    try {
      result = await action();
    } catch (e) {
      result = {action: id, step: "exception", error: failure(e)};
    }
    window.results.push(result);
    document.getElementById("output").textContent = JSON.stringify(result, null, 2);
  });
}
</script>
</body>
</html>
`
