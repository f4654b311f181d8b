package badger

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
)

// openForExport opens a fresh store that the test closes at its end.
func openForExport(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func applyAll(t *testing.T, s *Store, ops ...persistence.Op) []any {
	t.Helper()
	var out []any
	for i, r := range s.Apply(t.Context(), ops) {
		if r.Err != nil {
			t.Fatalf("op %d (%T): %v", i, ops[i], r.Err)
		}
		out = append(out, r.Value)
	}
	return out
}

// t0 has nanoseconds: a copy keeps times to the nanosecond.
var exportT0 = time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)

// seedEverything gives s a record of every kind an export yields, each with its fields set:
// two tenants (one with host names), two communities, three licenses (active, revoked, and one
// that expired, written as an earlier start would have left it), two secrets, two keyrings
// with retired keys, three users with four credentials (attestation objects, a DID link, a
// sign-in counter, a clone warning), two vendor records (one changed since its creation), an
// MDS BLOB with two entries, and a live replay record.
func seedEverything(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	comm := func(id, tenant string) persistence.Community {
		return persistence.Community{ID: id, TenantID: tenant, Name: "Community " + id, RPIDs: []string{"example.com"},
			Origins: []string{"https://example.com"}, TopOrigins: []string{"https://top.example.com"},
			UserVerification: persistence.VerificationRequired, BlockClones: id == "shop", AttestationTrust: persistence.AttestationTrustRequired}
	}
	applyAll(t, s,
		persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme", Name: "Acme Inc.", Created: exportT0}, DNS: []string{"login.acme.example", "id.acme.example"}},
		persistence.PutCommunity{Community: comm("shop", "acme"), Create: true},
		persistence.PutCommunity{Community: comm("blog", "other"), Create: true, TenantDNS: []string{"blog.example"}},
	)
	active, _, err := persistence.NewLicense(persistence.LevelCommunity, "shop", "", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	revoked, _, _ := persistence.NewLicense(persistence.LevelService, "", "acme", 0)
	applyAll(t, s, persistence.PutLicense{License: active}, persistence.PutLicense{License: revoked}, persistence.RevokeLicense{ID: revoked.ID})
	expired, _, _ := persistence.NewLicense(persistence.LevelSystem, "", "", 0)
	expired.Expires = time.Now().Add(-time.Hour)
	if err := s.db.Update(func(txn *bdb.Txn) error {
		if err := setJSON(txn, licenseKey(expired.KeyHash), expired); err != nil {
			return err
		}
		return txn.Set(licenseIDKey(expired.ID), expired.KeyHash)
	}); err != nil {
		t.Fatal(err)
	}
	applyAll(t, s,
		persistence.PutSecretIfAbsent{Name: "decoy-secret", Value: bytes.Repeat([]byte{7}, 32)},
		persistence.PutSecretIfAbsent{Name: "challenge-mac", Value: bytes.Repeat([]byte{9}, 32)},
	)
	for _, name := range []string{"envelope", "signing"} {
		for i := range 3 {
			rec := persistence.KeyRecord{Kind: "ES256", Private: []byte(name + string(rune('a'+i))), Created: exportT0.Add(time.Duration(i) * time.Hour)}
			applyAll(t, s, persistence.RotateKey{Name: name, New: rec, Keep: 24 * time.Hour})
		}
	}
	user := func(comm, name string, handle byte) persistence.User {
		return persistence.User{CommunityID: comm, Username: name, DisplayName: "The " + name, Handle: []byte{handle, 1, 2}, Created: exportT0}
	}
	cred := func(u persistence.User, id string) persistence.Credential {
		return persistence.Credential{ID: []byte(id), CommunityID: u.CommunityID, Username: u.Username, UserHandle: u.Handle,
			RPID: "example.com", PublicKey: []byte{0xa5, 1, 2, 3}, Algorithm: -7, AAGUID: bytes.Repeat([]byte{0xcb}, 16),
			AttestationFormat: "packed", AttestationType: "Basic", AttestationObject: []byte("att-" + id), AttestationTrusted: true,
			Transports: []string{"internal", "hybrid"}, Attachment: "platform", UserPresent: true, UserVerified: true,
			BackupEligible: true, BackupState: true, Created: exportT0, LastUsed: exportT0.Add(time.Minute)}
	}
	alice, bob, carol := user("shop", "alice", 1), user("shop", "bob", 2), user("blog", "carol", 3)
	noAttestation := cred(carol, "cred-c1")
	noAttestation.AttestationObject = nil
	if err := s.Import(ctx, []persistence.User{alice, bob, carol},
		[]persistence.Credential{cred(alice, "cred-a1"), cred(alice, "cred-a2"), cred(bob, "cred-b1"), noAttestation}); err != nil {
		t.Fatal(err)
	}
	applyAll(t, s,
		persistence.RecordSignIn{ID: []byte("cred-a1"), Counter: 5, UserVerified: true, BackupState: true, At: exportT0.Add(time.Hour)},
		persistence.LinkCredential{CommunityID: "shop", Username: "alice", FidoKeyHash: persistence.FidoKeyHash([]byte("cred-a2")), DID: "did:example:alice"},
	)
	// A counter that went backwards sets the clone warning.
	if r := s.Apply(ctx, []persistence.Op{persistence.RecordSignIn{ID: []byte("cred-a1"), Counter: 4, At: exportT0.Add(2 * time.Hour)}}); r[0].Err == nil {
		t.Fatal("a counter regression was accepted")
	}
	disabled := true
	applyAll(t, s,
		persistence.PutVendorMetadata{Record: persistence.VendorRecord{CommunityID: "shop", AAGUID: "cb69481e-8ff7-4039-93ec-0a2729a154a8",
			Metadata: `{"aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8"}`, Name: "Key", UpdatedBy: "ops@example.com", UpdatedAt: exportT0}},
		persistence.PutVendorMetadata{Record: persistence.VendorRecord{CommunityID: "blog", AAGUID: "ee882879-721c-4913-9775-3dfcce97072a",
			Metadata: `{"aaguid":"ee882879-721c-4913-9775-3dfcce97072a"}`, Name: "Other", UpdatedBy: "a@example.com", UpdatedAt: exportT0}},
	)
	applyAll(t, s, persistence.PatchVendorMetadata{CommunityID: "shop", AAGUID: "cb69481e-8ff7-4039-93ec-0a2729a154a8",
		Disabled: &disabled, UpdatedBy: "sec@example.com", At: exportT0.Add(time.Hour)})
	if _, err := s.ReplaceMDS(ctx, persistence.MDSBlob{Number: 9, NextUpdate: exportT0.Truncate(24 * time.Hour), LegalHeader: "terms"},
		[]persistence.MDSEntry{
			{AAGUID: "cb69481e-8ff7-4039-93ec-0a2729a154a8", Description: "Key", Status: "FIDO_CERTIFIED_L1", StatusDate: exportT0, Entry: json.RawMessage(`{"aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8"}`)},
			{KeyIdentifiers: []string{"0a1b"}, Description: "U2F key", StatementError: "bad root", Entry: json.RawMessage(`{"attestationCertificateKeyIdentifiers":["0a1b"]}`)},
		}, false); err != nil {
		t.Fatal(err)
	}
	applyAll(t, s, persistence.RememberRequest{Caller: []byte("caller"), UUID: "u-1", Until: time.Now().Add(time.Minute)})
}

// copyOf copies src into a fresh store and verifies the copy.
func copyOf(t *testing.T, src *Store) (*Store, persistence.CopyReport) {
	t.Helper()
	dst := openForExport(t)
	report, err := persistence.Copy(t.Context(), src, dst, nil)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	verified, err := persistence.VerifyCopy(t.Context(), src, dst, report)
	if err != nil {
		t.Fatalf("VerifyCopy: %v", err)
	}
	for kind, n := range report.Counts {
		if verified[kind] != n {
			t.Fatalf("%d %s copied, %d verified", n, kind, verified[kind])
		}
	}
	return dst, report
}

func TestCopyCarriesEveryRecord(t *testing.T) {
	src := openForExport(t)
	seedEverything(t, src)
	dst, report := copyOf(t, src)

	want := map[string]int{
		persistence.KindTenants: 2, persistence.KindCommunities: 2, persistence.KindLicenses: 2, persistence.KindSecrets: 2,
		persistence.KindKeyrings: 2, persistence.KindUsers: 3, persistence.KindCredentials: 4, persistence.KindVendor: 2,
		persistence.KindMDSEntries: 2,
	}
	for kind, n := range want {
		if report.Counts[kind] != n {
			t.Errorf("%s: %d copied, want %d", kind, report.Counts[kind], n)
		}
	}
	if len(report.Left) != 1 || !strings.Contains(report.Left[0], "expired") {
		t.Errorf("left out %q, want the expired license", report.Left)
	}
	if until := time.Until(report.ReplaysUntil); until <= 0 || until > time.Minute {
		t.Errorf("ReplaysUntil %s, want the replay record's expiry, within a minute", report.ReplaysUntil)
	}

	// What the verification compares, read here once more as the servers read it.
	ctx := t.Context()
	c, err := dst.Credential(ctx, []byte("cred-a1"))
	if err != nil || c.SignCount != 5 || !c.CloneWarning || !c.LastUsed.Equal(exportT0.Add(time.Hour)) {
		t.Errorf("cred-a1 read back as %+v, %v", c, err)
	}
	if c, _ := dst.Credential(ctx, []byte("cred-a2")); c.DID != "did:example:alice" {
		t.Errorf("cred-a2's DID is %q", c.DID)
	}
	if att, err := dst.AttestationObjectOf(ctx, []byte("cred-a2")); err != nil || string(att) != "att-cred-a2" {
		t.Errorf("cred-a2's attestation object: %q, %v", att, err)
	}
	if u, err := dst.UserByHandle(ctx, "shop", []byte{2, 1, 2}); err != nil || u.Username != "bob" {
		t.Errorf("bob by handle: %+v, %v", u, err)
	}
	ring, err := dst.Keyring(ctx, "signing")
	if err != nil || len(ring.Keys) != 3 || string(ring.Keys[0].Private) != "signingc" || !ring.Keys[0].Retired.IsZero() ||
		!ring.Keys[2].Retired.Equal(exportT0.Add(time.Hour)) {
		t.Errorf("signing keyring read back as %+v, %v", ring, err)
	}
	tenant, err := dst.TenantByDNS(ctx, "ID.acme.example")
	if err != nil || tenant.ID != "acme" || tenant.Name != "Acme Inc." || !tenant.Created.Equal(exportT0) {
		t.Errorf("tenant by host name: %+v, %v", tenant, err)
	}
	for _, l := range mustLicenses(t, dst) {
		if strings.HasPrefix(l.Level, persistence.LevelService) && !l.Disabled {
			t.Errorf("the revoked license was copied active")
		}
	}
	r, err := dst.VendorRecord(ctx, "shop", "CB69481E-8ff7-4039-93ec-0a2729a154a8")
	if err != nil || !r.Disabled || r.UpdatedBy != "sec@example.com" || !r.Created.Equal(exportT0) || !r.UpdatedAt.Equal(exportT0.Add(time.Hour)) ||
		r.Metadata != `{"aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8"}` {
		t.Errorf("vendor record read back as %+v, %v", r, err)
	}
	if e, err := dst.MDSEntryByKeyIdentifier(ctx, "0A1B"); err != nil || e.StatementError != "bad root" {
		t.Errorf("MDS entry by key id: %+v, %v", e, err)
	}
	srcShape, _ := src.CommonShape(ctx, "shop")
	dstShape, err := dst.CommonShape(ctx, "shop")
	if err != nil || len(dstShape) != len(srcShape) {
		t.Errorf("the shape tally was not derived again: %v, %v", dstShape, err)
	}
}

func mustLicenses(t *testing.T, s *Store) []persistence.License {
	t.Helper()
	l, err := s.AllLicenses(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestCopyRefusesATargetThatIsNotEmpty(t *testing.T) {
	src := openForExport(t)
	seedEverything(t, src)
	for _, tc := range []struct {
		name string
		seed persistence.Op
	}{
		{"a community", persistence.PutCommunity{Community: persistence.Community{ID: "default", TenantID: "default", Name: "d",
			RPIDs: []string{"localhost"}, Origins: []string{"http://localhost:8080"}, UserVerification: persistence.VerificationPreferred}, Create: true}},
		{"a tenant of the source", persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme", Name: "x"}}},
		{"a secret of the source", persistence.PutSecretIfAbsent{Name: "decoy-secret", Value: []byte("other")}},
		{"a keyring of the source", persistence.RotateKey{Name: "envelope", New: persistence.KeyRecord{Kind: "secp256k1", Private: []byte("x"), Created: exportT0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := openForExport(t)
			applyAll(t, dst, tc.seed)
			before, err := dst.Digest()
			if err != nil {
				t.Fatal(err)
			}
			_, err = persistence.Copy(t.Context(), src, dst, nil)
			if err == nil || !strings.Contains(err.Error(), "not empty") {
				t.Fatalf("Copy into a store with %s: %v, want a refusal", tc.name, err)
			}
			if after, _ := dst.Digest(); !bytes.Equal(before, after) {
				t.Fatal("the refused copy wrote to the target")
			}
		})
	}
}

func TestVerifyCopyFindsADifference(t *testing.T) {
	src := openForExport(t)
	seedEverything(t, src)
	dst, report := copyOf(t, src)
	applyAll(t, dst, persistence.RecordSignIn{ID: []byte("cred-b1"), Counter: 9, UserVerified: true, BackupState: true, At: exportT0})
	_, err := persistence.VerifyCopy(t.Context(), src, dst, report)
	if err == nil || !strings.Contains(err.Error(), `user "bob"`) || !strings.Contains(err.Error(), "SignCount") {
		t.Fatalf("VerifyCopy after a sign-in on the target: %v, want bob's SignCount named", err)
	}
}

func TestExportRefusesWhatItCannotCarry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(txn *bdb.Txn) error
		want  string
	}{
		{"a key of an unknown kind", func(txn *bdb.Txn) error { return txn.Set([]byte("zz/new-kind"), []byte("v")) }, "zz/"},
		{"a credential no user owns", func(txn *bdb.Txn) error {
			c := persistence.Credential{ID: []byte("stray"), CommunityID: "shop", Username: "nobody", UserHandle: []byte{9}}
			return setCredential(txn, c)
		}, "credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openForExport(t)
			seedEverything(t, s)
			if err := s.db.Update(tc.write); err != nil {
				t.Fatal(err)
			}
			err := s.Export(t.Context(), func(persistence.Exported) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Export: %v, want a refusal naming %q", err, tc.want)
			}
		})
	}
}

func TestExportStopsWithItsContext(t *testing.T) {
	s := openForExport(t)
	seedEverything(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	err := s.Export(ctx, func(persistence.Exported) error {
		n++
		cancel()
		return ctx.Err()
	})
	if err == nil || n != 1 {
		t.Fatalf("Export after its context ended: %d records, %v", n, err)
	}
}
