package main

import (
	"encoding/json"
	"testing"

	"github.com/descope/virtualwebauthn"
)

// TestOptionsHonourTheCaller is the spec of what a caller may ask for in the options: its
// authenticatorSelection, userVerification and hints are stated in the answer, the community's
// user verification policy is a floor the caller can raise and never lower, and an unknown value
// is 400 naming the field.
func TestOptionsHonourTheCaller(t *testing.T) {
	s := startServer(t, "")
	s.admin(t, "community", "create", "--id", "strict", "--tenant", "default", "--rp-id", "strict.localhost",
		"--origin", "https://strict.localhost", "--user-verification", "required")
	strictKey := s.admin(t, "license", "create", "--level", "community", "--community", "strict")
	registration := func(community string, extra map[string]any) map[string]any {
		body := map[string]any{"dns": "localhost", "username": "sel", "communityId": community}
		if community == "strict" {
			body["dns"] = "strict.localhost"
		}
		for k, v := range extra {
			body[k] = v
		}
		return body
	}
	for _, tc := range []struct {
		name      string
		path      string
		key       string
		body      map[string]any
		status    int
		code      string
		selection map[string]any // members of authenticatorSelection the answer must state
		uv        string         // the sign-in answer's userVerification
		answer    map[string]any // other members the answer must state
	}{
		{"no selection: the defaults", "attestation", s.License, registration("default", nil), 200, "",
			map[string]any{"residentKey": "preferred", "requireResidentKey": false, "userVerification": "preferred"}, "", nil},
		{"residentKey required asks for credProps", "attestation", s.License,
			registration("default", map[string]any{"authenticatorSelection": map[string]any{"residentKey": "required"}}), 200, "",
			map[string]any{"residentKey": "required", "requireResidentKey": true}, "", map[string]any{"extensions": map[string]any{"credProps": true}}},
		{"the legacy requireResidentKey true means required", "attestation", s.License,
			registration("default", map[string]any{"authenticatorSelection": map[string]any{"requireResidentKey": true}}), 200, "",
			map[string]any{"residentKey": "required", "requireResidentKey": true}, "", nil},
		{"requireResidentKey true and residentKey preferred contradict", "attestation", s.License,
			registration("default", map[string]any{"authenticatorSelection": map[string]any{"requireResidentKey": true, "residentKey": "preferred"}}), 400, "invalid_request", nil, "", nil},
		{"residentKey discouraged", "attestation", s.License,
			registration("default", map[string]any{"authenticatorSelection": map[string]any{"residentKey": "discouraged"}}), 200, "",
			map[string]any{"residentKey": "discouraged", "requireResidentKey": false}, "", nil},
		{"an attachment", "attestation", s.License,
			registration("default", map[string]any{"authenticatorSelection": map[string]any{"authenticatorAttachment": "platform"}}), 200, "",
			map[string]any{"authenticatorAttachment": "platform"}, "", nil},
		{"a caller raises user verification", "attestation", s.License,
			registration("default", map[string]any{"authenticatorSelection": map[string]any{"userVerification": "required"}}), 200, "",
			map[string]any{"userVerification": "required"}, "", nil},
		{"a caller cannot lower the community's policy", "attestation", strictKey,
			registration("strict", map[string]any{"authenticatorSelection": map[string]any{"userVerification": "discouraged"}}), 200, "",
			map[string]any{"userVerification": "required"}, "", nil},
		{"hints", "attestation", s.License, registration("default", map[string]any{"hints": []string{"security-key", "hybrid"}}), 200, "",
			nil, "", map[string]any{"hints": []any{"security-key", "hybrid"}}},
		{"attestation direct", "attestation", s.License, registration("default", map[string]any{"attestation": "direct"}), 200, "",
			nil, "", map[string]any{"attestation": "direct"}},
		{"attestation enterprise is not offered", "attestation", s.License, registration("default", map[string]any{"attestation": "enterprise"}), 400, "invalid_request", nil, "", nil},
		{"an unknown attachment", "attestation", s.License,
			registration("default", map[string]any{"authenticatorSelection": map[string]any{"authenticatorAttachment": "usb"}}), 400, "invalid_request", nil, "", nil},
		{"an unknown residentKey", "attestation", s.License,
			registration("default", map[string]any{"authenticatorSelection": map[string]any{"residentKey": "always"}}), 400, "invalid_request", nil, "", nil},
		{"an unknown user verification", "attestation", s.License,
			registration("default", map[string]any{"authenticatorSelection": map[string]any{"userVerification": "maybe"}}), 400, "invalid_request", nil, "", nil},
		{"an unknown hint", "attestation", s.License, registration("default", map[string]any{"hints": []string{"usb"}}), 400, "invalid_request", nil, "", nil},
		{"a hint twice", "attestation", s.License, registration("default", map[string]any{"hints": []string{"hybrid", "hybrid"}}), 400, "invalid_request", nil, "", nil},
		{"sign-in: the default", "assertion", s.License, registration("default", nil), 200, "", nil, "preferred", nil},
		{"sign-in: a caller raises user verification", "assertion", s.License,
			registration("default", map[string]any{"userVerification": "required"}), 200, "", nil, "required", nil},
		{"sign-in: a caller cannot lower the community's policy", "assertion", strictKey,
			registration("strict", map[string]any{"userVerification": "discouraged"}), 200, "", nil, "required", nil},
		{"sign-in: hints", "assertion", s.License, registration("default", map[string]any{"hints": []string{"client-device"}}), 200, "",
			nil, "preferred", map[string]any{"hints": []any{"client-device"}}},
		{"sign-in: an unknown user verification", "assertion", s.License,
			registration("default", map[string]any{"userVerification": "never"}), 400, "invalid_request", nil, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := s.call(t, "POST", "/webauthn/u1/"+tc.path+"/options", lic(tc.key), tc.body)
			if status != tc.status || (tc.code != "" && body["code"] != tc.code) {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
			if status != 200 {
				return
			}
			options := body
			if tc.path == "attestation" {
				options = body["data"].(map[string]any)
			}
			if tc.selection != nil {
				sel, _ := options["authenticatorSelection"].(map[string]any)
				for k, v := range tc.selection {
					if sel[k] != v {
						t.Errorf("authenticatorSelection.%s = %v, want %v (%v)", k, sel[k], v, sel)
					}
				}
			}
			if tc.uv != "" && options["userVerification"] != tc.uv {
				t.Errorf("userVerification = %v, want %s", options["userVerification"], tc.uv)
			}
			for k, v := range tc.answer {
				got, _ := json.Marshal(options[k])
				want, _ := json.Marshal(v)
				if string(got) != string(want) {
					t.Errorf("%s = %s, want %s", k, got, want)
				}
			}
		})
	}
}

