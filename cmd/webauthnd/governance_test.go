package main

import (
	"strings"
	"testing"

	"github.com/descope/virtualwebauthn"
	"github.com/google/uuid"
)

// passkeyOfModel is a passkey whose authenticator reports the AAGUID of a model.
func passkeyOfModel(username, aaguid string) *passkey {
	p := newPasskey(localRP, username)
	id := uuid.MustParse(aaguid)
	copy(p.auth.Aaguid[:], id[:])
	return p
}

// tryRegistration runs a registration in the default community and returns the result's
// status and body.
func (s *testServer) tryRegistration(t *testing.T, p *passkey) (int, map[string]any) {
	t.Helper()
	opts, _ := s.registrationOptions(t, s.License, "default", p)
	status, body, _ := s.call(t, "POST", "/webauthn/u1/attestation/result", lic(s.License),
		ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts), p.rp.ID, "default"))
	return status, body
}

// assertionBody is p's answer to request options, as a result body of the default community.
func (s *testServer) assertionBody(t *testing.T, p *passkey, opts *virtualwebauthn.AssertionOptions) map[string]any {
	t.Helper()
	return ceremonyBody(t, virtualwebauthn.CreateAssertionResponse(p.rp, p.auth, p.cred, *opts), p.rp.ID, "default")
}

// TestMetadataGovernsCeremonies: vendor records and the FIDO Metadata Service decide which
// authenticator models may register and sign in, at once when they change.
func TestMetadataGovernsCeremonies(t *testing.T) {
	s := startServer(t, "")
	def := lic(s.License)
	const model = "c0ffee00-1234-4abc-8def-0123456789ab"
	record := "/webauthn/vendormetadata/default/aaguid/" + model
	setDisabled := func(t *testing.T, disabled bool) {
		t.Helper()
		if st, body, _ := s.call(t, "PATCH", record, def, map[string]any{"disabled": disabled, "updatedBy": "test"}); st != 200 {
			t.Fatalf("PATCH disabled=%v: %d %v", disabled, st, body)
		}
	}
	if st, raw, _ := s.callRaw(t, "PUT", "/webauthn/vendormetadata/default", def, map[string]any{"aaguid": model,
		"metadata": statementOf(model, 0), "name": "Coffee Key", "disabled": true, "updatedBy": "test"}); st != 200 {
		t.Fatalf("PUT record: %d %s", st, raw)
	}

	// A disabled model cannot register; re-enabled, it can, and is named.
	p := passkeyOfModel("coffee", model)
	if st, body := s.tryRegistration(t, p); st != 403 || body["code"] != "authenticator_refused" || !strings.Contains(body["message"].(string), "Coffee Key") {
		t.Fatalf("registration of a disabled model: %d %v", st, body)
	}
	setDisabled(t, false)
	res := s.register(t, s.License, "default", p)
	if res["authenticatorName"] != "Coffee Key" || res["aaguid"] != model {
		t.Fatalf("registration result: %v", res)
	}
	_, status, _ := s.call(t, "GET", statusPath("/webauthn/u1", "default", "coffee"), def, nil)
	if keys := status["fidoKeys"].([]any); len(keys) != 1 || keys[0].(map[string]any)["authenticatorName"] != "Coffee Key" {
		t.Fatalf("link status: %v", status)
	}

	// Disabled again, its passkeys cannot sign in, at once; re-enabled, they can, at once.
	setDisabled(t, true)
	opts, _ := s.signInOptions(t, s.License, "default", "localhost", "coffee")
	p.cred.Counter++
	if st, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", def, s.assertionBody(t, p, opts)); st != 403 || body["code"] != "authenticator_refused" {
		t.Fatalf("sign-in of a disabled model: %d %v", st, body)
	}
	setDisabled(t, false)
	s.signIn(t, s.License, "default", p, true)

	// A model the FIDO Metadata Service reports as compromised: a passkey registered before the
	// import cannot sign in after it, and no new one can register.
	const bypassed = "d0fec87b-3312-433b-8d95-07d1873b1d05" // USER_VERIFICATION_BYPASS in test-blob.jwt
	early := passkeyOfModel("early", bypassed)
	s.register(t, s.License, "default", early)
	f := mdsTestFiles(t)
	s.admin(t, "metadata", "import", "--blob", f.blob42, "--root", f.rootConformance, "--at", atBlob42)
	opts, _ = s.signInOptions(t, s.License, "default", "localhost", "early")
	early.cred.Counter++
	if st, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", def, s.assertionBody(t, early, opts)); st != 403 ||
		body["code"] != "authenticator_refused" || !strings.Contains(body["message"].(string), "USER_VERIFICATION_BYPASS") {
		t.Fatalf("sign-in of a compromised model: %d %v", st, body)
	}
	if st, body := s.tryRegistration(t, passkeyOfModel("late", bypassed)); st != 403 || body["code"] != "authenticator_refused" {
		t.Fatalf("registration of a compromised model: %d %v", st, body)
	}
	// Other models are untouched.
	s.signIn(t, s.License, "default", p, true)
}
