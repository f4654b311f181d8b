package messages

import "time"

// ListPasskeys asks for a user's passkeys with their links to DIDs.
type ListPasskeys struct {
	Scope
	// Username identifies the user within the community.
	Username string
}

// UserPasskeys answers ListPasskeys. An unknown user has Found false and no passkeys.
type UserPasskeys struct {
	Found bool
	// UserHandle and DisplayName are what WebAuthn's signal calls need.
	UserHandle  []byte
	DisplayName string
	Passkeys    []Passkey
}

// Passkey is one registered passkey as a relying party may see it.
type Passkey struct {
	// CredentialID is the raw credential id; FidoKeyHash names it in the link routes.
	CredentialID []byte
	FidoKeyHash  string
	// DID is the decentralized identifier the passkey is linked to, or empty.
	DID string
	// AAGUID is the authenticator model, formatted as a UUID; AuthenticatorName its name from
	// vendor metadata, or empty.
	AAGUID             string
	AuthenticatorName  string
	AttestationFormat  string
	AttestationTrusted bool
	BackupEligible     bool
	BackupState        bool
	SignCount          uint32
	Created            time.Time
	// LastUsed is the time of the last sign-in, zero when there was none.
	LastUsed time.Time
}

// Link links (or unlinks) a user's passkey, named by its fidoKeyHash, to a DID.
type Link struct {
	Scope
	Username string
	// FidoKeyHash is the lowercase hex SHA-256 of the raw credential id.
	FidoKeyHash string
	DID         string
}

// Unregister removes the passkeys an identifier names in a community: a fidoKeyHash (that
// passkey) or a DID (every passkey linked to it); with a Username, only that user's.
type Unregister struct {
	Scope
	Username   string
	Identifier string
}
