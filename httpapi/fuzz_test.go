package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/descope/virtualwebauthn"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// realCredentials are a registration and a sign-in as a browser's toJSON() sends them (made by
// a software authenticator), merged with dns and communityId as BlockID SDKs send them, and
// the same in the shapes clients also use: standard base64, and the reference's placeholders.
func realCredentials(tb testing.TB) [][]byte {
	tb.Helper()
	rp := virtualwebauthn.RelyingParty{ID: "localhost", Name: "default", Origin: "http://localhost:8080"}
	auth := virtualwebauthn.NewAuthenticator()
	var out [][]byte
	for _, kt := range []virtualwebauthn.KeyType{virtualwebauthn.KeyTypeEC2, virtualwebauthn.KeyTypeRSA} {
		cred := virtualwebauthn.NewCredential(kt)
		challenge := bytes.Repeat([]byte{7}, 32)
		reg := virtualwebauthn.CreateAttestationResponse(rp, auth, cred, virtualwebauthn.AttestationOptions{
			Challenge: challenge, RelyingPartyID: "localhost", UserID: strings.Repeat("h", 32), UserName: "alice"})
		auth.Options.UserHandle = []byte(strings.Repeat("h", 32))
		cred.Counter = 1
		sign := virtualwebauthn.CreateAssertionResponse(rp, auth, cred, virtualwebauthn.AssertionOptions{
			Challenge: challenge, RelyingPartyID: "localhost"})
		for _, raw := range []string{reg, sign} {
			var m map[string]any
			if err := json.Unmarshal([]byte(raw), &m); err != nil {
				tb.Fatal(err)
			}
			m["dns"], m["communityId"], m["tenantId"] = "localhost", "default", "default"
			b, _ := json.Marshal(m)
			out = append(out, b)
			// Standard base64 with padding, and the reference's {} placeholders.
			resp := m["response"].(map[string]any)
			for k, v := range resp {
				if s, ok := v.(string); ok {
					d, _ := base64.RawURLEncoding.DecodeString(s)
					resp[k] = base64.StdEncoding.EncodeToString(d)
				}
			}
			resp["getTransports"] = map[string]any{}
			m["getClientExtensionResults"] = map[string]any{}
			m["clientExtensionResults"] = map[string]any{"credProps": map[string]any{"rk": true}}
			m["authenticatorAttachment"] = "platform"
			b, _ = json.Marshal(m)
			out = append(out, b)
		}
	}
	return out
}

// isClientError reports whether err is a refusal the one error writer answers with a 4xx.
func isClientError(err error) bool {
	var e *messages.Error
	if !errors.As(err, &e) {
		return false
	}
	status, ok := statusOf[e.Code]
	return ok && status >= 400 && status < 500
}

// FuzzCredentialRequest feeds untrusted result bodies through what the result routes run
// before the engine: decode (UTF-8, JSON, lenient base64 fields) and the check of the fields a
// ceremony's kind needs. It must never panic; a refusal is a 4xx; what it accepts has every
// field its kind needs, and encoding that as strict base64url and decoding it again gives the
// same credential.
func FuzzCredentialRequest(f *testing.F) {
	for _, c := range realCredentials(f) {
		f.Add(c, true)
		f.Add(c, false)
	}
	f.Add([]byte(`{"id":"AAAA","rawId":"AA==","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":null,"signature":{},"userHandle":""}}`), false)
	f.Add([]byte(`{"id":"","rawId":"","response":{}}`), true)
	f.Fuzz(func(t *testing.T, body []byte, registration bool) {
		var req credentialRequest
		if err := decode(httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)), &req); err != nil {
			if !isClientError(err) {
				t.Fatalf("decode refused with %v, not a 4xx", err)
			}
			return
		}
		c, err := req.credential(registration)
		if err != nil {
			if !isClientError(err) {
				t.Fatalf("credential refused with %v, not a 4xx", err)
			}
			return
		}
		required := map[string][]byte{"id": c.ID, "rawId": c.RawID, "clientDataJSON": c.ClientDataJSON}
		if registration {
			required["attestationObject"] = c.AttestationObject
		} else {
			required["authenticatorData"], required["signature"] = c.AuthenticatorData, c.Signature
		}
		for k, v := range required {
			if len(v) == 0 {
				t.Fatalf("accepted with %s empty", k)
			}
		}
		if ext := c.ClientExtensionResults; ext != nil && ext[0] != '{' {
			t.Fatalf("clientExtensionResults %q is not an object", ext)
		}
		strict := map[string]any{"id": b64url(c.ID), "rawId": b64url(c.RawID), "type": c.Type,
			"response": map[string]any{"clientDataJSON": b64url(c.ClientDataJSON), "attestationObject": b64url(c.AttestationObject),
				"transports": c.Transports, "authenticatorData": b64url(c.AuthenticatorData),
				"signature": b64url(c.Signature), "userHandle": b64url(c.UserHandle)}}
		if c.AuthenticatorAttachment != "" || req.AuthenticatorAttachment != nil {
			strict["authenticatorAttachment"] = c.AuthenticatorAttachment
		}
		if c.ClientExtensionResults != nil {
			strict["clientExtensionResults"] = json.RawMessage(c.ClientExtensionResults)
		}
		out, err := json.Marshal(strict)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		var again credentialRequest
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("strict encoding does not decode again: %v\n%s", err, out)
		}
		c2, err := again.credential(registration)
		if err != nil || !reflect.DeepEqual(normalize(c), normalize(c2)) {
			t.Fatalf("decoding is not stable: %v\n%+v\n%+v", err, c, c2)
		}
	})
}

