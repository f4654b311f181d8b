package main

import (
	"encoding/base64"
	"strconv"
	"testing"
)

// badSignature is an assertion of p for fresh options whose signature does not verify: what an
// attacker who knows p's username and credential id can send.
func (s *testServer) badSignature(t *testing.T, p *passkey) map[string]any {
	t.Helper()
	opts, _ := s.signInOptions(t, s.License, "default", "localhost", p.username)
	p.cred.Counter++
	b := ceremonyBody(t, assertion(p, opts, nil, flagUP|flagUV, p.cred.Counter), "localhost", "default")
	resp := b["response"].(map[string]any)
	sig, _ := base64.RawURLEncoding.DecodeString(resp["signature"].(string))
	sig[len(sig)-1] ^= 1
	resp["signature"] = base64.RawURLEncoding.EncodeToString(sig)
	return b
}

// TestFailedSignInsAreRateLimited: failures after the credential was found spend a token of the
// credential's bucket and of the license's; a failure that finds a bucket empty answers 429 with
// Retry-After, and its ceremony is spent; unknown credential ids count for nothing; and an
// assertion whose signature verifies is never refused, however empty the buckets.
func TestFailedSignInsAreRateLimited(t *testing.T) {
	s := startServer(t, "", "--failed-signins-burst", "2", "--failed-signins-per-minute", "1", "--license-failures-factor", "1.5")
	victim := newPasskey(localRP, "victim")
	s.register(t, s.License, "default", victim)
	other := newPasskey(localRP, "other")
	s.register(t, s.License, "default", other)

	// Unknown credentials are not counted: naming ids does not lock anyone out.
	for range 5 {
		stranger := newPasskey(localRP, "victim")
		stranger.auth.Options.UserHandle = victim.auth.Options.UserHandle
		opts, _ := s.signInOptions(t, s.License, "default", "localhost", "")
		status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License),
			ceremonyBody(t, assertion(stranger, opts, nil, flagUP|flagUV, 1), "localhost", "default"))
		if status != 400 || body["code"] != "credential_unknown" {
			t.Fatalf("unknown credential: %d %v", status, body)
		}
	}
	for i := range 2 {
		if status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License), s.badSignature(t, victim)); status != 400 || body["code"] != "signature_invalid" {
			t.Fatalf("failure %d: %d %v", i+1, status, body)
		}
	}
	// Beyond the burst: 429 with Retry-After, and the ceremony is spent.
	beyond := s.badSignature(t, victim)
	status, body, hdr := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License), beyond)
	if status != 429 || body["code"] != "rate_limited" {
		t.Fatalf("a failure beyond the burst: %d %v", status, body)
	}
	if wait, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || wait < 1 || wait > 60 {
		t.Fatalf("Retry-After %q", hdr.Get("Retry-After"))
	}
	if status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License), beyond); status != 400 || body["code"] != "ceremony_not_found" {
		t.Fatalf("the same result again after its 429: %d %v, want ceremony_not_found", status, body)
	}
	// The victim's own sign-in goes through.
	s.signIn(t, s.License, "default", victim, true)

	// The license's bucket (1.5 times a credential's: 3) is empty after the victim's three
	// failures: another credential's first failure is beyond it, and that credential's own
	// sign-in still goes through.
	if status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License), s.badSignature(t, other)); status != 429 || body["code"] != "rate_limited" {
		t.Fatalf("the license's limit: %d %v", status, body)
	}
	s.signIn(t, s.License, "default", other, false)
}

// TestForgedAssertionsDoNotLockOutTheUser: anyone who knows dave's username sees his credential
// id in allowCredentials and can send forged assertions for it; beyond the burst they get 429,
// and dave still signs in at once. An assertion whose signature verifies but whose counter went
// backwards keeps its own answer (counter_regression, for the relying party to act on), not 429.
func TestForgedAssertionsDoNotLockOutTheUser(t *testing.T) {
	s := startServer(t, "")
	dave := newPasskey(localRP, "dave")
	s.register(t, s.License, "default", dave)
	for i := range 12 {
		status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License), s.badSignature(t, dave))
		if want := map[bool]int{true: 400, false: 429}[i < 10]; status != want {
			t.Fatalf("forged assertion %d: %d %v, want %d", i+1, status, body, want)
		}
	}
	s.signIn(t, s.License, "default", dave, true)
	opts, _ := s.signInOptions(t, s.License, "default", "localhost", "dave")
	status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License),
		ceremonyBody(t, assertion(dave, opts, nil, flagUP|flagUV, 1), "localhost", "default"))
	if status != 400 || body["code"] != "counter_regression" {
		t.Fatalf("a verified assertion with a counter gone backwards: %d %v, want 400 counter_regression", status, body)
	}
	s.signIn(t, s.License, "default", dave, true)
}
