package actors

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// w3cVector is the W3C test vectors' packed ES256 registration (testdata/w3c-packed-es256.txt):
// its x5c chain leads to the vectors' attestation CA.
type w3cVector struct {
	challenge, aaguid, credentialID, clientDataJSON, attestationObject, caCert []byte
}

func readW3CVector(t *testing.T) w3cVector {
	t.Helper()
	raw, err := os.ReadFile("testdata/w3c-packed-es256.txt")
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string) []byte {
		m := regexp.MustCompile(`(?m)^` + name + ` = h'([0-9a-f]+)'`).FindSubmatch(raw)
		if m == nil {
			t.Fatalf("%s is not in the test vectors", name)
		}
		b, _ := hex.DecodeString(string(m[1]))
		return b
	}
	return w3cVector{value("challenge"), value("aaguid"), value("credential_id"), value("clientDataJSON"),
		value("attestationObject"), value("attestation_ca_cert")}
}

// statementFor is a real statement (the YubiKey 5's) made to describe aaguid, with roots as its
// attestation roots.
func statementFor(t *testing.T, aaguid string, roots ...[]byte) string {
	t.Helper()
	raw, err := os.ReadFile("testdata/yubikey5-statement.json")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	st["aaguid"], st["description"] = aaguid, "W3C test vector authenticator"
	delete(st, "authenticatorGetInfo")
	var encoded []string
	for _, r := range roots {
		encoded = append(encoded, base64.StdEncoding.EncodeToString(r))
	}
	st["attestationRootCertificates"] = encoded
	out, _ := json.Marshal(st)
	return string(out)
}

