package actors

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/metadata"
	"github.com/golang-jwt/jwt/v5"

	"github.com/webauthnd/webauthnd/persistence"
)

// mdsTestdata is the directory of the shared MDS test BLOBs (see its README one level up):
// blob.jwt (number 9, 98 entries, signed through GlobalSign Root CA R3) and test-blob.jwt
// (number 42, 200 entries, chaining to go-webauthn's ConformanceMDSRoot).
const mdsTestdata = "testdata/mds"

// Clocks at which the shared BLOBs verify (their signing certificates have expired since).
var (
	clockBlob9  = time.Date(2021, 11, 15, 0, 0, 0, 0, time.UTC)
	clockBlob42 = time.Date(2022, 11, 1, 0, 0, 0, 0, time.UTC)
)

// readMDSTestdata returns a file of the shared MDS test data.
func readMDSTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(mdsTestdata, name))
	if err != nil {
		tb.Fatalf("the shared MDS test data is missing (%v): the tests expect it at %s", err, mdsTestdata)
	}
	return raw
}

// conformanceRoot is go-webauthn's ConformanceMDSRoot in DER.
func conformanceRoot(tb testing.TB) []byte {
	tb.Helper()
	der, err := base64.StdEncoding.DecodeString(metadata.ConformanceMDSRoot)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// testCA is a root and a signing certificate under it, both P-256, valid from 2020 to 2040.
type testCA struct {
	root, leaf       *x509.Certificate
	rootKey, leafKey *ecdsa.PrivateKey
}

func newTestCA(tb testing.TB) *testCA {
	tb.Helper()
	ca := &testCA{}
	ca.rootKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca.leafKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	from, until := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test MDS root"},
		NotBefore: from, NotAfter: until, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &ca.rootKey.PublicKey, ca.rootKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca.root, _ = x509.ParseCertificate(der)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "test MDS signer"},
		NotBefore: from, NotAfter: until, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err = x509.CreateCertificate(rand.Reader, leafTmpl, ca.root, &ca.leafKey.PublicKey, ca.rootKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca.leaf, _ = x509.ParseCertificate(der)
	return ca
}

// sign makes a compact JWS of payload with header (alg ES256 and x5c of the signing
// certificate unless header sets them; a nil x5c leaves it out), signed by the signing key.
func (ca *testCA) sign(tb testing.TB, header map[string]any, payload []byte) []byte {
	tb.Helper()
	return ca.signWith(tb, ca.leafKey, header, payload)
}

// signWith is sign with another key.
func (ca *testCA) signWith(tb testing.TB, key *ecdsa.PrivateKey, header map[string]any, payload []byte) []byte {
	tb.Helper()
	h := map[string]any{"alg": "ES256", "typ": "JWT", "x5c": []string{base64.StdEncoding.EncodeToString(ca.leaf.Raw)}}
	for k, v := range header {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	hj, _ := json.Marshal(h)
	signing := base64.RawURLEncoding.EncodeToString(hj) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := jwt.SigningMethodES256.Sign(signing, key)
	if err != nil {
		tb.Fatal(err)
	}
	return []byte(signing + "." + base64.RawURLEncoding.EncodeToString(sig))
}

// blob9Entries returns the first n entries of blob.jwt's payload as JSON texts: real entries
// for BLOBs of our own making.
func blob9Entries(tb testing.TB, n int) []json.RawMessage {
	tb.Helper()
	parts := strings.Split(string(readMDSTestdata(tb, "blob.jwt")), ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		tb.Fatal(err)
	}
	var p mdsPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		tb.Fatal(err)
	}
	return p.Entries[:n]
}

// testPayload is an MDS3 payload with number no, nextUpdate next and entries.
func testPayload(tb testing.TB, no int, next string, entries ...json.RawMessage) []byte {
	tb.Helper()
	raw, err := json.Marshal(map[string]any{"legalHeader": "test", "no": no, "nextUpdate": next, "entries": entries})
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// tamper flips one character in the middle of part i (0 header, 1 payload, 2 signature) of a
// compact JWS, keeping it base64url.
func tamper(raw []byte, i int) []byte {
	parts := strings.Split(string(raw), ".")
	b := []byte(parts[i])
	at := len(b) / 2
	if b[at] == 'A' {
		b[at] = 'B'
	} else {
		b[at] = 'A'
	}
	parts[i] = string(b)
	return []byte(strings.Join(parts, "."))
}

// TestVerifyMDSBlobSharedBlobs: both real BLOBs verify at their clocks, to their roots, with
// every entry: the production BLOB number 9 (46 FIDO2 entries by AAGUID, 35 U2F entries by key
// identifier, 17 UAF entries by AAID) and the conformance BLOB number 42.
func TestVerifyMDSBlobSharedBlobs(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		blob, root            []byte
		at                    time.Time
		number, entries       int
		next                  string
		aaguids, u2f, uafOnly int
	}{
		{"production BLOB 9 to GlobalSign Root R3", readMDSTestdata(t, "blob.jwt"), readMDSTestdata(t, "root-r3.crt"), clockBlob9, 9, 98, "2021-12-01", 46, 35, 17},
		{"conformance BLOB 42 to the conformance root", readMDSTestdata(t, "test-blob.jwt"), conformanceRoot(t), clockBlob42, 42, 200, "2022-11-09", 100, 0, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyMDSBlob(tc.blob, tc.root, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if got.Blob.Number != tc.number || got.Blob.Entries != tc.entries || len(got.Entries) != tc.entries ||
				got.Blob.NextUpdate.Format(time.DateOnly) != tc.next || len(got.Skipped) != 0 {
				t.Fatalf("number %d, %d entries (%d), next update %s, skipped %q; want %d, %d, %s, none",
					got.Blob.Number, got.Blob.Entries, len(got.Entries), got.Blob.NextUpdate, got.Skipped, tc.number, tc.entries, tc.next)
			}
			var aaguids, u2f, uafOnly int
			for _, e := range got.Entries {
				switch {
				case e.AAGUID != "":
					aaguids++
				case len(e.KeyIdentifiers) > 0:
					u2f++
				case e.AAID != "":
					uafOnly++
				}
				if e.Description == "" || e.Status == "" {
					t.Errorf("entry %s%v%s has no description or status: %q %q", e.AAGUID, e.KeyIdentifiers, e.AAID, e.Description, e.Status)
				}
			}
			if aaguids != tc.aaguids || u2f != tc.u2f || uafOnly != tc.uafOnly {
				t.Errorf("%d by AAGUID, %d U2F, %d UAF; want %d, %d, %d", aaguids, u2f, uafOnly, tc.aaguids, tc.u2f, tc.uafOnly)
			}
		})
	}
}

// TestVerifyMDSBlobRefusals: a BLOB that was altered, is expired or not yet valid at the clock,
// chains to another root, is stale, or is not a signed MDS3 BLOB at all is refused with a
// reason that says which.
func TestVerifyMDSBlobRefusals(t *testing.T) {
	blob9, r3 := readMDSTestdata(t, "blob.jwt"), readMDSTestdata(t, "root-r3.crt")
	blob42 := readMDSTestdata(t, "test-blob.jwt")
	ca := newTestCA(t)
	entries := blob9Entries(t, 2)
	good := testPayload(t, 5, "2030-01-01", entries...)
	for _, tc := range []struct {
		name       string
		blob, root []byte
		at         time.Time
		want       string
	}{
		{"payload altered", tamper(blob9, 1), r3, clockBlob9, "signature does not verify"},
		{"signature altered", tamper(blob9, 2), r3, clockBlob9, "signature does not verify"},
		{"header altered", tamper(blob9, 0), r3, clockBlob9, "header"},
		{"signing certificate expired at the clock", blob9, r3, time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), "expired or is not yet valid at 2023-01-01T00:00:00Z"},
		{"signing certificate not yet valid at the clock", blob9, r3, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), "expired or is not yet valid"},
		{"chains to another root", blob9, conformanceRoot(t), clockBlob9, `does not chain to the root "FAKE Root FAKE"`},
		{"the production root is not R3", blob9, nil, clockBlob9, `does not chain to the root "GlobalSign Root R46"`},
		{"stale after its nextUpdate", blob42, conformanceRoot(t), time.Date(2022, 11, 10, 0, 0, 1, 0, time.UTC), "stale at 2022-11-10T00:00:01Z: its nextUpdate was 2022-11-09"},
		{"not a JWS", []byte("not.a-jws"), r3, clockBlob9, "compact form"},
		{"empty", nil, r3, clockBlob9, "compact form"},
		{"alg none", ca.sign(t, map[string]any{"alg": "none"}, good), ca.root.Raw, clockBlob9, `algorithm "none"`},
		{"alg HS256", ca.sign(t, map[string]any{"alg": "HS256"}, good), ca.root.Raw, clockBlob9, `algorithm "HS256"`},
		{"alg RS256 with an EC key", ca.sign(t, map[string]any{"alg": "RS256"}, good), ca.root.Raw, clockBlob9, "signature does not verify"},
		{"x5u", ca.sign(t, map[string]any{"x5u": "https://mds.example/chain"}, good), ca.root.Raw, clockBlob9, "x5u"},
		{"crit", ca.sign(t, map[string]any{"crit": []string{"exp"}}, good), ca.root.Raw, clockBlob9, "crit"},
		{"x5c not base64", ca.sign(t, map[string]any{"x5c": []string{"%%%"}}, good), ca.root.Raw, clockBlob9, "not base64"},
		{"x5c not a certificate", ca.sign(t, map[string]any{"x5c": []string{"AAAA"}}, good), ca.root.Raw, clockBlob9, "not an X.509 certificate"},
		{"x5c too long", ca.sign(t, map[string]any{"x5c": make([]string, 9)}, good), ca.root.Raw, clockBlob9, "more than 8"},
		{"no x5c and not signed by the root", ca.sign(t, map[string]any{"x5c": nil}, good), ca.root.Raw, clockBlob9, "signature does not verify"},
		{"root not a certificate", blob9, []byte("garbage"), clockBlob9, "not an X.509 certificate"},
		{"root PEM without a certificate", blob9, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), clockBlob9, "no PEM CERTIFICATE"},
		{"payload not JSON", ca.sign(t, nil, []byte("{")), ca.root.Raw, clockBlob9, "not an MDS3 BLOB payload"},
		{"payload without a number", ca.sign(t, nil, testPayload(t, 0, "2030-01-01")), ca.root.Raw, clockBlob9, "serial number"},
		{"payload with a bad nextUpdate", ca.sign(t, nil, testPayload(t, 3, "soon")), ca.root.Raw, clockBlob9, `nextUpdate "soon"`},
		{"too large", append(make([]byte, MaxMDSBlobBytes), '.'), ca.root.Raw, clockBlob9, "larger than 16 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyMDSBlob(tc.blob, tc.root, tc.at)
			if err == nil {
				t.Fatalf("accepted: number %d, %d entries", got.Blob.Number, len(got.Entries))
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "invalid_request: ") {
				t.Fatalf("error %q, want an invalid_request saying %q", err, tc.want)
			}
		})
	}
}

