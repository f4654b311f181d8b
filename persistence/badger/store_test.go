package badger_test

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// Writes that Apply reported as done survive closing and reopening the directory.
func TestWritesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, closeStore := mustOpenAt(t, dir)
	com := seedCommunity(t, s, "shop")
	u := seedUser(t, s, "shop", "alice", []byte("handle-a"))
	cred := credential("cred-1", u)
	mustApply(t, s, persistence.AddCredential{Credential: cred})
	mustApply(t, s, persistence.RecordSignIn{ID: cred.ID, Counter: 7, UserVerified: true, BackupState: true, At: t1})
	if err := applyErr(t, s, persistence.RecordSignIn{ID: cred.ID, Counter: 3, At: t1}); err == nil {
		t.Fatal("regressing counter accepted")
	}
	lic, key, err := persistence.NewLicense(persistence.LevelService, "", "acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, persistence.PutLicense{License: lic})
	mustApply(t, s, persistence.PutSecretIfAbsent{Name: "signing", Value: []byte("secret-1")})
	closeStore()

	s, _ = mustOpenAt(t, dir)
	if got, err := s.Community(ctx, "shop"); err != nil || !reflect.DeepEqual(got, com) {
		t.Fatalf("Community after reopen = %+v, %v; want %+v", got, err, com)
	}
	if _, err := s.Tenant(ctx, "acme"); err != nil {
		t.Fatalf("Tenant after reopen: %v", err)
	}
	if got, err := s.UserByHandle(ctx, "shop", []byte("handle-a")); err != nil || !reflect.DeepEqual(got, u) {
		t.Fatalf("UserByHandle after reopen = %+v, %v; want %+v", got, err, u)
	}
	want := asRead(cred)
	want.SignCount, want.UserVerified, want.BackupState, want.LastUsed, want.CloneWarning = 7, true, true, t1, true
	if got, err := s.Credential(ctx, cred.ID); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Credential after reopen = %+v, %v\nwant %+v", got, err, want)
	}
	if list, err := s.CredentialsOf(ctx, "shop", "alice"); err != nil || len(list) != 1 || !bytes.Equal(list[0].ID, cred.ID) {
		t.Fatalf("CredentialsOf after reopen = %+v, %v; want [cred-1]", list, err)
	}
	if got, err := s.LicenseByKey(ctx, key); err != nil || !reflect.DeepEqual(got, lic) {
		t.Fatalf("LicenseByKey after reopen = %+v, %v; want %+v", got, err, lic)
	}
	if got, err := s.Secret(ctx, "signing"); err != nil || string(got) != "secret-1" {
		t.Fatalf("Secret after reopen = %q, %v; want secret-1", got, err)
	}
	if empty, err := s.Empty(ctx); err != nil || empty {
		t.Fatalf("Empty after reopen = %v, %v; want false", empty, err)
	}
}

// A directory is held by one open store at a time.
func TestOpenRefusesADirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	mustOpenAt(t, dir)
	s, err := badger.Open(dir, zap.NewNop())
	if err == nil {
		s.Close()
		t.Fatal("second Open of a directory in use succeeded")
	}
}

