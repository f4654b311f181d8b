package persistence

import "time"

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