// TestVerifyMDSBlobOfOurOwn: BLOBs signed by a test CA, in DER or PEM, with or without x5c (the
// root then signs), are decoded with their entries; an entry go-webauthn cannot parse, or one
// repeating an AAGUID, is left out and reported, and the others still come in.
func TestVerifyMDSBlobOfOurOwn(t *testing.T) {
	ca := newTestCA(t)
	entries := blob9Entries(t, 3)
	rootPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.root.Raw})
	var broken map[string]any
	_ = json.Unmarshal(entries[2], &broken)
	broken["statusReports"] = []map[string]string{{"status": "REVOKED", "effectiveDate": "yesterday"}}
	brokenJSON, _ := json.Marshal(broken)
	for _, tc := range []struct {
		name    string
		blob    []byte
		root    []byte
		entries int
		skipped []string
	}{
		{"signed through x5c, root in DER", ca.sign(t, nil, testPayload(t, 7, "2030-01-01", entries...)), ca.root.Raw, 3, nil},
		{"signed through x5c, root in PEM", ca.sign(t, nil, testPayload(t, 7, "2030-01-01", entries...)), rootPEM, 3, nil},
		{"signed by the root, no x5c", ca.signWith(t, ca.rootKey, map[string]any{"x5c": nil}, testPayload(t, 7, "2030-01-01", entries...)), ca.root.Raw, 3, nil},
		{"an entry with a status date that is not a date", ca.sign(t, nil, testPayload(t, 7, "2030-01-01", entries[0], brokenJSON, entries[1])), ca.root.Raw, 2,
			[]string{`entry 1: status report 0: date "yesterday" is not YYYY-MM-DD`}},
		{"an entry that is not an object", ca.sign(t, nil, testPayload(t, 7, "2030-01-01", entries[0], json.RawMessage(`[1]`))), ca.root.Raw, 1,
			[]string{"entry 1: not an MDS3 entry"}},
		{"a repeated entry", ca.sign(t, nil, testPayload(t, 7, "2030-01-01", entries[0], entries[1], entries[0])), ca.root.Raw, 2,
			[]string{"entry 2: ", "repeats entry 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyMDSBlob(tc.blob, tc.root, clockBlob9)
			if err != nil {
				t.Fatal(err)
			}
			if got.Blob.Number != 7 || len(got.Entries) != tc.entries || got.Blob.Entries != tc.entries {
				t.Fatalf("number %d, %d entries (%d), want 7, %d", got.Blob.Number, len(got.Entries), got.Blob.Entries, tc.entries)
			}
			if len(got.Skipped) != min(len(tc.skipped), 1) {
				t.Fatalf("skipped %q, want one saying %q", got.Skipped, tc.skipped)
			}
			for _, want := range tc.skipped {
				if !strings.Contains(got.Skipped[0], want) {
					t.Errorf("skipped %q, want it to say %q", got.Skipped[0], want)
				}
			}
		})
	}
}