// TestMetadataGovernsRegistration replays the W3C packed ES256 registration (its challenge is
// fixed: the test sets fixedChallenge) under vendor records and trust policies: a record whose
// statement has the vectors' CA makes the attestation trusted and names the model; without that
// root it is untrusted, which a community requiring trust refuses; a disabled record refuses
// the model.
func TestMetadataGovernsRegistration(t *testing.T) {
	v := readW3CVector(t)
	aaguid, _ := persistence.FormatAAGUID(v.aaguid)
	otherRoot := func() []byte {
		raw, _ := os.ReadFile("testdata/mds/root-r3.crt")
		return raw
	}()
	fixedChallenge = v.challenge
	t.Cleanup(func() { fixedChallenge = nil })

	for _, tc := range []struct {
		name     string
		trust    string // the community's policy
		record   *persistence.VendorRecord
		code     messages.Code
		trusted  bool
		authName string
	}{
		{"no metadata: registered, untrusted", persistence.AttestationTrustAny, nil, "", false, ""},
		{"no metadata, trust required: refused", persistence.AttestationTrustRequired, nil, messages.CodeAuthenticatorRefused, false, ""},
		{"a record with the CA: trusted and named", persistence.AttestationTrustRequired,
			&persistence.VendorRecord{Name: "Vector Key", Metadata: statementFor(t, aaguid, v.caCert)}, "", true, "Vector Key"},
		{"a record with another root: untrusted", persistence.AttestationTrustAny,
			&persistence.VendorRecord{Name: "Vector Key", Metadata: statementFor(t, aaguid, otherRoot)}, "", false, "Vector Key"},
		{"a record with another root, trust required: refused", persistence.AttestationTrustRequired,
			&persistence.VendorRecord{Name: "Vector Key", Metadata: statementFor(t, aaguid, otherRoot)}, messages.CodeAuthenticatorRefused, false, ""},
		{"a disabled record: refused", persistence.AttestationTrustAny,
			&persistence.VendorRecord{Name: "Vector Key", Disabled: true, Metadata: statementFor(t, aaguid, v.caCert)}, messages.CodeAuthenticatorRefused, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := badger.Open(t.TempDir(), zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			community := persistence.Community{ID: "w3c", TenantID: "t1", Name: "w3c", RPIDs: []string{"example.org"},
				Origins: []string{"https://example.org"}, UserVerification: persistence.VerificationPreferred, AttestationTrust: tc.trust}
			if _, err := persistence.ApplyOne(ctx, store, persistence.PutCommunity{Create: true, Community: community}); err != nil {
				t.Fatal(err)
			}
			if tc.record != nil {
				r := *tc.record
				r.CommunityID, r.AAGUID, r.UpdatedBy = "w3c", aaguid, "test"
				if _, err := persistence.ApplyOne(ctx, store, persistence.PutVendorMetadata{Record: r}); err != nil {
					t.Fatal(err)
				}
			}
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			e, err := NewEngine(Config{CeremonyTimeout: time.Minute, MaxCeremonies: 10, Issuer: "https://example.org/webauthn",
				TokenTTL: time.Minute, SigningKey: key, DecoySecret: []byte("decoy")}, store, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(e.Stop)
			scope := messages.Scope{TenantID: "t1", CommunityID: "w3c", RPID: "example.org", LicenseID: "l1"}
			if _, err := e.BeginRegistration(ctx, messages.BeginRegistration{Scope: scope, Username: "vector", Attestation: "direct"}); err != nil {
				t.Fatal(err)
			}
			res, err := e.FinishRegistration(ctx, messages.FinishRegistration{Scope: scope, Credential: messages.Credential{
				ID: v.credentialID, RawID: v.credentialID, Type: "public-key",
				ClientDataJSON: v.clientDataJSON, AttestationObject: v.attestationObject}})
			if tc.code != "" {
				if code(err) != tc.code {
					t.Fatalf("got %v, want %s", err, tc.code)
				}
				if _, err := store.Credential(ctx, v.credentialID); err == nil {
					t.Fatal("a refused registration stored its credential")
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if res.AttestationFormat != "packed" || res.AttestationTrusted != tc.trusted || res.AuthenticatorName != tc.authName {
				t.Fatalf("registered %+v; want trusted %v, name %q", res, tc.trusted, tc.authName)
			}
			if stored, err := store.Credential(ctx, v.credentialID); err != nil || stored.AttestationTrusted != tc.trusted {
				t.Fatalf("stored %+v, %v", stored, err)
			}
		})
	}
}

// TestModelCacheIsBounded: made-up AAGUIDs (what an authenticator under none attestation may
// claim) fill the models cache up to its bound and no further; look-ups beyond it still answer.
func TestModelCacheIsBounded(t *testing.T) {
	store, err := badger.Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ms := newModels(store)
	aaguid := make([]byte, 16)
	for i := range maxCachedModels + 100 {
		aaguid[0], aaguid[1], aaguid[2], aaguid[15] = byte(i), byte(i>>8), byte(i>>16), 1
		if _, err := ms.of(ctx, "default", aaguid); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	ms.cache.Load().byKey.Range(func(_, _ any) bool { n++; return true })
	if n != maxCachedModels {
		t.Fatalf("the cache holds %d models after %d made-up AAGUIDs, want its bound %d", n, maxCachedModels+100, maxCachedModels)
	}
}

// TestMDSStatusSurvivesFaultsElsewhereInItsReport: a status report that go-webauthn's parser
// refuses for a part the status check does not read (a malformed url or certificate) still
// refuses its model: the import keeps such an entry, and `metadata list` shows it REVOKED, so a
// ceremony must not let the model pass as unknown.
func TestMDSStatusSurvivesFaultsElsewhereInItsReport(t *testing.T) {
	store, err := badger.Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const aaguid = "0badc0de-0000-4000-8000-000000000001"
	for i, fault := range []string{`"url":"http://bad url"`, `"certificate":"not base64 DER"`} {
		entry := `{"aaguid":"` + aaguid + `","statusReports":[{"status":"FIDO_CERTIFIED","effectiveDate":"2019-01-01"},` +
			`{"status":"REVOKED","effectiveDate":"2020-01-01",` + fault + `}],"timeOfLastStatusChange":"2020-01-01"}`
		if _, err := store.ReplaceMDS(ctx, persistence.MDSBlob{Number: i + 1, NextUpdate: time.Now().AddDate(0, 1, 0)},
			[]persistence.MDSEntry{{AAGUID: aaguid, Description: "Broken Key", Status: "REVOKED", Entry: json.RawMessage(entry)}}, false); err != nil {
			t.Fatal(err)
		}
		raw, _ := hex.DecodeString(strings.ReplaceAll(aaguid, "-", ""))
		m, err := newModels(store).of(ctx, "default", raw)
		if err != nil {
			t.Fatal(err)
		}
		if why := m.refusal(time.Now()); !strings.Contains(why, "REVOKED") {
			t.Errorf("a REVOKED report with %s: refusal %q, want one naming REVOKED", fault, why)
		}
	}
}
