package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/descope/virtualwebauthn"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
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
// before the ceremony: decode (UTF-8, JSON, lenient base64 fields) and the canonical
// re-encoding for go-webauthn. It must never panic; a refusal is a 4xx; what it accepts
// re-encodes to JSON whose binary fields are strict base64url, and re-encoding that again
// changes nothing.
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
		out, err := req.canonical(registration)
		if err != nil {
			if !isClientError(err) {
				t.Fatalf("canonical refused with %v, not a 4xx", err)
			}
			return
		}
		var m struct {
			ID       string                     `json:"id"`
			RawID    string                     `json:"rawId"`
			Response map[string]json.RawMessage `json:"response"`
		}
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("canonical output is not JSON: %v\n%s", err, out)
		}
		binary := []string{"clientDataJSON", "attestationObject", "authenticatorData", "signature", "userHandle"}
		fields := map[string]string{"id": m.ID, "rawId": m.RawID}
		for _, k := range binary {
			if raw, ok := m.Response[k]; ok {
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					t.Fatalf("response.%s is not a string: %s", k, raw)
				}
				fields["response."+k] = s
			}
		}
		for k, s := range fields {
			if b, err := base64.RawURLEncoding.Strict().DecodeString(s); err != nil || len(b) == 0 {
				t.Fatalf("%s = %q is not non-empty strict base64url: %v", k, s, err)
			}
		}
		var again credentialRequest
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("canonical output does not decode again: %v\n%s", err, out)
		}
		out2, err := again.canonical(registration)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("canonical is not stable: %v\n%s\n%s", err, out, out2)
		}
	})
}

// fuzzLicenses is a store with the default community and a community license for it.
func fuzzLicenses(f *testing.F) (licenseChecker, string) {
	f.Helper()
	store, err := persistence.Open(f.TempDir(), zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	lic, key, err := persistence.NewLicense(persistence.LevelCommunity, "default", "", 0)
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range store.Apply([]persistence.Op{
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