// TestProductionMDSRoot: the built-in root is go-webauthn's production root, so that an
// upgrade that changes it shows up here.
func TestProductionMDSRoot(t *testing.T) {
	got, err := ParseMDSRoot(nil)
	if err != nil {
		t.Fatal(err)
	}
	if base64.StdEncoding.EncodeToString(got.Raw) != metadata.ProductionMDSRoot {
		t.Fatal("ProductionMDSRootPEM is not go-webauthn's metadata.ProductionMDSRoot: check which root FIDO publishes now")
	}
	if got.Subject.CommonName != "GlobalSign Root R46" {
		t.Errorf("production root %q", got.Subject.CommonName)
	}
}

// TestStoredMDSEntryParses: an entry as stored turns back into go-webauthn's form, with its
// AAGUID, key identifiers, description and status reports, for the ceremonies to consult; the
// 5 entries of BLOB 9 that go-webauthn's parser refuses are kept, with the reason.
func TestStoredMDSEntryParses(t *testing.T) {
	got, err := VerifyMDSBlob(readMDSTestdata(t, "blob.jwt"), readMDSTestdata(t, "root-r3.crt"), clockBlob9)
	if err != nil {
		t.Fatal(err)
	}
	var byAAGUID, byKeyID bool
	refused := 0
	for _, stored := range got.Entries {
		e, err := parseMDSEntry(stored)
		if (err != nil) != (stored.StatementError != "") {
			t.Fatalf("entry %s%v: parse error %v, statement error %q", stored.AAGUID, stored.KeyIdentifiers, err, stored.StatementError)
		}
		if err != nil {
			refused++
			continue
		}
		if stored.AAGUID != "" {
			byAAGUID = true
			if e.AaGUID.String() != stored.AAGUID {
				t.Errorf("AAGUID %s parsed as %s", stored.AAGUID, e.AaGUID)
			}
		}
		if len(stored.KeyIdentifiers) > 0 {
			byKeyID = true
			if !strings.EqualFold(e.AttestationCertificateKeyIdentifiers[0], stored.KeyIdentifiers[0]) {
				t.Errorf("key identifier %s parsed as %s", stored.KeyIdentifiers[0], e.AttestationCertificateKeyIdentifiers[0])
			}
		}
		if e.MetadataStatement.Description != stored.Description || len(e.StatusReports) == 0 {
			t.Errorf("description %q parsed as %q, %d status reports", stored.Description, e.MetadataStatement.Description, len(e.StatusReports))
		}
		if err := persistence.ValidateMDSEntry(stored); err != nil {
			t.Errorf("entry %s%v does not validate: %v", stored.AAGUID, stored.KeyIdentifiers, err)
		}
	}
	if !byAAGUID || !byKeyID || refused != 5 {
		t.Fatalf("entries by AAGUID: %v, by key identifier: %v, refused by go-webauthn: %d (want true, true, 5)", byAAGUID, byKeyID, refused)
	}
}

