package storetest

import (
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/persistence"
)

// Times with nanoseconds: records keep their times to the nanosecond, in UTC.
var (
	t0 = time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)
	t1 = time.Date(2025, 4, 5, 6, 7, 8, 900, time.UTC)
)

// community returns a valid community of tenant "acme" for RP ID example.com.
func community(id string) persistence.Community {
	return persistence.Community{
		ID:               id,
		TenantID:         "acme",
		Name:             "Community " + id,
		RPIDs:            []string{"example.com"},
		Origins:          []string{"https://example.com", "https://login.example.com"},
		UserVerification: persistence.VerificationPreferred,
	}
}

// seedCommunity creates community id (and its tenant acme) and returns it as stored.
func seedCommunity(t *testing.T, s persistence.Store, id string) persistence.Community {
	t.Helper()
	return mustApply(t, s, persistence.PutCommunity{Community: community(id), Create: true}).(persistence.Community)
}

// seedShop is a seed of the community "shop".
func seedShop(t *testing.T, s persistence.Store) { seedCommunity(t, s, "shop") }

// seedUser creates user username of communityID (which must exist) with handle and no
// passkey, as only an import can (a registration creates a user with its first passkey), and
// returns it as stored.
func seedUser(t *testing.T, s persistence.Store, communityID, username string, handle []byte) persistence.User {
	t.Helper()
	u := persistence.User{CommunityID: communityID, Username: username, DisplayName: "Name of " + username, Handle: handle, Created: t0}
	if err := s.Import(t.Context(), []persistence.User{u}, nil); err != nil {
		t.Fatalf("seed user %s: %s", username, describe(err))
	}
	return u
}

// user is a user as a credential names it, without storing anything.
func user(communityID, username, handle string) persistence.User {
	return persistence.User{CommunityID: communityID, Username: username, Handle: []byte(handle)}
}

// credential returns a fully populated credential of u.
func credential(id string, u persistence.User) persistence.Credential {
	return persistence.Credential{
		ID:                 []byte(id),
		CommunityID:        u.CommunityID,
		Username:           u.Username,
		UserHandle:         u.Handle,
		RPID:               "example.com",
		PublicKey:          []byte{0xa5, 0x01, 0x02, 0x03, 0x26},
		Algorithm:          -7,
		AAGUID:             []byte{0xcb, 0x69, 0x48, 0x1e, 0x8f, 0xf7, 0x40, 0x39, 0x93, 0xec, 0x0a, 0x27, 0x29, 0xa1, 0x54, 0xa8},
		AttestationFormat:  "packed",
		AttestationType:    "Basic",
		AttestationObject:  []byte{0xa3, 0x63, 0x66, 0x6d, 0x74},
		AttestationTrusted: true,
		Transports:         []string{"internal", "hybrid"},
		Attachment:         "platform",
		UserPresent:        true,
		UserVerified:       false,
		BackupEligible:     true,
		BackupState:        false,
		SignCount:          0,
		Created:            t0,
	}
}

// asRead is a credential as reads return it: without its attestation object, which only
// AttestationObjectOf reads.
func asRead(c persistence.Credential) persistence.Credential {
	c.AttestationObject = nil
	return c
}

// addCredential stores c (creating its user when new) and returns it.
func addCredential(t *testing.T, s persistence.Store, c persistence.Credential) persistence.Credential {
	t.Helper()
	mustApply(t, s, persistence.AddCredential{Credential: c, DisplayName: "Name of " + c.Username})
	return c
}

// seedCredential stores a credential "c1" of alice (handle "ha") in shop with a stored
// counter.
func seedCredential(t *testing.T, s persistence.Store, counter uint32) persistence.Credential {
	t.Helper()
	seedCommunity(t, s, "shop")
	c := credential("c1", user("shop", "alice", "ha"))
	c.SignCount = counter
	return addCredential(t, s, c)
}

// newLicense makes a license with a fresh key, failing the test when it cannot.
func newLicense(t *testing.T, level, communityID, tenantID string, expiresIn time.Duration) (persistence.License, string) {
	t.Helper()
	l, key, err := persistence.NewLicense(level, communityID, tenantID, expiresIn)
	if err != nil {
		t.Fatal(err)
	}
	return l, key
}

// Two AAGUIDs of real authenticator models.
const (
	yubikey = "cb69481e-8ff7-4039-93ec-0a2729a154a8"
	hello   = "6028b017-b1d4-4c02-b4b3-afcdafc96bb2"
)

// vendorRecord returns a valid record of community for aaguid.
func vendorRecord(community, aaguid string) persistence.VendorRecord {
	return persistence.VendorRecord{CommunityID: community, AAGUID: aaguid, Metadata: `{"aaguid":"` + aaguid + `"}`,
		Name: "Model " + aaguid[:8], UpdatedBy: "ops@example.com"}
}

// seedVendor creates a record and returns it as stored.
func seedVendor(t *testing.T, s persistence.Store, r persistence.VendorRecord) persistence.VendorRecord {
	t.Helper()
	return mustApply(t, s, persistence.PutVendorMetadata{Record: r}).(persistence.VendorRecord)
}
