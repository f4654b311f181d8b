package main

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/descope/virtualwebauthn"
)

// TestBadInput is the spec of what each bad request gets: a 4xx JSON error with a stable code,
// and nothing stored (a refused registration leaves no credential that could sign in).
func TestBadInput(t *testing.T) {
	s := startServer(t, "")
	s.admin(t, "community", "create", "--id", "shop", "--tenant", "acme", "--rp-id", "shop.localhost", "--origin", "https://shop.localhost")
	s.admin(t, "community", "create", "--id", "strict", "--tenant", "acme", "--rp-id", "strict.localhost",
		"--origin", "https://strict.localhost", "--user-verification", "required")
	s.admin(t, "community", "create", "--id", "framed", "--tenant", "acme", "--rp-id", "framed.localhost",
		"--origin", "https://framed.localhost", "--top-origin", "https://top.example.com")
	shopKey := s.admin(t, "license", "create", "--level", "community", "--community", "shop")
	systemKey := s.admin(t, "license", "create", "--level", "system")
	acmeKey := s.admin(t, "license", "create", "--level", "service", "--tenant", "acme")
	shopRP := virtualwebauthn.RelyingParty{ID: "shop.localhost", Name: "shop", Origin: "https://shop.localhost"}
	strictRP := virtualwebauthn.RelyingParty{ID: "strict.localhost", Name: "strict", Origin: "https://strict.localhost"}
	framedRP := virtualwebauthn.RelyingParty{ID: "framed.localhost", Name: "framed", Origin: "https://framed.localhost"}

	alice := newPasskey(localRP, "alice")
	s.register(t, s.License, "default", alice)
	shopper := newPasskey(shopRP, "sam")
	s.register(t, shopKey, "shop", shopper)

	def := lic(s.License)
	optionsBody := map[string]any{"dns": "localhost", "username": "alice", "communityId": "default", "tenantId": "default"}

	// freshRegistration starts a registration and returns its result body for the passkey.
	freshRegistration := func(t *testing.T, p *passkey, key, community string, mutate func(map[string]any)) map[string]any {
		t.Helper()
		opts, _ := s.registrationOptions(t, key, community, p)
		body := ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts), p.rp.ID, community)
		if mutate != nil {
			mutate(body)
		}
		return body
	}
	// freshAssertion starts a sign-in for alice and returns a hand-made assertion.
	freshAssertion := func(t *testing.T, clientData map[string]any, flags byte) map[string]any {
		t.Helper()
		opts, _ := s.signInOptions(t, s.License, "default", "localhost", "alice")
		alice.cred.Counter++
		return ceremonyBody(t, assertion(alice, opts, clientData, flags, alice.cred.Counter), "localhost", "default")
	}
	setClientData := func(body map[string]any, edit func(cd map[string]any)) {
		resp := body["response"].(map[string]any)
		raw, _ := base64.RawURLEncoding.DecodeString(resp["clientDataJSON"].(string))
		var cd map[string]any
		_ = json.Unmarshal(raw, &cd)
		edit(cd)
		out, _ := json.Marshal(cd)
		resp["clientDataJSON"] = base64.RawURLEncoding.EncodeToString(out)
	}

	type request struct {
		path    string
		headers map[string]string
		body    any
	}
	cases := []struct {
		name   string
		req    func(t *testing.T) request
		status int
		code   string
	}{
		{"missing licensekey", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", nil, optionsBody}
		}, 401, "license_missing"},
		{"unknown licensekey", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", lic("not-a-license"), optionsBody}
		}, 401, "license_invalid"},
		// The license comes first: a caller learns nothing of the API before proving who it is.
		{"no license and an empty body", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", nil, `{}`}
		}, 401, "license_missing"},
		{"no license and a body over 64 KiB", func(t *testing.T) request {
			return request{"/webauthn/u1/assertion/result", nil, `{"id":"` + strings.Repeat("a", 70<<10) + `"}`}
		}, 401, "license_missing"},
		{"unknown licensekey and malformed JSON", func(t *testing.T) request {
			return request{"/webauthn/u1/assertion/options", lic("not-a-license"), `{"dns":`}
		}, 401, "license_invalid"},
		{"privateKey header before the license", func(t *testing.T) request {
			return request{"/webauthn/u1/assertion/options", map[string]string{"privateKey": "c2VjcmV0"}, `{}`}
		}, 400, "private_key_refused"},
		// Then the scope, the same for a community that exists elsewhere and one that does not.
		{"service license naming a community that does not exist", func(t *testing.T) request {
			return request{"/webauthn/u1/assertion/options", lic(acmeKey), map[string]any{"dns": "localhost", "communityId": "nowhere"}}
		}, 403, "license_scope"},
		{"service license naming another tenant's community", func(t *testing.T) request {
			return request{"/webauthn/u1/assertion/options", lic(acmeKey), map[string]any{"dns": "localhost", "communityId": "default"}}
		}, 403, "license_scope"},
		{"community license naming a community that does not exist", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/result", lic(shopKey), map[string]any{"dns": "localhost", "communityId": "nowhere"}}
		}, 403, "license_scope"},
		{"scope before fields: another tenant's community and a missing dns", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", lic(acmeKey), map[string]any{"communityId": "default"}}
		}, 403, "license_scope"},
		// Strict field names: what a relying party checked is what webauthnd reads.
		{"a field named in another case", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", def, `{"dns":"localhost","username":"alice","USERNAME":"bob"}`}
		}, 400, "invalid_request"},
		{"a field spelled with a long s (U+017F)", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", def, `{"dns":"localhost","uſername":"bob"}`}
		}, 400, "invalid_request"},
		{"a field named twice", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", def, `{"dns":"localhost","username":"alice","username":"bob"}`}
		}, 400, "invalid_request"},
		{"a field of the credential's response named in another case", func(t *testing.T) request {
			b := freshRegistration(t, newPasskey(localRP, "ivy"), s.License, "default", nil)
			resp := b["response"].(map[string]any)
			resp["ClientDataJSON"] = resp["clientDataJSON"]
			return request{"/webauthn/u1/attestation/result", def, b}
		}, 400, "invalid_request"},
		{"license of another community", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", lic(shopKey), optionsBody}
		}, 403, "license_scope"},
		{"tenantId that is not the community's", func(t *testing.T) request {
			return request{"/webauthn/u1/assertion/options", def, map[string]any{"dns": "localhost", "communityId": "default", "tenantId": "acme"}}
		}, 403, "license_scope"},
		{"unknown community with a system license", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", lic(systemKey), map[string]any{"dns": "localhost", "username": "x", "communityId": "nowhere"}}
		}, 404, "community_unknown"},
		{"dns that is not an RP ID of the community", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", def, map[string]any{"dns": "evil.example", "username": "alice", "communityId": "default"}}
		}, 400, "rp_id_not_allowed"},
		{"missing dns", func(t *testing.T) request {
			return request{"/webauthn/u1/assertion/options", def, map[string]any{"communityId": "default"}}
		}, 400, "invalid_request"},
		{"missing username on registration", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", def, map[string]any{"dns": "localhost", "communityId": "default"}}
		}, 400, "invalid_request"},
		{"unknown attestation preference", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", def, map[string]any{"dns": "localhost", "username": "a", "attestation": "everything"}}
		}, 400, "invalid_request"},
		{"sessionInfo header that is not printable ASCII", func(t *testing.T) request {
			return request{"/webauthn/u1/assertion/options", map[string]string{"licensekey": s.License, "sessionInfo": strings.Repeat("x", 129)}, map[string]any{"dns": "localhost"}}
		}, 400, "invalid_request"},
		{"malformed JSON", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", def, `{"dns": "localhost",`}
		}, 400, "invalid_request"},
		{"JSON that is not an object", func(t *testing.T) request {
			return request{"/webauthn/u1/assertion/result", def, `["a"]`}
		}, 400, "invalid_request"},
		{"body over 64 KiB", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", def, `{"dns":"localhost","username":"` + strings.Repeat("a", 70<<10) + `"}`}
		}, 413, "body_too_large"},
		{"privateKey header", func(t *testing.T) request {
			return request{"/webauthn/u1/attestation/options", map[string]string{"licensekey": s.License, "privateKey": "c2VjcmV0"}, optionsBody}
		}, 400, "private_key_refused"},
		{"privateKey header on a public route", func(t *testing.T) request {
			return request{"/webauthn/healthz", map[string]string{"privateKey": "c2VjcmV0"}, nil}
		}, 400, "private_key_refused"},
		{"malformed base64 in the credential", func(t *testing.T) request {
			b := freshRegistration(t, newPasskey(localRP, "ivy"), s.License, "default", nil)
			b["response"].(map[string]any)["attestationObject"] = "%%%not base64%%%"
			return request{"/webauthn/u1/attestation/result", def, b}
		}, 400, "invalid_request"},
		{"malformed CBOR attestation object", func(t *testing.T) request {
			b := freshRegistration(t, newPasskey(localRP, "ivy"), s.License, "default", nil)
			b["response"].(map[string]any)["attestationObject"] = base64.RawURLEncoding.EncodeToString([]byte{0xa3, 0x01, 0xff, 0x00})
			return request{"/webauthn/u1/attestation/result", def, b}
		}, 400, "invalid_credential"},
		{"clientDataJSON that is not JSON", func(t *testing.T) request {
			b := freshRegistration(t, newPasskey(localRP, "ivy"), s.License, "default", nil)
			b["response"].(map[string]any)["clientDataJSON"] = base64.RawURLEncoding.EncodeToString([]byte("nope"))
			return request{"/webauthn/u1/attestation/result", def, b}
		}, 400, "invalid_credential"},
		{"credential type that is not public-key", func(t *testing.T) request {
			b := freshRegistration(t, newPasskey(localRP, "ivy"), s.License, "default", func(b map[string]any) { b["type"] = "password" })
			return request{"/webauthn/u1/attestation/result", def, b}
		}, 400, "invalid_credential"},
		{"clientDataJSON.type of the other ceremony", func(t *testing.T) request {
			return request{"/webauthn/u1/assertion/result", def, freshAssertion(t, map[string]any{"type": "webauthn.create"}, flagUP|flagUV)}
		}, 400, "type_mismatch"},
		{"origin not allowed", func(t *testing.T) request {
			p := newPasskey(virtualwebauthn.RelyingParty{ID: "localhost", Origin: "http://localhost:9999"}, "ivy")
			return request{"/webauthn/u1/attestation/result", def, freshRegistration(t, p, s.License, "default", nil)}
		}, 400, "origin_not_allowed"},
		{"RP ID hash of another RP", func(t *testing.T) request {
			p := newPasskey(localRP, "ivy")
			opts, _ := s.registrationOptions(t, s.License, "default", p)
			p.rp.ID = "other.localhost"
			return request{"/webauthn/u1/attestation/result", def,
				ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts), "localhost", "default")}
		}, 400, "rp_id_hash_mismatch"},
		{"user presence flag off", func(t *testing.T) request {
			return request{"/webauthn/u1/assertion/result", def, freshAssertion(t, nil, flagUV)}
		}, 400, "user_presence_missing"},
		{"user verification required but absent (system license)", func(t *testing.T) request {
			p := newPasskey(strictRP, "ivy")
			p.auth.Options.UserNotVerified = true
			return request{"/webauthn/u1/attestation/result", lic(systemKey), freshRegistration(t, p, systemKey, "strict", nil)}
		}, 400, "user_verification_missing"},
		{"bad signature", func(t *testing.T) request {
			b := freshAssertion(t, nil, flagUP|flagUV)
			resp := b["response"].(map[string]any)
			sig, _ := base64.RawURLEncoding.DecodeString(resp["signature"].(string))
			sig[len(sig)-1] ^= 0x01
			resp["signature"] = base64.RawURLEncoding.EncodeToString(sig)
			return request{"/webauthn/u1/assertion/result", def, b}
		}, 400, "signature_invalid"},
		{"counter regression", func(t *testing.T) request {
			alice.cred.Counter += 5
			s.signIn(t, s.License, "default", alice, true)
			opts, _ := s.signInOptions(t, s.License, "default", "localhost", "alice")
			return request{"/webauthn/u1/assertion/result", def, ceremonyBody(t, assertion(alice, opts, nil, flagUP|flagUV, 1), "localhost", "default")}
		}, 400, "counter_regression"},
		{"unknown credential", func(t *testing.T) request {
			stranger := newPasskey(localRP, "alice")
			stranger.auth.Options.UserHandle = alice.auth.Options.UserHandle
			opts, _ := s.signInOptions(t, s.License, "default", "localhost", "")
			return request{"/webauthn/u1/assertion/result", def, ceremonyBody(t, assertion(stranger, opts, nil, flagUP|flagUV, 1), "localhost", "default")}
		}, 400, "credential_unknown"},
		{"credential of another community", func(t *testing.T) request {
			thief := &passkey{rp: localRP, auth: shopper.auth, cred: shopper.cred, username: "sam"}
			opts, _ := s.signInOptions(t, s.License, "default", "localhost", "")
			return request{"/webauthn/u1/assertion/result", def, ceremonyBody(t, assertion(thief, opts, nil, flagUP|flagUV, 50), "localhost", "default")}
		}, 400, "credential_unknown"},
		{"credential id already registered, by another user", func(t *testing.T) request {
			p := &passkey{rp: localRP, auth: virtualwebauthn.NewAuthenticator(), cred: alice.cred, username: "mallory"}
			return request{"/webauthn/u1/attestation/result", def, freshRegistration(t, p, s.License, "default", nil)}
		}, 409, "credential_exists"},
		{"challenge replayed", func(t *testing.T) request {
			b := freshAssertion(t, nil, flagUP|flagUV)
			if st, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", def, b); st != 200 {
				t.Fatalf("first use: %d %v", st, body)
			}
			return request{"/webauthn/u1/assertion/result", def, b}
		}, 400, "ceremony_not_found"},
		{"challenge from another community's ceremony", func(t *testing.T) request {
			opts, _ := s.signInOptions(t, shopKey, "shop", "shop.localhost", "sam")
			a := assertion(alice, opts, nil, flagUP|flagUV, 999)
			return request{"/webauthn/u1/assertion/result", def, ceremonyBody(t, a, "localhost", "default")}
		}, 400, "ceremony_not_found"},
		{"challenge never issued", func(t *testing.T) request {
			opts := &virtualwebauthn.AssertionOptions{Challenge: []byte("0123456789abcdef0123456789abcdef")}
			return request{"/webauthn/u1/assertion/result", def, ceremonyBody(t, assertion(alice, opts, nil, flagUP|flagUV, 1000), "localhost", "default")}
		}, 400, "ceremony_not_found"},
		{"sessionInfo that names no live ceremony", func(t *testing.T) request {
			return request{"/webauthn/u1/assertion/result", map[string]string{"licensekey": s.License, "sessionInfo": "bogus"}, freshAssertion(t, nil, flagUP|flagUV)}
		}, 400, "session_mismatch"},
		{"sessionInfo of another ceremony", func(t *testing.T) request {
			_, other := s.signInOptions(t, s.License, "default", "localhost", "alice")
			return request{"/webauthn/u1/assertion/result", map[string]string{"licensekey": s.License, "sessionInfo": other["sessionInfo"].(string)}, freshAssertion(t, nil, flagUP|flagUV)}
		}, 400, "session_mismatch"},
		{"crossOrigin true in a community without top origins", func(t *testing.T) request {
			return request{"/webauthn/u1/assertion/result", def, freshAssertion(t, map[string]any{"crossOrigin": true, "topOrigin": "https://evil.example"}, flagUP|flagUV)}
		}, 400, "cross_origin_refused"},
		{"crossOrigin true without a topOrigin", func(t *testing.T) request {
			p := newPasskey(framedRP, "ivy")
			b := freshRegistration(t, p, systemKey, "framed", nil)
			setClientData(b, func(cd map[string]any) { cd["crossOrigin"] = true })
			return request{"/webauthn/u1/attestation/result", lic(systemKey), b}
		}, 400, "cross_origin_refused"},
		{"crossOrigin true with a topOrigin not listed", func(t *testing.T) request {
			p := newPasskey(framedRP, "ivy")
			b := freshRegistration(t, p, systemKey, "framed", nil)
			setClientData(b, func(cd map[string]any) { cd["crossOrigin"] = true; cd["topOrigin"] = "https://evil.example" })
			return request{"/webauthn/u1/attestation/result", lic(systemKey), b}
		}, 400, "cross_origin_refused"},
		{"result dns that differs from the ceremony's RP ID", func(t *testing.T) request {
			s.admin(t, "community", "update", "--id", "shop", "--rp-id", "shop.localhost", "--rp-id", "localhost")
			opts, _ := s.signInOptions(t, shopKey, "shop", "shop.localhost", "sam")
			shopper.cred.Counter++
			b := ceremonyBody(t, virtualwebauthn.CreateAssertionResponse(shopper.rp, shopper.auth, shopper.cred, *opts), "localhost", "shop")
			return request{"/webauthn/u1/assertion/result", lic(shopKey), b}
		}, 400, "rp_id_not_allowed"},
		{"unknown route", func(t *testing.T) request {
			return request{"/webauthn/u1/nothing", def, optionsBody}
		}, 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.req(t)
			status, body, hdr := s.call(t, "POST", r.path, r.headers, r.body)
			if r.path == "/webauthn/healthz" {
				status, body, hdr = s.call(t, "GET", r.path, r.headers, nil)
			}
			if status != tc.status || body["code"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
			for field, want := range map[string]any{"statusCode": float64(tc.status), "status": "failed"} {
				if body[field] != want {
					t.Errorf("%s = %v, want %v", field, body[field], want)
				}
			}
			if body["message"] == "" || body["message"] != body["errorMessage"] || body["error"] == "" {
				t.Errorf("error body %v lacks a message", body)
			}
			if hdr.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", hdr.Get("Content-Type"))
			}
			for _, secret := range []string{s.License, shopKey, systemKey, acmeKey, "c2VjcmV0"} {
				if strings.Contains(s.stderr.String(), secret) {
					t.Fatalf("a secret reached the log")
				}
			}
		})
	}

	// Names that bind to no field are ignored, as BlockID SDKs' extras (dguid) must be.
	if st, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/options", def,
		map[string]any{"dns": "localhost", "username": "alice", "dguid": "x", "extra": map[string]any{"USERNAME": "y"}}); st != 200 {
		t.Fatalf("a body with extra fields: %d %v", st, body)
	}

	// Nothing was stored by the refusals: alice still has exactly her one passkey, and the
	// refused registrations left no user that could sign in.
	_, body := s.signInOptions(t, s.License, "default", "localhost", "alice")
	if n := len(body["allowCredentials"].([]any)); n != 1 {
		t.Fatalf("alice has %d credentials after the refusals, want 1", n)
	}
	s.signIn(t, s.License, "default", alice, true)
}