// TestResultsMeetTheSelection: a registration whose client reports it did not do what the
// options asked is refused (credProps.rk false where residentKey was required, another
// attachment than the one asked); user verification that the options required is checked.
func TestResultsMeetTheSelection(t *testing.T) {
	s := startServer(t, "")
	start := func(t *testing.T, p *passkey, selection map[string]any) map[string]any {
		t.Helper()
		status, body, _ := s.call(t, "POST", "/webauthn/u1/attestation/options", lic(s.License),
			map[string]any{"dns": "localhost", "username": p.username, "communityId": "default", "authenticatorSelection": selection})
		if status != 200 {
			t.Fatalf("options: %d %v", status, body)
		}
		raw, _ := json.Marshal(body["data"])
		opts, err := virtualwebauthn.ParseAttestationOptions(string(raw))
		if err != nil {
			t.Fatal(err)
		}
		return ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts), "localhost", "default")
	}
	for _, tc := range []struct {
		name      string
		selection map[string]any
		edit      func(p *passkey, body map[string]any)
		status    int
		code      string
	}{
		{"rk false where residentKey was required", map[string]any{"residentKey": "required"},
			func(_ *passkey, b map[string]any) {
				b["clientExtensionResults"] = map[string]any{"credProps": map[string]any{"rk": false}}
			},
			400, "authenticator_selection_unmet"},
		{"rk true where residentKey was required", map[string]any{"residentKey": "required"},
			func(_ *passkey, b map[string]any) {
				b["clientExtensionResults"] = map[string]any{"credProps": map[string]any{"rk": true}}
			},
			200, ""},
		{"rk not reported", map[string]any{"residentKey": "required"}, nil, 200, ""},
		{"another attachment than the one asked", map[string]any{"authenticatorAttachment": "platform"},
			func(_ *passkey, b map[string]any) { b["authenticatorAttachment"] = "cross-platform" }, 400, "authenticator_selection_unmet"},
		{"the attachment asked", map[string]any{"authenticatorAttachment": "platform"},
			func(_ *passkey, b map[string]any) { b["authenticatorAttachment"] = "platform" }, 200, ""},
		{"user verification required by the caller, not done", map[string]any{"userVerification": "required"}, nil, 400, "user_verification_missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPasskey(localRP, "sel-"+tc.name)
			if tc.code == "user_verification_missing" {
				p.auth.Options.UserNotVerified = true
			}
			body := start(t, p, tc.selection)
			if tc.edit != nil {
				tc.edit(p, body)
			}
			status, res, _ := s.call(t, "POST", "/webauthn/u1/attestation/result", lic(s.License), body)
			if status != tc.status || (tc.code != "" && res["code"] != tc.code) {
				t.Fatalf("got %d %v, want %d %s", status, res, tc.status, tc.code)
			}
		})
	}
}
