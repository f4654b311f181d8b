package persistence

import (
	"encoding/json"
	"fmt"
	"time"
)

// Tenant owns communities; a service license acts on every community of its tenant.
type Tenant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// DNS are the tenant's host names (lower case, no port), each owned by one tenant; BlockID
	// SDKs find their tenant by one of them.
	DNS     []string  `json:"dns,omitempty"`
	Created time.Time `json:"created"`
}

// User verification policies of a community.
const (
	VerificationRequired    = "required"
	VerificationPreferred   = "preferred"
	VerificationDiscouraged = "discouraged"
)

// Community is a relying party: its RP IDs, allowed origins and ceremony policies.
type Community struct {
	ID       string `json:"id"`
	TenantID string `json:"tenantId"`
	Name     string `json:"name"`
	// RPIDs are the relying party IDs a request's dns may name.
	RPIDs []string `json:"rpIds"`
	// Origins are the origins a clientDataJSON may carry.
	Origins []string `json:"origins"`
	// TopOrigins, when not empty, allow cross-origin iframes whose topOrigin is listed.
	TopOrigins []string `json:"topOrigins,omitempty"`
	// UserVerification is required, preferred or discouraged.
	UserVerification string `json:"userVerification"`
	// BlockClones refuses sign-ins of a credential that carries a clone warning.
	BlockClones bool `json:"blockClones,omitempty"`
	// AttestationTrust is any (the default, stored empty) or required: then only registrations
	// whose attestation chains to a root of the authenticator's metadata are accepted, and the
	// options always ask for direct attestation.
	AttestationTrust string    `json:"attestationTrust,omitempty"`
	Created          time.Time `json:"created"`
	Updated          time.Time `json:"updated"`
}

// User is a person known to a community by username, with a random WebAuthn user handle. Its
// times are stored in UTC, to the nanosecond.
type User struct {
	CommunityID string    `json:"communityId"`
	Username    string    `json:"username"`
	DisplayName string    `json:"displayName"`
	Handle      []byte    `json:"handle"`
	Created     time.Time `json:"created"`
}

// Credential is a registered passkey with what its registration and sign-ins told us. Its
// times are stored in UTC, to the nanosecond.
type Credential struct {
	ID          []byte `json:"id"`
	CommunityID string `json:"communityId"`
	Username    string `json:"username"`
	UserHandle  []byte `json:"userHandle"`
	RPID        string `json:"rpId"`
	// PublicKey is the COSE_Key from the attested credential data.
	PublicKey         []byte `json:"publicKey"`
	Algorithm         int64  `json:"alg"`
	AAGUID            []byte `json:"aaguid"`
	AttestationFormat string `json:"attestationFormat"`
	AttestationType   string `json:"attestationType"`
	// AttestationObject is the registration's CBOR attestation object. It is stored under a
	// key of its own: AddCredential writes it, and only [Store.AttestationObjectOf] reads it;
	// every other read of a credential leaves it nil.
	AttestationObject  []byte    `json:"attestationObject"`
	AttestationTrusted bool      `json:"attestationTrusted"`
	Transports         []string  `json:"transports,omitempty"`
	Attachment         string    `json:"attachment,omitempty"`
	UserPresent        bool      `json:"up"`
	UserVerified       bool      `json:"uv"`
	BackupEligible     bool      `json:"be"`
	BackupState        bool      `json:"bs"`
	SignCount          uint32    `json:"signCount"`
	CloneWarning       bool      `json:"cloneWarning,omitempty"`
	Created            time.Time `json:"created"`
	LastUsed           time.Time `json:"lastUsed,omitzero"`
	// DID is the decentralized identifier the passkey is linked to, if any (see LinkCredential).
	DID string `json:"did,omitempty"`
}

// Attestation trust policies of a community.
const (
	AttestationTrustAny      = "any"
	AttestationTrustRequired = "required"
)

// License levels.
const (
	LevelCommunity = "community"
	LevelService   = "service"
	LevelSystem    = "system"
)

// License lets a caller act on communities. Only the SHA-256 of its key is stored.
type License struct {
	ID          string    `json:"id"`
	KeyHash     []byte    `json:"keyHash"`
	Level       string    `json:"level"`
	CommunityID string    `json:"communityId,omitempty"`
	TenantID    string    `json:"tenantId,omitempty"`
	Expires     time.Time `json:"expires,omitzero"`
	Disabled    bool      `json:"disabled,omitempty"`
	Created     time.Time `json:"created"`
}

// KeyRecord is one of the service's own private keys.
type KeyRecord struct {
	// Kind says what the key is: the envelope curve's name, or "ES256" for token signing.
	Kind    string    `json:"kind"`
	Private []byte    `json:"private"`
	Created time.Time `json:"created"`
	// Retired is when a rotation replaced the key (zero for the current key).
	Retired time.Time `json:"retired,omitzero"`
}

// Keyring is a key with its retired predecessors, newest first: Keys[0] is current.
type Keyring struct {
	Keys []KeyRecord `json:"keys"`
}