// normalize treats empty and nil byte slices alike and compacts the extension JSON, as a
// round trip through JSON does.
func normalize(c messages.Credential) messages.Credential {
	for _, b := range []*[]byte{&c.ID, &c.RawID, &c.ClientDataJSON, &c.AttestationObject, &c.AuthenticatorData, &c.Signature, &c.UserHandle} {
		if len(*b) == 0 {
			*b = nil
		}
	}
	if c.ClientExtensionResults != nil {
		var buf bytes.Buffer
		_ = json.Compact(&buf, c.ClientExtensionResults)
		c.ClientExtensionResults = buf.Bytes()
	}
	return c
}

// fuzzLicenses is a store with the default community and a community license for it.
func fuzzLicenses(f testing.TB) (licenseChecker, string) {
	f.Helper()
	store, err := badger.Open(f.TempDir(), zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	lic, key, err := persistence.NewLicense(persistence.LevelCommunity, "default", "", 0)
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range store.Apply(context.Background(), []persistence.Op{
		persistence.PutCommunity{Create: true, Community: persistence.Community{ID: "default", TenantID: "default", Name: "default",
			RPIDs: []string{"localhost"}, Origins: []string{"http://localhost:8080"}, UserVerification: persistence.VerificationPreferred}},
		persistence.PutLicense{License: lic},
	}) {
		if r.Err != nil {
			f.Fatal(r.Err)
		}
	}
	return licenseChecker{licenses: store, communities: store, now: time.Now}, key
}

// FuzzOptionsRequest feeds untrusted options bodies and sessionInfo headers, with a valid
// license, through readOptions (decode, the field checks, the license's scope). It must never
// panic; a refusal is a 4xx; what it accepts has the checked shape.
func FuzzOptionsRequest(f *testing.F) {
	lc, key := fuzzLicenses(f)
	for _, body := range []string{
		`{"dns":"localhost","username":"alice","displayName":"Alice","communityId":"default","tenantId":"default"}`,
		`{"dns":"localhost","username":"alice","displayName":"Alice","communityId":"default","tenantId":"default","dguid":"x","attestation":"direct"}`,
		`{"dns":"localhost","communityId":"default"}`,
		`{"dns":"localhost"}`,
		`{"dns":"shop.localhost","username":"bob","communityId":"shop"}`,
		`{"dns":"localhost","username":"` + strings.Repeat("a", 257) + `"}`,
		`{"dns":"localhost","username":"a\u0000b"}`,
		`[]`, `null`, `{} {}`, "{\"dns\":\"\xff\"}",
	} {
		f.Add([]byte(body), "", true)
		f.Add([]byte(body), "c2Vzc2lvbi1pbmZv", false)
	}
	f.Fuzz(func(t *testing.T, body []byte, sessionInfo string, usernameRequired bool) {
		r := httptest.NewRequest(http.MethodPost, "/webauthn/u1/assertion/options", bytes.NewReader(body))
		r.Header.Set("licensekey", key)
		if sessionInfo != "" {
			r.Header["Sessioninfo"] = []string{sessionInfo}
		}
		req, scope, session, err := readOptions(r, lc, usernameRequired)
		if err != nil {
			if !isClientError(err) {
				t.Fatalf("refused with %v, not a 4xx", err)
			}
			return
		}
		if scope.CommunityID != "default" || scope.RPID != "localhost" || req.DNS != "localhost" {
			t.Fatalf("accepted outside the license's community: %+v %+v", scope, req)
		}
		if usernameRequired && req.Username == "" {
			t.Fatal("accepted without the required username")
		}
		for _, v := range []string{req.Username, req.DisplayName, req.CommunityID, req.TenantID} {
			if len(v) > maxNameLength || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("accepted a field that fails the checks: %q", v)
			}
		}
		if len(session) > 128 || strings.ContainsFunc(session, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			t.Fatalf("accepted sessionInfo %q", session)
		}
	})
}
