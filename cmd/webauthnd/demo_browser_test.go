//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The demo's browser test: Debian's Chromium, driven by playwright-core
// (testdata/browser/demo.mjs), uses the passkey demo at / as a person would, with CDP virtual
// authenticators (a ctap2 platform authenticator and a U2F security key).

// demoKeys holds the demo license key of each server the tests start, by data directory: the
// key is in the server's memory only, and the test needs it to look for it in responses.
var demoKeys sync.Map

func init() {
	onDemoLicense = func(dataDir, key string) { demoKeys.Store(dataDir, key) }
}

// demoRun is demo.mjs's output.
type demoRun struct {
	Chromium  string
	Scenarios map[string]demoScenario
}

// demoScenario is what one scenario's pages did.
type demoScenario struct {
	Error          string
	Steps          map[string]json.RawMessage
	ConsoleErrors  []string
	PageErrors     []string
	Requests       []string
	Refusals       int
	KeyInResponses []string
}

// demoState is what the page showed after a step, and what it recorded.
type demoState struct {
	SignedIn, SignedOut bool
	Who                 string
	Status, StatusKind  string
	Notice, NoticeLink  string
	Passkeys            []struct {
		FidoKeyHash, CredentialID, Text string
		Deletable                       bool
	}
	Token   string
	Calls   []demoCall
	Signals []struct {
		Name string
		Arg  map[string]any
	}
	SignalsAvailable int
	NoJSON           bool `json:"noJSON"`
}

// demoCall is one navigator.credentials call the page made.
type demoCall struct {
	Fn, Mediation, Autocomplete, Attestation string
	AllowCredentials, ExcludeCredentials     int
	HasSignal                                bool
}

// lastCall is the page's last navigator.credentials call (zero when none).
func (s demoState) lastCall() demoCall {
	if len(s.Calls) == 0 {
		return demoCall{}
	}
	return s.Calls[len(s.Calls)-1]
}

func (s demoState) String() string { b, _ := json.Marshal(s); return string(b) }

// lastSignal is the page's last signal call ("" when none).
func (s demoState) lastSignal() (string, map[string]any) {
	if len(s.Signals) == 0 {
		return "", nil
	}
	x := s.Signals[len(s.Signals)-1]
	return x.Name, x.Arg
}

func TestBrowserDemo(t *testing.T) {
	node := requireBrowserDeps(t)

	// The demo is served by webauthnd itself, at its public URL: take a free port for both.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	publicURL := fmt.Sprintf("http://localhost:%d", port)
	s := startServer(t, "", "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--public-url", publicURL)
	key, _ := demoKeys.Load(s.DataDir)
	licenseKey, _ := key.(string)
	if licenseKey == "" {
		t.Fatal("the server did not make a demo license (is the demo on for a localhost public URL?)")
	}

	started := time.Now()
	out := runDemo(t, node, publicURL+"/", fmt.Sprintf("http://127.0.0.1:%d/", port), licenseKey)
	t.Logf("demo run took %s (Chromium %s)", time.Since(started).Round(time.Millisecond), out.Chromium)
	if t.Failed() {
		return
	}

	failedLoad := regexp.MustCompile(`^Failed to load resource: the server responded with a status of 4\d\d `)
	for _, name := range []string{"passkeys", "fallback", "wrongOrigin", "noWebAuthn"} {
		sc, ok := out.Scenarios[name]
		if !ok {
			t.Errorf("scenario %s did not run", name)
			continue
		}
		if sc.Error != "" {
			t.Errorf("scenario %s stopped: %s", name, sc.Error)
		}
		// The page's own errors: none. A refusal the test provokes is a 4xx answer, which
		// Chromium reports on the console as a failed load: exactly one per refusal.
		if len(sc.PageErrors) > 0 {
			t.Errorf("%s: uncaught errors in the page: %q", name, sc.PageErrors)
		}
		loads := 0
		for _, e := range sc.ConsoleErrors {
			if failedLoad.MatchString(e) {
				loads++
			} else {
				t.Errorf("%s: console error: %s", name, e)
			}
		}
		if loads != sc.Refusals {
			t.Errorf("%s: %d failed loads on the console for %d refusals: %q", name, loads, sc.Refusals, sc.ConsoleErrors)
		}
		origin := publicURL
		if name == "wrongOrigin" {
			origin = fmt.Sprintf("http://127.0.0.1:%d", port)
		}
		for _, u := range sc.Requests {
			if !strings.HasPrefix(u, origin+"/") {
				t.Errorf("%s: a request to another origin than %s: %s", name, origin, u)
			}
		}
		if len(sc.Requests) == 0 {
			t.Errorf("%s: no request was recorded", name)
		}
		if len(sc.KeyInResponses) > 0 {
			t.Errorf("%s: the demo's license key is in the responses of %q", name, sc.KeyInResponses)
		}
	}

	t.Run("passkeys", func(t *testing.T) { checkDemoPasskeys(t, s, out.Scenarios["passkeys"], publicURL) })
	t.Run("fallback", func(t *testing.T) {
		sc := out.Scenarios["fallback"]
		taken := demoStep(t, sc, "signUpTaken")
		if taken.SignedIn || !strings.Contains(taken.Status, `"alice" is taken`) || len(taken.Calls) != 0 {
			t.Errorf("sign-up with an existing username: want it refused before any prompt, got %s", taken)
		}
		if st := demoStep(t, sc, "signUpEmpty"); !strings.Contains(st.Status, "Choose a username") {
			t.Errorf("sign-up without a username: %s", st)
		}
		for _, step := range []string{"signUp", "signInByUsername"} {
			st := demoStep(t, sc, step)
			if !st.NoJSON || !st.SignedIn || st.Who != "carol" || len(st.Passkeys) != 1 {
				t.Errorf("%s without the WebAuthn JSON methods (noJSON %v): want signed in as carol with one passkey, got %s", step, st.NoJSON, st)
			}
		}
		if st := demoStep(t, sc, "signUpAgainSameDevice"); !st.SignedIn || st.Who != "dave" {
			t.Errorf("a second account on the same device: %s", st)
		}
		if st := demoStep(t, sc, "signInUnknownUser"); st.SignedIn || !strings.Contains(st.Status, "no passkey for it") {
			t.Errorf("sign-in as an unknown user: want the prompt to find no passkey, got %s", st)
		}
	})
	t.Run("wrong origin", func(t *testing.T) {
		st := demoStep(t, out.Scenarios["wrongOrigin"], "loaded")
		if !strings.Contains(st.Notice, "Open "+publicURL) || st.NoticeLink != publicURL+"/" || st.SignedIn || st.SignedOut {
			t.Errorf("the page at 127.0.0.1: want only a notice to open %s, got %s", publicURL, st)
		}
	})
	t.Run("no WebAuthn", func(t *testing.T) {
		st := demoStep(t, out.Scenarios["noWebAuthn"], "loaded")
		if !strings.Contains(st.Notice, "does not offer passkeys") || st.SignedOut {
			t.Errorf("a browser without WebAuthn: %s", st)
		}
	})
}