// MDSBlob describes the FIDO Metadata Service BLOB whose entries are the global metadata: they
// apply to every community that has no record of its own for an authenticator.
type MDSBlob struct {
	// Number is the BLOB's serial number ("no"); an import must bring a higher one unless forced.
	Number int `json:"number"`
	// NextUpdate is the date (UTC midnight) by which the MDS promised the next BLOB.
	NextUpdate time.Time `json:"nextUpdate"`
	// LegalHeader is the BLOB's legal notice, kept as the terms it was accepted under.
	LegalHeader string `json:"legalHeader,omitempty"`
	// Entries counts the stored entries.
	Entries int `json:"entries"`
	// Generation counts the imports: it changes with each one, so that a cache of entries (or of
	// what was derived from them) knows it is stale. See [Store.MDSGeneration].
	Generation uint64 `json:"generation"`
	// Imported is when the import switched to this BLOB's entries.
	Imported time.Time `json:"imported"`
}

// Source says where the entries of b came from, as `webauthnd metadata list` shows it.
func (b MDSBlob) Source() string { return fmt.Sprintf("mds blob %d", b.Number) }

// MDSEntry is one entry of an MDS BLOB. FIDO2 authenticators are found by AAGUID, U2F ones (whose
// AAGUID is all zeros) by the key identifiers of their attestation certificates; UAF entries
// carry an AAID, which no WebAuthn ceremony looks up, and are kept so that a listing shows the
// whole BLOB.
type MDSEntry struct {
	// AAGUID is the authenticator model's AAGUID in canonical form (36 lower-case characters,
	// 8-4-4-4-12), or empty for U2F and UAF entries.
	AAGUID string `json:"aaguid,omitempty"`
	// KeyIdentifiers are the lower-case hex SHA-1 identifiers of the attestation certificates'
	// public keys (attestationCertificateKeyIdentifiers), by which U2F entries are found.
	KeyIdentifiers []string `json:"keyIdentifiers,omitempty"`
	// AAID is a UAF authenticator's AAID.
	AAID string `json:"aaid,omitempty"`
	// Description is the metadata statement's description (the model's English name).
	Description string `json:"description,omitempty"`
	// Status is the entry's latest status (e.g. FIDO_CERTIFIED_L1, REVOKED): that of its last
	// status report by effective date, one that takes effect later included, for listings;
	// StatusDate is that report's effective date, if it gave one. Ceremonies judge the status
	// reports in Entry at their own clock.
	Status     string    `json:"status,omitempty"`
	StatusDate time.Time `json:"statusDate,omitzero"`
	// StatementError, when not empty, is why go-webauthn's metadata parser refuses the entry
	// (e.g. an attestation root certificate it cannot read): its status and description hold,
	// its statement's attestation roots cannot be used.
	StatementError string `json:"statementError,omitempty"`
	// Entry is the entry's JSON as the BLOB carried it (an MDS3 MetadataBLOBPayloadEntry): the
	// statement with its attestation roots and every status report, for go-webauthn's metadata
	// types to parse. A backend keeps its JSON value, not its text: it may re-encode it (the
	// embedded store drops insignificant spaces, a jsonb column orders keys).
	Entry json.RawMessage `json:"entry"`
	// Source is where the entry came from ("mds blob 9"); reads fill it in, it is not stored.
	Source string `json:"-"`
}

// AnyCommunity is the community id that the vendor metadata routes read as "every community the
// license may see". It is reserved: no community may be created with it (in any case, so that
// no look-alike of it exists either).
const AnyCommunity = "any"

// MaxVendorMetadata bounds the metadata statement of a vendor record, as JSON text (some real
// statements are 50 KB).
const MaxVendorMetadata = 256 << 10

// VendorRecord is what a community states about one authenticator model, found by the AAGUID
// its authenticators report: a FIDO MDS3 metadata statement, a name, and whether registrations
// and sign-ins of that model are refused. A community's record for an AAGUID comes before the
// global MDS entry for it. Authenticators without an AAGUID (U2F, whose AAGUID is all zeros)
// cannot be described by a record; MDS entries find them by attestation key identifier.
type VendorRecord struct {
	// ID is the record's own id (vm_ and 16 hex digits), made when it is created.
	ID          string `json:"id"`
	CommunityID string `json:"communityId"`
	// AAGUID is in its canonical form (see [CanonicalAAGUID]).
	AAGUID string `json:"aaguid"`
	// Metadata is the metadata statement as the caller gave it (JSON text, checked to be a
	// statement for AAGUID before it was stored).
	Metadata  string    `json:"metadata"`
	Name      string    `json:"name"`
	Disabled  bool      `json:"disabled"`
	UpdatedBy string    `json:"updatedBy"`
	UpdatedAt time.Time `json:"updatedAt"`
	Created   time.Time `json:"created"`
}

// VendorMetadata reads the communities' vendor metadata records. Generation changes on every
// committed write of a record, so that a cache of records (or of what was derived from them,
// such as parsed statements) can check with one atomic load whether it is still current.

// CredentialShape is what a sign-in's allowCredentials shows of a passkey to anyone who asks:
// the length of its id and its transports, in their stored order.
type CredentialShape struct {
	IDLength   int
	Transports []string
}
