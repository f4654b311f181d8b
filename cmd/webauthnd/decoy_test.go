package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"reflect"
	"testing"

	"github.com/descope/virtualwebauthn"
)

// registerShaped registers p with a credential id of idLen bytes, its authenticator reporting
// transports, as real authenticators of one kind do.
func (s *testServer) registerShaped(t *testing.T, p *passkey, idLen int, transports ...any) {
	t.Helper()
	p.cred.ID = make([]byte, idLen)
	_, _ = rand.Read(p.cred.ID)
	opts, _ := s.registrationOptions(t, s.License, "default", p)
	body := ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts), p.rp.ID, "default")
	body["response"].(map[string]any)["transports"] = transports
	if status, res, _ := s.call(t, "POST", "/webauthn/u1/attestation/result", lic(s.License), body); status != 200 {
		t.Fatalf("attestation/result: %d %v", status, res)
	}
	p.auth.Options.UserHandle = []byte(opts.UserID)
	p.auth.AddCredential(p.cred)
}

// allowShape is what allowCredentials shows of a user apart from the ids themselves: each
// passkey's id length and transports, in order.
func allowShape(t *testing.T, options map[string]any) []string {
	t.Helper()
	var out []string
	allowed, _ := options["allowCredentials"].([]any)
	for _, a := range allowed {
		d := a.(map[string]any)
		id, err := base64.RawURLEncoding.DecodeString(d["id"].(string))
		if err != nil {
			t.Fatalf("allowCredentials id %v: %v", d["id"], err)
		}
		out = append(out, fmt.Sprintf("%d bytes %v %v", len(id), d["type"], d["transports"]))
	}
	return out
}

// forged is an assertion for the ceremony of options naming credential id and userHandle (none
// when empty), signed by a key that is not the credential's.
func forged(p *passkey, opts *virtualwebauthn.AssertionOptions, id, userHandle []byte) string {
	f := &passkey{rp: p.rp, auth: virtualwebauthn.NewAuthenticator(), cred: newES256Credential()}
	f.cred.ID = id
	f.auth.Options.UserHandle = userHandle
	return assertion(f, opts, nil, flagUP|flagUV, 7)
}

// TestDecoysLookLikeRealUsers is the sign-in side of username enumeration: the options for an
// unknown username show as many passkeys, with ids as long and the same transports, as the
// community's users commonly have, the same on every call and after a restart; and an assertion
// naming a decoy id fails with the very answer a forged assertion on a real passkey gets, and
// counts in the failure limiter as one does.
func TestDecoysLookLikeRealUsers(t *testing.T) {
	dir := t.TempDir()
	flags := []string{"--failed-signins-burst", "2", "--failed-signins-per-minute", "1"}
	s := startServer(t, dir, flags...)
	// Most users of this community have one security key: a 48-byte id over NFC or USB.
	users := map[string]*passkey{}
	for _, name := range []string{"alice", "bob", "carol"} {
		users[name] = newPasskey(localRP, name)
		s.registerShaped(t, users[name], 48, "nfc", "usb")
	}
	s.registerShaped(t, newPasskey(localRP, "dave"), 16, "hybrid", "internal")

	_, known := s.signInOptions(t, s.License, "default", "localhost", "alice")
	_, decoy := s.signInOptions(t, s.License, "default", "localhost", "mallory")
	want := []string{"48 bytes public-key [nfc usb]"}
	if got := allowShape(t, known); !reflect.DeepEqual(got, want) {
		t.Fatalf("alice's allowCredentials: %v, want %v", got, want)
	}
	if got := allowShape(t, decoy); !reflect.DeepEqual(got, want) {
		t.Fatalf("an unknown username's allowCredentials: %v, want the community's common shape %v", got, want)
	}
	for k := range known {
		if _, ok := decoy[k]; !ok && k != "sessionInfo" {
			t.Errorf("field %s is in a real user's options and not in a decoy's", k)
		}
	}
	for k := range decoy {
		if _, ok := known[k]; !ok {
			t.Errorf("field %s is in a decoy's options and not in a real user's", k)
		}
	}
	decoyID := decoy["allowCredentials"].([]any)[0].(map[string]any)["id"].(string)

	s.stop(t)
	s = startServer(t, dir, flags...)
	_, again := s.signInOptions(t, s.License, "default", "localhost", "mallory")
	if fmt.Sprint(again["allowCredentials"]) != fmt.Sprint(decoy["allowCredentials"]) {
		t.Fatalf("decoy allowCredentials changed across a restart: %v, then %v", decoy["allowCredentials"], again["allowCredentials"])
	}

	// A forged assertion: on alice's real passkey, and on mallory's decoy.
	try := func(username string, id, userHandle []byte) (int, map[string]any) {
		t.Helper()
		opts, _ := s.signInOptions(t, s.License, "default", "localhost", username)
		status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License),
			ceremonyBody(t, forged(users["alice"], opts, id, userHandle), "localhost", "default"))
		return status, body
	}
	mallory, err := base64.RawURLEncoding.DecodeString(decoyID)
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, realStatus int, realBody map[string]any, decoyStatus int, decoyBody map[string]any) {
		t.Helper()
		if decoyStatus != realStatus {
			t.Fatalf("%s: real passkey %d %v, decoy %d %v", what, realStatus, realBody, decoyStatus, decoyBody)
		}
		for _, k := range []string{"statusCode", "error", "message", "code", "status", "errorMessage"} {
			if fmt.Sprint(realBody[k]) != fmt.Sprint(decoyBody[k]) {
				t.Errorf("%s: %s is %v for a real passkey and %v for a decoy", what, k, realBody[k], decoyBody[k])
			}
		}
	}
	// Without a username (discoverable), an id found in allowCredentials answers alike, with no
	// user handle or with a made-up one, and neither counts as a failure.
	for _, handle := range [][]byte{nil, []byte("made-up-user-handle")} {
		what := fmt.Sprintf("a discoverable forged assertion with user handle %q", handle)
		realStatus, realBody := try("", users["alice"].cred.ID, handle)
		decoyStatus, decoyBody := try("", mallory, handle)
		same(what, realStatus, realBody, decoyStatus, decoyBody)
		if realStatus != 400 {
			t.Fatalf("%s: %d %v, want 400", what, realStatus, realBody)
		}
	}
	for i, wantStatus := range []int{400, 400, 429} { // the burst is 2
		realStatus, realBody := try("alice", users["alice"].cred.ID, nil)
		decoyStatus, decoyBody := try("mallory", mallory, nil)
		same(fmt.Sprintf("forged assertion %d", i+1), realStatus, realBody, decoyStatus, decoyBody)
		if realStatus != wantStatus {
			t.Fatalf("forged assertion %d: %d %v, want %d", i+1, realStatus, realBody, wantStatus)
		}
		if i == 0 && realBody["code"] != "signature_invalid" {
			t.Fatalf("a forged assertion on a real passkey: %v, want signature_invalid", realBody)
		}
	}
}