// checkDemoPasskeys judges the main scenario, step by step.
func checkDemoPasskeys(t *testing.T, s *testServer, sc demoScenario, publicURL string) {
	t.Helper()
	var phoneCreds, keyCreds []cdpCredential
	_ = json.Unmarshal(sc.Steps["credentialsAfterSignUp"], &phoneCreds)
	_ = json.Unmarshal(sc.Steps["credentialsOfKey"], &keyCreds)
	if len(phoneCreds) != 1 || !phoneCreds[0].IsResidentCredential || phoneCreds[0].RPID != "localhost" || len(keyCreds) != 1 {
		t.Fatalf("the authenticators hold %+v (phone) and %+v (security key): want one passkey each, the phone's discoverable", phoneCreds, keyCreds)
	}
	phoneID := base64.RawURLEncoding.EncodeToString(cdpBytes(t, phoneCreds[0].CredentialID))
	keyID := base64.RawURLEncoding.EncodeToString(cdpBytes(t, keyCreds[0].CredentialID))

	loaded := demoStep(t, sc, "loaded")
	if len(loaded.Calls) != 1 || loaded.Calls[0].Mediation != "conditional" || loaded.Calls[0].Autocomplete != "username webauthn" || !loaded.Calls[0].HasSignal {
		t.Errorf("at load the page should make one conditional request, abortable, with the username field's autocomplete \"username webauthn\": %s", loaded)
	}
	if loaded.SignalsAvailable != 3 {
		t.Errorf("Chromium offers %d of the three signal methods", loaded.SignalsAvailable)
	}

	signUp := demoStep(t, sc, "signUp")
	if !signUp.SignedIn || signUp.Who != "alice" || len(signUp.Passkeys) != 1 || signUp.Passkeys[0].CredentialID != phoneID || signUp.Passkeys[0].Deletable {
		t.Errorf("after sign-up: want alice signed in with the phone's passkey (not deletable: her only one), got %s", signUp)
	}
	name, arg := signUp.lastSignal()
	userID, _ := arg["userId"].(string)
	if name != "signalCurrentUserDetails" || arg["name"] != "alice" || arg["rpId"] != "localhost" || userID == "" {
		t.Errorf("after sign-up: want signalCurrentUserDetails for alice, got %s %v", name, arg)
	}
	if st := demoStep(t, sc, "signOut"); st.SignedIn || !st.SignedOut {
		t.Errorf("after sign-out: %s", st)
	}

	for _, tc := range []struct {
		step, mediation string
		allow           int
	}{
		{"signInByUsername", "", 1},
		{"signInDiscoverable", "", 0},
		{"signInConditional", "conditional", 0},
	} {
		st := demoStep(t, sc, tc.step)
		call := st.lastCall()
		if !st.SignedIn || st.Who != "alice" || call.Fn != "get" || call.Mediation != tc.mediation || call.AllowCredentials != tc.allow {
			t.Errorf("%s: want alice signed in by get(mediation %q, %d allowed credentials), got %s", tc.step, tc.mediation, tc.allow, st)
		}
		for _, claim := range []string{`"sub": "alice"`, `"aud": "default"`, `"iss": "` + publicURL + `/webauthn/tenants/default"`, `"alg": "ES256"`} {
			if !strings.Contains(st.Token, claim) {
				t.Errorf("%s: the token panel lacks %s: %s", tc.step, claim, st.Token)
			}
		}
		if name, arg := st.lastSignal(); name != "signalCurrentUserDetails" || arg["userId"] != userID {
			t.Errorf("%s: want signalCurrentUserDetails for alice's user handle, got %s %v", tc.step, name, arg)
		}
	}
	if st := demoStep(t, sc, "signInBadSignature"); st.SignedIn || !strings.Contains(st.Status, "signature did not verify") {
		t.Errorf("a bogus signature: want sign-in refused, got %s", st)
	}

	add := demoStep(t, sc, "addSecurityKey")
	if call := add.lastCall(); len(add.Passkeys) != 2 || call.Fn != "create" || call.Attestation != "direct" || call.ExcludeCredentials != 1 {
		t.Errorf("adding a security key: want create(attestation direct, the phone's passkey excluded) and two passkeys, got %s", add)
	}
	var ses struct {
		Passkeys []struct{ CredentialID, AttestationFormat string }
	}
	_ = json.Unmarshal(sc.Steps["sessionAfterAdd"], &ses)
	formats := map[string]string{}
	for _, p := range ses.Passkeys {
		formats[p.CredentialID] = p.AttestationFormat
	}
	if formats[keyID] != "fido-u2f" || formats[phoneID] != "none" {
		t.Errorf("attestation formats by credential: %v; want the security key's fido-u2f and the phone's none", formats)
	}
	if st := demoStep(t, sc, "addAgainOnPhone"); !strings.Contains(st.Status, "already has a passkey") || st.lastCall().ExcludeCredentials != 2 {
		t.Errorf("adding a second passkey on the phone: want it refused by the browser, got %s", st)
	}

	del := demoStep(t, sc, "afterDelete")
	if len(del.Passkeys) != 1 || del.Passkeys[0].CredentialID != keyID {
		t.Errorf("after deleting the phone's passkey: want the security key's alone, got %s", del)
	}
	name, arg = del.lastSignal()
	if ids, _ := arg["allAcceptedCredentialIds"].([]any); name != "signalAllAcceptedCredentials" || len(ids) != 1 || ids[0] != keyID || arg["userId"] != userID || arg["rpId"] != "localhost" {
		t.Errorf("after a delete: want signalAllAcceptedCredentials with [%s] for alice, got %s %v", keyID, name, arg)
	}
	deleted := demoStep(t, sc, "signInDeleted")
	name, arg = deleted.lastSignal()
	if deleted.SignedIn || !strings.Contains(deleted.Status, "no longer registered") || name != "signalUnknownCredential" || arg["credentialId"] != phoneID {
		t.Errorf("the deleted passkey: want sign-in refused and signalUnknownCredential(%s), got %s", phoneID, deleted)
	}
	if st := demoStep(t, sc, "signInWithKey"); !st.SignedIn || st.Who != "alice" {
		t.Errorf("sign-in with the security key: %s", st)
	}

	// What webauthnd stored, through the link status a relying party reads.
	status, body, _ := s.call(t, http.MethodGet, "/webauthn/u1/link/community/default/user/alice/status", map[string]string{"licensekey": s.License}, nil)
	keys, _ := body["fidoKeys"].([]any)
	if status != http.StatusOK || len(keys) != 1 || jsonField(keys[0].(map[string]any), "attestationFormat") != "fido-u2f" {
		t.Errorf("alice's passkeys in webauthnd: %d %v", status, body)
	}
}

// demoStep decodes one step of a scenario.
func demoStep(t *testing.T, sc demoScenario, step string) demoState {
	t.Helper()
	var st demoState
	raw, ok := sc.Steps[step]
	if !ok {
		t.Fatalf("step %s was not recorded (the scenario stopped: %s)", step, sc.Error)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("step %s: %v", step, err)
	}
	return st
}

// runDemo runs demo.mjs in its own process group, killed on timeout, and decodes its JSON
// line.
func runDemo(t *testing.T, node, url, wrongURL, licenseKey string) demoRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*browserTimeout/2)
	defer cancel()
	shots, err := filepath.Abs(filepath.Join(browserDir, "shots"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, node, filepath.Join(browserDir, "demo.mjs"), url, wrongURL, shots)
	cmd.Env = append(cmd.Environ(), "DEMO_LICENSE_KEY="+licenseKey)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	t.Logf("demo.mjs stderr:\n%s", stderr.String())
	var out demoRun
	if err != nil {
		t.Errorf("node demo.mjs: %v\nstdout:\n%s", err, stdout.String())
		return out
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
		t.Errorf("demo.mjs printed no JSON result (%v)\nstdout:\n%s", err, stdout.String())
	}
	return out
}