// TestRefusedOpsWriteNoKey: a refused op leaves nothing behind (persistence.Op), which the
// contract suite sees through the reads; here, key for key, including the indexes and tallies
// no read shows. Each op is refused after the checks that come before its first write could
// have written something.
func TestRefusedOpsWriteNoKey(t *testing.T) {
	const aaguid = "cb69481e-8ff7-4039-93ec-0a2729a154a8"
	vendor := persistence.VendorRecord{CommunityID: "shop", AAGUID: aaguid, Metadata: "{}", Name: "Key", UpdatedBy: "ops"}
	bad := community("shop")
	bad.Origins = []string{"https://example.org"}
	for _, tc := range []struct {
		name string
		op   persistence.Op
		code messages.Code
	}{
		{"a first registration another one overtook", persistence.AddCredential{Credential: credential("x1",
			persistence.User{CommunityID: "shop", Username: "alice", Handle: []byte("other")})}, messages.CodeConflict},
		{"a registration of a stored id by a new user", persistence.AddCredential{Credential: credential("a1",
			persistence.User{CommunityID: "shop", Username: "zed", Handle: []byte("h-zed")})}, messages.CodeCredentialExists},
		{"a tenant claiming a free host and a taken one", persistence.PutTenant{Tenant: persistence.Tenant{ID: "newco"},
			DNS: []string{"free.example", "taken.example"}}, messages.CodeConflict},
		{"a community of a new tenant with a taken host", persistence.PutCommunity{Community: func() persistence.Community {
			c := community("blog")
			c.TenantID = "newco"
			return c
		}(), Create: true, TenantDNS: []string{"taken.example"}}, messages.CodeConflict},
		{"a patch that makes the community invalid", persistence.PatchCommunity{ID: "shop", Origins: bad.Origins}, messages.CodeInvalidRequest},
		{"a link of a passkey linked elsewhere", persistence.LinkCredential{CommunityID: "shop", Username: "alice",
			FidoKeyHash: hashOf("a1"), DID: "did:example:other"}, messages.CodeConflict},
		{"a removal of another user's passkey", persistence.RemoveCredentials{CommunityID: "shop", Username: "bob",
			FidoKeyHash: hashOf("a1")}, messages.CodeNotFound},
		{"a second vendor record", persistence.PutVendorMetadata{Record: vendor}, messages.CodeConflict},
		{"a sign-in of an unknown passkey", persistence.RecordSignIn{ID: []byte("nope"), Counter: 1}, messages.CodeCredentialUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustOpen(t)
			seedPasskeys(t, s)
			mustApply(t, s, persistence.PutTenant{Tenant: persistence.Tenant{ID: "acme"}, DNS: []string{"taken.example"}})
			mustApply(t, s, persistence.LinkCredential{CommunityID: "shop", Username: "alice", FidoKeyHash: hashOf("a1"), DID: "did:example:a"})
			mustApply(t, s, persistence.PutVendorMetadata{Record: vendor})
			before, err := s.Digest()
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, applyErr(t, s, tc.op), tc.code)
			if after, err := s.Digest(); err != nil || !bytes.Equal(after, before) {
				t.Fatalf("the refused op changed the store (%v)", err)
			}
		})
	}
}

// TestGenerationsMoveOnlyWithTheirRecords: the contract lets any batch move a generation; this
// store moves each only after a batch that ran an op of its records (accepted or refused), so
// that a cache is read again only when it may be stale.
func TestGenerationsMoveOnlyWithTheirRecords(t *testing.T) {
	s := mustOpen(t)
	seedCommunity(t, s, "shop")
	const aaguid = "cb69481e-8ff7-4039-93ec-0a2729a154a8"
	vendor := persistence.VendorRecord{CommunityID: "shop", AAGUID: aaguid, Metadata: "{}", Name: "Key", UpdatedBy: "ops"}
	key := func(b byte) persistence.KeyRecord {
		return persistence.KeyRecord{Kind: "ES256", Private: []byte{b}, Created: time.Now().UTC()}
	}
	on := true
	for _, step := range []struct {
		name            string
		op              persistence.Op
		vendor, keyring bool // which generation moves
	}{
		{"a vendor record", persistence.PutVendorMetadata{Record: vendor}, true, false},
		{"a vendor patch", persistence.PatchVendorMetadata{CommunityID: "shop", AAGUID: aaguid, Disabled: &on, UpdatedBy: "x"}, true, false},
		{"a refused vendor record", persistence.PutVendorMetadata{Record: vendor}, true, false},
		{"a first key", persistence.RotateKey{Name: "signing", New: key(1), OnlyIfAbsent: true}, false, true},
		{"a rotation", persistence.RotateKey{Name: "signing", New: key(2), Keep: time.Hour}, false, true},
		{"a secret", persistence.PutSecretIfAbsent{Name: "x", Value: []byte("y")}, false, false},
		{"a community change", persistence.PatchCommunity{ID: "shop", Name: "Shop"}, false, false},
		{"a passkey", persistence.AddCredential{Credential: credential("c1", persistence.User{CommunityID: "shop", Username: "a", Handle: []byte("h")})}, false, false},
	} {
		vendorGen, keyringGen := s.VendorGeneration(), s.KeyringGeneration()
		s.Apply(ctx, []persistence.Op{step.op})
		if moved := s.VendorGeneration() != vendorGen; moved != step.vendor {
			t.Errorf("after %s the vendor generation moved = %v, want %v", step.name, moved, step.vendor)
		}
		if moved := s.KeyringGeneration() != keyringGen; moved != step.keyring {
			t.Errorf("after %s the keyring generation moved = %v, want %v", step.name, moved, step.keyring)
		}
	}
}
