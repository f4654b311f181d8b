package main

import (
	"encoding/base64"
	"strconv"
	"testing"
	"time"
)

// TestFailedSignInsAreRateLimited: failures after the credential was found spend a token of the
// credential's bucket and of the license's; an empty bucket answers 429 with Retry-After without
// spending the ceremony; unknown credential ids count for nothing.
func TestFailedSignInsAreRateLimited(t *testing.T) {
	s := startServer(t, "", "--failed-signins-burst", "2", "--failed-signins-per-minute", "60", "--license-failures-factor", "1.5")
	victim := newPasskey(localRP, "victim")
	s.register(t, s.License, "default", victim)
	other := newPasskey(localRP, "other")
	s.register(t, s.License, "default", other)

	badSignature := func(p *passkey) map[string]any {
		opts, _ := s.signInOptions(t, s.License, "default", "localhost", p.username)
		p.cred.Counter++
		b := ceremonyBody(t, assertion(p, opts, nil, flagUP|flagUV, p.cred.Counter), "localhost", "default")
		resp := b["response"].(map[string]any)
		sig, _ := base64.RawURLEncoding.DecodeString(resp["signature"].(string))
		sig[len(sig)-1] ^= 1
		resp["signature"] = base64.RawURLEncoding.EncodeToString(sig)
		return b
	}
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
		if status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License), badSignature(victim)); status != 400 || body["code"] != "signature_invalid" {
			t.Fatalf("failure %d: %d %v", i+1, status, body)
		}
	}
	// The bucket is empty: even a good assertion waits, and its ceremony is not spent.
	opts, _ := s.signInOptions(t, s.License, "default", "localhost", "victim")
	victim.cred.Counter++
	good := ceremonyBody(t, assertion(victim, opts, nil, flagUP|flagUV, victim.cred.Counter), "localhost", "default")
	status, body, hdr := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License), good)
	if status != 429 || body["code"] != "rate_limited" {
		t.Fatalf("after the burst: %d %v", status, body)
	}
	wait, err := strconv.Atoi(hdr.Get("Retry-After"))
	if err != nil || wait < 1 || wait > 2 {
		t.Fatalf("Retry-After %q", hdr.Get("Retry-After"))
	}
	// The license's bucket (1.5 times a credential's: 3) is empty after one failure elsewhere,
	// while that other credential's own bucket still has a token.
	if status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License), badSignature(other)); status != 400 {
		t.Fatalf("other's first failure: %d %v", status, body)
	}
	if status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License), badSignature(other)); status != 429 || body["code"] != "rate_limited" {
		t.Fatalf("the license's limit: %d %v", status, body)
	}

	time.Sleep(time.Duration(wait)*time.Second + 100*time.Millisecond)
	if status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License), good); status != 200 {
		t.Fatalf("the same result after Retry-After: %d %v", status, body)
	}
}