// TestLatestStatusReport: a listing shows the last status by effective date, a revocation that
// takes effect later included, but not a report sunset at the clock; ties go to the later in
// the list, and a report without a date to the later too.
func TestLatestStatusReport(t *testing.T) {
	day := func(s string) *time.Time {
		d, _ := time.Parse(time.DateOnly, s)
		return &d
	}
	report := func(status, effective, sunset string) metadata.StatusReport {
		r := metadata.StatusReport{Status: metadata.AuthenticatorStatus(status)}
		if effective != "" {
			r.EffectiveDate = day(effective)
		}
		if sunset != "" {
			r.SunsetDate = day(sunset)
		}
		return r
	}
	at := time.Date(2021, 11, 15, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		reports []metadata.StatusReport
		want    string
	}{
		{"none", nil, ""},
		{"the last by date, whatever the order", []metadata.StatusReport{report("REVOKED", "2021-10-01", ""), report("FIDO_CERTIFIED", "2020-01-01", "")}, "REVOKED"},
		{"a revocation to come", []metadata.StatusReport{report("FIDO_CERTIFIED", "2020-01-01", ""), report("REVOKED", "2022-01-01", "")}, "REVOKED"},
		{"a report sunset at the clock", []metadata.StatusReport{report("FIDO_CERTIFIED", "2020-01-01", ""), report("USER_VERIFICATION_BYPASS", "2021-01-01", "2021-11-15")}, "FIDO_CERTIFIED"},
		{"a tie goes to the later", []metadata.StatusReport{report("FIDO_CERTIFIED", "2020-01-01", ""), report("FIDO_CERTIFIED_L1", "2020-01-01", "")}, "FIDO_CERTIFIED_L1"},
		{"a report without a date", []metadata.StatusReport{report("FIDO_CERTIFIED", "2020-01-01", ""), report("NOT_FIDO_CERTIFIED", "", "")}, "NOT_FIDO_CERTIFIED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if r := latestStatusReport(tc.reports, at); r != nil {
				got = string(r.Status)
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
